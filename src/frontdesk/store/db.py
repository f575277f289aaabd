"""Database handle: engine creation, sessions and Alembic migrations.

SQLite is the default (``sqlite:///DATA/frontdesk.db``), opened with WAL, synchronous=NORMAL,
foreign_keys=ON and a busy timeout on every connection. PostgreSQL is reached through
psycopg 3 (``postgresql+psycopg://...``; plain ``postgresql://`` URLs are mapped to it).

Errors a person can cause (a bad URL, a server that is not running) become
``DatabaseError`` with a message naming the database and the fix. This module must never
run queries of its own beyond a connectivity check, and never be called from the SIP hot
path: the call engine writes through ``journal.WriteBehind``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

ENV_VAR = "FRONTDESK_DB"
DB_FILENAME = "frontdesk.db"
SQLITE_BUSY_TIMEOUT_MS = 5000
PG_CONNECT_TIMEOUT_S = 10
_HINT = f"set --db or {ENV_VAR}"


class DatabaseError(Exception):
    """The database cannot be opened; the message says which one and what to do."""


def sqlite_url(data_dir: str | Path, *, create: bool = True) -> str:
    """The default SQLite URL inside ``data_dir`` (created unless ``create`` is False)."""
    directory = Path(data_dir).expanduser().resolve()
    if create:
        directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / DB_FILENAME}"


def resolve_url(explicit: str | None, data_dir: str | Path) -> str:
    """Pick the database URL: ``explicit`` (--db), else $FRONTDESK_DB, else SQLite in data_dir."""
    if explicit:
        return explicit
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return from_env
    return sqlite_url(data_dir)


def redact(url: str | URL) -> str:
    """The URL with any password replaced by ``***`` (safe to print and log)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url)


def _normalise(url: str) -> URL:
    """Parse ``url`` and map bare postgresql:// / postgres:// to the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(
            f"invalid database URL {url!r}: expected sqlite:///PATH or "
            f"postgresql+psycopg://USER@HOST:PORT/NAME — {_HINT}"
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Per-connection SQLite settings (WAL survives, the others are per connection)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _explain(exc: BaseException) -> str:
    """One line saying why a connection failed, in words a person recognises."""
    message = str(getattr(exc, "orig", None) or exc).strip()
    lowered = message.lower()
    if "refused" in lowered:
        return "connection refused"
    if "does not exist" in lowered:
        return next(
            (ln.split("FATAL:")[-1].strip() for ln in message.splitlines() if "exist" in ln),
            message.splitlines()[0],
        )
    if "password authentication failed" in lowered:
        return "password authentication failed"
    if "unable to open database file" in lowered:
        return "unable to open database file"
    return message.splitlines()[0] if message else type(exc).__name__


def _hint_for(url: URL) -> str:
    if url.get_backend_name() == "postgresql":
        return f"is PostgreSQL running? {_HINT}"
    if url.get_backend_name() == "sqlite":
        return f"does the data directory exist and is it writable? {_HINT}"
    return _HINT


class Database:
    """One database: an engine, a session factory and the migration runner.

    ``Database(url)`` only parses the URL and builds the engine; nothing connects until
    ``ping()``, ``migrate()``, ``session()`` or ``engine`` is used. The engine is safe to use
    from worker threads (``asyncio.to_thread``).
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url: URL = _normalise(url)
        self.engine: Engine = self._create_engine(echo)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _create_engine(self, echo: bool) -> Engine:
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
        backend = self.url.get_backend_name()
        if backend == "postgresql" and "connect_timeout" not in self.url.query:
            kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
        try:
            engine = create_engine(self.url, **kwargs)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise DatabaseError(
                f"invalid database URL {self.display_url}: {exc} — expected sqlite:///PATH "
                f"or postgresql+psycopg://USER@HOST:PORT/NAME; {_HINT}"
            ) from exc
        if backend == "sqlite":
            event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine

    @property
    def display_url(self) -> str:
        """The URL without its password, for messages and logs."""
        return redact(self.url)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def cannot_open(self, exc: BaseException) -> DatabaseError:
        """The person-facing error for a failed connection to this database."""
        return DatabaseError(
            f"cannot open database {self.display_url}: {_explain(exc)} — {_hint_for(self.url)}"
        )

    def ping(self) -> None:
        """Connect once and run ``SELECT 1``; raise ``DatabaseError`` if that fails."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError as exc:
            raise self.cannot_open(exc) from exc

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def migrate(self, revision: str = "heads") -> None:
        """Bring the schema to ``revision`` (default: the newest) with Alembic."""
        from alembic import command

        config = alembic_config()
        try:
            conn = self.engine.connect()
        except DBAPIError as exc:
            raise self.cannot_open(exc) from exc
        with conn, conn.begin():
            config.attributes["connection"] = conn
            command.upgrade(config, revision)

    def current_revision(self) -> str | None:
        """The Alembic revision the database is at (None when never migrated). Features add
        their own branches off 0001, so with several heads this is their ids, sorted and
        joined by "+" (e.g. ``0002_tickets+0003_routing``)."""
        heads = self.current_heads()
        return "+".join(heads) if heads else None

    def current_heads(self) -> tuple[str, ...]:
        """Every Alembic head the database is at, sorted (empty when never migrated)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.display_url!r})"


def alembic_config() -> Config:
    """An Alembic ``Config`` for the migrations shipped inside this package."""
    from alembic.config import Config

    store_dir = resources.files("frontdesk.store")
    config = Config(str(store_dir / "alembic.ini"))
    config.set_main_option("script_location", str(store_dir / "migrations"))
    return config
