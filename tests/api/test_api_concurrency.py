"""Concurrent changes over the API: each one applies or answers 409, never a 5xx, and the
audit chain stays one unbroken line (no fork, no gap). On SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from frontdesk.api.http import create_app
from frontdesk.org import audit
from frontdesk.org.roles import Role
from frontdesk.store.db import Database
from orgkit import audit_count, make_world


def test_concurrent_changes_keep_the_chain_whole(db: Database) -> None:
    world = make_world(db, roles=False)
    world.add_user("admin", Role.ADMINISTRATOR)
    client = TestClient(create_app(db=db))
    before = audit_count(db)

    def create(i: int) -> int:
        response = client.post("/api/v1/groups", headers=world.headers("admin"),
                               json={"name": f"team-{i % 20}", "display_name": f"Team {i}"})
        return response.status_code

    with ThreadPoolExecutor(12) as pool:
        codes = Counter(pool.map(create, range(80)))
    assert set(codes) <= {201, 409} and codes[201] == 20, codes
    assert audit_count(db) == before + 20
    with db.session() as session:
        report = audit.verify(session)
    assert report.ok, report.problems
