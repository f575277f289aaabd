"""Everything evaluation may know about one call, gathered before the flow runs.

What it is for: the call engine (and the simulator) look up the caller once — co-worker or
not, contact, company, open service requests and who is working on them now, VIP — and hand
routing a frozen ``CallContext``. Evaluation and the technician shield read only this, so they
stay pure and fast (no database, no network, no clock).

``build_context`` takes values that were already looked up. When ``tickets/`` lands, its
``caller_lookup(...) -> CallerLookup`` result is turned into ``CallerFacts`` by a small adapter
here (``facts_from_lookup``), so the engine's call stays the same.

What it must never do: query anything, or hold mutable state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from frontdesk.routing.directory import EMPTY_DIRECTORY, Directory


@dataclass(frozen=True, slots=True)
class OpenRequest:
    """An open service request of the caller's contact or company."""

    id: str
    title: str = ""
    #: The technician it is assigned to (username and/or extension), if any.
    assignee_user: str | None = None
    assignee_extension: str | None = None
    #: The assignee marked it as being worked on right now.
    working_now: bool = False


@dataclass(frozen=True, slots=True)
class CallerFacts:
    """What the caller lookup found about the calling number (all empty: unknown caller)."""

    contact_id: str | None = None
    contact_name: str | None = None
    company_id: str | None = None
    company_name: str | None = None
    vip: bool = False
    open_requests: tuple[OpenRequest, ...] = ()


UNKNOWN_CALLER = CallerFacts()


@dataclass(frozen=True, slots=True)
class Dialled:
    """What the caller dialled: the tenant's main number, or one extension."""

    extension: str | None = None
    #: The extension belongs to a technician (the shield applies).
    technician: bool = False

    @property
    def main(self) -> bool:
        return self.extension is None


MAIN_NUMBER = Dialled()
_NO_VARIABLES: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CallContext:
    """One inbound call as routing sees it."""

    caller: str
    dialled: Dialled = MAIN_NUMBER
    caller_is_coworker: bool = False
    contact_id: str | None = None
    contact_name: str | None = None
    company_id: str | None = None
    company_name: str | None = None
    open_requests: tuple[OpenRequest, ...] = ()
    vip: bool = False
    emergency: bool = False
    variables: Mapping[str, str] = field(default_factory=lambda: _NO_VARIABLES)
    directory: Directory = EMPTY_DIRECTORY
    #: Which member a round-robin ring starts with (the engine counts calls per tenant).
    round_robin_turn: int = 0
    #: Seconds to ring an extension dialled directly (its own or the tenant's ring timeout).
    direct_ring_seconds: int = 20

    @property
    def known_caller(self) -> bool:
        """The caller is a known contact or belongs to a known company."""
        return self.contact_id is not None or self.company_id is not None

    @property
    def caller_label(self) -> str:
        """``+15551234567 (Dana Smith, Acme Corp)`` — the caller as people read it."""
        who = ", ".join(n for n in (self.contact_name, self.company_name) if n)
        return f"{self.caller} ({who})" if who else self.caller


def build_context(
    *,
    caller: str,
    directory: Directory,
    dialled_extension: str | None = None,
    facts: CallerFacts = UNKNOWN_CALLER,
    emergency: bool = False,
    variables: Mapping[str, str] | None = None,
    round_robin_turn: int = 0,
    direct_ring_seconds: int = 20,
) -> CallContext:
    """A ``CallContext`` from already-looked-up values.

    ``caller`` is the calling number (an extension number for internal calls);
    ``dialled_extension`` is None for the main number. The caller is a co-worker when the
    number is one of the tenant's extensions; the dialled extension is a technician's when
    the directory says so.
    """
    dialled = (
        MAIN_NUMBER
        if dialled_extension is None
        else Dialled(dialled_extension, directory.is_technician(dialled_extension))
    )
    return CallContext(
        caller=caller,
        dialled=dialled,
        caller_is_coworker=directory.extension_name(caller) is not None,
        contact_id=facts.contact_id,
        contact_name=facts.contact_name,
        company_id=facts.company_id,
        company_name=facts.company_name,
        open_requests=facts.open_requests,
        vip=facts.vip,
        emergency=emergency,
        variables=MappingProxyType(dict(variables or {})),
        directory=directory,
        round_robin_turn=round_robin_turn,
        direct_ring_seconds=direct_ring_seconds,
    )


def requests_for(
    requests: Iterable[OpenRequest], *, extensions: Iterable[str], username: str | None = None
) -> list[OpenRequest]:
    """The requests assigned to the person with these extensions / username."""
    numbers = set(extensions)
    return [
        r
        for r in requests
        if (r.assignee_extension is not None and r.assignee_extension in numbers)
        or (username is not None and r.assignee_user == username)
    ]
