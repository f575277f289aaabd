"""The audit log's hash chain: every change leaves one row; changing, removing or inserting
any row is detected by ``audit.verify`` (and ``frontdesk audit verify``), naming the row.
On SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json

import pytest
from sqlalchemy import select, text, update

from frontdesk.org import audit
from frontdesk.org.model import AuditEntry
from frontdesk.org.service import Change
from frontdesk.store.db import Database
from orgkit import make_world


@pytest.fixture
def chain(db: Database):  # type: ignore[no-untyped-def]
    world = make_world(db, roles=False)
    world.setup(*(Change("extension", "create", str(n), {"display_name": f"Desk {n}"})
                  for n in range(101, 106)))
    world.setup(Change("extension", "update", "103", {"ring_timeout": 12}))
    return world


def _verify(db: Database) -> audit.VerifyReport:
    with db.session() as session:
        return audit.verify(session)


def _row(db: Database, seq: int) -> AuditEntry:
    with db.session() as session:
        row = session.scalar(select(AuditEntry).where(AuditEntry.seq == seq))
        assert row is not None
        return row


def test_an_untouched_chain_verifies(chain) -> None:  # type: ignore[no-untyped-def]
    report = _verify(chain.db)
    assert report.ok and report.checked == 7 and report.tenants == 1


def test_each_row_links_to_the_one_before(chain) -> None:  # type: ignore[no-untyped-def]
    with chain.db.session() as session:
        rows = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
    assert rows[0].prev_hash == audit.GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    assert json.loads(rows[-1].after)["ring_timeout"] == 12  # type: ignore[arg-type]


def test_changing_one_row_is_detected_at_that_row(chain) -> None:  # type: ignore[no-untyped-def]
    victim = _row(chain.db, 4)
    forged = victim.after.replace("Desk 103", "Desk 999")  # type: ignore[union-attr]
    with chain.db.session() as session:
        session.execute(update(AuditEntry).where(AuditEntry.id == victim.id).values(after=forged))
    report = _verify(chain.db)
    assert not report.ok
    assert [(p.seq, "hash mismatch" in p.problem) for p in report.problems] == [(4, True)]
    assert f"seq 4 (id {victim.id})" in str(report.problems[0])


def test_changing_the_actor_or_time_is_detected(chain) -> None:  # type: ignore[no-untyped-def]
    with chain.db.session() as session:
        session.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(actor="mallory"))
    assert [p.seq for p in _verify(chain.db).problems] == [2]


def test_recomputing_a_forged_rows_hash_breaks_the_next_link(chain) -> None:  # type: ignore[no-untyped-def]
    """A forger who also fixes the row's own hash is caught by the row after it."""
    with chain.db.session() as session:
        row = session.scalar(select(AuditEntry).where(AuditEntry.seq == 3))
        assert row is not None
        row.reason = "nothing to see"
        row.hash = audit.row_hash(row)
    problems = _verify(chain.db).problems
    assert [p.seq for p in problems] == [4]
    assert "prev_hash" in problems[0].problem


def test_removing_a_row_is_detected(chain) -> None:  # type: ignore[no-untyped-def]
    with chain.db.session() as session:
        session.execute(text("DELETE FROM audit_log WHERE seq = 5"))
    problems = _verify(chain.db).problems
    assert {p.seq for p in problems} == {6}
    assert any("rows are missing" in p.problem for p in problems)


def test_a_fork_is_impossible(chain) -> None:  # type: ignore[no-untyped-def]
    """Two rows with the same place in a tenant's chain are refused by the database."""
    from sqlalchemy.exc import IntegrityError

    last = _row(chain.db, 7)
    with pytest.raises(IntegrityError), chain.db.session() as session:
        session.add(AuditEntry(**{c: getattr(last, c) for c in (
            "tenant_id", "seq", "at", "actor", "actor_kind", "actor_user_id", "actor_roles",
            "channel", "action", "resource_type", "resource_key", "before", "after",
            "change_request_id", "vendor_grant_id", "reason", "prev_hash", "hash")}))


def test_each_tenant_has_its_own_chain(chain) -> None:  # type: ignore[no-untyped-def]
    other = make_world(chain.db, "beta", roles=False)
    other.setup(Change("extension", "create", "101", {"display_name": "Beta desk"}))
    with chain.db.session() as session:
        assert audit.verify(session, other.tenant_id).checked == 2
        assert audit.verify(session).tenants == 2
