"""Persistence (see DESIGN.md): SQLAlchemy 2 models, Alembic migrations, SQLite (WAL) by
default and PostgreSQL at scale.

- ``db``: ``Database(url)``: engine, ``session()``, ``migrate()``, person-facing errors.
- ``models``: the tables (every customer row carries ``tenant_id``).
- ``repo``: small typed query helpers for the call engine and the CLI.
- ``journal``: ``WriteBehind``, the crash-safe write-behind queue the SIP hot path uses.

Nothing in this package knows about SIP, HTTP or permissions.
"""
