"""The configuration version (migration 0007): the database counts every change to what the
SIP engine's snapshot reads, whoever makes it, and the server compares that one number."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from sqlalchemy import text

from frontdesk.pbx.server import SNAPSHOT_TABLES, PbxServer, ServerConfig
from frontdesk.store import journal, repo
from frontdesk.store.db import Database
from frontdesk.store.models import Tenant

MIGRATION = importlib.import_module("frontdesk.store.migrations.versions.0007_config_version")


def version(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT version FROM config_version")).scalar_one())


def test_the_triggers_cover_every_table_the_snapshot_reads() -> None:
    assert set(MIGRATION.CONFIG_TABLES) == set(SNAPSHOT_TABLES)


def test_every_kind_of_change_is_counted_and_call_records_are_not(db: Database) -> None:
    with db.session() as s:
        tenant = repo.create_tenant(s, "acme", "Acme", "acme.example.com")
        s.commit()
        tenant_id = tenant.id
    seen = version(db)
    assert seen > 0  # creating the tenant counted
    with db.session() as s:  # through the ORM, as the CLI and the API do
        repo.create_user_with_extension(s, s.get(Tenant, tenant_id), "101", "Ann", "secret-pw")
        s.commit()
    after_insert = version(db)
    assert after_insert > seen
    with db.engine.begin() as conn:  # raw SQL edits, as an administrator might
        conn.execute(text("UPDATE extensions SET ring_timeout = 25 WHERE tenant_id = :t"),
                     {"t": tenant_id})
    after_update = version(db)
    assert after_update > after_insert
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE sip_credentials SET ha1_md5 = 'x' WHERE tenant_id = :t"),
                     {"t": tenant_id})
    assert version(db) > after_update
    seen = version(db)
    with db.engine.begin() as conn:  # registrations (the write-behind) are not configuration
        journal.apply_ops(conn, [journal.upsert_registration(
            tenant_id=tenant_id, aor="101", contact_uri="sip:101@192.0.2.1",
            transport="udp", source_host="192.0.2.1", source_port=5060,
            expires_at=time.time() + 60, call_id="c", cseq=1, user_agent=None,
            instance_id=None, reg_id=None, path=None, updated_at=time.time())])
    assert version(db) == seen


def test_the_server_sees_a_raw_edit_through_one_number(db_url: str, db: Database,
                                                       tmp_path: Path) -> None:
    with db.session() as s:
        repo.create_tenant(s, "acme", "Acme", "acme.example.com")
        s.commit()
    server = PbxServer(ServerConfig(data_dir=tmp_path, db_url=db_url))
    try:
        before = server._fingerprint_now()
        assert before == version(db) > 0
        assert server._fingerprint_now() == before
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE tenants SET name = 'Acme Inc'"))
        assert server._fingerprint_now() != before
    finally:
        server.db.close()
