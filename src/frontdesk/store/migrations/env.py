"""Alembic environment for Frontdesk's schema.

Run programmatically by ``Database.migrate()``, which hands over an open connection in
``config.attributes["connection"]`` (so SQLite pragmas and the caller's transaction apply),
or from the ``alembic`` command line with ``-x db=URL`` or $FRONTDESK_DB. SQLite uses batch
mode (table copy) for ALTERs. This file must never import application code beyond
``frontdesk.store`` (migrations run before anything else is up).
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from typing import Any, Literal

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection

from frontdesk.store.all_models import Base
from frontdesk.store.db import Database
from frontdesk.store.models import UtcDateTime

config = context.config
target_metadata = Base.metadata


def _render_item(kind: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Render our column types as plain SQLAlchemy types in generated revisions."""
    if kind != "type":
        return False
    if isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    if isinstance(obj, sa.JSON) and obj._variant_mapping:
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return (
            "sa.JSON(none_as_null=True)"
            '.with_variant(postgresql.JSONB(none_as_null=True), "postgresql")'
        )
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )


def _url_from_command_line() -> str:
    url = context.get_x_argument(as_dictionary=True).get("db") or os.environ.get("FRONTDESK_DB")
    if not url:
        raise SystemExit("no database: pass -x db=URL or set FRONTDESK_DB")
    return url


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (``alembic upgrade head --sql``)."""
    url = _url_from_command_line()
    context.configure(
        url=Database(url).url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against the connection handed over, or one opened from the command line URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    database = Database(_url_from_command_line())
    try:
        with database.engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
            conn.commit()
    finally:
        database.close()


if config.attributes.get("connection") is None and config.config_file_name:
    fileConfig(config.config_file_name)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
