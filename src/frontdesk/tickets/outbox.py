"""One transaction of tickets work, with its events published: the way the API, the call
engine and background jobs use the tickets layer.

    with unit_of_work(database, dispatcher=dispatcher, bus=publish_live) as work:
        outcome = calls.request_from_call(work.session, tenant_id, user_id, caller=...)
    # committed; webhook deliveries were written in the same transaction,
    # work.events went to the live bus, the dispatcher was woken

Before commit the recorded events become webhook deliveries (``webhooks.publish``); after
a successful commit they are handed to ``bus`` (the WebSocket fan-out) and the dispatcher
is woken. On an exception nothing is committed and nothing is published. This module must
never swallow an error, or publish events of a transaction that did not commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from frontdesk.store.db import Database
from frontdesk.tickets.events import TicketEvent
from frontdesk.tickets.webhooks import WebhookDispatcher, publish

log = logging.getLogger("frontdesk.tickets")

Bus = Callable[[list[TicketEvent]], None]


@dataclass
class UnitOfWork:
    """The session to work in; ``events`` is filled once the transaction committed."""

    session: Session
    events: list[TicketEvent] = field(default_factory=list)


@contextmanager
def unit_of_work(
    database: Database,
    *,
    dispatcher: WebhookDispatcher | None = None,
    bus: Bus | None = None,
) -> Iterator[UnitOfWork]:
    """A session in one transaction whose events are published when it commits."""
    with database.session() as session:
        work = UnitOfWork(session)
        yield work
        published = publish(session)
    work.events = published
    if dispatcher is not None and published:
        dispatcher.wake()
    if bus is not None and published:
        try:
            bus(published)
        except Exception:
            log.exception("live event bus refused %d events (already committed)", len(published))
