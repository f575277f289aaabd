"""Errors the tickets layer raises when a person (or a helpdesk) asks for something that
cannot be done. Each message names the thing and the fix; ``field`` names the input at
fault so the API can point at it in a problem+json answer, and ``status`` is the HTTP
status the API answers with.

This module must never import anything beyond the standard library: every other tickets
module, the API and the call engine import it.
"""

from __future__ import annotations


class TicketsError(Exception):
    """Base of every tickets error; ``str(error)`` is the person-facing message."""

    status = 400
    title = "Invalid request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidValue(TicketsError, ValueError):
    """A value is malformed or not one of the allowed ones."""

    status = 422
    title = "Invalid value"


class PhoneNumberError(InvalidValue):
    """A phone number cannot be parsed into E.164."""

    title = "Invalid phone number"


class NotFound(TicketsError, LookupError):
    """Something named in the request does not exist in this tenant."""

    status = 404
    title = "Not found"


class UnknownRequest(NotFound):
    """No service request with this number in this tenant."""

    title = "Unknown service request"


class UnknownContact(NotFound):
    title = "Unknown contact"


class UnknownCompany(NotFound):
    title = "Unknown company"


class UnknownUser(NotFound):
    """No co-worker (user of this tenant) with this id or name."""

    title = "Unknown user"


class UnknownEndpoint(NotFound):
    title = "Unknown webhook endpoint"


class Conflict(TicketsError):
    """The change collides with existing data (a duplicate name, a resolved request)."""

    status = 409
    title = "Conflict"


class AmbiguousContact(Conflict):
    """A caller or contact matches more than one contact or company; the caller of the
    function must say which one is meant."""

    title = "Ambiguous contact"


class InvalidTransition(Conflict):
    """A service request cannot move from its state to the one asked for."""

    title = "Invalid state transition"


class SignatureError(TicketsError):
    """A webhook signature is missing, malformed, too old or does not match."""

    status = 401
    title = "Invalid webhook signature"
