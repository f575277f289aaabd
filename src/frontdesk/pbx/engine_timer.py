"""One event-loop timer for a SIP engine's next deadline (the main process and SIP workers).

The sans-I/O engine says when it next needs the clock (`SipEngine.next_deadline`); this keeps
a single `loop.call_at` armed for the earliest such moment, moves it only when an earlier one
appears, and when it fires runs the engine's timers and the owner's flush (which sends what
they produced and re-arms). Glue only: it never looks inside the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol


class _Engine(Protocol):
    def next_deadline(self) -> float | None: ...

    def on_timer(self, now: float) -> None: ...


class EngineTimer:
    def __init__(self, engine: _Engine, flush: Callable[[], None]) -> None:
        self.engine = engine
        self.flush = flush
        self._handle: asyncio.TimerHandle | None = None
        self._at: float | None = None

    def rearm(self) -> None:
        """Arm the timer for the engine's next deadline, unless it is armed as early."""
        deadline = self.engine.next_deadline()
        if deadline is None or (self._at is not None and self._at <= deadline):
            return
        if self._handle is not None:
            self._handle.cancel()
        self._at = deadline
        self._handle = asyncio.get_running_loop().call_at(deadline, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._at = None

    def _fire(self) -> None:
        self._handle = self._at = None
        self.engine.on_timer(asyncio.get_running_loop().time())
        self.flush()
