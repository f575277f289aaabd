"""A real `PbxServer` (the object `frontdesk serve` runs: SIP over real sockets, media, the
database) started inside the test process on its own event-loop thread, so a test can call
its Python API — ``server.call_control.transfer(...)`` — while real phones talk to it.

What it is for: live tests of engine APIs that have no CLI or HTTP route of their own.
What it must never do: bind outside 127.0.0.1, or outlive the test (``stop()`` always).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from frontdesk_proc import free_port

from frontdesk.pbx.server import PbxServer, ServerConfig
from frontdesk.store.db import resolve_url

T = TypeVar("T")


class InProcessServer:
    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.sip_port = free_port()
        self.config = ServerConfig(
            data_dir=data_dir,
            db_url=resolve_url(None, data_dir),
            sip_host="127.0.0.1",
            sip_port=self.sip_port,
        )
        self._env = env or {}
        self._saved: dict[str, str | None] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: PbxServer | None = None

    def start(self) -> InProcessServer:
        for key, value in self._env.items():
            self._saved[key] = os.environ.get(key)
            os.environ[key] = value
        self.thread.start()
        self.server = PbxServer(self.config)
        self.run(self.server.start(), timeout=30)
        return self

    def run(self, coro: Awaitable[T], timeout: float = 60.0) -> T:
        """Run ``coro`` on the server's loop and wait for its result (or its exception)."""
        future = asyncio.run_coroutine_threadsafe(_wrap(coro), self.loop)
        return future.result(timeout)

    def inspect(self, fn: Callable[[PbxServer], T]) -> T:
        """Call ``fn(server)`` on the server's loop (engine state is the loop's alone)."""
        assert self.server is not None
        server = self.server

        async def call() -> T:
            return fn(server)

        return self.run(call(), timeout=10)

    def stop(self) -> None:
        try:
            if self.server is not None and self.thread.is_alive():
                self.run(self.server.stop(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
            for key, value in self._saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


async def _wrap(coro: Awaitable[T]) -> T:
    return await coro


__all__ = ["InProcessServer"]
