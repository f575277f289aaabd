"""Pure evaluation of a call flow: (flow, call context, time) -> next action.

Theory of operation. ``start(flow, ctx, now)`` enters the flow at its start step and walks
the steps that decide instantly (start, hours, condition, set) until it reaches one that
needs the call engine (ring, play, menu, queue) or ends the flow (voicemail, transfer, hang
up). It returns a ``Step``: that action plus a ``WalkState``. The engine performs the action
and calls ``advance(flow, step.state, outcome, ctx, now)`` with what happened (answered, no
answer, busy, a key, timeout, done); the walk continues from there. ``Step.done`` says the
flow has finished (voicemail, transfer, hang up, or connected after an answer).

Every step visited appends a ``PathEntry`` with the reason for the branch taken ("closed:
Christmas Day (US public holiday)", "101 (Office Manager) did not answer in 20 s"), which
the engine stores on the CDR and the simulator prints.

Bounds, so a live call can never spin: between two actions at most ``len(nodes) + 1`` steps
are visited (validation rejects loops that never wait for the caller; an unvalidated flow
that has one ends the call), and a call gets at most ``MAX_ACTIONS`` actions.

What it must never do: read the clock, touch the database or the network, mutate its
inputs, or raise on a flow problem during a call (it ends the call with the reason instead).
It raises only ``OutcomeError`` when the engine reports an outcome the action cannot have.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

from frontdesk.routing.actions import (
    Action,
    ConnectedAction,
    HangupAction,
    MenuAction,
    Outcome,
    OutcomeError,
    PathEntry,
    PlayAction,
    QueueAction,
    RingAction,
    ShieldDecision,
    Step,
    TransferAction,
    VoicemailAction,
    WalkState,
)
from frontdesk.routing.context import CallContext
from frontdesk.routing.directory import describe, resolve
from frontdesk.routing.hours import check, holiday_name
from frontdesk.routing.model import (
    ConditionNode,
    FlowDocument,
    HangupNode,
    HoursNode,
    MenuNode,
    PlayNode,
    QueueNode,
    RingNode,
    SetNode,
    StartNode,
    TransferNode,
    VoicemailNode,
)

#: Actions one call may get before the flow gives up (a flow that loops through waiting steps).
MAX_ACTIONS = 50
#: Pseudo-node for an extension dialled directly (see ``ring_directly``).
DIRECT = "@direct"

_Jump = tuple[str | None, str]  # (next node, note)


# --- steps that decide at once ----------------------------------------------------------------


def _start(
    flow: FlowDocument, node: Any, ctx: CallContext, now: datetime, variables: dict[str, str]
) -> _Jump:
    return node.next, f'call from {ctx.caller_label} enters flow "{flow.name}"'


def _hours(
    flow: FlowDocument, node: Any, ctx: CallContext, now: datetime, variables: dict[str, str]
) -> _Jump:
    schedule = flow.schedules.get(node.schedule)
    if schedule is None:
        return None, f'schedule "{node.schedule}" does not exist'
    verdict = check(schedule, now, flow.timezone)
    if verdict.state == "open":
        return node.open, verdict.reason
    if verdict.state == "holiday" and node.holiday is not None:
        return node.holiday, verdict.reason
    return node.closed, verdict.reason


def _condition_value(
    node: ConditionNode, ctx: CallContext, variables: dict[str, str]
) -> tuple[bool, str]:
    test = node.test
    if test == "co-worker":
        return ctx.caller_is_coworker, "caller is a co-worker"
    if test == "known-contact":
        return ctx.known_caller, "caller is a known contact"
    if test == "open-request":
        return bool(ctx.open_requests), "caller has an open service request"
    if test == "vip":
        return ctx.vip, "caller is a VIP"
    if test == "emergency":
        return ctx.emergency, "emergency mode is on"
    name = node.variable or ""
    value = variables.get(name)
    if node.equals is None:
        return bool(value), f'variable "{name}" is set'
    return value == node.equals, f'variable "{name}" is "{node.equals}"'


def _condition(
    flow: FlowDocument, node: Any, ctx: CallContext, now: datetime, variables: dict[str, str]
) -> _Jump:
    holds, question = _condition_value(node, ctx, variables)
    return (node.then, f"{question}: yes") if holds else (node.otherwise, f"{question}: no")


def _set(
    flow: FlowDocument, node: Any, ctx: CallContext, now: datetime, variables: dict[str, str]
) -> _Jump:
    variables[node.variable] = node.value
    return node.next, f'variable "{node.variable}" = "{node.value}"'


_INSTANT: dict[type, Callable[[FlowDocument, Any, CallContext, datetime, dict[str, str]], _Jump]]
_INSTANT = {StartNode: _start, HoursNode: _hours, ConditionNode: _condition, SetNode: _set}


# --- steps that need the engine ---------------------------------------------------------------


def _ring_order(node: RingNode, ctx: CallContext) -> tuple[tuple[str, ...], list[str]]:
    """Extensions to ring in order (duplicates dropped) and notes on targets with nobody."""
    order: list[str] = []
    missing: list[str] = []
    for target in node.targets:
        found = resolve(ctx.directory, target)
        if not found:
            missing.append(f"{target}: {'nobody' if found == () else 'does not exist'}")
            continue
        order.extend(n for n in found if n not in order)
    if node.strategy == "round-robin" and order:
        turn = ctx.round_robin_turn % len(order)
        order = order[turn:] + order[:turn]
    return tuple(order), missing


def _ring(node_id: str, node: RingNode, state: WalkState, ctx: CallContext) -> Step | _Jump:
    order, missing = _ring_order(node, ctx)
    skipped = f" (skipped {'; '.join(missing)})" if missing else ""
    if not order:
        return node.no_answer, f"nobody to ring{skipped}"
    if node.strategy == "simultaneous":
        ringing, position = order, 0
    else:
        ringing, position = order[:1], 1
    people = ", ".join(describe(ctx.directory, n) for n in ringing)
    note = f"ringing {people} for {node.timeout} s{skipped}"
    if position:
        note += f" ({node.strategy}, 1 of {len(order)})"
    action = RingAction(node_id, ringing, node.timeout, node.strategy, max(position, 1))
    entry = PathEntry(node_id, "ring", note)
    return _issue(action, state._replace(ring_order=order, attempt=position, busy_count=0), entry)


def _message(flow: FlowDocument, name: str) -> str:
    return flow.messages.get(name, "")


def _waiting(
    flow: FlowDocument, node_id: str, node: Any, state: WalkState, ctx: CallContext
) -> Step | _Jump:
    if isinstance(node, RingNode):
        return _ring(node_id, node, state, ctx)
    if isinstance(node, PlayNode):
        action: Action = PlayAction(node_id, node.message, _message(flow, node.message))
        return _issue(action, state, PathEntry(node_id, "play", f'playing "{node.message}"'))
    if isinstance(node, MenuNode):
        return _menu(flow, node_id, node, state._replace(attempt=1))
    if isinstance(node, QueueNode):
        members = ctx.directory.group_members(node.group) or ()
        if not members:
            return node.no_answer, f'queue "{node.group}" has nobody to take the call'
        action = QueueAction(node_id, node.group, members, node.max_wait)
        note = f'waiting in queue "{node.group}" for up to {node.max_wait} s'
        return _issue(action, state, PathEntry(node_id, "queue", note))
    return _ending(flow, node_id, node, state, ctx)


def _menu(
    flow: FlowDocument, node_id: str, node: MenuNode, state: WalkState, retry: str | None = None
) -> Step:
    """Ask the menu; ``retry`` is the message said first when it asks again."""
    choices = tuple(sorted(node.choices))
    action = MenuAction(
        node_id,
        node.prompt,
        _message(flow, node.prompt),
        choices,
        node.timeout,
        state.attempt,
        retry or "",
        _message(flow, retry) if retry else "",
    )
    tries = f" (try {state.attempt} of {node.retries + 1})" if state.attempt > 1 else ""
    first = f'saying "{retry}", then ' if retry else ""
    note = f'{first}menu "{node.prompt}": keys {", ".join(choices) or "none"}{tries}'
    return _issue(action, state, PathEntry(node_id, "menu", note))


def _ending(
    flow: FlowDocument, node_id: str, node: Any, state: WalkState, ctx: CallContext
) -> Step:
    if isinstance(node, VoicemailNode):
        boxes = resolve(ctx.directory, node.mailbox)
        if not boxes:
            return _hang_up(state, node_id, f"mailbox of {node.mailbox} does not exist")
        mailbox = boxes[0]
        action: Action = VoicemailAction(
            node_id, mailbox, node.greeting, _message(flow, node.greeting)
        )
        note = f'voicemail of {describe(ctx.directory, mailbox)}, greeting "{node.greeting}"'
        return _finish(action, state, PathEntry(node_id, "voicemail", note))
    if isinstance(node, TransferNode):
        internal = ctx.directory.extension_name(node.number) is not None
        where = "extension" if internal else "outside number"
        action = TransferAction(node_id, node.number, internal)
        return _finish(
            action,
            state,
            PathEntry(
                node_id, "transfer", f"transfer to {where} {describe(ctx.directory, node.number)}"
            ),
        )
    if isinstance(node, HangupNode):
        text = _message(flow, node.message) if node.message else ""
        action = HangupAction(node_id, "the flow ends the call", text)
        return _finish(action, state, PathEntry(node_id, "hangup", "hang up"))
    return _hang_up(state, node_id, f'step "{node_id}" has an unknown type')


# --- building steps ---------------------------------------------------------------------------


def _issue(action: Action, state: WalkState, entry: PathEntry) -> Step:
    """Hand a waiting action to the engine (or give up when the call has had too many)."""
    if state.actions >= MAX_ACTIONS:
        return _hang_up(
            state,
            entry.node,
            f"gave up after {MAX_ACTIONS} steps: the flow keeps going round (check its loops)",
        )
    path = (*state.path, entry)
    return Step(action, state._replace(node=entry.node, actions=state.actions + 1, path=path))


def _finish(action: Action, state: WalkState, entry: PathEntry) -> Step:
    path = (*state.path, entry)
    return Step(action, state._replace(node="", path=path, finished=True))


def _hang_up(state: WalkState, node_id: str, reason: str) -> Step:
    return _finish(HangupAction(node_id, reason), state, PathEntry(node_id, "hangup", reason))


def _walk(
    flow: FlowDocument,
    state: WalkState,
    node_id: str | None,
    ctx: CallContext,
    now: datetime,
    came_from: str = "",
) -> Step:
    """Visit steps from ``node_id`` until one needs the engine or ends the flow."""
    path = list(state.path)
    variables = dict(state.variables)
    for _ in range(len(flow.nodes) + 1):
        if node_id is None:
            done = state._replace(path=tuple(path), variables=MappingProxyType(variables))
            return _hang_up(done, came_from, f'step "{came_from}" does not say where to go next')
        node = flow.nodes.get(node_id)
        if node is None:
            done = state._replace(path=tuple(path), variables=MappingProxyType(variables))
            return _hang_up(done, node_id, f'step "{node_id}" does not exist in flow "{flow.name}"')
        instant = _INSTANT.get(type(node))
        if instant is not None:
            next_id, note = instant(flow, node, ctx, now, variables)
        else:
            here = state._replace(path=tuple(path), variables=MappingProxyType(variables))
            result = _waiting(flow, node_id, node, here, ctx)
            if isinstance(result, Step):
                return result
            next_id, note = result
        path.append(PathEntry(node_id, node.type, note, next_id))
        came_from, node_id = node_id, next_id
    done = state._replace(path=tuple(path), variables=MappingProxyType(variables))
    return _hang_up(done, came_from, f'flow "{flow.name}" loops without waiting for the caller')


# --- entry points -----------------------------------------------------------------------------


def prepare(flow: FlowDocument, now: datetime) -> None:
    """Build the holiday calendars ``flow`` needs for this year and the next, so the first
    call of a year does not pay for it. Call it when a flow is loaded; repeating is free."""
    for schedule in flow.schedules.values():
        if schedule.holidays is not None:
            for year in (now.year, now.year + 1):
                holiday_name(schedule.holidays, date(year, 1, 1))


def start(
    flow: FlowDocument,
    ctx: CallContext,
    now: datetime,
    *,
    path: tuple[PathEntry, ...] = (),
    shield: ShieldDecision | None = None,
) -> Step:
    """Enter ``flow`` at its start step for the call ``ctx`` at ``now`` (aware datetime)."""
    state = WalkState(flow=flow.name, variables=ctx.variables, path=path, shield=shield)
    first = flow.start_node
    if first is None:
        return _hang_up(state, "", f'flow "{flow.name}" has no single start step')
    return _walk(flow, state, first, ctx, now)


def advance(
    flow: FlowDocument, state: WalkState, outcome: Outcome | str, ctx: CallContext, now: datetime
) -> Step:
    """Continue the walk with the outcome of ``state``'s pending action."""
    if state.finished:
        raise OutcomeError(f"the walk through flow {state.flow!r} has already finished")
    result = Outcome.parse(outcome)
    if state.node == DIRECT:
        return _after_direct(state, result, ctx)
    node = flow.nodes.get(state.node)
    if isinstance(node, RingNode):
        return _after_ring(flow, state, node, result, ctx, now)
    if isinstance(node, MenuNode):
        return _after_menu(flow, state, node, result, ctx, now)
    if isinstance(node, PlayNode):
        _expect(result, ("done",), state.node)
        return _walk(
            flow, _note(state, "message played", node.next), node.next, ctx, now, state.node
        )
    if isinstance(node, QueueNode):
        _expect(result, ("answered", "no_answer", "busy", "failed", "timeout"), state.node)
        if result.kind == "answered":
            return _connected(state, result.by, ctx)
        note = f"nobody took the call within {node.max_wait} s"
        return _walk(flow, _note(state, note, node.no_answer), node.no_answer, ctx, now, state.node)
    raise OutcomeError(f"flow {state.flow!r} has no step {state.node!r} waiting for an outcome")


def _expect(result: Outcome, kinds: tuple[str, ...], node_id: str) -> None:
    if result.kind not in kinds:
        raise OutcomeError(
            f"step {node_id!r} cannot have outcome {result.kind!r}; expected one of {kinds}"
        )


def _note(state: WalkState, note: str, next_id: str | None) -> WalkState:
    """Record the outcome of the pending step on the path."""
    entry = PathEntry(state.node, "outcome", note, next_id)
    return state._replace(path=(*state.path, entry))


def _connected(state: WalkState, by: str, ctx: CallContext) -> Step:
    extension = by or (state.ring_order[0] if state.ring_order else "")
    entry = PathEntry(state.node, "connected", f"answered by {describe(ctx.directory, extension)}")
    return _finish(ConnectedAction(state.node, extension), state, entry)


def _after_ring(
    flow: FlowDocument,
    state: WalkState,
    node: RingNode,
    result: Outcome,
    ctx: CallContext,
    now: datetime,
) -> Step:
    _expect(result, ("answered", "no_answer", "busy", "failed"), state.node)
    if result.kind == "answered":
        return _connected(state, result.by, ctx)
    busy = state.busy_count + (result.kind == "busy")
    what = "was busy" if result.kind == "busy" else "did not answer"
    if 0 < state.attempt < len(state.ring_order):
        current = describe(ctx.directory, state.ring_order[state.attempt - 1])
        upcoming = state.ring_order[state.attempt]
        nxt = _note(state, f"{current} {what} in {node.timeout} s", state.node)._replace(
            attempt=state.attempt + 1,
            busy_count=busy,
        )
        note = (
            f"ringing {describe(ctx.directory, upcoming)} for {node.timeout} s "
            f"({node.strategy}, {state.attempt + 1} of {len(state.ring_order)})"
        )
        action = RingAction(state.node, (upcoming,), node.timeout, node.strategy, state.attempt + 1)
        return _issue(action, nxt, PathEntry(state.node, "ring", note))
    if state.attempt == 0:  # simultaneous: everyone rang at once
        all_busy = result.kind == "busy"
        summary = "busy" if all_busy else f"nobody answered in {node.timeout} s"
    else:
        all_busy = busy == len(state.ring_order)
        last = describe(ctx.directory, state.ring_order[-1])
        summary = f"{last} {what}; " + (
            "everyone was busy" if all_busy else f"nobody of {len(state.ring_order)} answered"
        )
    target = node.busy if all_busy and node.busy is not None else node.no_answer
    return _walk(flow, _note(state, summary, target), target, ctx, now, state.node)


def _after_menu(
    flow: FlowDocument,
    state: WalkState,
    node: MenuNode,
    result: Outcome,
    ctx: CallContext,
    now: datetime,
) -> Step:
    _expect(result, ("digit", "timeout"), state.node)
    if result.kind == "digit" and result.digit in node.choices:
        target: str | None = node.choices[result.digit]
        return _walk(
            flow,
            _note(state, f"caller pressed {result.digit}", target),
            target,
            ctx,
            now,
            state.node,
        )
    heard = (
        f"caller pressed {result.digit}, not a choice"
        if result.kind == "digit"
        else (f"no key pressed in {node.timeout} s")
    )
    if state.attempt <= node.retries:
        again = _note(state, f"{heard}; asking again", state.node)._replace(
            attempt=state.attempt + 1
        )
        retry = node.invalid_prompt if result.kind == "digit" else node.no_input_prompt
        return _menu(flow, state.node, node, again, retry)
    target = node.invalid if result.kind == "digit" and node.invalid else node.no_input
    return _walk(flow, _note(state, heard, target), target, ctx, now, state.node)


# --- extensions dialled directly (technician shield, co-workers) ------------------------------


def ring_directly(
    flow_name: str,
    extension: str,
    ctx: CallContext,
    *,
    path: tuple[PathEntry, ...] = (),
    shield: ShieldDecision | None = None,
) -> Step:
    """Ring ``extension`` for ``ctx.direct_ring_seconds``; no answer -> its voicemail."""
    state = WalkState(
        flow=flow_name, variables=ctx.variables, path=path, shield=shield, ring_order=(extension,)
    )
    seconds = ctx.direct_ring_seconds
    entry = PathEntry(
        DIRECT, "ring", f"ringing {describe(ctx.directory, extension)} directly for {seconds} s"
    )
    return _issue(RingAction(DIRECT, (extension,), seconds), state, entry)


def _after_direct(state: WalkState, result: Outcome, ctx: CallContext) -> Step:
    _expect(result, ("answered", "no_answer", "busy", "failed"), DIRECT)
    if result.kind == "answered":
        return _connected(state, result.by, ctx)
    extension = state.ring_order[0]
    greeting = "busy" if result.kind == "busy" else "unavailable"
    what = "was busy" if result.kind == "busy" else "did not answer"
    noted = _note(state, f"{describe(ctx.directory, extension)} {what}", DIRECT)
    action = VoicemailAction(DIRECT, extension, greeting)
    note = f'voicemail of {describe(ctx.directory, extension)}, greeting "{greeting}"'
    return _finish(action, noted, PathEntry(DIRECT, "voicemail", note))
