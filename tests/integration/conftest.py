"""Fixtures for tests against the real ``frontdesk serve`` process (tests/integration/).

- ``frontdesk``: a started server with the demo tenant on SQLite in the test's tmp dir.
- ``frontdesk_factory``: ``make(db="sqlite"|"postgresql", extensions=..., start=True)`` for
  tests that need several servers, extra extensions, or to restart one; every server it made
  is stopped after the test and its log tail printed (pytest shows it on failure).
- ``frontdesk_module_db``: one server per test module, parametrized over SQLite and
  PostgreSQL (marked ``postgres``), each with and without a SIP worker process, for suites
  whose tests use distinct extensions.
- ``pg_database_url``: a throwaway PostgreSQL database for the session, from
  FRONTDESK_TEST_PG (default postgresql+psycopg://postgres@127.0.0.1:5432/test); dropped
  at the end. Unreachable: the PostgreSQL tests skip with the reason, or fail when
  FRONTDESK_REQUIRE_PG=1.

Never: start anything a test did not ask for, or stop a process it did not start.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from frontdesk_proc import FrontdeskProcess
from integration_kit import Extensions, ServerFactory
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

PG_ENV = "FRONTDESK_TEST_PG"
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REQUIRE_PG_ENV = "FRONTDESK_REQUIRE_PG"


def _pg_server_url() -> URL:
    url = make_url(os.environ.get(PG_ENV) or PG_DEFAULT)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def _admin_engine(url: URL) -> Engine:
    return create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for this session (dropped afterwards)."""
    server = _pg_server_url()
    name = f"frontdesk_it_{secrets.token_hex(6)}"
    engine = _admin_engine(server)
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except DBAPIError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        message = (f"PostgreSQL at {server.render_as_string(hide_password=True)} is not usable "
                   f"({reason}); start it or point {PG_ENV} at a server where CREATE DATABASE "
                   "works")
        if os.environ.get(REQUIRE_PG_ENV) == "1":
            pytest.fail(f"{message} ({REQUIRE_PG_ENV}=1)", pytrace=False)
        pytest.skip(message)
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def _pg_provider(request: pytest.FixtureRequest) -> Callable[[], str]:
    """An empty PostgreSQL database URL, on demand (so SQLite-only tests never need one)."""
    return lambda: _empty_pg(request.getfixturevalue("pg_database_url"))


def _empty_pg(url: str) -> str:
    """Empty the session database (end stray connections, recreate schema public)."""
    engine = _admin_engine(make_url(url))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    return url


@pytest.fixture
def frontdesk_factory(tmp_path: Path, request: pytest.FixtureRequest
                      ) -> Iterator[Callable[..., FrontdeskProcess]]:
    factory = ServerFactory(tmp_path / "servers", _pg_provider(request))
    yield factory
    factory.stop_all()


@pytest.fixture
def frontdesk(frontdesk_factory: Callable[..., FrontdeskProcess]) -> FrontdeskProcess:
    """A started server with the demo tenant on SQLite."""
    return frontdesk_factory()


def module_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  db: str, extensions: Extensions | None = None) -> Iterator[FrontdeskProcess]:
    """Body of a module-scoped server fixture (see ``frontdesk_module_db``)."""
    factory = ServerFactory(tmp_path_factory.mktemp("module-servers"), _pg_provider(request))
    db, _, workers = db.partition("+")  # "sqlite+workers": serve --sip-workers 2
    try:
        yield factory(db, extensions, serve_args=("--sip-workers", "2") if workers else ())
    finally:
        factory.stop_all()


@pytest.fixture(scope="module", params=[
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    "sqlite+workers",
    pytest.param("postgresql+workers", marks=pytest.mark.postgres),
])
def frontdesk_module_db(request: pytest.FixtureRequest,
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontdeskProcess]:
    """One server per module and database, each also with a SIP worker process (serve
    --sip-workers 2: registrations are handled by two processes); the module may set
    ``MODULE_EXTENSIONS``."""
    extensions: Any = getattr(request.module, "MODULE_EXTENSIONS", None)
    yield from module_server(request, tmp_path_factory, request.param, extensions)
