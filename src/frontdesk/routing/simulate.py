"""The flow simulator: the path a call would take, node by node, with the reason for each
branch — before anyone publishes a change or when someone asks "why did this call go there?".

What it is for: ``simulate(flow, ctx, now, behaviour)`` plays a call through the same pure
evaluation the call engine uses (``shield.start_call``, ``evaluate.advance``), answering
each action from a ``Behaviour`` (who does not answer, who is busy, which keys the caller
presses). ``simulate_for_tenant`` reads the same data the live engine reads — the tenant's
extensions, roles and groups, the published flow (or the front-desk template), the caller
lookup from tickets/ — and is what ``frontdesk flow simulate`` and the API call.

Simulated time moves on as the call does (a ring that is not answered takes its timeout),
so a call at 16:59:50 that rings for 20 s meets the hours check with the right time.

What it must never do: write anything, or evaluate differently from the engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from frontdesk.routing.actions import (
    Action,
    ConnectedAction,
    HangupAction,
    MenuAction,
    Outcome,
    PlayAction,
    QueueAction,
    RingAction,
    Step,
    TransferAction,
    VoicemailAction,
    action_dict,
)
from frontdesk.routing.context import UNKNOWN_CALLER, CallContext, CallerFacts, build_context
from frontdesk.routing.directory import Directory, StaticDirectory, describe, load_directory
from frontdesk.routing.evaluate import MAX_ACTIONS, advance
from frontdesk.routing.model import FlowDocument
from frontdesk.routing.shield import start_call
from frontdesk.routing.versions import LoadedFlow, load_flow


class SimulationError(Exception):
    """The simulation cannot run as asked; the message names the problem and the fix."""


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How people and the caller behave: everyone answers unless listed."""

    no_answer: frozenset[str] = frozenset()
    busy: frozenset[str] = frozenset()
    #: Keys the caller presses at successive menus (then nothing: the menu times out).
    keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Simulation:
    """A simulated call: the final step (its path is the whole walk) and what was fed back."""

    final: Step
    exchanges: tuple[tuple[Action, str], ...]
    started_at: datetime
    ended_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the API."""
        return {
            "flow": self.final.state.flow,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "path": [entry.as_dict() for entry in self.final.path],
            "result": action_dict(self.final.action),
            "shield": self.final.state.shield.as_dict() if self.final.state.shield else None,
        }


def _ring_outcome(extensions: Iterable[str], behaviour: Behaviour) -> Outcome:
    extensions = tuple(extensions)
    for number in extensions:
        if number not in behaviour.no_answer and number not in behaviour.busy:
            return Outcome.answered(by=number)
    if extensions and all(n in behaviour.busy for n in extensions):
        return Outcome("busy")
    return Outcome("no_answer")


def _respond(action: Action, behaviour: Behaviour, keys: list[str]) -> tuple[Outcome, int]:
    """The outcome of ``action`` and the seconds it took."""
    if isinstance(action, RingAction | QueueAction):
        outcome = _ring_outcome(action.extensions, behaviour)
        waited = action.timeout if isinstance(action, RingAction) else action.max_wait
        return outcome, 5 if outcome.kind == "answered" else waited
    if isinstance(action, PlayAction):
        return Outcome("done"), max(3, len(action.text.split()) * 2 // 5)
    if isinstance(action, MenuAction):
        if keys:
            return Outcome.pressed(keys.pop(0)), 3
        return Outcome("timeout"), action.timeout
    raise SimulationError(f"nothing to answer for {type(action).__name__}")


def simulate(
    flow: FlowDocument, ctx: CallContext, now: datetime, behaviour: Behaviour = Behaviour()
) -> Simulation:
    """Walk one call from its first action to the end of the flow."""
    step = start_call(flow, ctx, now)
    clock = now
    keys = list(behaviour.keys)
    exchanges: list[tuple[Action, str]] = []
    for _ in range(MAX_ACTIONS + 1):
        if step.done:
            break
        outcome, seconds = _respond(step.action, behaviour, keys)
        exchanges.append((step.action, outcome.kind if outcome.kind != "digit" else outcome.digit))
        clock += timedelta(seconds=seconds)
        step = advance(flow, step.state, outcome, ctx, clock)
    return Simulation(step, tuple(exchanges), now, clock)


# --- people named on the command line ------------------------------------------------------------


def _extensions(directory: Directory) -> tuple[str, ...]:
    if isinstance(directory, StaticDirectory):
        return tuple(directory.extensions)
    return ()


def resolve_people(directory: Directory, names: Iterable[str]) -> frozenset[str]:
    """Extension numbers for names as people type them: ``everyone``, ``101``, a role
    (``office-manager`` or ``role:office_manager``), a group, a username."""
    found: set[str] = set()
    for raw in names:
        name = raw.strip()
        kind, sep, rest = name.partition(":")
        if name.lower() in ("everyone", "all", "anyone"):
            found.update(_extensions(directory))
            continue
        candidates: list[tuple[str, ...] | None]
        if sep:
            role = rest.lower().replace("-", "_")
            by_kind = {
                "role": directory.role_holders(role),
                "group": directory.group_members(rest),
                "user": directory.user_extensions(rest),
                "extension": (rest,) if directory.extension_name(rest) is not None else None,
            }
            candidates = [by_kind.get(kind.lower())]
        else:
            candidates = [
                (name,) if directory.extension_name(name) is not None else None,
                directory.role_holders(name.lower().replace("-", "_")),
                directory.group_members(name),
                directory.user_extensions(name),
            ]
        hit = next((c for c in candidates if c), None)
        if hit is None:
            raise SimulationError(
                f'"{raw}" is not an extension, user, group or role with people in this tenant'
            )
        found.update(hit)
    return frozenset(found)


# --- from the store ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimulationRequest:
    """A simulated call as the CLI and the API describe it."""

    caller: str
    #: ``main`` or an extension number.
    to: str = "main"
    #: When the call arrives; a naive time is read in the flow's time zone.
    at: datetime | None = None
    no_answer: tuple[str, ...] = ()
    busy: tuple[str, ...] = ()
    keys: str = ""
    vip: bool = False
    emergency: bool = False
    variables: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: Replaces the caller lookup (e.g. to try the shield before tickets has data).
    facts: CallerFacts | None = None


@dataclass(frozen=True, slots=True)
class TenantSimulation:
    """A simulation with what it was run against."""

    simulation: Simulation
    flow: LoadedFlow
    request: SimulationRequest
    directory: StaticDirectory


def caller_facts(session: Session, tenant_id: int, caller: str) -> CallerFacts:
    """What tickets/ knows about ``caller`` (unknown caller when tickets is not installed)."""
    try:
        from frontdesk.routing.context import facts_from_lookup
        from frontdesk.tickets.lookup import caller_lookup
    except ImportError:
        return UNKNOWN_CALLER
    return facts_from_lookup(caller_lookup(session, tenant_id, caller))


def _arrival(at: datetime | None, timezone: str, now: datetime) -> datetime:
    if at is None:
        return now
    return at if at.tzinfo is not None else at.replace(tzinfo=ZoneInfo(timezone))


def simulate_for_tenant(
    session: Session, tenant_id: int, request: SimulationRequest, *, now: datetime
) -> TenantSimulation:
    """Simulate ``request`` against the tenant's data, as the engine would see the call
    (``now`` is used when the request gives no time)."""
    loaded = load_flow(session, tenant_id)
    directory = load_directory(session, tenant_id)
    to = request.to.strip()
    dialled = None if to.lower() in ("main", "") else to
    if dialled is not None and directory.extension_name(dialled) is None:
        raise SimulationError(f'--to "{to}" is neither "main" nor an extension of this tenant')
    facts = request.facts or caller_facts(session, tenant_id, request.caller)
    if request.vip:
        facts = CallerFacts(**{**_fields(facts), "vip": True})
    ctx = build_context(
        caller=request.caller,
        directory=directory,
        dialled_extension=dialled,
        facts=facts,
        emergency=request.emergency,
        variables=request.variables,
    )
    behaviour = Behaviour(
        no_answer=resolve_people(directory, request.no_answer),
        busy=resolve_people(directory, request.busy),
        keys=tuple(request.keys),
    )
    arrival = _arrival(request.at, loaded.document.timezone, now)
    result = simulate(loaded.document, ctx, arrival, behaviour)
    return TenantSimulation(result, loaded, request, directory)


def _fields(facts: CallerFacts) -> dict[str, Any]:
    return {name: getattr(facts, name) for name in CallerFacts.__slots__}


# --- rendering -----------------------------------------------------------------------------------


def action_summary(action: Action, directory: Directory) -> str:
    """How a call ended, in words: ``voicemail of 102 (Service Manager)``."""
    if isinstance(action, ConnectedAction):
        return f"answered by {describe(directory, action.extension)}"
    if isinstance(action, VoicemailAction):
        return f'voicemail of {describe(directory, action.mailbox)} (greeting "{action.greeting}")'
    if isinstance(action, TransferAction):
        return f"transferred to {describe(directory, action.number)}"
    if isinstance(action, HangupAction):
        return f"hung up: {action.reason}"
    return f"still waiting at {action.node} (the simulation stopped)"


def render(run: TenantSimulation) -> list[str]:
    """The simulation as lines a person reads (the CLI prints them)."""
    sim, request = run.simulation, run.request
    zone = ZoneInfo(run.flow.document.timezone)
    local = sim.started_at.astimezone(zone)
    to = "the main number" if request.to.lower() in ("main", "") else f"extension {request.to}"
    lines = [
        f"Call from {request.caller} to {to} at {local:%a %Y-%m-%d %H:%M %Z} "
        f"({run.flow.document.timezone})",
        f"Runs {run.flow.label}",
    ]
    path = sim.final.path
    width = max((len(e.node) for e in path), default=4)
    kinds = max((len(e.type) for e in path if e.type != "outcome"), default=4)
    number = 0
    for entry in path:
        arrow = f" -> {entry.next}" if entry.next else ""
        if entry.type == "outcome":
            lines.append(f"{'':>4} {'':<{width}}  {'':<{kinds}}  {entry.note}{arrow}")
            continue
        number += 1
        lines.append(
            f"{number:>3}. {entry.node:<{width}}  {entry.type:<{kinds}}  {entry.note}{arrow}"
        )
    lines.append(f"Result: {action_summary(sim.final.action, run.directory)}")
    return lines
