"""The self-service menu (IVR) runner: play a prompt, collect the caller's choice with a
timeout, retry with an "invalid choice" prompt, and return the chosen branch.

A `MenuSpec` is data (prompt text, digit -> branch, timeout, retries, what to say on a wrong
key or on silence, where to go when nothing valid was chosen). `run_menu` drives one call's
`MediaSession` through it and returns a `MenuResult`; what a branch *means* (ring an
extension, voicemail, another menu, hang up) is decided by the caller — the call engine
or a flow — never here. Choices may be several digits (``"21"``), entered with a timeout
between keys or ended by ``#``. The caller may press during the prompt (type-ahead).

Branch strings are ``kind:target``: ``extension:101``, ``voicemail:102``, ``menu:501``,
``hangup``; `parse_branch` validates them with an error naming the problem.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from frontdesk.media.prompts import Prompt

if TYPE_CHECKING:  # the RTP stack is imported by whoever runs a menu, not by its validation
    from frontdesk.media.session import MediaSession

log = logging.getLogger("frontdesk.media.ivr")

BRANCH_KINDS = ("extension", "voicemail", "menu", "hangup")
DIGITS = "0123456789*#"


class MenuError(ValueError):
    """A menu definition that cannot work (the message names the part and the fix)."""


def parse_branch(branch: str) -> tuple[str, str]:
    kind, _, target = branch.partition(":")
    if kind not in BRANCH_KINDS:
        raise MenuError(
            f"menu branch {branch!r} must be one of extension:NUMBER, "
            "voicemail:MAILBOX, menu:NUMBER or hangup"
        )
    if kind != "hangup" and not target:
        raise MenuError(f"menu branch {branch!r} needs a target, e.g. {kind}:101")
    return kind, target


@dataclass(frozen=True, slots=True)
class MenuSpec:
    name: str
    prompt: str
    choices: Mapping[str, str]
    timeout: float = 5.0
    retries: int = 2
    invalid_prompt: str = "Sorry, that is not a valid choice."
    no_input_prompt: str = "Sorry, I did not hear a choice."
    default_branch: str | None = None
    inter_digit: float = 2.0

    def __post_init__(self) -> None:
        if not self.choices:
            raise MenuError(f"menu {self.name!r} has no choices; add one like 1=extension:101")
        for keys, branch in self.choices.items():
            if not keys or any(k not in DIGITS for k in keys):
                raise MenuError(
                    f"menu {self.name!r}: choice {keys!r} must be keypad digits (0-9, *, #)"
                )
            parse_branch(branch)
        if self.default_branch is not None:
            parse_branch(self.default_branch)
        if not 1.0 <= self.timeout <= 60.0 or not 0 <= self.retries <= 9:
            raise MenuError(f"menu {self.name!r}: timeout must be 1-60 s and retries 0-9")

    @property
    def max_digits(self) -> int:
        return max(len(k) for k in self.choices)


@dataclass(frozen=True, slots=True)
class MenuResult:
    branch: str | None  # None: hang up (nothing valid chosen and no default)
    digits: str  # what the caller entered last
    attempts: int
    reason: str  # "chosen", "default", "gave-up"
    wrong: tuple[str, ...] = field(default_factory=tuple)  # invalid entries, in order


Speak = Callable[[str], Awaitable[Prompt]]


async def run_menu(session: MediaSession, spec: MenuSpec, speak: Speak) -> MenuResult:
    """Run ``spec`` on ``session`` until a valid choice or the retries run out."""
    first_keys = "".join(sorted({k[0] for k in spec.choices}))
    wrong: list[str] = []
    entered = ""
    for attempt in range(1, spec.retries + 2):
        await session.play(await speak(spec.prompt), interrupt_on=DIGITS)
        entered = await session.collect(
            spec.max_digits,
            timeout=spec.timeout,
            inter_digit=spec.inter_digit,
            terminators="#" if spec.max_digits > 1 else "",
        )
        if entered in spec.choices:
            log.info(
                "menu %s: caller chose %s -> %s (attempt %d)",
                spec.name,
                entered,
                spec.choices[entered],
                attempt,
            )
            return MenuResult(spec.choices[entered], entered, attempt, "chosen", tuple(wrong))
        if entered:
            wrong.append(entered)
            log.info(
                "menu %s: %r is not a choice (valid: %s)",
                spec.name,
                entered,
                ", ".join(sorted(spec.choices)),
            )
        if attempt <= spec.retries:
            text = spec.invalid_prompt if entered else spec.no_input_prompt
            await session.play(await speak(text), interrupt_on=first_keys)
    reason = "default" if spec.default_branch else "gave-up"
    log.info(
        "menu %s: no valid choice after %d attempts; %s",
        spec.name,
        spec.retries + 1,
        f"going to {spec.default_branch}" if spec.default_branch else "hanging up",
    )
    return MenuResult(spec.default_branch, entered, spec.retries + 1, reason, tuple(wrong))
