"""Everything evaluation may know about one call, gathered before the flow runs.

What it is for: the call engine (and the simulator) look up the caller once — co-worker or
not, contact, company, open service requests and who is working on them now, VIP — and hand
routing a frozen ``CallContext``. Evaluation and the technician shield read only this, so they
stay pure and fast (no database, no network, no clock).

``build_context`` takes values that were already looked up: ``CallerFacts``, which
``facts_from_lookup`` makes from tickets' ``caller_lookup(session, tenant_id, caller)``.

What it must never do: query anything, or hold mutable state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from frontdesk.routing.directory import EMPTY_DIRECTORY, Directory

if TYPE_CHECKING:
    from frontdesk.tickets.lookup import CallerLookup


@dataclass(frozen=True, slots=True)
class OpenRequest:
    """An open service request of the caller's contact or company."""

    #: How people refer to it (``SR-0042``).
    id: str
    title: str = ""
    #: The technician it is assigned to (user id and/or extension), if any.
    assignee_user_id: int | None = None
    assignee_extension: str | None = None
    #: The assignee marked it as being worked on right now.
    working_now: bool = False
    #: Everyone (user ids) working on it right now.
    working_by: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CallerFacts:
    """What the caller lookup found about the calling number (all empty: unknown caller)."""

    #: The number is a co-worker's (an extension, or a co-worker's own phone).
    is_coworker: bool = False
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
        caller_is_coworker=facts.is_coworker or directory.extension_name(caller) is not None,
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


def facts_from_lookup(lookup: CallerLookup) -> CallerFacts:
    """``CallerFacts`` from tickets' ``caller_lookup(session, tenant_id, caller)``.

    A number shared by several contacts or companies still counts as a known caller (the
    first match names it) and every candidate's open requests are kept, so the shield lets
    a caller through when any of them has a request the technician is working on now.
    """
    contact = lookup.contacts[0] if lookup.contacts else None
    company = lookup.companies[0] if lookup.companies else None
    requests = tuple(
        OpenRequest(
            id=r.ref,
            title=r.title,
            assignee_user_id=r.assignee_id,
            assignee_extension=getattr(r, "assignee_extension", None),
            working_now=r.assignee_working_on_it,
            working_by=tuple(r.working_on_by),
        )
        for r in lookup.open_requests
    )
    return CallerFacts(
        is_coworker=lookup.is_coworker,
        contact_id=str(contact.id) if contact else None,
        contact_name=contact.name if contact else None,
        company_id=str(company.id) if company else None,
        company_name=company.name if company else None,
        open_requests=requests,
    )
