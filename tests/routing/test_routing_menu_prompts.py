"""Menu steps' "invalid choice" / "no input" prompts: said before the prompt when the menu
asks again (the walk, the simulator's path and JSON), checked by validation (unknown message,
a prompt that can never be said because retries is 0)."""

from __future__ import annotations

from typing import Any

import pytest
from routing_support import NY, acme_directory, context, local

from frontdesk.routing.actions import HangupAction, MenuAction, VoicemailAction
from frontdesk.routing.evaluate import advance, start
from frontdesk.routing.simulate import Behaviour, simulate
from frontdesk.routing.validate import FlowInvalid, find_problems, parse_flow

NOW = local(NY, 2026, 12, 22, 10, 30)
MESSAGES = {
    "menu": "Press 1 for service.",
    "wrong-key": "Sorry, that is not one of the choices.",
    "silence": "We did not hear a key.",
}


def menu_flow(**menu: Any) -> dict[str, Any]:
    node = {"type": "menu", "prompt": "menu", "choices": {"1": "vm"}, "timeout": 4,
            "retries": 2, "no_input": "vm", "invalid": "bye", **menu}  # fmt: skip
    return {
        "name": "menu-flow",
        "timezone": "America/New_York",
        "messages": MESSAGES,
        "nodes": {
            "start": {"type": "start", "next": "menu"},
            "menu": node,
            "vm": {"type": "voicemail", "mailbox": "102"},
            "bye": {"type": "hangup"},
        },
    }


PROMPTED = menu_flow(invalid_prompt="wrong-key", no_input_prompt="silence")


def test_the_first_ask_has_no_retry_prompt() -> None:
    doc = parse_flow(PROMPTED)
    first = start(doc, context(), NOW)
    assert first.action == MenuAction("menu", "menu", "Press 1 for service.", ("1",), 4, 1)


@pytest.mark.parametrize(
    ("outcome", "message", "text"),
    [("9", "wrong-key", "Sorry, that is not one of the choices."),
     ("timeout", "silence", "We did not hear a key.")],
)  # fmt: skip
def test_asking_again_says_the_matching_prompt_first(outcome: str, message: str, text: str) -> None:
    doc = parse_flow(PROMPTED)
    again = advance(doc, start(doc, context(), NOW).state, outcome, context(), NOW)
    assert again.action == MenuAction(
        "menu", "menu", "Press 1 for service.", ("1",), 4, 2, message, text
    )
    assert again.path[-1].note.startswith(f'saying "{message}", then menu "menu"')
    assert "(try 2 of 3)" in again.path[-1].note


def test_a_menu_without_the_prompts_just_asks_again() -> None:
    doc = parse_flow(menu_flow())
    again = advance(doc, start(doc, context(), NOW).state, "7", context(), NOW)
    assert isinstance(again.action, MenuAction)
    assert (again.action.retry_message, again.action.retry_text) == ("", "")
    assert "saying" not in again.path[-1].note


def test_each_retry_says_what_went_wrong_that_time_then_gives_up() -> None:
    doc = parse_flow(PROMPTED)
    step = start(doc, context(), NOW)
    said = []
    for outcome in ("timeout", "5"):
        step = advance(doc, step.state, outcome, context(), NOW)
        assert isinstance(step.action, MenuAction)
        said.append(step.action.retry_message)
    assert said == ["silence", "wrong-key"]
    assert advance(doc, step.state, "8", context(), NOW).action == HangupAction(
        "bye", "the flow ends the call"
    )
    assert advance(doc, step.state, "timeout", context(), NOW).action == VoicemailAction(
        "vm", "102", "standard"
    )


def test_the_simulator_shows_the_prompts_in_the_path_and_json() -> None:
    doc = parse_flow(PROMPTED)
    sim = simulate(doc, context(), NOW, Behaviour(keys=("9",)))
    notes = [e.note for e in sim.final.path if e.node == "menu" and e.type == "menu"]
    assert notes[0].startswith('menu "menu"')
    assert notes[1].startswith('saying "wrong-key", then menu "menu"')
    assert notes[2].startswith('saying "silence", then menu "menu"')
    menus = [a for a, _ in sim.exchanges if isinstance(a, MenuAction)]
    assert [m.retry_text for m in menus] == ["", MESSAGES["wrong-key"], MESSAGES["silence"]]
    assert sim.final.action == VoicemailAction("vm", "102", "standard")
    assert sim.as_dict()["result"]["action"] == "voicemail"


@pytest.mark.parametrize(
    ("menu", "problem"),
    [({"invalid_prompt": "oops"},
      'flow "menu-flow" node "menu": invalid_prompt message "oops" does not exist; add it '
      "under messages (messages: menu, wrong-key, silence)"),
     ({"no_input_prompt": "silence", "retries": 0},
      'flow "menu-flow" node "menu": no_input_prompt "silence" is never said: it is said after '
      "no key when the menu asks again, and retries is 0; set retries: 1 or more, or remove "
      "no_input_prompt"),
     ({"invalid_prompt": "wrong-key", "retries": 0},
      'flow "menu-flow" node "menu": invalid_prompt "wrong-key" is never said: it is said after '
      "a key that is not a choice when the menu asks again, and retries is 0; set retries: 1 "
      "or more, or remove invalid_prompt")],
)  # fmt: skip
def test_validation_names_the_menu_and_the_fix(menu: dict[str, Any], problem: str) -> None:
    assert problem in find_problems(parse_flow(menu_flow(**menu)), acme_directory())
    assert find_problems(parse_flow(PROMPTED), acme_directory()) == []


def test_a_prompt_that_is_not_text_is_refused_by_the_model() -> None:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(menu_flow(invalid_prompt=["wrong-key"]))
    assert any("invalid_prompt" in p for p in caught.value.problems)


def test_the_cli_simulator_prints_the_prompt_said_before_asking_again(
    tmp_path: Any, db_url: str
) -> None:
    """``frontdesk flow simulate --press 9`` on a published menu flow (real database)."""
    import json

    import yaml
    from click.testing import CliRunner

    from frontdesk.cli import cli

    runner, where = CliRunner(), ["--data", str(tmp_path / "data"), "--db", db_url]
    assert runner.invoke(cli, ["init", "--demo", "--json", *where]).exit_code == 0
    doc = menu_flow(invalid_prompt="wrong-key", no_input_prompt="silence")
    doc["name"] = "front-desk"
    (tmp_path / "menu.yaml").write_text(yaml.safe_dump(doc))
    published = runner.invoke(cli, ["flow", "publish", *where, "--file",
                                    str(tmp_path / "menu.yaml"), "--actor", "test"])  # fmt: skip
    assert published.exit_code == 0, published.output
    run = ["flow", "simulate", *where, "--from", "+12125550147", "--press", "9"]
    out = runner.invoke(cli, run)
    assert out.exit_code == 0, out.output
    assert "caller pressed 9, not a choice; asking again" in out.output
    assert 'saying "wrong-key", then menu "menu": keys 1 (try 2 of 3)' in out.output
    assert 'saying "silence", then menu "menu": keys 1 (try 3 of 3)' in out.output
    as_json = json.loads(runner.invoke(cli, [*run, "--json"]).output)
    notes = [entry["note"] for entry in as_json["path"]]
    assert any(n.startswith('saying "wrong-key"') for n in notes), notes
