"""Fixtures for the ownership-layer tests: databases on SQLite and PostgreSQL (see
tests/orgkit.py). Holds nothing else."""

from orgkit import db, module_db, org_pg_url  # noqa: F401
