"""Application timers for the call engine (ring timeouts, registration expiry sweeps).

A heap of (deadline, id) with lazy cancellation; the asyncio glue asks `next_deadline()` and
calls `fire(now)`. Callbacks are plain functions of (subject, now). No asyncio, no clock here.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any


class Timers:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, tuple[Callable[[Any, float], None], Any]] = {}
        self._ids = itertools.count(1)

    def add(self, deadline: float, callback: Callable[[Any, float], None], subject: Any) -> int:
        timer_id = next(self._ids)
        self._live[timer_id] = (callback, subject)
        heapq.heappush(self._heap, (deadline, timer_id))
        return timer_id

    def cancel(self, timer_id: int | None) -> None:
        if timer_id is not None:
            self._live.pop(timer_id, None)

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0][1] not in self._live:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def fire(self, now: float) -> int:
        """Run every callback due at ``now``; return how many ran."""
        ran = 0
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, timer_id = heapq.heappop(heap)
            entry = self._live.pop(timer_id, None)
            if entry is not None:
                entry[0](entry[1], now)
                ran += 1
        return ran

    def __len__(self) -> int:
        return len(self._live)
