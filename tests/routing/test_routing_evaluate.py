"""Pure evaluation: strategies, menus, queues, transfers, conditions and variables, the bounds
that keep a live call from spinning, and the errors the engine gets for impossible outcomes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from routing_support import NY, acme_directory, answering, context, local, nobody_answers, run_call

from frontdesk.routing.actions import (
    ConnectedAction,
    HangupAction,
    MenuAction,
    Outcome,
    OutcomeError,
    PlayAction,
    QueueAction,
    RingAction,
    TransferAction,
    VoicemailAction,
    action_dict,
)
from frontdesk.routing.context import CallerFacts, OpenRequest
from frontdesk.routing.evaluate import MAX_ACTIONS, advance, start
from frontdesk.routing.model import FlowDocument
from frontdesk.routing.validate import parse_flow

NOW = local(NY, 2026, 12, 22, 10, 30)
VM = {"type": "voicemail", "mailbox": "102"}


def flow(nodes: dict[str, Any], first: str | None = None) -> FlowDocument:
    return parse_flow(
        {
            "name": "test",
            "timezone": "America/New_York",
            "messages": {"menu": "Press 1 or 2.", "sorry": "Sorry, still busy."},
            "nodes": {"start": {"type": "start", "next": first or next(iter(nodes))}, **nodes},
        }
    )


def ring(targets: list[str], strategy: str = "simultaneous", **more: Any) -> dict[str, Any]:
    return {"type": "ring", "targets": targets, "strategy": strategy, "timeout": 15,
            "no_answer": "vm", **more}  # fmt: skip


def test_simultaneous_rings_everyone_once() -> None:
    doc = flow({"r": ring(["role:service_manager", "role:service_coordinator", "102"]), "vm": VM})
    step = start(doc, context(), NOW)
    assert step.action == RingAction("r", ("102", "103"), 15)
    done = advance(doc, step.state, Outcome.answered("103"), context(), NOW)
    assert done.action == ConnectedAction("r", "103") and done.done


def test_sequential_rings_one_after_another_with_the_timeout_each() -> None:
    doc = flow({"r": ring(["group:agents"], "sequential"), "vm": VM})
    step, actions = run_call(doc, context(), NOW, nobody_answers)
    rings = [a for a in actions if isinstance(a, RingAction)]
    assert [(r.extensions, r.timeout, r.position) for r in rings] == [
        (("301",), 15, 1), (("302",), 15, 2), (("303",), 15, 3)]  # fmt: skip
    assert step.action == VoicemailAction("vm", "102", "standard")
    assert "nobody of 3 answered" in step.path[-2].note


def test_sequential_stops_at_whoever_answers() -> None:
    doc = flow({"r": ring(["group:agents"], "sequential"), "vm": VM})
    step, actions = run_call(doc, context(), NOW, answering("302"))
    assert step.action == ConnectedAction("r", "302")
    assert len(actions) == 3


@pytest.mark.parametrize(("turn", "first"), [(0, "301"), (1, "302"), (2, "303"), (4, "302")])
def test_round_robin_starts_with_the_next_member_each_call(turn: int, first: str) -> None:
    doc = flow({"r": ring(["group:agents"], "round-robin"), "vm": VM})
    _, actions = run_call(doc, context(round_robin_turn=turn), NOW, nobody_answers)
    order = [a.extensions[0] for a in actions if isinstance(a, RingAction)]
    assert order[0] == first and sorted(order) == ["301", "302", "303"]


def test_busy_goes_to_the_busy_outcome_only_when_everyone_was_busy() -> None:
    doc = flow({"r": ring(["group:agents"], "sequential", busy="sorry"), "vm": VM,
                "sorry": {"type": "hangup", "message": "sorry"}})  # fmt: skip
    all_busy, _ = run_call(doc, context(), NOW, answering(busy=["301", "302", "303"]))
    assert all_busy.action == HangupAction("sorry", "the flow ends the call", "Sorry, still busy.")
    some_busy, _ = run_call(doc, context(), NOW, answering(busy=["301"]))
    assert isinstance(some_busy.action, VoicemailAction)
    single = flow({"r": ring(["101"], busy="sorry"), "vm": VM, "sorry": {"type": "hangup"}})
    assert run_call(single, context(), NOW, answering(busy=["101"]))[0].action.node == "sorry"


def test_failed_counts_as_no_answer() -> None:
    doc = flow({"r": ring(["101"]), "vm": VM})
    step = advance(doc, start(doc, context(), NOW).state, "failed", context(), NOW)
    assert isinstance(step.action, VoicemailAction)


def test_targets_with_nobody_are_skipped_and_said_so() -> None:
    directory = acme_directory(groups={"empty": []})
    doc = flow({"r": ring(["group:empty", "role:office_manager"]), "vm": VM})
    step = start(doc, context(directory=directory), NOW)
    assert step.action == RingAction("r", ("101",), 15)
    assert "skipped group empty: nobody" in step.path[-1].note
    nobody = flow({"r": ring(["group:empty"]), "vm": VM})
    skipped = start(nobody, context(directory=directory), NOW)
    assert skipped.action == VoicemailAction("vm", "102", "standard")
    assert "nobody to ring" in skipped.path[1].note


MENU = {
    "menu": {"type": "menu", "prompt": "menu", "choices": {"1": "office", "2": "team"},
             "timeout": 4, "retries": 1, "no_input": "vm", "invalid": "bye"},
    "office": ring(["101"]),
    "team": {"type": "queue", "group": "agents", "max_wait": 60, "no_answer": "vm"},
    "vm": VM,
    "bye": {"type": "hangup"},
}  # fmt: skip


def test_menu_choice_and_queue() -> None:
    doc = flow(MENU)
    step = start(doc, context(), NOW)
    assert step.action == MenuAction("menu", "menu", "Press 1 or 2.", ("1", "2"), 4, 1)
    queued = advance(doc, step.state, "2", context(), NOW)
    assert queued.action == QueueAction("team", "agents", ("301", "302", "303"), 60)
    answered = advance(doc, queued.state, Outcome.answered("302"), context(), NOW)
    assert answered.action == ConnectedAction("team", "302")
    timed_out = advance(doc, queued.state, "timeout", context(), NOW)
    assert timed_out.action == VoicemailAction("vm", "102", "standard")


def test_menu_asks_again_then_takes_no_input_or_invalid() -> None:
    doc = flow(MENU)
    first = start(doc, context(), NOW)
    again = advance(doc, first.state, "timeout", context(), NOW)
    assert again.action == MenuAction("menu", "menu", "Press 1 or 2.", ("1", "2"), 4, 2)
    assert "no key pressed in 4 s; asking again" in again.path[-2].note
    gave_up = advance(doc, again.state, "timeout", context(), NOW)
    assert gave_up.action == VoicemailAction("vm", "102", "standard")
    wrong = advance(doc, advance(doc, first.state, "9", context(), NOW).state, "#", context(), NOW)
    assert wrong.action == HangupAction("bye", "the flow ends the call")
    assert "caller pressed #, not a choice" in wrong.path[-2].note


def test_transfer_internal_and_external() -> None:
    internal = flow({"t": {"type": "transfer", "number": "103"}})
    external = flow({"t": {"type": "transfer", "number": "+4930123456"}})
    assert start(internal, context(), NOW).action == TransferAction("t", "103", True)
    step = start(external, context(), NOW)
    assert step.action == TransferAction("t", "+4930123456", False) and step.done


CONDITIONS = [
    ("co-worker", {"caller": "101"}, True),
    ("co-worker", {}, False),
    ("known-contact", {"facts": CallerFacts(company_id="3")}, True),
    ("known-contact", {}, False),
    ("open-request", {"facts": CallerFacts(contact_id="7", open_requests=(OpenRequest("SR-1"),))}, True),
    ("open-request", {"facts": CallerFacts(contact_id="7")}, False),
    ("vip", {"facts": CallerFacts(vip=True)}, True),
    ("vip", {}, False),
    ("emergency", {"emergency": True}, True),
    ("emergency", {}, False),
]  # fmt: skip


@pytest.mark.parametrize(("test", "options", "holds"), CONDITIONS)
def test_conditions(test: str, options: dict[str, Any], holds: bool) -> None:
    doc = flow({"c": {"type": "condition", "test": test, "then": "yes", "otherwise": "no"},
                "yes": {"type": "hangup"}, "no": VM})  # fmt: skip
    options = dict(options)
    caller = options.pop("caller", "+15551234567")
    step = start(doc, context(caller, **options), NOW)
    assert step.action.node == ("yes" if holds else "no")
    assert step.path[1].note.endswith(": yes" if holds else ": no")


def test_set_variable_then_test_it_and_context_variables() -> None:
    doc = flow({
        "set": {"type": "set", "variable": "lang", "value": "fr", "next": "c"},
        "c": {"type": "condition", "test": "variable", "variable": "lang", "equals": "fr",
              "then": "fr", "otherwise": "en"},
        "fr": {"type": "hangup"}, "en": VM,
    })  # fmt: skip
    step = start(doc, context(), NOW)
    assert step.action.node == "fr" and step.state.variables["lang"] == "fr"
    direct = flow({"c": {"type": "condition", "test": "variable", "variable": "campaign",
                         "then": "fr", "otherwise": "en"}, "fr": {"type": "hangup"}, "en": VM})  # fmt: skip
    assert start(direct, context(variables={"campaign": "x"}), NOW).action.node == "fr"
    assert start(direct, context(), NOW).action.node == "en"


def test_a_loop_through_waiting_steps_gives_up_after_max_actions() -> None:
    doc = flow({"r": ring(["101"], no_answer="sorry"),
                "sorry": {"type": "play", "message": "sorry", "next": "r"}})  # fmt: skip
    step, actions = run_call(doc, context(), NOW, nobody_answers)
    assert len(actions) == MAX_ACTIONS + 1
    assert isinstance(step.action, HangupAction) and "gave up after 50 steps" in step.action.reason
    assert sum(isinstance(a, PlayAction) for a in actions) == MAX_ACTIONS // 2


@pytest.mark.parametrize(
    ("nodes", "reason"),
    [
        ({"a": {"type": "set", "variable": "x", "value": "1", "next": "a"}},
         'flow "test" loops without waiting for the caller'),
        ({"a": {"type": "set", "variable": "x", "value": "1", "next": "gone"}},
         'step "gone" does not exist in flow "test"'),
        ({"a": {"type": "set", "variable": "x", "value": "1"}},
         'step "a" does not say where to go next'),
        ({"a": {"type": "voicemail", "mailbox": "role:marketing"}},
         "mailbox of role marketing does not exist"),
    ],
)  # fmt: skip
def test_unvalidated_flows_end_the_call_with_the_reason(nodes: dict[str, Any], reason: str) -> None:
    step = start(flow(nodes), context(), NOW)
    assert isinstance(step.action, HangupAction) and reason in step.action.reason
    assert step.done and step.state.finished


def test_a_flow_without_a_start_hangs_up() -> None:
    doc = FlowDocument.model_validate({"name": "x", "nodes": {"vm": VM}})
    step = start(doc, context(), NOW)
    assert isinstance(step.action, HangupAction) and "no single start step" in step.action.reason


def test_impossible_outcomes_are_the_engines_bug() -> None:
    doc = flow({"r": ring(["101"]), "vm": VM})
    step = start(doc, context(), NOW)
    with pytest.raises(OutcomeError, match="cannot have outcome 'done'"):
        advance(doc, step.state, "done", context(), NOW)
    with pytest.raises(OutcomeError, match="unknown outcome 'maybe'"):
        advance(doc, step.state, "maybe", context(), NOW)
    finished = advance(doc, step.state, "no_answer", context(), NOW)
    with pytest.raises(OutcomeError, match="already finished"):
        advance(doc, finished.state, "no_answer", context(), NOW)


def test_evaluation_is_pure() -> None:
    doc = flow(MENU)
    ctx = context(variables={"a": "b"})
    before = copy.deepcopy(doc.to_json())
    first = start(doc, ctx, NOW)
    assert start(doc, ctx, NOW) == first
    one = advance(doc, first.state, "1", ctx, NOW)
    assert advance(doc, first.state, "1", ctx, NOW) == one
    assert doc.to_json() == before and dict(ctx.variables) == {"a": "b"}
    assert first.state.path == one.state.path[: len(first.state.path)]


def test_actions_as_data() -> None:
    assert action_dict(RingAction("r", ("101", "102"), 20)) == {
        "action": "ring", "node": "r", "extensions": ["101", "102"], "timeout": 20,
        "strategy": "simultaneous", "position": 1}  # fmt: skip
