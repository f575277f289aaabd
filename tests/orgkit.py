"""Shared test kit for the ownership layer and the REST API (tests/org, tests/api).

What it is for: database fixtures on SQLite and PostgreSQL (same pattern as
tests/store/conftest.py: PG from FRONTDESK_TEST_PG, a throwaway database per session,
FRONTDESK_REQUIRE_PG=1 turns an unreachable PG into a failure), a ``World`` with one tenant
and one user per role (each with an API token), and helpers that count audit rows and dump
every table to prove "nothing changed". Conftests import the fixtures from here.

What it must never do: change anything through a side door during a test's measured call;
setting a world up goes through ``org.service`` as the local administrator, like the CLI.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, inspect, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from frontdesk.org.access import Actor
from frontdesk.org.credentials import new_token
from frontdesk.org.model import AuditEntry
from frontdesk.org.roles import Role
from frontdesk.org.service import Change, apply_change
from frontdesk.store.db import Database

PG_ENV = "FRONTDESK_TEST_PG"
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REQUIRE_PG_ENV = "FRONTDESK_REQUIRE_PG"
PASSWORD = "correct horse battery"
TENANT = "acme"


def _server_url() -> URL:
    url = make_url(os.environ.get(PG_ENV) or PG_DEFAULT)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def _admin_engine(url: URL) -> Engine:
    return create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})


@contextmanager
def throwaway_pg_database() -> Iterator[str]:
    """A new PostgreSQL database for the duration of the block (skip/fail if unreachable)."""
    server = _server_url()
    name = f"frontdesk_test_{secrets.token_hex(6)}"
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


def reset_pg_schema(url: str) -> None:
    """Empty the database: end stray connections, recreate the public schema."""
    engine = _admin_engine(make_url(url))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


# --- fixtures (conftests import these names) -------------------------------------------------


@pytest.fixture(scope="session")
def org_pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for this session's function-scoped tests."""
    with throwaway_pg_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty, migrated database for one test, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'frontdesk.db'}"
    else:
        url = request.getfixturevalue("org_pg_url")
        reset_pg_schema(url)
    database = Database(url)
    database.migrate()
    yield database
    database.close()


@pytest.fixture(scope="module", params=BACKENDS)
def module_db(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One migrated database shared by a module's tests (its own PG database)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("orgdb") / "frontdesk.db"
        database = Database(f"sqlite:///{path}")
        database.migrate()
        yield database
        database.close()
        return
    with throwaway_pg_database() as url:
        database = Database(url)
        database.migrate()
        yield database
        database.close()


# --- a world: one tenant, one user per role --------------------------------------------------


@dataclass
class World:
    """A tenant with one user per role (username = role value) and a token for each."""

    db: Database
    tenant_id: int
    tokens: dict[str, str] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)

    @property
    def admin(self) -> Actor:
        """The local administrator of the world's tenant (for setting things up)."""
        return Actor.local_admin(self.tenant_id)

    def actor(self, username: str) -> Actor:
        return Actor(tenant_id=self.tenant_id, name=username, user_id=self.user_ids[username])

    def headers(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[username]}"}

    def setup(self, *changes: Change) -> None:
        """Apply ``changes`` as the local administrator (not part of what a test measures)."""
        with self.db.session() as session:
            for change in changes:
                apply_change(session, self.admin, "cli", change)

    def add_user(self, username: str, *roles: Role, site: str | None = None) -> None:
        """A user holding ``roles``, with an API token."""
        token, digest = new_token()
        changes = [Change("user", "create", username, {"display_name": username.title()})]
        changes += [Change("role_assignment", "create", None,
                           {"user": username, "role": r.value, "site": site}) for r in roles]
        self.setup(*changes)
        with self.db.session() as session:
            from frontdesk.store.models import User

            user = session.scalar(select(User).where(User.tenant_id == self.tenant_id,
                                                     User.username == username))
            assert user is not None
            self.user_ids[username] = user.id
            apply_change(session, self.actor(username), "cli",
                         Change("api_token", "create", None, {"name": "test",
                                                               "token_hash": digest}))
        self.tokens[username] = token


def make_world(db: Database, slug: str = TENANT, *, roles: bool = True) -> World:
    """A default tenant ``slug`` and, with ``roles``, a user named after every role."""
    with db.session() as session:
        outcome = apply_change(session, Actor.local_admin(None), "cli", Change(
            "tenant", "create", slug, {"name": slug.title(), "sip_domain": f"{slug}.test",
                                       "default": slug == TENANT}))
        from frontdesk.store.models import Tenant

        tenant = session.scalar(select(Tenant).where(Tenant.slug == outcome.resource_key))
        assert tenant is not None
        world = World(db, tenant.id)
    if roles:
        for role in Role:
            world.add_user(role.value, role)
    return world


# --- measuring -----------------------------------------------------------------------------


def audit_count(db: Database, tenant_id: int | None = None) -> int:
    """How many audit rows there are (in one tenant's chain, or all)."""
    with db.session() as session:
        query = select(func.count()).select_from(AuditEntry)
        if tenant_id is not None:
            query = query.where(AuditEntry.tenant_id == tenant_id)
        return int(session.scalar(query) or 0)


def dump(db: Database, *, skip: tuple[str, ...] = ("alembic_version",)) -> dict[str, Any]:
    """Every row of every table, as sorted tuples of text: two equal dumps mean nothing
    changed."""
    tables = sorted(set(inspect(db.engine).get_table_names()) - set(skip))
    out: dict[str, Any] = {}
    with db.engine.connect() as conn:
        for table in tables:
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
            out[table] = sorted(tuple(str(v) for v in row) for row in rows)
    return out


Factory = Callable[..., Any]
