"""Zammad generic CTI: Frontdesk's calls in a Zammad caller log.

Zammad's CTI API (docs.zammad.org, "Generic CTI") takes form posts to
``https://<zammad>/api/v1/cti/<token>`` with ``event`` = ``newCall``, ``answer`` or
``hangup`` and the fields ``from``, ``to``, ``direction`` (``in``/``out``), ``callId``,
``user[]`` (names of the people involved, one field each), ``queue`` (newCall, optional),
``answeringNumber`` (what Zammad finds the answering user by: phone, login or id) and
``cause`` (hangup: ``normalClearing``, ``busy``, ``cancel``, ``noAnswer``, ``congestion``,
``notFound``, ``forwarded``). Numbers go in international form without ``+``
(``493055571600``), or ``anonymous``.

Calls Frontdesk's own media answers (voicemail, a menu, a prompt) are reported as answered
by the user ``voicemail``: Zammad's caller log (``Cti::Log``) keeps an inbound call whose
answerer is ``voicemail`` open (not done) when it hangs up, as a call for someone to return.
Zammad has no transfer event; a transfer is a further ``answer`` for the same ``callId``
naming the new user (Zammad takes the last answer's user for its log), so a menu caller put
through to a person, or a person's caller sent to voicemail, ends up under the right name.

A Zammad installation is a webhook endpoint of kind ``zammad``: call events are rendered
here into those forms and go through the same delivery log, signing and retries as every
webhook. Request events are not sent to Zammad. This module must never send anything
itself nor touch the database beyond creating the endpoint.
"""

from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy.orm import Session

from frontdesk.tickets.endpoints import create_endpoint
from frontdesk.tickets.events import (
    CallAnswered,
    CallEnded,
    CallStarted,
    CallTransferred,
    TicketEvent,
)
from frontdesk.tickets.model import WebhookEndpoint
from frontdesk.tickets.numbers import caller_e164, caller_user_part

CONTENT_TYPE = "application/x-www-form-urlencoded"
#: The call events a Zammad endpoint receives.
CTI_EVENTS = ("call.started", "call.answered", "call.transferred", "call.ended")


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
    if not isinstance(event, CallStarted | CallAnswered | CallTransferred | CallEnded):
        return None
    if isinstance(event, CallStarted):
        name = "newCall"
    elif isinstance(event, CallEnded):
        name = "hangup"
    else:
        name = "answer"  # a transfer too: the new answerer
    fields: list[tuple[str, str]] = [
        ("event", name),
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
    if isinstance(event, CallTransferred):
        user, number = event.to_answered_by, event.to_number
    else:
        user, number = event.answered_by, event.answering_number
    if user:
        fields.append(("user[]", user))
    if isinstance(event, CallEnded):
        fields.append(("cause", event.cause))
    if number:
        fields.append(("answeringNumber", number))
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
