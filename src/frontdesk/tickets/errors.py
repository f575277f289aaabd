"""Errors the tickets layer raises when a person (or a helpdesk) asks for something that
cannot be done. The message names the thing, ``fix`` says what to do (each class has a
default), ``field`` names the input at fault so the API can point at it in a problem+json
answer, and ``status``/``title`` are what the API answers with.

This module must never import anything beyond the standard library: every other tickets
module, the API and the call engine import it.
"""

from __future__ import annotations


class TicketsError(Exception):
    """Base of every tickets error; ``str(error)`` is the person-facing message."""

    status = 400
    title = "Invalid request"
    default_fix = "correct the request"

    def __init__(self, message: str, *, field: str | None = None, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.fix = fix if fix is not None else self.default_fix


class InvalidValue(TicketsError, ValueError):
    """A value is malformed or not one of the allowed ones."""

    status = 422
    title = "Invalid value"
    default_fix = "send a value of the documented form"


class PhoneNumberError(InvalidValue):
    """A phone number cannot be parsed into E.164."""

    title = "Invalid phone number"
    default_fix = (
        "write it in international form (+<country code> <number>, e.g. +1 212 555 0100), "
        "or set the tenant's phone_region setting for national numbers"
    )


class NotFound(TicketsError, LookupError):
    """Something named in the request does not exist in this tenant."""

    status = 404
    title = "Not found"
    default_fix = "list them to see which exist"


class UnknownRequest(NotFound):
    """No service request with this number in this tenant."""

    title = "Unknown service request"
    default_fix = "list the tenant's service requests to find its number (SR-<digits>)"


class UnknownContact(NotFound):
    title = "Unknown contact"
    default_fix = "list the tenant's contacts to find the id"


class UnknownCompany(NotFound):
    title = "Unknown company"
    default_fix = "list the tenant's companies to find the id"


class UnknownUser(NotFound):
    """No co-worker (user of this tenant) with this id or name."""

    title = "Unknown user"
    default_fix = "pick one of the tenant's users (list them to see who exists)"


class UnknownEndpoint(NotFound):
    title = "Unknown webhook endpoint"
    default_fix = "list the tenant's webhook endpoints to find the id"


class UnknownCall(NotFound):
    """No call with this reference (CDR id) in this tenant."""

    title = "Unknown call"
    default_fix = (
        "use the call's reference from the screen pop (data.call_id) or from "
        "GET /api/v1/tickets/calls"
    )


class CallUnavailable(TicketsError):
    """The running server cannot act on live calls (no call engine here, or no call
    control in it)."""

    status = 503
    title = "Live calls not available"
    default_fix = "send this to the API of the running `frontdesk serve` that carries the call"


class Conflict(TicketsError):
    """The change collides with existing data (a duplicate name, a resolved request)."""

    status = 409
    title = "Conflict"
    default_fix = "look at the current state and change the request to fit it"


class AmbiguousContact(Conflict):
    """A caller or contact matches more than one contact or company; the caller of the
    function must say which one is meant."""

    title = "Ambiguous contact"
    default_fix = "pass contact_id or company_id to say which one is meant"


class InvalidTransition(Conflict):
    """A service request cannot move from its state to the one asked for."""

    title = "Invalid state transition"
    default_fix = "move the request through an allowed state first"


class SignatureError(TicketsError):
    """A webhook signature is missing, malformed, too old or does not match."""

    status = 401
    title = "Invalid webhook signature"
    default_fix = "sign the body with the endpoint's secret: t=<unix>,v1=<hex HMAC-SHA256>"


class CallEnded(Conflict):
    """The call has ended (or is not answered yet) and cannot be acted on any more."""

    title = "Call not in progress"
    default_fix = "act on a call while it is in progress (GET /api/v1/tickets/calls lists them)"


class CallActionFailed(Conflict):
    """The call engine could not carry out an action on a live call (the target did not
    answer, has no phone, the call is still ringing...); the caller stays where they were."""

    title = "Call action failed"
    default_fix = "try another target, or send the call to voicemail"
