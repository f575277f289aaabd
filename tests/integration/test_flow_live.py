"""A call to the main number walks the tenant's published flow through real phones:
the office manager's phone rings and is not answered, the flow moves on after its timeout,
the service manager's phone answers, and the CDR records the path taken."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from frontdesk_proc import FrontdeskProcess
from peers import BaresipPhone

pytestmark = [pytest.mark.peers, pytest.mark.timeout(120)]

FLOW = """\
name: front-desk
title: Live test front desk (no business hours, so the test does not depend on the time)
timezone: UTC
nodes:
  start: {type: start, next: ring-om}
  ring-om: {type: ring, targets: ["101"], timeout: 5, no_answer: ring-team, busy: ring-team}
  ring-team: {type: ring, targets: ["102", "103"], timeout: 15, no_answer: goodbye, busy: goodbye}
  goodbye: {type: hangup}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FrontdeskProcess]:
    fd = FrontdeskProcess(tmp_path / "fd")
    fd.init_demo()
    (tmp_path / "flow.yaml").write_text(FLOW)
    fd.cli("flow", "publish", "--file", str(tmp_path / "flow.yaml"), "--actor", "test",
           "--data", str(fd.data_dir))
    fd.start()
    yield fd
    fd.stop()
    assert "Traceback" not in fd.log_tail(10_000), fd.log_tail(80)


def phone(make: Callable[..., BaresipPhone], fd: FrontdeskProcess, number: str,
          **options: object) -> BaresipPhone:
    p = make(number, password=fd.password(number), domain=f"127.0.0.1:{fd.sip_port}",
             register=True, **options)
    p.wait_event("REGISTER_OK", timeout=10)
    return p


def test_main_number_rings_office_manager_then_service_team(
    server: FrontdeskProcess, baresip_phone: Callable[..., BaresipPhone]
) -> None:
    office = phone(baresip_phone, server, "101", answermode="manual")
    service = phone(baresip_phone, server, "102", answermode="auto")
    caller = phone(baresip_phone, server, "202")

    caller.dial(f"sip:100@127.0.0.1:{server.sip_port}")
    office.wait_event("CALL_INCOMING", timeout=10)
    started = time.monotonic()
    office.wait_event("CALL_CLOSED", timeout=15)  # cancelled when its 5 s are up
    assert time.monotonic() - started >= 3.5
    service.wait_event("CALL_ESTABLISHED", timeout=10)
    caller.wait_event("CALL_ESTABLISHED", timeout=10)
    time.sleep(1)
    caller.hangup()
    service.wait_event("CALL_CLOSED", timeout=10)

    deadline = time.monotonic() + 5
    while True:
        done = [c for c in server.cdrs() if c["disposition"] == "answered"]
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert done, server.cdrs()
    cdr = done[0]
    assert (cdr["caller"], cdr["callee"], cdr["callee_answered_by"]) == ("202", "100", "102")
    with sqlite3.connect(server.data_dir / "frontdesk.db") as db:
        path, extra = db.execute("select path, extra from cdrs where id = ?",
                                 (cdr["id"],)).fetchone()
    nodes = [step["node"] for step in json.loads(path)]
    assert nodes[:3] == ["start", "ring-om", "ring-om"], nodes  # rang, nobody answered
    assert "ring-team" in nodes and json.loads(extra)["flow"] == "front-desk"
