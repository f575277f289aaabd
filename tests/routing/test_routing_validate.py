"""Validation messages a business owner understands: each names the flow and the node and
says what to do."""

from __future__ import annotations

from typing import Any

import pytest
from routing_support import acme_directory

from frontdesk.routing.templates import front_desk
from frontdesk.routing.validate import FlowInvalid, check_flow, find_problems, parse_flow


def _flow(nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "front-desk",
        "timezone": "America/New_York",
        "schedules": {"office": {"weekly": {"mon": ["08:00-17:00"]}}},
        "messages": {"closed": "We are closed.", "menu": "Press 1 for sales."},
        "nodes": {"start": {"type": "start", "next": next(iter(nodes))}, **nodes},
        **extra,
    }


def _problems(nodes: dict[str, Any], **extra: Any) -> list[str]:
    try:
        check_flow(_flow(nodes, **extra), acme_directory())
    except FlowInvalid as exc:
        return list(exc.problems)
    return []


VM = {"type": "voicemail", "mailbox": "102"}

CASES = [
    ("unknown group",
     {"ring-sm": {"type": "ring", "targets": ["group:service-managers"], "no_answer": "vm"}, "vm": VM},
     'flow "front-desk" node "ring-sm": target group "service-managers" does not exist'),
    ("unknown extension",
     {"ring": {"type": "ring", "targets": [999], "no_answer": "vm"}, "vm": VM},
     'flow "front-desk" node "ring": target extension "999" does not exist'),
    ("unknown user",
     {"ring": {"type": "ring", "targets": ["user:bob"], "no_answer": "vm"}, "vm": VM},
     'flow "front-desk" node "ring": target user "bob" does not exist'),
    ("role nobody holds",
     {"ring": {"type": "ring", "targets": ["role:marketing"], "no_answer": "vm"}, "vm": VM},
     'flow "front-desk" node "ring": target role "marketing": nobody holds this role; assign someone'),
    ("unknown role",
     {"ring": {"type": "ring", "targets": ["role:janitor"], "no_answer": "vm"}, "vm": VM},
     'flow "front-desk" node "ring": target role "janitor" does not exist'),
    ("empty group",
     {"ring": {"type": "ring", "targets": ["group:empty"], "no_answer": "vm"}, "vm": VM},
     'flow "front-desk" node "ring": target group "empty" has no members'),
    ("cannot ring a mailbox",
     {"ring": {"type": "ring", "targets": ["mailbox:general"], "no_answer": "vm"}, "vm": VM},
     'flow "front-desk" node "ring": cannot ring mailbox "general"; ring a person, group or role'),
    ("unknown mailbox",
     {"vm": {"type": "voicemail", "mailbox": "mailbox:sales"}},
     'flow "front-desk" node "vm": mailbox of mailbox "sales" does not exist'),
    ("group mailbox",
     {"vm": {"type": "voicemail", "mailbox": "group:agents"}},
     "flow \"front-desk\" node \"vm\": mailbox cannot be a group (\"agents\"); name a person, a role, or the group's shared mailbox as mailbox:agents"),
    ("unknown greeting",
     {"vm": {"type": "voicemail", "mailbox": "102", "greeting": "holiday"}},
     'flow "front-desk" node "vm": greeting "holiday" is neither standard, unavailable, busy nor a message of this flow'),
    ("unknown queue group",
     {"q": {"type": "queue", "group": "sales", "no_answer": "vm"}, "vm": VM},
     'flow "front-desk" node "q": queue group "sales" does not exist'),
    ("missing outcome",
     {"ring": {"type": "ring", "targets": ["101"]}, "vm": VM},
     'flow "front-desk" node "ring": says nothing about what happens when nobody answers; add no_answer: <node>'),
    ("missing hours outcome",
     {"hours": {"type": "hours", "schedule": "office", "open": "vm"}, "vm": VM},
     'flow "front-desk" node "hours": says nothing about where calls go outside business hours; add closed: <node>'),
    ("outcome to a node that does not exist",
     {"ring": {"type": "ring", "targets": ["101"], "no_answer": "ring-sm"}},
     'flow "front-desk" node "ring": no_answer goes to "ring-sm", which is not a node of this flow'),
    ("unknown schedule",
     {"hours": {"type": "hours", "schedule": "shop", "open": "vm", "closed": "vm"}, "vm": VM},
     'flow "front-desk" node "hours": schedule "shop" does not exist (schedules: office)'),
    ("unknown message",
     {"play": {"type": "play", "message": "welcome", "next": "vm"}, "vm": VM},
     'flow "front-desk" node "play": message "welcome" does not exist; add it under messages (messages: closed, menu)'),
    ("menu without choices",
     {"menu": {"type": "menu", "prompt": "menu", "no_input": "vm"}, "vm": VM},
     'flow "front-desk" node "menu": the menu offers no choices; add choices: {1: <node>}'),
    ("transfer to nowhere",
     {"xfer": {"type": "transfer", "number": "555"}},
     'flow "front-desk" node "xfer": transfer number "555" is not an extension of this business'),
    ("transfer to garbage",
     {"xfer": {"type": "transfer", "number": "sales desk"}},
     'flow "front-desk" node "xfer": transfer number "sales desk" is neither an extension nor a phone number (+15551234567)'),
    ("variable test without a variable",
     {"c": {"type": "condition", "test": "variable", "then": "vm", "otherwise": "vm"}, "vm": VM},
     'flow "front-desk" node "c": test "variable" needs variable: <name> (and equals: <value>)'),
    ("variable on another test",
     {"c": {"type": "condition", "test": "vip", "variable": "x", "then": "vm", "otherwise": "vm"}, "vm": VM},
     'flow "front-desk" node "c": "variable" and "equals" only apply to test: variable, not test: vip'),
    ("unreachable node",
     {"vm": VM, "lonely": {"type": "hangup"}},
     'flow "front-desk" node "lonely" can never be reached from the start; connect it or delete it'),
    ("loop that never waits",
     {"a": {"type": "condition", "test": "vip", "then": "b", "otherwise": "vm"},
      "b": {"type": "set", "variable": "seen", "value": "yes", "next": "a"}, "vm": VM},
     'flow "front-desk" nodes "a" -> "b" -> "a" form a loop that never waits for the caller (put a ring, message, menu or queue in it, or break it)'),
    ("dead end",
     {"menu": {"type": "menu", "prompt": "menu", "choices": {1: "play"}, "no_input": "menu"},
      "play": {"type": "play", "message": "closed", "next": "menu"}},
     'flow "front-desk" node "menu" is a dead end: a call that gets here never reaches a person, voicemail, a transfer or a hang-up'),
]  # fmt: skip


@pytest.mark.parametrize(("nodes", "message"), [pytest.param(c[1], c[2], id=c[0]) for c in CASES])
def test_problem_messages(nodes: dict[str, Any], message: str) -> None:
    assert message in _problems(nodes)


def test_a_loop_through_a_waiting_step_is_fine() -> None:
    nodes = {
        "ring": {"type": "ring", "targets": ["101"], "no_answer": "sorry"},
        "sorry": {"type": "play", "message": "closed", "next": "ring"},
    }
    assert _problems(nodes) == []


def test_start_node_count() -> None:
    none = _flow({"vm": VM})
    del none["nodes"]["start"]
    with pytest.raises(FlowInvalid, match=r'flow "front-desk": has no start node; add one'):
        check_flow(none, acme_directory())
    two = _flow({"vm": VM, "again": {"type": "start", "next": "vm"}})
    with pytest.raises(FlowInvalid, match=r"has 2 start nodes \(start, again\); keep one"):
        check_flow(two, acme_directory())


SHAPE_CASES = [
    ("unknown type", {"ring": {"type": "rign"}},
     'flow "front-desk" node "ring": unknown step type "rign"; use one of start, hours, ring, play, menu, voicemail, queue, transfer, condition, set, hangup'),
    ("no type", {"ring": {"targets": ["101"]}},
     'flow "front-desk" node "ring": has no "type"'),
    ("misspelt setting", {"ring": {"type": "ring", "targets": ["101"], "no_anwser": "vm"}},
     'flow "front-desk" node "ring": "no_anwser" is not a setting of a ring step; check the spelling'),
    ("bad strategy", {"ring": {"type": "ring", "targets": ["101"], "strategy": "random"}},
     'flow "front-desk" node "ring": "strategy" cannot be "random"; use \'simultaneous\', \'sequential\' or \'round-robin\''),
    ("timeout not a number", {"ring": {"type": "ring", "targets": ["101"], "timeout": "long"}},
     'flow "front-desk" node "ring": "timeout" must be a whole number (seconds or a count)'),
    ("timeout too short", {"ring": {"type": "ring", "targets": ["101"], "timeout": 1}},
     'flow "front-desk" node "ring": "timeout" must be at least 5'),
    ("no targets", {"ring": {"type": "ring", "targets": []}},
     'flow "front-desk" node "ring": "targets" needs at least one entry'),
    ("target without a kind", {"ring": {"type": "ring", "targets": ["bob"]}},
     'flow "front-desk" node "ring": "bob" does not say who: write extension:101, user:NAME, group:NAME or role:NAME'),
    ("missing required setting", {"ring": {"type": "ring"}},
     'flow "front-desk" node "ring": "targets" is missing (who to ring, e.g. targets: [role:office_manager])'),
    ("bad menu key", {"m": {"type": "menu", "prompt": "menu", "choices": {"12": "vm"}}},
     'flow "front-desk" node "m": choice "12" is not one key of the keypad (0-9, * or #)'),
    ("bad node name", {"Ring Office": {"type": "hangup"}},
     'flow "front-desk": step name "Ring Office" may use lowercase letters, digits, - and _'),
]  # fmt: skip


@pytest.mark.parametrize(
    ("nodes", "message"), [pytest.param(c[1], c[2], id=c[0]) for c in SHAPE_CASES]
)
def test_document_shape_messages(nodes: dict[str, Any], message: str) -> None:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(_flow(nodes))
    assert any(message in p for p in caught.value.problems), caught.value.problems


def test_schedule_and_flow_level_messages() -> None:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(
            _flow(
                {"vm": VM}, timezone="Moon/Base", schedules={"office": {"weekly": {"mon": ["9-5"]}}}
            )
        )
    assert caught.value.problems == (
        'flow "front-desk": time zone "Moon/Base" is unknown; use a name like America/New_York or Europe/Berlin',
        'flow "front-desk" schedule "office": opening time "9-5" must look like 08:00-17:00',
    )


def test_yaml_text_with_keypad_numbers_and_numeric_extensions() -> None:
    text = """
name: menu-flow
timezone: Europe/Berlin
messages: {menu: "Press 1 for the office, 2 for service."}
nodes:
  start: {type: start, next: menu}
  menu:
    type: menu
    prompt: menu
    choices: {1: office, 2: service}
    no_input: office
  office: {type: ring, targets: [101], no_answer: vm}
  service: {type: ring, targets: [role:service-manager], strategy: sequential, no_answer: vm}
  vm: {type: voicemail, mailbox: 102}
"""
    flow = check_flow(text, acme_directory())
    assert flow.nodes["menu"].choices == {"1": "office", "2": "service"}  # type: ignore[union-attr]
    assert str(flow.nodes["service"].targets[0]) == "role service_manager"  # type: ignore[union-attr]
    assert parse_flow(flow.to_json()) == flow  # round trip through JSON


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nnodes: [a, b", "the flow file is not valid YAML or JSON at line 2"),
        ("- just a list", "a flow must be a mapping with a name and nodes"),
    ],
)
def test_unreadable_files(text: str, message: str) -> None:
    with pytest.raises(FlowInvalid, match=message):
        parse_flow(text)


def test_problems_are_all_reported_together() -> None:
    problems = _problems(
        {
            "ring": {"type": "ring", "targets": ["group:nope", "user:bob"]},
            "vm": {"type": "voicemail", "mailbox": "role:marketing"},
        }
    )
    assert len(problems) >= 4
    assert all(p.startswith('flow "front-desk"') for p in problems)


def test_the_template_is_clean() -> None:
    assert find_problems(front_desk(), acme_directory()) == []
