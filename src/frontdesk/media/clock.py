"""The media clock: one 20 ms tick for every RTP stream of the process.

Every outgoing RTP packet of every media session leaves from here, so pacing is one timer
on the event loop instead of one task per session. Deadlines are absolute: tick *n* is due
at ``start + n * interval`` on the loop's monotonic clock, so a late tick never shifts the
ones after it (no drift). When the loop was blocked for more than one interval the clock
catches up by ticking the missed frames back to back (RTP timestamps stay true to real
time); after more than ``max_catch_up`` missed ticks it gives up on them, logs it once and
restarts the schedule from now.

It records how late each tick ran (``lateness``), which the benchmark reads. This module
must never do I/O itself or know what a stream sends: it only calls ``tick()``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

log = logging.getLogger("frontdesk.media.clock")

FRAME_SECONDS = 0.020


class Ticking(Protocol):
    def tick(self) -> None: ...

    def fail(self, exc: BaseException) -> None:
        """Told when its ``tick`` raised; it has been removed from the clock."""


class LatenessStats:
    """A histogram of tick lateness in 0.1 ms buckets (the last bucket collects >= 50 ms)."""

    BUCKET = 0.0001
    BUCKETS = 500

    def __init__(self) -> None:
        self.counts = [0] * (self.BUCKETS + 1)
        self.total = 0
        self.worst = 0.0

    def add(self, late: float) -> None:
        index = min(self.BUCKETS, max(0, int(late / self.BUCKET)))
        self.counts[index] += 1
        self.total += 1
        self.worst = max(self.worst, late)

    def percentile(self, p: float) -> float:
        """Lateness in seconds below which ``p`` percent of ticks ran."""
        if self.total == 0:
            return 0.0
        wanted = self.total * p / 100.0
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= wanted:
                return (index + 1) * self.BUCKET
        return self.worst

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


class MediaClock:
    """Calls ``tick()`` on every registered stream once per ``interval``."""

    def __init__(
        self,
        interval: float = FRAME_SECONDS,
        max_catch_up: int = 10,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.interval = interval
        self.max_catch_up = max_catch_up
        self._loop = loop
        self._streams: dict[int, Ticking] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._next = 0.0
        self.lateness = LatenessStats()
        self.ticks = 0
        self.resyncs = 0
        self.errors = 0

    def __len__(self) -> int:
        return len(self._streams)

    def add(self, stream: Ticking) -> None:
        """Start ticking ``stream`` (its first tick comes at the next deadline)."""
        self._streams[id(stream)] = stream
        if self._handle is None:
            loop = self._loop or asyncio.get_running_loop()
            self._loop = loop
            self._next = loop.time() + self.interval
            self._handle = loop.call_at(self._next, self._run)

    def remove(self, stream: Ticking) -> None:
        self._streams.pop(id(stream), None)
        if not self._streams and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        late = now - self._next
        self.lateness.add(late)
        due = 1 + int(late / self.interval) if late > 0 else 1
        if due > self.max_catch_up:
            self.resyncs += 1
            log.warning(
                "media clock was blocked for %.0f ms (%d frames); skipping them and "
                "restarting the 20 ms schedule",
                late * 1000,
                due,
            )
            self._next = now
            due = 1
        for _ in range(due):
            self._tick_all()
        self._next += due * self.interval
        if self._streams:
            self._handle = loop.call_at(self._next, self._run)
        else:
            self._handle = None

    def _tick_all(self) -> None:
        self.ticks += 1
        for stream in list(self._streams.values()):
            try:
                stream.tick()
            except Exception as exc:  # one broken stream must not stop the others
                self.errors += 1
                log.exception("media stream %r failed in its tick; removing it", stream)
                self._streams.pop(id(stream), None)
                stream.fail(exc)

    def close(self) -> None:
        self._streams.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
