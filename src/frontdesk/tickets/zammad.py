"""Zammad generic CTI: Frontdesk's calls in a Zammad caller log.

Zammad's CTI API (docs.zammad.org, "Generic CTI") takes form posts to
``https://<zammad>/api/v1/cti/<token>`` with ``event`` = ``newCall``, ``answer`` or
``hangup`` and the fields ``from``, ``to``, ``direction`` (``in``/``out``), ``callId``,
``user[]`` (names of the people involved, one field each), ``queue`` (newCall, optional),
``answeringNumber`` (what Zammad finds the answering user by: phone, login or id) and
``cause`` (hangup: ``normalClearing``, ``busy``, ``cancel``, ``noAnswer``, ``congestion``,
``notFound``, ``forwarded``). Numbers go in international form without ``+``
(``493055571600``), or ``anonymous``.

A Zammad installation is a webhook endpoint of kind ``zammad``: call events are rendered
here into those forms and go through the same delivery log, signing and retries as every
webhook. Request events are not sent to Zammad. This module must never send anything
itself nor touch the database beyond creating the endpoint.
"""

from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy.orm import Session

from frontdesk.tickets.endpoints import create_endpoint
from frontdesk.tickets.events import CallAnswered, CallEnded, CallStarted, TicketEvent
from frontdesk.tickets.model import WebhookEndpoint
from frontdesk.tickets.numbers import caller_e164, caller_user_part

CONTENT_TYPE = "application/x-www-form-urlencoded"
#: The call events a Zammad endpoint receives.
CTI_EVENTS = ("call.started", "call.answered", "call.ended")


def cti_number(raw: str, region: str = "US") -> str:
    """A number as Zammad wants it: international digits without ``+`` (``12125550100``),
    an extension as is (``101``), ``anonymous`` when there is none."""
    e164 = caller_e164(raw, region)
    if e164 is not None:
        return e164.lstrip("+")
    user = caller_user_part(raw)
    if not user or user.lower() in ("anonymous", "unknown", "restricted"):
        return "anonymous"
    return user


def cti_fields(event: TicketEvent, region: str = "US") -> list[tuple[str, str]] | None:
    """The form fields for ``event``, or None when Zammad has no CTI event for it."""
    if not isinstance(event, CallStarted | CallAnswered | CallEnded):
        return None
    fields: list[tuple[str, str]] = []
    if isinstance(event, CallStarted):
        fields.append(("event", "newCall"))
    elif isinstance(event, CallAnswered):
        fields.append(("event", "answer"))
    else:
        fields.append(("event", "hangup"))
    fields += [
        ("from", cti_number(event.caller, region)),
        ("to", cti_number(event.callee, region)),
        ("direction", event.direction),
        ("callId", event.call_id),
    ]
    if isinstance(event, CallStarted):
        fields += [("user[]", name) for name in event.users]
        if event.queue:
            fields.append(("queue", event.queue))
        return fields
    if event.answered_by:
        fields.append(("user[]", event.answered_by))
    if isinstance(event, CallEnded):
        fields.append(("cause", event.cause))
    if event.answering_number:
        fields.append(("answeringNumber", event.answering_number))
    return fields


def render(event: TicketEvent, region: str = "US") -> str | None:
    """The form-encoded body for ``event`` (None: not sent to Zammad)."""
    fields = cti_fields(event, region)
    return None if fields is None else urlencode(fields)


def create_zammad_endpoint(
    session: Session, tenant_id: int, url: str, *, name: str = "zammad"
) -> WebhookEndpoint:
    """Send this tenant's calls to the Zammad CTI endpoint ``url`` (with its token)."""
    return create_endpoint(session, tenant_id, name, url, kind="zammad", events=CTI_EVENTS)
