"""Database fixtures shared by the store tests: every DB test runs on SQLite and PostgreSQL.

Self-contained (imports only frontdesk.store), so it can move to tests/conftest.py as is.

- ``db_url``: an empty database for one test, parametrized over ``sqlite`` (a file in the
  test's tmp dir) and ``postgresql`` (marked ``postgres``).
- ``open_db``: factory ``open_db(url) -> Database``; every Database it made is closed after
  the test.
- ``db``: a ``Database`` on ``db_url``, migrated to head.

PostgreSQL: the server is FRONTDESK_TEST_PG (default
postgresql+psycopg://postgres@127.0.0.1:5432/test). Once per session a throwaway database
``frontdesk_test_<random>`` is created there and dropped at the end; each test gets a fresh
``public`` schema in it. If the server is unreachable the PostgreSQL tests are skipped with
the reason, or fail when FRONTDESK_REQUIRE_PG=1 (CI sets it).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from frontdesk.store.db import Database

PG_ENV = "FRONTDESK_TEST_PG"
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REQUIRE_PG_ENV = "FRONTDESK_REQUIRE_PG"


def _server_url() -> URL:
    url = make_url(os.environ.get(PG_ENV) or PG_DEFAULT)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def _admin_engine(url: URL) -> Engine:
    return create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a throwaway PostgreSQL database for this test session (dropped afterwards)."""
    server = _server_url()
    name = f"frontdesk_test_{secrets.token_hex(6)}"
    engine = _admin_engine(server)
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except DBAPIError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        message = (
            f"PostgreSQL at {server.render_as_string(hide_password=True)} is not usable "
            f"({reason}); start it or point {PG_ENV} at a server where CREATE DATABASE works"
        )
        if os.environ.get(REQUIRE_PG_ENV) == "1":
            pytest.fail(f"{message} ({REQUIRE_PG_ENV}=1)", pytrace=False)
        pytest.skip(message)
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def _reset_pg_schema(url: str) -> None:
    """Empty the database: end stray connections, recreate the public schema."""
    engine = _admin_engine(make_url(url))
    try:
        with engine.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database for this test, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'frontdesk.db'}"
    url: str = request.getfixturevalue("pg_server_url")
    _reset_pg_schema(url)
    return url


@pytest.fixture
def open_db() -> Iterator[Callable[[str], Database]]:
    """Factory for Database handles that are all closed when the test ends."""
    opened: list[Database] = []

    def factory(url: str) -> Database:
        database = Database(url)
        opened.append(database)
        return database

    yield factory
    for database in opened:
        database.close()


@pytest.fixture
def db(db_url: str, open_db: Callable[[str], Database]) -> Database:
    """A Database on ``db_url`` migrated to the newest revision."""
    database = open_db(db_url)
    database.migrate()
    return database
