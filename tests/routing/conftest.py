"""Fixtures for the routing tests: the store's ``db_url`` (SQLite and PostgreSQL) and a
migrated ``db``. Plain helpers live in ``routing_support.py``.

What it must never do: hold routing logic, or reach beyond 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from frontdesk.store.db import Database
from store.conftest import db_url, open_db, pg_server_url  # noqa: F401  (fixtures)


@pytest.fixture
def db(db_url: str, open_db: Callable[[str], Database]) -> Database:  # noqa: F811
    """A database on ``db_url`` migrated to every head."""
    database = open_db(db_url)
    database.migrate()
    return database
