"""Fixtures for the tickets tests: every DB test runs on SQLite and PostgreSQL (the store's
``db_url`` fixture), a seeded tenant "acme" with co-workers, and a real HTTP receiver on
127.0.0.1 that records what webhooks and Zammad CTI events arrive.

What it must never do: reach beyond 127.0.0.1, or leave a server thread running after the
test that started it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from tickets_support import Acme, Receiver, ReceiverServer, RequestHandler

from frontdesk.store import repo
from frontdesk.store.db import Database
from store.conftest import db_url, open_db, pg_server_url  # noqa: F401  (fixtures)


@pytest.fixture
def db(db_url: str, open_db: Callable[[str], Database]) -> Database:  # noqa: F811
    database = open_db(db_url)
    database.migrate()
    return database


@pytest.fixture
def acme(db: Database) -> Acme:
    with db.session() as s:
        tenant = repo.create_tenant(s, "acme", "Acme IT Services", "acme.example")
        ids = []
        for number, name in (
            ("101", "Rita Reception"),
            ("102", "Sam Service-Manager"),
            ("103", "Tom Technician"),
            ("104", "Tina Technician"),
        ):
            user, _, _ = repo.create_user_with_extension(
                s,
                tenant,
                number,
                name,
                "pw",
                username=name.split()[0].lower(),
                email=f"{name.split()[0].lower()}@acme.example",
            )
            ids.append(user.id)
        return Acme(tenant.id, *ids)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1 (OS-assigned port)."""
    server = ReceiverServer(("127.0.0.1", 0), RequestHandler)
    server.receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
