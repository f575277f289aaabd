"""The journal survives a real ``kill -9``: a child process submits ops and is killed;
a new WriteBehind on the same journal replays every op the child had submitted."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import select

from frontdesk.store import repo
from frontdesk.store.db import Database
from frontdesk.store.journal import WriteBehind
from frontdesk.store.models import Cdr, Registration

CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from datetime import UTC, datetime
    from frontdesk.store.db import Database
    from frontdesk.store.journal import WriteBehind, upsert_cdr, upsert_registration

    url, journal, tenant_id, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

    def cdr(n):
        return upsert_cdr(id=f"cdr-{n}", tenant_id=tenant_id, call_id=f"call-{n}",
                          caller="101", callee="102", started_at=datetime.now(UTC))

    def reg(n):
        return upsert_registration(
            tenant_id=tenant_id, aor="101", contact_uri=f"sip:101@10.1.0.{n}",
            transport="udp", source_host="10.1.0.1", source_port=5060,
            expires_at=time.time() + 3600, call_id=f"reg-{n}", cseq=n, updated_at=time.time())

    async def main():
        wb = WriteBehind(Database(url), journal, flush_interval=0.002, max_batch=7)
        if mode == "idle":  # the flusher never runs: everything is only in the journal
            for n in range(40):
                wb.submit(reg(n) if n % 2 else cdr(n))
            print("submitted 40", flush=True)
            await asyncio.sleep(120)
            return
        asyncio.create_task(wb.run())  # flushing and compacting while we submit
        n = 0
        while True:
            wb.submit(cdr(n))
            print(f"cdr-{n}", flush=True)
            n += 1
            if n % 5 == 0:
                await asyncio.sleep(0.001)

    asyncio.run(main())
    """
)


def _spawn(db_url: str, journal: Path, tenant_id: int, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, db_url, str(journal), str(tenant_id), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill9(child: subprocess.Popen[str]) -> None:
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL


def _tenant(db: Database) -> int:
    with db.session() as s:
        return repo.create_tenant(s, "acme", "Acme", "acme.example").id


def test_ops_submitted_before_kill9_are_replayed(db: Database, db_url: str, tmp_path: Path) -> None:
    journal = tmp_path / "writes.jsonl"
    child = _spawn(db_url, journal, _tenant(db), "idle")
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "submitted 40", child.stderr.read() if child.stderr else ""
    finally:
        _kill9(child)
    with db.session() as s:
        assert s.scalars(select(Cdr)).all() == [], "the child was not supposed to flush"

    restarted = WriteBehind(db, journal)
    assert restarted.replay() == 40
    with db.session() as s:
        assert len(s.scalars(select(Cdr)).all()) == 20
        assert len(s.scalars(select(Registration)).all()) == 20
    assert journal.read_bytes() == b""
    asyncio.run(restarted.close())


def test_kill9_while_flushing_and_compacting_loses_nothing(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    journal = tmp_path / "writes.jsonl"
    child = _spawn(db_url, journal, _tenant(db), "busy")
    reported: list[str] = []
    try:
        assert child.stdout is not None
        while len(reported) < 400:
            line = child.stdout.readline()
            assert line, child.stderr.read() if child.stderr else "child exited"
            reported.append(line.strip())
    finally:
        _kill9(child)

    restarted = WriteBehind(db, journal)
    restarted.replay()
    with db.session() as s:
        stored = set(s.scalars(select(Cdr.id)))
    missing = [cdr_id for cdr_id in reported if cdr_id not in stored]
    assert missing == [], f"{len(missing)} acknowledged ops lost, e.g. {missing[:5]}"
    asyncio.run(restarted.close())
