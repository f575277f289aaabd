"""The HTTP side of the one event loop: FastAPI served by uvicorn inside our loop.

``create_app`` builds the app: /health (what a monitoring system polls), and the REST API
under /api/v1 (one router per resource, see the ``api`` modules) with OpenAPI at
/openapi.json and every error as application/problem+json. It takes the running server
(for health and its database) or, in tests and tools, just a ``Database``.

Where call flows plug in: when ``frontdesk.routing`` provides an ``api`` module with a
``router`` (its flows resource, whose changes go through ``org.service`` with a ``flow``
resource kind registered in ``org.resources``), ``create_app`` includes it. Nothing here
blocks the loop: endpoints that touch the database are plain functions FastAPI runs in
its worker threads.
"""

from __future__ import annotations

import contextlib
import importlib
import socket
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI

from frontdesk import __version__
from frontdesk.api import (
    audit,
    auth,
    cdrs,
    changes,
    coverage,
    extensions,
    groups,
    problems,
    roles,
    sites,
    tenants,
    tickets,
    users,
    vendor_grants,
)
from frontdesk.org.events import EventBus
from frontdesk.store.db import Database

ROUTERS = (auth, tenants, sites, users, extensions, groups, roles, vendor_grants, changes,
           audit, coverage, cdrs, tickets)
#: Optional feature routers, included when their module exists (routing builds flows).
OPTIONAL_ROUTERS = ("frontdesk.routing.api", "frontdesk.media.api",  # media (issue #3)
                    "frontdesk.api.events_ws",  # live events (issue #6)
                    "frontdesk.api.trunks")  # SIP trunks

DESCRIPTION = """Frontdesk's REST API. Sign in with `POST /api/v1/login` (or make a token with
`frontdesk token create`) and send `Authorization: Bearer TOKEN`.

Every change goes through one path: permission check, then — when it touches the other
domain (business vs infrastructure) — a change request (HTTP 202) that the owner of that
domain approves; otherwise it applies at once. Every applied change is versioned and
audited in a hash chain. Errors are `application/problem+json` naming the field and the fix.
"""


def create_app(server: Any = None, *, db: Database | None = None,
               bus: EventBus | None = None) -> FastAPI:
    """The app for ``server`` (a running PbxServer), or for ``db`` alone (tests, tools)."""
    app = FastAPI(title="Frontdesk", version=__version__, description=DESCRIPTION)
    app.state.server = server
    app.state.db = db if db is not None else getattr(server, "db", None)
    app.state.bus = bus or getattr(server, "bus", None) or EventBus()
    problems.install(app)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, Any]:
        """Liveness plus the SIP engine's counters."""
        engine = getattr(server, "engine", None)
        writer = getattr(server, "writer", None)
        return {
            "status": "ok" if engine is not None else "starting",
            "version": __version__,
            "registrations": len(engine.location) if engine else 0,
            "active_calls": len(engine.calls.calls) if engine else 0,
            "completed_calls": engine.calls.completed if engine else 0,
            "sip": _sip_stats(server, engine),
            "journal_pending": writer.pending if writer else 0,
        }

    if app.state.db is not None:
        for module in ROUTERS:
            app.include_router(module.router)
        for name in OPTIONAL_ROUTERS:
            with contextlib.suppress(ImportError):
                app.include_router(importlib.import_module(name).router)
    _document_problems(app)
    return app


def _sip_stats(server: Any, engine: Any) -> dict[str, int]:
    """The SIP counters of the server and its SIP workers (a bare engine's own counters)."""
    if engine is None:
        return {}
    sip_stats = getattr(server, "sip_stats", None)
    return dict(sip_stats()) if sip_stats is not None else dict(engine.stats)


def _document_problems(app: FastAPI) -> None:
    """Generate the OpenAPI document once, with problem+json error responses declared."""
    make_schema = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problems.document_problems(make_schema())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def serve_http(server: Any, sock: socket.socket) -> None:
    """Serve the API on an already bound socket (the caller reports bind errors)."""
    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # the app owns signal handling
            yield

    config = uvicorn.Config(create_app(server), log_level="warning", lifespan="off")
    await _Server(config).serve(sockets=[sock])
