"""What routing tells the call engine to do, what the engine reports back, and the walk so far.

What it is for: evaluation returns a ``Step`` — the next ``Action`` (ring these extensions for
N seconds, play a message, ask a menu, leave voicemail, queue, transfer, hang up, or
"connected: the flow is done") plus the ``WalkState`` to hand back with the action's
``Outcome``. The state carries the path taken so far, node by node with the reason for each
branch, which the engine writes to the CDR (``cdr_record``).

All immutable: frozen dataclasses (STYLE #4), and named tuples for the walk's own records. Actions are commands (verbs); outcomes are what happened.

What it must never do: perform an action, or hold anything mutable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, ClassVar, Literal, NamedTuple

OutcomeKind = Literal["answered", "no_answer", "busy", "failed", "timeout", "done", "digit"]
OUTCOME_KINDS: tuple[str, ...] = (
    "answered",
    "no_answer",
    "busy",
    "failed",
    "timeout",
    "done",
    "digit",
)
KEYPAD = frozenset("0123456789*#")


class OutcomeError(Exception):
    """The engine reported an outcome that the pending action cannot have (our bug)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to the last action.

    ring: answered (``by`` = the extension that answered) / no_answer / busy / failed;
    queue: answered / no_answer (busy, failed, timeout: the same);
    play: done; menu: digit (``digit``) / timeout.
    A plain string works too: ``"no_answer"``, ``"busy"``, ``"done"``, ``"7"``.
    """

    kind: OutcomeKind
    digit: str = ""
    by: str = ""

    @classmethod
    def parse(cls, value: Outcome | str) -> Outcome:
        if isinstance(value, Outcome):
            return value
        if len(value) == 1 and value in KEYPAD:
            return cls("digit", digit=value)
        if value in OUTCOME_KINDS and value != "digit":
            return cls(value)  # type: ignore[arg-type]
        raise OutcomeError(f"unknown outcome {value!r}; expected one of {OUTCOME_KINDS} or a key")

    @classmethod
    def answered(cls, by: str = "") -> Outcome:
        return cls("answered", by=by)

    @classmethod
    def pressed(cls, digit: str) -> Outcome:
        return cls("digit", digit=digit)


# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RingAction:
    """Ring all of ``extensions`` at once for ``timeout`` seconds (sequential and round-robin
    strategies arrive as one extension per action; ``position`` counts from 1)."""

    node: str
    extensions: tuple[str, ...]
    timeout: int
    strategy: str = "simultaneous"
    position: int = 1
    ENDS: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class PlayAction:
    """Play message ``message`` (``text`` is what it says, for text-to-speech)."""

    node: str
    message: str
    text: str
    ENDS: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class MenuAction:
    """Play ``prompt`` and collect one key within ``timeout`` seconds (``attempt`` from 1).

    When the menu asks again, ``retry_message`` (the node's invalid or no-input prompt, whose
    words are ``retry_text``) is said before the prompt; empty when there is none."""

    node: str
    prompt: str
    text: str
    choices: tuple[str, ...]
    timeout: int
    attempt: int = 1
    retry_message: str = ""
    retry_text: str = ""
    ENDS: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class QueueAction:
    """Wait for a member of ``group`` for at most ``max_wait`` seconds (until queues exist the
    engine rings ``extensions`` together)."""

    node: str
    group: str
    extensions: tuple[str, ...]
    max_wait: int
    ENDS: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class VoicemailAction:
    """Record a message in ``mailbox`` after ``greeting`` (``standard``, ``unavailable``,
    ``busy`` or a flow message, whose words are ``greeting_text``). Ends the flow."""

    node: str
    mailbox: str
    greeting: str
    greeting_text: str = ""
    ENDS: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class TransferAction:
    """Hand the call to ``number`` (one of the tenant's extensions when ``internal``). Ends."""

    node: str
    number: str
    internal: bool
    ENDS: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class HangupAction:
    """End the call, after ``message_text`` if any; ``reason`` says why. Ends the flow."""

    node: str
    reason: str
    message_text: str = ""
    ENDS: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class ConnectedAction:
    """``extension`` answered: the call is connected and the flow has nothing more to do."""

    node: str
    extension: str
    ENDS: ClassVar[bool] = True


Action = (
    RingAction
    | PlayAction
    | MenuAction
    | QueueAction
    | VoicemailAction
    | TransferAction
    | HangupAction
    | ConnectedAction
)


# --- the walk ---------------------------------------------------------------------------------


class PathEntry(NamedTuple):
    """One step of the path: the node, its type, what happened and why, and where next.
    (Immutable tuples: the walk makes dozens per decision, so they must be cheap.)"""

    node: str
    type: str
    note: str
    next: str | None = None

    def as_dict(self) -> dict[str, str]:
        entry = {"node": self.node, "type": self.type, "note": self.note}
        if self.next is not None:
            entry["next"] = self.next
        return entry


@dataclass(frozen=True, slots=True)
class ShieldDecision:
    """The technician shield's verdict for a call to a technician's extension."""

    technician: str
    let_through: bool
    reason: str
    request_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "technician": self.technician,
            "decision": "let through" if self.let_through else "shielded",
            "reason": self.reason,
            "request": self.request_id,
        }


_NO_VARIABLES: Mapping[str, str] = MappingProxyType({})


class WalkState(NamedTuple):
    """Where a call is in its flow; hand it back to ``advance`` with the outcome.
    (An immutable tuple; evaluation derives new states with ``_replace``.)"""

    flow: str
    #: The node whose action is pending (empty once finished).
    node: str = ""
    #: Actions issued so far (bounded by ``evaluate.MAX_ACTIONS``).
    actions: int = 0
    #: Menu attempt, or position in a sequential/round-robin ring order (from 1).
    attempt: int = 0
    ring_order: tuple[str, ...] = ()
    busy_count: int = 0
    variables: Mapping[str, str] = _NO_VARIABLES
    path: tuple[PathEntry, ...] = ()
    shield: ShieldDecision | None = None
    finished: bool = False


class Step(NamedTuple):
    """The next action and the state to feed back with its outcome."""

    action: Action
    state: WalkState

    @property
    def done(self) -> bool:
        """True when the action ends the flow (nothing more to feed back)."""
        return self.action.ENDS

    @property
    def path(self) -> tuple[PathEntry, ...]:
        return self.state.path


def cdr_record(state: WalkState) -> dict[str, Any]:
    """What the engine stores on the CDR: ``path`` (Cdr.path) and ``extra`` (Cdr.extra)."""
    extra: dict[str, Any] = {"flow": state.flow}
    if state.shield is not None:
        extra["shield"] = state.shield.as_dict()
    return {"path": [entry.as_dict() for entry in state.path], "extra": extra}


def action_dict(action: Action) -> dict[str, Any]:
    """An action as JSON-ready data: ``{"action": "ring", "node": ..., ...}``."""
    data = {f.name: getattr(action, f.name) for f in fields(action)}
    for key, value in data.items():
        if isinstance(value, tuple):
            data[key] = list(value)
    name = type(action).__name__.removesuffix("Action").lower()
    return {"action": name, **data}
