"""Write-behind journal: queueing, batching, compaction, replay after a crash, torn lines,
idempotence and ops the database refuses — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from frontdesk.store import repo
from frontdesk.store.db import Database
from frontdesk.store.journal import (
    JournalOpError,
    Op,
    WriteBehind,
    delete_registration,
    read_journal,
    upsert_cdr,
    upsert_registration,
)
from frontdesk.store.models import Cdr, Registration

STARTED = datetime(2026, 6, 1, 8, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def tenant_id(db: Database) -> int:
    with db.session() as s:
        return repo.create_tenant(s, "acme", "Acme", "acme.example").id


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal" / "writes.jsonl"


def reg(tenant_id: int, contact: str, *, cseq: int = 1, aor: str = "101") -> Op:
    return upsert_registration(
        tenant_id=tenant_id,
        aor=aor,
        contact_uri=contact,
        transport="udp",
        source_host="198.51.100.4",
        source_port=40000,
        expires_at=4_000_000_000.0,
        call_id="reg-call",
        cseq=cseq,
        user_agent="baresip",
        instance_id='"<urn:uuid:00000000-0000-0000-0000-000000000001>"',
        reg_id=1,
        path=None,
        updated_at=1_900_000_000.5,
    )


def cdr(tenant_id: int, n: int, **fields: Any) -> Op:
    values: dict[str, Any] = {
        "id": f"5f0c6d2e-0000-4000-8000-{n:012d}",
        "tenant_id": tenant_id,
        "call_id": f"call-{n}",
        "caller": "101",
        "callee": "102",
        "started_at": STARTED,
    }
    values.update(fields)
    return upsert_cdr(**values)


def count(db: Database, model: type[Any]) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def contacts(db: Database) -> dict[str, int]:
    with db.session() as s:
        return {r.contact_uri: r.cseq for r in s.scalars(select(Registration))}


def lines(path: Path) -> list[bytes]:
    return [ln for ln in path.read_bytes().split(b"\n") if ln]


def test_submit_journals_without_touching_the_database(
    db: Database, tenant_id: int, journal: Path
) -> None:
    wb = WriteBehind(db, journal)
    for i in range(5):
        wb.submit(reg(tenant_id, f"sip:101@10.0.0.{i}"))
    assert wb.pending == 5
    assert count(db, Registration) == 0
    assert [json.loads(ln)["kind"] for ln in lines(journal)] == ["upsert_registration"] * 5
    assert asyncio.run(wb.flush_now()) == 5
    assert count(db, Registration) == 5
    assert wb.pending == 0 and journal.read_bytes() == b""
    asyncio.run(wb.close())


def test_run_task_flushes_in_the_background_and_close_flushes_the_rest(
    db: Database, tenant_id: int, journal: Path
) -> None:
    async def scenario() -> None:
        wb = WriteBehind(db, journal, flush_interval=0.01)
        task = asyncio.create_task(wb.run())
        wb.submit(cdr(tenant_id, 1))
        async with asyncio.timeout(30):
            while wb.pending:
                await asyncio.sleep(0.01)
        assert count(db, Cdr) == 1
        wb.submit(cdr(tenant_id, 2))
        await wb.close()
        await asyncio.wait_for(task, 30)
        with pytest.raises(RuntimeError, match="closed"):
            wb.submit(cdr(tenant_id, 3))

    asyncio.run(scenario())
    assert count(db, Cdr) == 2
    assert journal.read_bytes() == b""


def test_last_op_per_key_wins_within_a_batch(db: Database, tenant_id: int, journal: Path) -> None:
    wb = WriteBehind(db, journal)
    wb.submit(reg(tenant_id, "sip:a@h", cseq=1))
    wb.submit(reg(tenant_id, "sip:a@h", cseq=2))
    wb.submit(reg(tenant_id, "sip:b@h"))
    wb.submit(delete_registration(tenant_id, "101", "sip:b@h"))
    wb.submit(delete_registration(tenant_id, "101", "sip:c@h"))
    wb.submit(reg(tenant_id, "sip:c@h", cseq=7))
    asyncio.run(wb.close())
    assert contacts(db) == {"sip:a@h": 2, "sip:c@h": 7}


def test_upsert_replaces_the_row_across_batches(
    db: Database, tenant_id: int, journal: Path
) -> None:
    wb = WriteBehind(db, journal)
    wb.submit(cdr(tenant_id, 1))
    asyncio.run(wb.flush_now())
    ended = datetime(2026, 6, 1, 8, 5, tzinfo=UTC)
    wb.submit(
        cdr(
            tenant_id,
            1,
            answered_at=STARTED,
            ended_at=ended,
            disposition="answered",
            hangup_side="callee",
            duration=300.0,
            billsec=299.5,
            sip_code=200,
            path=["ivr:main", "group:sales", "ext:101"],
            extra={"campaign": "spring"},
        )
    )
    asyncio.run(wb.close())
    with db.session() as s:
        row = s.get(Cdr, "5f0c6d2e-0000-4000-8000-000000000001")
    assert row is not None
    assert (row.started_at, row.ended_at, row.disposition) == (STARTED, ended, "answered")
    assert row.path == ["ivr:main", "group:sales", "ext:101"]
    assert row.extra == {"campaign": "spring"}
    assert row.billsec == 299.5 and row.ended_at is not None and row.ended_at.tzinfo is not None
    assert count(db, Cdr) == 1


def test_crash_before_flush_is_replayed_by_the_next_process(
    db: Database, tenant_id: int, journal: Path
) -> None:
    crashed = WriteBehind(db, journal)  # the flusher never runs: as if killed right now
    for i in range(3):
        crashed.submit(reg(tenant_id, f"sip:101@10.0.0.{i}"))
    crashed.submit(cdr(tenant_id, 1, disposition="interrupted"))
    assert count(db, Registration) == 0

    restarted = WriteBehind(db, journal)
    assert restarted.replay() == 4
    assert count(db, Registration) == 3 and count(db, Cdr) == 1
    assert journal.read_bytes() == b""
    with db.session() as s:
        row = s.get(Cdr, "5f0c6d2e-0000-4000-8000-000000000001")
        assert row is not None and row.started_at == STARTED
    asyncio.run(restarted.close())


def test_flush_without_explicit_replay_still_applies_leftovers_first(
    db: Database, tenant_id: int, journal: Path
) -> None:
    WriteBehind(db, journal).submit(reg(tenant_id, "sip:old@h", cseq=1))
    restarted = WriteBehind(db, journal)
    restarted.submit(reg(tenant_id, "sip:new@h", cseq=2))
    asyncio.run(restarted.close())
    assert contacts(db) == {"sip:old@h": 1, "sip:new@h": 2}
    assert journal.read_bytes() == b""


def test_torn_last_line_is_skipped_with_a_warning(
    db: Database, tenant_id: int, journal: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal.parent.mkdir(parents=True)
    whole = reg(tenant_id, "sip:whole@h").to_line()
    torn = cdr(tenant_id, 9).to_line()[:37]  # a write cut short by kill -9
    journal.write_bytes(whole + torn)

    restarted = WriteBehind(db, journal)
    restarted.submit(reg(tenant_id, "sip:after@h"))  # must not be glued to the torn line
    with caplog.at_level(logging.WARNING, logger="frontdesk.store.journal"):
        assert restarted.replay() == 2
    assert set(contacts(db)) == {"sip:whole@h", "sip:after@h"}
    assert count(db, Cdr) == 0
    assert any("line 2" in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records)
    asyncio.run(restarted.close())


def test_replaying_twice_gives_one_row(db: Database, tenant_id: int, journal: Path) -> None:
    journal.parent.mkdir(parents=True)
    content = b"".join(
        [reg(tenant_id, "sip:a@h").to_line(), cdr(tenant_id, 1).to_line()] * 2  # duplicated
    )
    journal.write_bytes(content)
    assert WriteBehind(db, journal).replay() == 4
    journal.write_bytes(content)  # as if the crash came between commit and compaction
    assert WriteBehind(db, journal).replay() == 4
    assert count(db, Registration) == 1 and count(db, Cdr) == 1


def test_partial_flush_rewrites_the_journal_to_the_pending_ops(
    db: Database, tenant_id: int, journal: Path
) -> None:
    wb = WriteBehind(db, journal, max_batch=3)
    ops = [cdr(tenant_id, i) for i in range(4)]
    for op in ops:
        wb.submit(op)
    assert asyncio.run(wb._flush_some()) == 3  # one batch only
    assert wb.pending == 1
    assert [op.id for op in read_journal(journal)] == [ops[3].id]
    wb.submit(cdr(tenant_id, 4))
    assert [op.id for op in read_journal(journal)][-1] != ops[3].id
    asyncio.run(wb.close())
    assert count(db, Cdr) == 5


def test_unreachable_database_keeps_every_op_for_later(
    tmp_path: Path, open_db: Callable[[str], Database], journal: Path
) -> None:
    db = open_db(f"sqlite:///{tmp_path / 'not-migrated.db'}")  # no tables yet
    wb = WriteBehind(db, journal)
    wb.submit(reg(1, "sip:a@h"))
    with pytest.raises(Exception, match="registrations"):
        asyncio.run(wb.flush_now())
    assert wb.pending == 1 and len(lines(journal)) == 1
    db.migrate()
    with db.session() as s:
        repo.create_tenant(s, "acme", "Acme", "acme.example")
    asyncio.run(wb.close())
    assert contacts(db) == {"sip:a@h": 1}


def test_ops_the_database_refuses_are_set_aside_not_retried_forever(
    db: Database, tenant_id: int, journal: Path
) -> None:
    wb = WriteBehind(db, journal)
    wb.submit(cdr(tenant_id, 1))
    wb.submit(cdr(tenant_id, 2, disposition="exploded"))  # violates the CHECK constraint
    wb.submit(reg(tenant_id + 999, "sip:ghost@h"))  # no such tenant
    wb.submit(reg(tenant_id, "sip:a@h"))
    asyncio.run(wb.close())
    assert count(db, Cdr) == 1 and contacts(db) == {"sip:a@h": 1}
    assert (wb.flushed_ops, wb.rejected_ops) == (2, 2)
    rejected = [json.loads(ln) for ln in lines(wb.rejected_path)]
    assert {r["op"]["kind"] for r in rejected} == {"upsert_cdr", "upsert_registration"}
    assert all(r["error"] for r in rejected)
    assert journal.read_bytes() == b""


def test_ops_are_validated_when_built() -> None:
    with pytest.raises(JournalOpError, match=r"unknown fields \['contact'\]"):
        upsert_registration(tenant_id=1, contact="sip:x@h")
    with pytest.raises(JournalOpError, match=r"missing fields \['callee'"):
        upsert_cdr(id="x", tenant_id=1, call_id="c", caller="1", started_at=STARTED)
    with pytest.raises(JournalOpError, match="unknown journal op kind"):
        Op("drop_everything", {})  # type: ignore[arg-type]


def test_journal_line_round_trips() -> None:
    op = cdr(1, 1, path=["a"], extra={"k": "é\n"})
    again = Op.from_line(op.to_line().rstrip(b"\n"))
    assert (again.id, again.kind) == (op.id, op.kind)
    assert again.payload["started_at"] == STARTED.isoformat()
    assert again.payload["extra"] == {"k": "é\n"}
    assert op.to_line().count(b"\n") == 1


def test_close_with_the_database_down_leaves_ops_for_the_next_start(
    tmp_path: Path, open_db: Callable[[str], Database], journal: Path
) -> None:
    db = open_db(f"sqlite:///{tmp_path / 'not-migrated.db'}")

    async def scenario() -> None:
        wb = WriteBehind(db, journal, flush_interval=0.001)
        task = asyncio.create_task(wb.run())
        wb.submit(reg(1, "sip:a@h"))
        await asyncio.sleep(0.05)  # the flusher tries, fails, logs and backs off
        await wb.close()  # the final flush fails too: logged, ops kept
        await asyncio.wait_for(task, 30)

    asyncio.run(scenario())
    assert len(lines(journal)) == 1
    db.migrate()
    with db.session() as s:
        assert repo.create_tenant(s, "acme", "Acme", "acme.example").id == 1
    restarted = WriteBehind(db, journal)
    assert restarted.replay() == 1
    assert contacts(db) == {"sip:a@h": 1}
    asyncio.run(restarted.close())


def test_driver_level_upsert_writes_what_the_orm_reads_back(
    db: Database, tenant_id: int, journal: Path
) -> None:
    """The upsert runs as compiled driver SQL: every column type still goes through its
    bind processing (time zones, JSON, column defaults), live and from a replayed line."""
    from datetime import timedelta, timezone

    cest = timezone(timedelta(hours=2))
    live = WriteBehind(db, journal)
    live.submit(cdr(tenant_id, 1, answered_at=datetime(2026, 6, 1, 10, 0, 5, tzinfo=cest),
                    ended_at=datetime(2026, 6, 1, 8, 1), path=None, extra={"k": [1, "x"]}))
    asyncio.run(live.close())
    crashed = WriteBehind(db, journal)  # a journal line (ISO strings) replayed at start-up
    crashed.submit(cdr(tenant_id, 2, answered_at=datetime(2026, 6, 1, 10, 0, 5, tzinfo=cest)))
    assert WriteBehind(db, journal).replay() == 1
    with db.session() as s:
        first, second = (s.get(Cdr, f"5f0c6d2e-0000-4000-8000-{n:012d}") for n in (1, 2))
    assert first is not None and second is not None
    for row in (first, second):
        assert row.started_at == STARTED and row.started_at.tzinfo is not None
        assert row.answered_at == datetime(2026, 6, 1, 8, 0, 5, tzinfo=UTC)
        assert (row.duration, row.billsec) == (0.0, 0.0)  # left out: the column default
    assert first.ended_at == datetime(2026, 6, 1, 8, 1, tzinfo=UTC)  # naive = UTC
    assert first.path is None and first.extra == {"k": [1, "x"]}
    assert second.ended_at is None and second.path is None
