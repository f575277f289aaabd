"""Property: every flow that passes validation reaches a terminal action within a bounded
number of steps, for every sequence of outcomes (and any flow at all never crashes or spins).

Random flows are built from every node type with outcomes pointing at random nodes; nodes
the start cannot reach are dropped (validation would reject them, which is tested elsewhere),
so most generated flows are usable and the rest fail on loops or dead ends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from routing_support import acme_directory, context

from frontdesk.routing.actions import (
    Action,
    MenuAction,
    Outcome,
    PlayAction,
    QueueAction,
    RingAction,
    Step,
)
from frontdesk.routing.context import CallContext, CallerFacts, OpenRequest
from frontdesk.routing.evaluate import MAX_ACTIONS, advance
from frontdesk.routing.model import FlowDocument
from frontdesk.routing.shield import start_call
from frontdesk.routing.validate import find_problems

DIRECTORY = acme_directory()
TARGETS = ["101", "role:office_manager", "role:service_manager", "group:agents", "user:user103",
           "group:service-team"]  # fmt: skip
MAILBOXES = ["102", "role:service_manager", "mailbox:general", "user:user101"]
TYPES = ["hours", "ring", "play", "menu", "voicemail", "queue", "transfer", "condition", "set",
         "hangup"]  # fmt: skip
FLOW_ERRORS = ("loops without waiting", "does not exist", "does not say where",
               "no single start step", "unknown type")  # fmt: skip

ranges = st.sampled_from(["00:00-24:00", "08:00-17:00", "09:00-12:00", "13:00-18:30"])
schedules = st.fixed_dictionaries(
    {
        "timezone": st.sampled_from(["America/New_York", "Europe/Berlin", "UTC"]),
        "weekly": st.dictionaries(
            st.sampled_from(["mon", "tue", "sat", "sun"]), st.lists(ranges, max_size=1)
        ),
        "closed_dates": st.just({"2026-12-24": "Christmas Eve"}),
    }
)


@st.composite
def node(draw: st.DrawFn, names: list[str]) -> dict[str, Any]:
    """One node of a random type with every required outcome set to a random node."""
    kind = draw(st.sampled_from(TYPES))
    to = st.sampled_from(names)
    maybe = st.one_of(st.none(), to)
    if kind == "hours":
        return {"type": "hours", "schedule": "office", "open": draw(to), "closed": draw(to),
                "holiday": draw(maybe)}  # fmt: skip
    if kind == "ring":
        return {"type": "ring", "targets": draw(st.lists(st.sampled_from(TARGETS), min_size=1, max_size=3)),
                "strategy": draw(st.sampled_from(["simultaneous", "sequential", "round-robin"])),
                "timeout": 10, "no_answer": draw(to), "busy": draw(maybe)}  # fmt: skip
    if kind == "play":
        return {"type": "play", "message": "hello", "next": draw(to)}
    if kind == "menu":
        keys = draw(st.lists(st.sampled_from("0123456789*#"), min_size=1, max_size=4, unique=True))
        retries = draw(st.integers(0, 2))
        said = st.none() if retries == 0 else st.one_of(st.none(), st.just("hello"))
        return {"type": "menu", "prompt": "hello", "choices": {k: draw(to) for k in keys},
                "retries": retries, "no_input": draw(to), "invalid": draw(maybe),
                "invalid_prompt": draw(said), "no_input_prompt": draw(said)}  # fmt: skip
    if kind == "voicemail":
        return {"type": "voicemail", "mailbox": draw(st.sampled_from(MAILBOXES))}
    if kind == "queue":
        return {"type": "queue", "group": "agents", "no_answer": draw(to)}
    if kind == "transfer":
        return {"type": "transfer", "number": draw(st.sampled_from(["103", "+15559876543"]))}
    if kind == "condition":
        test = draw(st.sampled_from(["co-worker", "known-contact", "open-request", "vip",
                                     "emergency", "variable"]))  # fmt: skip
        extra = {"variable": "lang", "equals": "fr"} if test == "variable" else {}
        return {"type": "condition", "test": test, "then": draw(to), "otherwise": draw(to), **extra}
    if kind == "set":
        return {"type": "set", "variable": "lang", "value": draw(st.sampled_from(["fr", "en"])),
                "next": draw(to)}  # fmt: skip
    return {"type": "hangup"}


def _reachable(nodes: dict[str, dict[str, Any]], first: str) -> set[str]:
    seen, stack = {first}, [first]
    while stack:
        current = nodes[stack.pop()]
        targets = [v for k, v in current.items() if k in ("next", "open", "closed", "holiday",
                   "no_answer", "busy", "no_input", "invalid", "then", "otherwise")]  # fmt: skip
        targets += list(current.get("choices", {}).values())
        for target in targets:
            if isinstance(target, str) and target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


@st.composite
def flows(draw: st.DrawFn) -> FlowDocument:
    count = draw(st.integers(1, 12))
    names = [f"n{i}" for i in range(count)]
    nodes = {name: draw(node(names)) for name in names}
    first = draw(st.sampled_from(names))
    keep = _reachable(nodes, first)
    return FlowDocument.model_validate(
        {
            "name": "random",
            "schedules": {"office": draw(schedules)},
            "messages": {"hello": "Hello."},
            "nodes": {"start": {"type": "start", "next": first},
                      **{n: v for n, v in nodes.items() if n in keep}},
        }
    )  # fmt: skip


@st.composite
def contexts(draw: st.DrawFn) -> CallContext:
    request = OpenRequest("SR-1", assignee_user_id=draw(st.sampled_from([4, 5])),
                          working_now=draw(st.booleans()))  # fmt: skip
    facts = draw(st.sampled_from([CallerFacts(), CallerFacts(contact_id="7", vip=True),
                                  CallerFacts(company_id="3", open_requests=(request,))]))  # fmt: skip
    return context(
        draw(st.sampled_from(["+15551234567", "102"])),
        to=draw(st.sampled_from([None, None, "201", "103"])),
        facts=facts,
        emergency=draw(st.booleans()),
        variables=draw(st.sampled_from([{}, {"lang": "fr"}])),
        round_robin_turn=draw(st.integers(0, 5)),
        directory=DIRECTORY,
    )


moments = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
)


def _outcome(action: Action, choice: int) -> Outcome | str:
    """A possible outcome of ``action``; the no-answer/no-input kind when choices run out."""
    if isinstance(action, RingAction | QueueAction):
        options: list[Outcome | str] = ["no_answer", "busy", "failed", "timeout"]
        if isinstance(action, RingAction):
            options[3] = "no_answer"
        options.append(Outcome.answered(action.extensions[0]))
        return options[choice % len(options)]
    if isinstance(action, MenuAction):
        return ["timeout", *"0123456789*#"][choice % 13]
    assert isinstance(action, PlayAction), action
    return "done"


def _walk(
    doc: FlowDocument, ctx: CallContext, now: datetime, choices: list[int]
) -> tuple[Step, int]:
    """Run a call to its end; returns the final step and how many actions it took."""
    step = start_call(doc, ctx, now)
    bound = len(doc.nodes) + 3  # path entries one advance may add
    assert len(step.path) <= bound
    actions = 1
    while not step.done:
        choice = choices.pop(0) if choices else 0
        before = len(step.path)
        now += timedelta(seconds=15)
        step = advance(doc, step.state, _outcome(step.action, choice), ctx, now)
        assert len(step.path) - before <= bound, "one advance visited too many nodes"
        actions += 1
        assert actions <= MAX_ACTIONS + 1, "the walk did not end within the bound"
    return step, actions


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(flows(), contexts(), moments, st.lists(st.integers(0, 20), max_size=60))
def test_valid_flows_always_reach_a_terminal_action(
    doc: FlowDocument, ctx: CallContext, now: datetime, choices: list[int]
) -> None:
    assume(not find_problems(doc, DIRECTORY))
    step, actions = _walk(doc, ctx, now, choices)
    assert step.done and step.state.finished and actions <= MAX_ACTIONS + 1
    reason = getattr(step.action, "reason", "")
    assert not any(error in reason for error in FLOW_ERRORS), reason


@settings(max_examples=300, deadline=None)
@given(flows(), contexts(), moments, st.lists(st.integers(0, 20), max_size=60))
def test_any_flow_ends_without_crashing(
    doc: FlowDocument, ctx: CallContext, now: datetime, choices: list[int]
) -> None:
    step, _ = _walk(doc, ctx, now, choices)
    assert step.done
