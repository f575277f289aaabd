"""Helpers shared by the routing tests: the Acme directory, call contexts, a walker that
feeds outcomes, and readable views of a path.

What it must never do: decide anything the code under test decides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from frontdesk.routing.actions import (
    Action,
    MenuAction,
    Outcome,
    PlayAction,
    QueueAction,
    RingAction,
    Step,
)
from frontdesk.routing.context import CallContext, CallerFacts, build_context
from frontdesk.routing.directory import StaticDirectory
from frontdesk.routing.evaluate import advance
from frontdesk.routing.model import FlowDocument
from frontdesk.routing.shield import start_call

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")

EXTENSIONS = {
    "101": "Office Manager",
    "102": "Service Manager",
    "103": "Service Coordinator",
    "201": "Technician One",
    "202": "Technician Two",
    "301": "Agent One",
    "302": "Agent Two",
    "303": "Agent Three",
}
USER_IDS = {number: index for index, number in enumerate(sorted(EXTENSIONS), start=1)}
ROLES = {
    "office_manager": ["101"],
    "service_manager": ["102"],
    "service_coordinator": ["103"],
    "technician": ["201", "202"],
    "agent": ["301", "302", "303"],
}
GROUPS = {"agents": ["301", "302", "303"], "service-team": ["102", "103"], "empty": []}


def acme_directory(**overrides: Any) -> StaticDirectory:
    """The Acme office: office manager 101, service manager 102, coordinator 103,
    technicians 201 and 202, agents 301-303 (group "agents")."""
    options: dict[str, Any] = {
        "users": {f"user{n}": [n] for n in EXTENSIONS},
        "owners": USER_IDS,
        "groups": GROUPS,
        "roles": ROLES,
        "mailboxes": ["general"],
    }
    options.update(overrides)
    return StaticDirectory.build(EXTENSIONS, **options)


def context(
    caller: str = "+15551234567",
    *,
    to: str | None = None,
    facts: CallerFacts | None = None,
    directory: StaticDirectory | None = None,
    **options: Any,
) -> CallContext:
    """A call to Acme (main number unless ``to`` names an extension)."""
    return build_context(
        caller=caller,
        directory=directory or acme_directory(),
        dialled_extension=to,
        facts=facts or CallerFacts(),
        **options,
    )


def local(zone: ZoneInfo, *parts: int) -> datetime:
    """An aware datetime from local wall-clock parts (year, month, day, hour, minute)."""
    return datetime(*parts, tzinfo=zone)  # type: ignore[misc]


Responder = Callable[[Action], Outcome | str]


def everyone_answers(action: Action) -> Outcome | str:
    if isinstance(action, RingAction | QueueAction):
        return Outcome.answered(action.extensions[0])
    if isinstance(action, MenuAction):
        return "timeout"
    return "done"


def nobody_answers(action: Action) -> Outcome | str:
    if isinstance(action, RingAction | QueueAction):
        return "no_answer"
    if isinstance(action, MenuAction):
        return "timeout"
    return "done"


def answering(*who: str, busy: Iterable[str] = (), keys: Iterable[str] = ()) -> Responder:
    """Only ``who`` answer, ``busy`` are busy, the caller presses ``keys`` at menus."""
    busy_set, pressed = set(busy), list(keys)

    def respond(action: Action) -> Outcome | str:
        if isinstance(action, RingAction | QueueAction):
            for number in action.extensions:
                if number in who:
                    return Outcome.answered(number)
            if action.extensions and all(n in busy_set for n in action.extensions):
                return "busy"
            return "no_answer"
        if isinstance(action, MenuAction):
            return pressed.pop(0) if pressed else "timeout"
        assert isinstance(action, PlayAction)
        return "done"

    return respond


def run_call(
    flow: FlowDocument, ctx: CallContext, now: datetime, respond: Responder, limit: int = 200
) -> tuple[Step, list[Action]]:
    """Walk a call from ``start_call`` to the end; returns the last step and every action."""
    step = start_call(flow, ctx, now)
    actions = [step.action]
    for _ in range(limit):
        if step.done:
            return step, actions
        step = advance(flow, step.state, respond(step.action), ctx, now)
        actions.append(step.action)
    raise AssertionError(f"the walk did not end within {limit} actions")


def nodes(step: Step) -> list[str]:
    """The nodes visited, in order, without repeats for outcome entries."""
    seen: list[str] = []
    for entry in step.path:
        if entry.type in ("outcome", "connected"):
            continue
        seen.append(entry.node)
    return seen


def notes(step: Step) -> str:
    """Every reason on the path, one per line (for `in` checks)."""
    return "\n".join(f"{e.node}: {e.note}" for e in step.path)
