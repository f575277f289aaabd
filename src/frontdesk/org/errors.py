"""Errors the ownership layer raises: each names the thing, the field when there is one,
and the fix — in words a person can act on, whichever channel (API, CLI, web) shows them.

The API turns them into application/problem+json (RFC 9457) with the status below, the CLI
into one line and exit status 2. This module must never import the web framework.
"""

from __future__ import annotations


class OrgError(Exception):
    """Base class: ``message`` says what is wrong, ``fix`` what to do, ``field`` where."""

    status = 400
    title = "Bad request"

    def __init__(self, message: str, *, fix: str = "", field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.field = field

    def __str__(self) -> str:
        return f"{self.message}; {self.fix}" if self.fix else self.message


class NotAllowed(OrgError):
    """The actor lacks the permission (nothing was changed)."""

    status = 403
    title = "Not allowed"


class NotFound(OrgError):
    """The named resource does not exist in the actor's tenant."""

    status = 404
    title = "Not found"


class Conflict(OrgError):
    """The change clashes with the current state (exists already, changed meanwhile, ...)."""

    status = 409
    title = "Conflict"


class Invalid(OrgError):
    """A field's value is not acceptable; ``field`` names it."""

    status = 422
    title = "Invalid value"
