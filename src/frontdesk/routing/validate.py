"""Flow validation with errors a business owner understands.

What it is for: ``parse_flow`` reads a flow document (YAML or JSON text, or data) into a
``FlowDocument``; ``find_problems`` checks it against the tenant's ``Directory``; ``check_flow``
does both and raises ``FlowInvalid``. Every problem is one sentence naming the flow and the
node and saying what to do, e.g.::

    flow "front-desk" node "ring-sm": target group "service-managers" does not exist

Checked: the document's shape (unknown step types, missing or misspelt settings), unknown
users, extensions, groups, roles with nobody, mailboxes, schedules and messages; outcomes that
are missing or lead nowhere; nodes that can never be reached; loops that never wait for the
caller; dead ends (a call that can never reach a person, voicemail, a transfer or a hang-up).

What it must never do: touch the database (the directory is a snapshot) or evaluate a call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from frontdesk.routing.directory import Directory, resolve
from frontdesk.routing.model import (
    NODE_TYPES,
    ConditionNode,
    FlowDocument,
    HoursNode,
    MenuNode,
    PlayNode,
    QueueNode,
    RingNode,
    SetNode,
    StartNode,
    Target,
    TransferNode,
    VoicemailNode,
)

STANDARD_GREETINGS = ("standard", "unavailable", "busy")
_PHONE = re.compile(r"^\+?[0-9]{7,15}$")

#: What each outcome means, for "says nothing about ..." messages.
OUTCOME_WORDS = {
    "next": "what happens next",
    "open": "where calls go during business hours",
    "closed": "where calls go outside business hours",
    "no_answer": "what happens when nobody answers",
    "no_input": "what happens when the caller presses nothing",
    "then": "where calls go when the condition is true",
    "otherwise": "where calls go when the condition is false",
}
#: Hints for settings that must be there.
FIELD_HINTS = {
    "name": "the flow's name, e.g. name: front-desk",
    "nodes": "the flow's steps",
    "type": f"the step's type, one of {', '.join(NODE_TYPES)}",
    "targets": "who to ring, e.g. targets: [role:office_manager]",
    "schedule": "which business hours to check, e.g. schedule: office",
    "message": "which message to play, e.g. message: after-hours",
    "prompt": "which message asks the question, e.g. prompt: main-menu",
    "mailbox": "whose mailbox, e.g. mailbox: role:service_manager",
    "number": "the number to transfer to",
    "group": "which group waits for the call",
    "test": "what to check: co-worker, known-contact, open-request, vip, emergency, variable",
    "variable": "the variable's name",
    "value": "the value to set",
}


class FlowInvalid(Exception):
    """A flow cannot be used; ``problems`` are person-readable sentences."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


# --- reading ------------------------------------------------------------------------------------


def load_text(text: str | bytes) -> Any:
    """YAML (or JSON, which is YAML) text -> data; FlowInvalid with the line on a syntax error."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot be read"
        raise FlowInvalid([f"the flow file is not valid YAML or JSON{where}: {problem}"]) from None


def parse_flow(data: Mapping[str, Any] | str | bytes) -> FlowDocument:
    """A ``FlowDocument`` from text or data, or ``FlowInvalid`` in plain words."""
    raw = load_text(data) if isinstance(data, str | bytes) else data
    if not isinstance(raw, Mapping):
        raise FlowInvalid(
            ["a flow must be a mapping with a name and nodes (name: ..., nodes: ...)"]
        )
    try:
        return FlowDocument.model_validate(dict(raw))
    except ValidationError as exc:
        name = raw.get("name") if isinstance(raw.get("name"), str) else "(unnamed)"
        raise FlowInvalid([_explain(str(name), e) for e in exc.errors()]) from None


def _field(rest: tuple[Any, ...]) -> str:
    parts = [str(p) if not isinstance(p, int) else f"#{p + 1}" for p in rest]
    return " ".join(parts) if parts else "the flow"


def _where(flow: str, loc: tuple[Any, ...]) -> tuple[str, tuple[Any, ...], str | None]:
    """Message prefix, the field path after the node/schedule, and the node type if known."""
    prefix = f'flow "{flow}"'
    if len(loc) >= 2 and loc[0] == "nodes":
        rest = loc[2:]
        node_type = rest[0] if rest and rest[0] in NODE_TYPES else None
        return f'{prefix} node "{loc[1]}"', rest[1:] if node_type else rest, node_type
    if len(loc) >= 2 and loc[0] == "schedules":
        return f'{prefix} schedule "{loc[1]}"', loc[2:], None
    return prefix, loc, None


def _explain(flow: str, error: Mapping[str, Any]) -> str:
    """One Pydantic error as a sentence."""
    prefix, rest, node_type = _where(flow, tuple(error["loc"]))
    field = _field(rest)
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        hint = FIELD_HINTS.get(str(rest[-1]) if rest else "", "")
        return f'{prefix}: "{field}" is missing' + (f" ({hint})" if hint else "")
    if kind == "extra_forbidden":
        what = f"a {node_type} step" if node_type else "this part of a flow"
        return f'{prefix}: "{field}" is not a setting of {what}; check the spelling'
    if kind == "union_tag_invalid":
        return f'{prefix}: unknown step type "{ctx.get("tag")}"; use one of {", ".join(NODE_TYPES)}'
    if kind == "union_tag_not_found":
        return f'{prefix}: has no "type"; use one of {", ".join(NODE_TYPES)}'
    if kind == "literal_error":
        return f'{prefix}: "{field}" cannot be "{error.get("input")}"; use {ctx.get("expected")}'
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f'{prefix}: "{field}" must be a whole number (seconds or a count)'
    if kind in ("greater_than_equal", "less_than_equal"):
        limit = ctx.get("ge", ctx.get("le"))
        side = "at least" if kind == "greater_than_equal" else "at most"
        return f'{prefix}: "{field}" must be {side} {limit}'
    if kind == "too_short":
        return f'{prefix}: "{field}" needs at least one entry'
    if kind == "value_error":
        return f"{prefix}: {ctx.get('error')}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f'{prefix}: "{field}" must be a mapping of names to settings'
    if kind == "list_type":
        return f'{prefix}: "{field}" must be a list'
    if kind == "string_type":
        return f'{prefix}: "{field}" must be text'
    return f'{prefix}: "{field}": {error.get("msg")}'


# --- checking --------------------------------------------------------------------------------


def find_problems(doc: FlowDocument, directory: Directory) -> list[str]:
    """Everything wrong with ``doc`` for the tenant ``directory`` describes ([] when usable)."""
    problems: list[str] = []
    flow = f'flow "{doc.name}"'
    starts = [n for n, node in doc.nodes.items() if isinstance(node, StartNode)]
    if not starts:
        problems.append(f"{flow}: has no start node; add one: start: {{type: start, next: ...}}")
    elif len(starts) > 1:
        problems.append(f"{flow}: has {len(starts)} start nodes ({', '.join(starts)}); keep one")
    for name, node in doc.nodes.items():
        where = f'{flow} node "{name}"'
        problems.extend(f"{where}: {p}" for p in _outcome_problems(doc, node))
        problems.extend(f"{where}: {p}" for p in _node_problems(doc, node, directory))
    if len(starts) == 1:
        problems.extend(_graph_problems(doc, starts[0]))
    return problems


def check_flow(
    data: FlowDocument | Mapping[str, Any] | str | bytes, directory: Directory
) -> FlowDocument:
    """Parse and check; ``FlowInvalid`` lists every problem."""
    doc = data if isinstance(data, FlowDocument) else parse_flow(data)
    problems = find_problems(doc, directory)
    if problems:
        raise FlowInvalid(problems)
    return doc


def _outcome_problems(doc: FlowDocument, node: Any) -> list[str]:
    found = []
    outcomes = node.outcomes()
    for outcome in node.REQUIRED:
        if outcomes.get(outcome) is None:
            found.append(
                f"says nothing about {OUTCOME_WORDS.get(outcome, outcome)}; add {outcome}: <node>"
            )
    for outcome, target in outcomes.items():
        if target is not None and target not in doc.nodes:
            found.append(f'{outcome} goes to "{target}", which is not a node of this flow')
    return found


def _target_problem(directory: Directory, target: Target, purpose: str) -> str | None:
    found = resolve(directory, target)
    if found is None:
        return f'{purpose} {target.kind} "{target.name}" does not exist'
    if not found:
        if target.kind == "role":
            return f'{purpose} role "{target.name}": nobody holds this role; assign someone'
        return f'{purpose} {target.kind} "{target.name}" has no members'
    return None


def _message_problem(doc: FlowDocument, name: str, what: str) -> list[str]:
    if name in doc.messages:
        return []
    known = ", ".join(doc.messages) or "none yet"
    return [f'{what} "{name}" does not exist; add it under messages (messages: {known})']


def _node_problems(doc: FlowDocument, node: Any, directory: Directory) -> list[str]:
    if isinstance(node, HoursNode) and node.schedule not in doc.schedules:
        known = ", ".join(doc.schedules) or "none yet"
        return [f'schedule "{node.schedule}" does not exist (schedules: {known})']
    if isinstance(node, RingNode):
        return _ring_problems(node, directory)
    if isinstance(node, PlayNode):
        return _message_problem(doc, node.message, "message")
    if isinstance(node, MenuNode):
        return _menu_problems(doc, node)
    if isinstance(node, VoicemailNode):
        return _voicemail_problems(doc, node, directory)
    if isinstance(node, QueueNode):
        members = directory.group_members(node.group)
        if members is None:
            return [f'queue group "{node.group}" does not exist']
        return [] if members else [f'queue group "{node.group}" has no members']
    if isinstance(node, TransferNode):
        return _transfer_problems(node, directory)
    if isinstance(node, ConditionNode):
        return _condition_problems(node)
    if isinstance(node, SetNode) and not node.variable.strip():
        return ["the variable needs a name"]
    return []


def _menu_problems(doc: FlowDocument, node: MenuNode) -> list[str]:
    found = _message_problem(doc, node.prompt, "prompt message")
    if not node.choices:
        found.append("the menu offers no choices; add choices: {1: <node>}")
    for field, said in (
        ("invalid_prompt", "after a key that is not a choice"),
        ("no_input_prompt", "after no key"),
    ):
        name = getattr(node, field)
        if name is None:
            continue
        found += _message_problem(doc, name, f"{field} message")
        if node.retries == 0:
            found.append(
                f'{field} "{name}" is never said: it is said {said} when the menu asks '
                f"again, and retries is 0; set retries: 1 or more, or remove {field}"
            )
    return found


def _ring_problems(node: RingNode, directory: Directory) -> list[str]:
    found = []
    for target in node.targets:
        if target.kind == "mailbox":
            found.append(f'cannot ring mailbox "{target.name}"; ring a person, group or role')
            continue
        problem = _target_problem(directory, target, "target")
        if problem:
            found.append(problem)
    return found


def _voicemail_problems(doc: FlowDocument, node: VoicemailNode, directory: Directory) -> list[str]:
    if node.mailbox.kind == "group":
        found = [
            f'mailbox cannot be a group ("{node.mailbox.name}"); name a person, a role, or the '
            f"group's shared mailbox as mailbox:{node.mailbox.name}"
        ]
    else:
        problem = _target_problem(directory, node.mailbox, "mailbox of")
        found = [problem] if problem else []
    if node.greeting not in STANDARD_GREETINGS and node.greeting not in doc.messages:
        found.append(
            f'greeting "{node.greeting}" is neither {", ".join(STANDARD_GREETINGS)} nor a message '
            f"of this flow"
        )
    return found


def _transfer_problems(node: TransferNode, directory: Directory) -> list[str]:
    number = node.number.strip()
    if directory.extension_name(number) is not None or _PHONE.match(number.replace(" ", "")):
        return []
    if number.isdigit() and len(number) < 7:
        return [f'transfer number "{number}" is not an extension of this business']
    return [f'transfer number "{number}" is neither an extension nor a phone number (+15551234567)']


def _condition_problems(node: ConditionNode) -> list[str]:
    if node.test == "variable":
        return (
            []
            if node.variable
            else ['test "variable" needs variable: <name> (and equals: <value>)']
        )
    if node.variable is not None or node.equals is not None:
        return [f'"variable" and "equals" only apply to test: variable, not test: {node.test}']
    return []


# --- the graph ---------------------------------------------------------------------------------


def _edges(doc: FlowDocument) -> dict[str, list[str]]:
    return {
        name: [t for t in node.outcomes().values() if t is not None and t in doc.nodes]
        for name, node in doc.nodes.items()
    }


def _reach(edges: Mapping[str, list[str]], roots: Iterable[str]) -> set[str]:
    seen = set(roots)
    stack = list(seen)
    while stack:
        for nxt in edges.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _graph_problems(doc: FlowDocument, start: str) -> list[str]:
    flow = f'flow "{doc.name}"'
    edges = _edges(doc)
    reachable = _reach(edges, [start])
    found = [
        f'{flow} node "{name}" can never be reached from the start; connect it or delete it'
        for name in doc.nodes
        if name not in reachable
    ]
    for cycle in _instant_loops(doc, edges, reachable):
        steps = " -> ".join(f'"{n}"' for n in [*cycle, cycle[0]])
        found.append(
            f"{flow} nodes {steps} form a loop that never waits for the caller "
            f"(put a ring, message, menu or queue in it, or break it)"
        )
    reverse: dict[str, list[str]] = {}
    for name, targets in edges.items():
        for target in targets:
            reverse.setdefault(target, []).append(name)
    finishing = [
        n for n, node in doc.nodes.items() if node.ENDS or isinstance(node, RingNode | QueueNode)
    ]
    can_finish = _reach(reverse, finishing)
    found.extend(
        f'{flow} node "{name}" is a dead end: a call that gets here never reaches a person, '
        f"voicemail, a transfer or a hang-up"
        for name in doc.nodes
        if name in reachable and name not in can_finish
    )
    return found


def _instant_loops(
    doc: FlowDocument, edges: Mapping[str, list[str]], reachable: set[str]
) -> list[list[str]]:
    """Cycles made only of steps that decide at once (start, hours, condition, set)."""
    instant = {n for n in reachable if not doc.nodes[n].WAITS and not doc.nodes[n].ENDS}
    sub = {n: [t for t in edges[n] if t in instant] for n in instant}
    loops: list[list[str]] = []
    done: set[str] = set()
    for root in sorted(instant):
        if root in done:
            continue
        cycle = _find_cycle(sub, root, done)
        if cycle:
            loops.append(cycle)
            done.update(cycle)
    return loops


def _find_cycle(graph: Mapping[str, list[str]], root: str, done: set[str]) -> list[str] | None:
    """A cycle reachable from ``root`` (iterative DFS), or None; marks explored nodes done."""
    on_path: list[str] = []
    index: dict[str, int] = {}
    stack: list[tuple[str, int]] = [(root, 0)]
    while stack:
        node, i = stack.pop()
        if i == 0:
            index[node] = len(on_path)
            on_path.append(node)
        children = graph.get(node, [])
        if i < len(children):
            stack.append((node, i + 1))
            child = children[i]
            if child in index:
                return on_path[index[child] :]
            if child not in done:
                stack.append((child, 0))
            continue
        on_path.pop()
        del index[node]
        done.add(node)
    return None
