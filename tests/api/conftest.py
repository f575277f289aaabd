"""Fixtures for the REST API tests: databases on SQLite and PostgreSQL (tests/orgkit.py),
and ``api``: a module's world (tenant "acme", one user per role with a token) with a
TestClient on ``create_app(db=...)``. Holds nothing else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from permsuite import Api

from frontdesk.api.http import create_app
from frontdesk.store.db import Database
from orgkit import db, make_world, module_db, org_pg_url  # noqa: F401


@pytest.fixture(scope="module")
def api(module_db: Database) -> Iterator[Api]:  # noqa: F811
    """One world and client per test module (and backend)."""
    world = make_world(module_db)
    with TestClient(create_app(db=module_db)) as client:
        yield Api(world, client)
