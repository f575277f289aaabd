"""Events of voicemail and mailbox-check compliance, and the small bus that delivers them.

Frozen dataclasses in the past tense; each carries its ``routing_key`` and the
``required_permission`` a person needs to see it (STYLE #12), and, where it is addressed to
someone (a missed check goes to the Service Manager), ``addressee``. Publishers publish after
their transaction committed. Subscribers are called synchronously; a failing one is logged
and never stops the others. This module must never touch the database or the network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

log = logging.getLogger("frontdesk.media.events")


@dataclass(frozen=True, slots=True)
class MediaEvent:
    tenant_id: int

    @property
    def routing_key(self) -> str:
        raise NotImplementedError

    @property
    def required_permission(self) -> str:
        return "voicemail.read"

    @property
    def addressee(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class MessageDeposited(MediaEvent):
    mailbox: str
    message_id: str
    caller: str
    duration: float

    @property
    def routing_key(self) -> str:
        return f"voicemail.{self.mailbox}.deposited"


@dataclass(frozen=True, slots=True)
class MessagesChanged(MediaEvent):
    """Counts of a mailbox changed (heard, saved, deleted): lamps and screens follow."""

    mailbox: str
    new: int
    saved: int

    @property
    def routing_key(self) -> str:
        return f"voicemail.{self.mailbox}.changed"


@dataclass(frozen=True, slots=True)
class MailboxChecked(MediaEvent):
    mailbox: str
    checked_by: str
    channel: str
    checked_at: datetime

    @property
    def routing_key(self) -> str:
        return f"voicemail.{self.mailbox}.checked"

    @property
    def required_permission(self) -> str:
        return "voicemail.compliance.read"


@dataclass(frozen=True, slots=True)
class MailboxCheckMissed(MediaEvent):
    """A scheduled check nobody made: escalated to the Service Manager."""

    mailbox: str
    slot_at: datetime
    responsible: tuple[str, ...]
    escalated_to: str | None

    @property
    def routing_key(self) -> str:
        return f"voicemail.{self.mailbox}.check_missed"

    @property
    def required_permission(self) -> str:
        return "voicemail.compliance.read"

    @property
    def addressee(self) -> str | None:
        return self.escalated_to


@dataclass
class EventBus:
    subscribers: list[Callable[[MediaEvent], None]] = field(default_factory=list)
    published: int = 0

    def subscribe(self, callback: Callable[[MediaEvent], None]) -> None:
        self.subscribers.append(callback)

    def publish(self, event: MediaEvent) -> None:
        self.published += 1
        for callback in list(self.subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber %r failed on %s", callback, event.routing_key)
