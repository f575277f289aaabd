"""Who did it: every change in the tickets layer takes an explicit actor, stored as text on
the request and its notes (``user:12``, ``helpdesk:zammad``, ``system``).

The actor is passed in by whoever calls (the API from its token, the call engine from the
answering user, background jobs as ``system``); this module must never look for a
"current user" anywhere (no globals, no request context).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from frontdesk.tickets.errors import InvalidValue

ActorKind = Literal["user", "helpdesk", "system"]
_HELPDESK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,62}")


@dataclass(frozen=True, slots=True)
class Actor:
    """A user of the tenant, an external helpdesk (by name), or the system itself."""

    kind: ActorKind
    user_id: int | None = None
    helpdesk: str | None = None

    def __str__(self) -> str:
        if self.kind == "user":
            return f"user:{self.user_id}"
        if self.kind == "helpdesk":
            return f"helpdesk:{self.helpdesk}"
        return "system"

    @classmethod
    def user(cls, user_id: int) -> Actor:
        return cls("user", user_id=user_id)

    @classmethod
    def from_helpdesk(cls, name: str) -> Actor:
        if not _HELPDESK_NAME.fullmatch(name):
            raise InvalidValue(
                f"helpdesk name {name!r} is not valid: use 1-63 letters, digits, '_', '.', '@', '-'",
                field="actor",
            )
        return cls("helpdesk", helpdesk=name)

    @classmethod
    def of(cls, value: Actor | int | str) -> Actor:
        """An actor from a user id, ``"user:12"``, ``"helpdesk:<name>"`` or ``"system"``."""
        if isinstance(value, Actor):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls.user(value)
        if isinstance(value, str):
            if value == "system":
                return SYSTEM
            kind, _, rest = value.partition(":")
            if kind == "user" and rest.isdigit():
                return cls.user(int(rest))
            if kind == "helpdesk":
                return cls.from_helpdesk(rest)
        raise InvalidValue(
            f"actor {value!r} is not valid: pass a user id, 'user:<id>', "
            "'helpdesk:<name>' or 'system'",
            field="actor",
        )


SYSTEM = Actor("system")
