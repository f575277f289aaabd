"""The HTTP side of the one event loop: FastAPI served by uvicorn inside our loop.

For now it exposes health only (what a monitoring system polls); the REST API with
ownership and permissions is built on the same app. Never blocks the loop.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI

from frontdesk import __version__


def create_app(server: Any) -> FastAPI:
    app = FastAPI(title="Frontdesk", version=__version__)

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness plus the SIP engine's counters."""
        engine = server.engine
        return {
            "status": "ok" if engine is not None else "starting",
            "version": __version__,
            "registrations": len(engine.location) if engine else 0,
            "active_calls": len(engine.calls.calls) if engine else 0,
            "completed_calls": engine.calls.completed if engine else 0,
            "sip": dict(engine.stats) if engine else {},
            "journal_pending": server.writer.pending if server.writer else 0,
        }

    return app


async def serve_http(server: Any, sock: socket.socket) -> None:
    """Serve the API on an already bound socket (the caller reports bind errors)."""
    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # the app owns signal handling
            yield

    config = uvicorn.Config(create_app(server), log_level="warning", lifespan="off")
    await _Server(config).serve(sockets=[sock])
