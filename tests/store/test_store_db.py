"""Database handle: URLs, SQLite pragmas, sessions and the errors a person sees."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from frontdesk.store.db import Database, DatabaseError, redact, resolve_url, sqlite_url
from frontdesk.store.models import Tenant


def test_sqlite_url_is_built_from_the_data_dir_which_is_created(tmp_path: Path) -> None:
    data_dir = tmp_path / "data" / "nested"
    url = sqlite_url(data_dir)
    assert url == f"sqlite:///{data_dir.resolve()}/frontdesk.db"
    assert data_dir.is_dir()


def test_resolve_url_prefers_flag_then_env_then_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FRONTDESK_DB", raising=False)
    assert resolve_url(None, tmp_path) == sqlite_url(tmp_path)
    monkeypatch.setenv("FRONTDESK_DB", "postgresql://env@h/db")
    assert resolve_url(None, tmp_path) == "postgresql://env@h/db"
    assert resolve_url("sqlite:///x.db", tmp_path) == "sqlite:///x.db"


def test_sqlite_pragmas_are_set_on_every_connection(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path))
    try:
        with db.engine.connect() as first, db.engine.connect() as second:
            for conn in (first, second):
                assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
                assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
                assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
    finally:
        db.close()


def test_bare_postgresql_url_uses_psycopg3() -> None:
    db = Database("postgresql://postgres@127.0.0.1:1/x")
    assert db.url.drivername == "postgresql+psycopg"
    assert db.dialect == "postgresql"
    db.close()


def test_unreachable_postgresql_names_the_database_and_the_fix() -> None:
    db = Database("postgresql://postgres:s3cret@127.0.0.1:1/frontdesk")
    with pytest.raises(DatabaseError) as caught:
        db.migrate()
    assert str(caught.value) == (
        "cannot open database postgresql+psycopg://postgres:***@127.0.0.1:1/frontdesk: "
        "connection refused — is PostgreSQL running? set --db or FRONTDESK_DB"
    )
    with pytest.raises(DatabaseError, match="connection refused"):
        db.ping()
    db.close()


@pytest.mark.postgres
def test_missing_postgresql_database_is_named(pg_server_url: str) -> None:
    url = make_url(pg_server_url).set(database="frontdesk_no_such_db_x")
    db = Database(url.render_as_string(hide_password=False))
    with pytest.raises(DatabaseError) as caught:
        db.ping()
    db.close()
    assert str(caught.value).startswith(f"cannot open database {redact(url)}: ")
    assert 'database "frontdesk_no_such_db_x" does not exist' in str(caught.value)


def test_sqlite_in_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/no/such/dir/frontdesk.db")
    with pytest.raises(DatabaseError, match=r"cannot open database sqlite:///.*unable to open"):
        db.migrate()
    db.close()


@pytest.mark.parametrize("url", ["not a url", "nosuchdialect://h/db", "mysql://h/db"])
def test_bad_urls_are_refused_with_the_expected_forms(url: str) -> None:
    with pytest.raises(DatabaseError, match=r"invalid database URL .*set --db or FRONTDESK_DB"):
        Database(url)


def test_redact_hides_passwords() -> None:
    assert redact("postgresql+psycopg://u:pw@h/db") == "postgresql+psycopg://u:***@h/db"
    assert "pw" not in repr(Database("postgresql+psycopg://u:pw@h/db"))


def test_session_commits_on_success_and_rolls_back_on_error(
    db: Database, open_db: Callable[[str], Database]
) -> None:
    with db.session() as session:
        session.add(Tenant(slug="acme", name="Acme", sip_domain="acme.example"))
    with pytest.raises(RuntimeError), db.session() as session:
        session.add(Tenant(slug="beta", name="Beta", sip_domain="beta.example"))
        session.flush()
        raise RuntimeError("boom")
    other = open_db(db.url.render_as_string(hide_password=False))
    with other.session() as session:
        slugs = session.scalars(text("SELECT slug FROM tenants")).all()
    assert slugs == ["acme"]


def test_ping_succeeds_on_a_reachable_database(db: Database) -> None:
    db.ping()
