"""Alembic migrations: up to head on SQLite and PostgreSQL, no drift from the models."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, inspect

from frontdesk.store.all_models import Base
from frontdesk.store.db import Database, alembic_config

REPO = Path(__file__).resolve().parents[2]
STORE = REPO / "src" / "frontdesk" / "store"
TABLES = {"tenants", "users", "extensions", "sip_credentials", "registrations", "cdrs"}


def _head() -> str:
    """The newest revision; with one branch per feature off 0001, all heads joined by "+"."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert heads
    return "+".join(sorted(heads))


def _drift(db: Database, metadata: MetaData) -> list[object]:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, metadata))


def test_migrate_creates_every_table_at_head(db: Database) -> None:
    assert set(inspect(db.engine).get_table_names()) >= TABLES
    assert db.current_revision() == _head()


def test_a_fresh_database_has_no_revision(db_url: str, open_db) -> None:  # type: ignore[no-untyped-def]
    assert open_db(db_url).current_revision() is None


def test_migrate_twice_changes_nothing(db: Database) -> None:
    db.migrate()
    assert db.current_revision() == _head()


def test_models_and_migrations_do_not_drift(db: Database) -> None:
    assert _drift(db, Base.metadata) == []


def test_drift_check_notices_a_model_change(db: Database) -> None:
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["extensions"].append_column(Column("voicemail_pin", Integer))
    diff = _drift(db, changed)
    assert any(d[0] == "add_column" and d[3].name == "voicemail_pin" for d in diff)  # type: ignore[index]


def test_downgrade_to_base_and_upgrade_again(db: Database) -> None:
    config = alembic_config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert not TABLES & set(inspect(db.engine).get_table_names())
    db.migrate()
    assert set(inspect(db.engine).get_table_names()) >= TABLES


def test_alembic_command_line_upgrade_and_check(tmp_path: Path) -> None:
    """The developer workflow in alembic.ini works: upgrade, then `alembic check` (no drift)."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    base = [sys.executable, "-m", "alembic", "-c", str(STORE / "alembic.ini"), "-x", f"db={url}"]
    env = {k: v for k, v in os.environ.items() if k != "FRONTDESK_DB"}
    for args in (["upgrade", "heads"], ["check"]):
        done = subprocess.run(
            [*base, *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
    assert "No new upgrade operations detected" in done.stdout + done.stderr


def test_migration_files_are_listed_as_package_data() -> None:
    """Every file Alembic needs at run time is shipped in the wheel."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["frontdesk"]
    package_root = REPO / "src" / "frontdesk"
    needed = [STORE / "alembic.ini"]
    needed += list((STORE / "migrations").glob("*.py"))
    needed += list((STORE / "migrations" / "versions").glob("*.py"))
    for path in needed:
        relative = path.relative_to(package_root).as_posix()
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), f"{relative} not shipped"


@pytest.mark.parametrize("name", ["env.py", "versions/0001_initial.py"])
def test_migration_scripts_exist(name: str) -> None:
    assert (STORE / "migrations" / name).is_file()
