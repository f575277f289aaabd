"""What a call script can do with one answered call: play, collect digits, record, end.

`MediaSession` wraps one `RtpStream` with the primitives voicemail and menus are written in:
``await play(prompts, interrupt_on="#")``, ``await collect(max_digits, timeout)``,
``await record(recorder, ...)``. Digits pressed at any time are kept (type-ahead), so a caller
who knows the menu can press before the prompt ends. When the caller hangs up (or the call
fails) every pending primitive raises `CallEnded` — except `record`, which returns
``"hangup"`` because hanging up is the normal way to finish a message.

The session also watches the media: no RTP at all for ``no_media_seconds`` ends the call
with a log line naming the caller (a phone that never sends audio is broken or gone).

This module never touches SIP: the endpoint tells it about hang-ups (`end`) and sends BYE
itself. It never blocks the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from frontdesk.media.prompts import Prompt
from frontdesk.media.rtp import RtpStream
from frontdesk.media.wav import DurableRecorder

log = logging.getLogger("frontdesk.media.session")

POLL = 0.1


class CallEnded(Exception):
    """The call is over (the caller hung up, or it failed); the script should stop."""


@dataclass(frozen=True, slots=True)
class Ending:
    reason: str  # "hangup" (remote BYE), "cancel", "no-ack", "no-media", "failed", "script"
    by_remote: bool


class MediaSession:
    """Play, collect and record on one call (see the module docstring)."""

    def __init__(self, stream: RtpStream, label: str, *, no_media_seconds: float = 20.0) -> None:
        self.stream = stream
        self.label = label
        self.no_media_seconds = no_media_seconds
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.started = loop.time()
        self._ended: asyncio.Future[Ending] = loop.create_future()
        self._digits: list[str] = []
        self._digit_waiter: asyncio.Future[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        stream.on_dtmf = self.digit_received
        stream.on_failure = lambda exc: self.end("failed", by_remote=False)
        self._arm_watchdog()

    # --- ending ---------------------------------------------------------------------------
    @property
    def ended_future(self) -> asyncio.Future[Ending]:
        """Done when the call is over (for scripts waiting on something else too)."""
        return self._ended

    @property
    def ended(self) -> Ending | None:
        return self._ended.result() if self._ended.done() else None

    def end(self, reason: str, *, by_remote: bool) -> None:
        """The call is over; wake every waiting primitive (idempotent)."""
        if not self._ended.done():
            self._ended.set_result(Ending(reason, by_remote))
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self.stream.stop_playback()
        self._wake_digit_waiter()

    def _check(self) -> None:
        if self._ended.done():
            raise CallEnded(self._ended.result().reason)

    def _arm_watchdog(self) -> None:
        self._watchdog = self._loop.call_later(1.0, self._watch_media)

    def _watch_media(self) -> None:
        self._watchdog = None
        if self._ended.done():
            return
        now = self._loop.time()
        stats = self.stream.stats
        last = stats.last_rx if stats.last_rx is not None else self.started
        if now - last >= self.no_media_seconds:
            what = "since it answered" if stats.last_rx is None else "since the last packet"
            log.warning(
                "call %s: no RTP from the caller for %.0f s (%s, %d packets in all); hanging up",
                self.label,
                now - last,
                what,
                stats.received,
            )
            self.end("no-media", by_remote=False)
            return
        self._arm_watchdog()

    # --- digits ---------------------------------------------------------------------------
    def digit_received(self, digit: str) -> None:
        self._digits.append(digit)
        log.debug("call %s: DTMF %s", self.label, digit)
        self._wake_digit_waiter()

    def _wake_digit_waiter(self) -> None:
        waiter, self._digit_waiter = self._digit_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def flush_digits(self) -> None:
        self._digits.clear()

    def _digit_signal(self) -> asyncio.Future[None]:
        if self._digit_waiter is None or self._digit_waiter.done():
            self._digit_waiter = self._loop.create_future()
        return self._digit_waiter

    def _take(self, allowed: str | None = None) -> str | None:
        """Pop the oldest buffered digit (only if it is in ``allowed``, when given)."""
        if self._digits and (allowed is None or self._digits[0] in allowed):
            return self._digits.pop(0)
        return None

    async def _either(self, signal: asyncio.Future[None] | None, timeout: float) -> None:
        """Wait until ``signal`` fires, the call ends, or ``timeout`` passes."""
        waiting: set[asyncio.Future[Any]] = {self._ended}
        if signal is not None:
            waiting.add(signal)
        await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)

    # --- primitives -----------------------------------------------------------------------
    async def play(
        self, prompts: Prompt | Iterable[Prompt], *, interrupt_on: str = ""
    ) -> str | None:
        """Play prompts one after the other. Returns the digit (from ``interrupt_on``) that
        cut playback short — left buffered for `collect` — or None when all was played."""
        items = [prompts] if isinstance(prompts, Prompt) else list(prompts)
        frames = [frame for p in items for frame in p.frames(self.stream.codec)]
        self._check()
        if interrupt_on and self._digits and self._digits[0] in interrupt_on:
            return self._digits[0]
        done = self.stream.play(frames)
        try:
            while not done.done():
                waiting: set[asyncio.Future[Any]] = {done, self._digit_signal(), self._ended}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                self._check()
                if interrupt_on and self._digits and self._digits[0] in interrupt_on:
                    self.stream.stop_playback()
                    return self._digits[0]
        finally:
            if not done.done():
                self.stream.stop_playback()
        return None

    async def collect(
        self,
        max_digits: int = 1,
        *,
        timeout: float = 5.0,
        inter_digit: float = 3.0,
        terminators: str = "#",
    ) -> str:
        """Up to ``max_digits`` digits; a terminator ends early (and is not returned).
        Returns what was entered ("" when nothing came within ``timeout``)."""
        entered = ""
        deadline = self._loop.time() + timeout
        while len(entered) < max_digits:
            digit = self._take()
            if digit is not None:
                if digit in terminators and (entered or max_digits > 1):
                    break
                entered += digit
                deadline = self._loop.time() + inter_digit
                continue
            self._check()
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                break
            await self._either(self._digit_signal(), timeout=remaining)
        self._check()
        return entered

    async def pause(self, seconds: float) -> None:
        await self._either(None, timeout=seconds)
        self._check()

    async def record(
        self,
        recorder: DurableRecorder,
        *,
        silence_seconds: float = 8.0,
        stop_digits: str = "#",
        no_media_seconds: float = 8.0,
    ) -> str:
        """Record what the caller says until a stop digit, hang-up, maximum length, a long
        silence, no media at all, or a write error. Returns which of these happened:
        ``"digit"``, ``"hangup"``, ``"max-length"``, ``"silence"``, ``"no-media"``, ``"disk"``."""
        self.flush_digits()
        stream = self.stream
        begun = self._loop.time()
        received_before = stream.stats.audio
        stream.on_audio = recorder.receive
        try:
            while True:
                if self._ended.done():
                    return "hangup"
                if self._take(stop_digits) is not None:
                    return "digit"
                if recorder.error is not None:
                    return "disk"
                if recorder.full:
                    return "max-length"
                now = self._loop.time()
                if stream.stats.audio == received_before and now - begun >= no_media_seconds:
                    return "no-media"
                if recorder.samples and recorder.silent_for() >= silence_seconds:
                    return "silence"
                await self._either(self._digit_signal(), timeout=POLL)
        finally:
            stream.on_audio = None
            recorder.flush()
