"""A flow changed over the REST API reaches live calls on a running `frontdesk serve`:
the contact-center manager (a business owner) saves a draft and publishes it through
/api/v1/flows; the server notices the new version and the next call to the main number
rings whom the new version says (a real baresip phone answers), while the simulator over
the API shows the same path. The audit chain holds both changes and still verifies."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from frontdesk_proc import FrontdeskProcess
from integration_kit import database, sqlite_url, wait_for
from sqlalchemy import select

from frontdesk.store.models import Cdr
from peers import BaresipPhone

pytestmark = [pytest.mark.peers, pytest.mark.timeout(180)]

FIRST = """\
name: front-desk
timezone: UTC
nodes:
  start: {type: start, next: ring-om}
  ring-om: {type: ring, targets: ["101"], timeout: 10, no_answer: bye, busy: bye}
  bye: {type: hangup}
"""


@pytest.fixture
def office(tmp_path: Path) -> Iterator[tuple[FrontdeskProcess, str]]:
    (tmp_path / "fd").mkdir()
    fd = FrontdeskProcess(tmp_path / "fd", sqlite_url(tmp_path / "fd"))
    fd.init_demo()
    where = ["--data", str(fd.data_dir), *fd._db_args()]
    (tmp_path / "flow.yaml").write_text(FIRST)
    fd.cli("flow", "publish", "--file", str(tmp_path / "flow.yaml"), "--actor", "test", *where)
    fd.cli("role", "grant", "102", "contact_center_manager", *where)
    token = fd.cli("token", "create", "102", "--name", "live test", *where).stdout.strip()
    fd.start(extra_env={"FRONTDESK_RTP_PORTS": "0"})
    yield fd, token
    fd.stop()
    assert "Traceback" not in fd.log_tail(100_000), fd.log_tail(80)


def api(fd: FrontdeskProcess, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"http://127.0.0.1:{fd.http_port}{path}",
                         headers={"Authorization": f"Bearer {token}"}, timeout=20, **kwargs)


def test_a_flow_published_over_the_api_runs_the_next_call(
        office: tuple[FrontdeskProcess, str], baresip_phone: Callable[..., BaresipPhone]) -> None:
    fd, token = office
    document = yaml.safe_load(FIRST)
    document["nodes"]["ring-om"] = {"type": "ring", "targets": ["role:service_coordinator"],
                                    "timeout": 10, "no_answer": "bye", "busy": "bye"}
    saved = api(fd, token, "PUT", "/api/v1/flows/front-desk/draft", json=document,
                params={"reason": "the coordinator covers the phones this week"})
    assert saved.status_code == 200, saved.text
    published = api(fd, token, "POST", "/api/v1/flows/front-desk/publish", json={})
    assert published.status_code == 200, published.text
    assert published.json()["published_version"] == 2
    wait_for("the server to reload its configuration",
             lambda: "configuration changed" in fd.log_tail(200), timeout=15)

    simulated = api(fd, token, "POST", "/api/v1/flows/simulate",
                    json={"from": "102", "to": "main"})
    assert simulated.status_code == 200, simulated.text
    assert any("103" in line for line in simulated.json()["lines"]), simulated.json()["lines"]

    phones = {number: baresip_phone(number, password=fd.password(number),
                                    domain=f"127.0.0.1:{fd.sip_port}", register=True,
                                    answermode=mode)
              for number, mode in (("101", "auto"), ("103", "auto"), ("102", "manual"))}
    for phone in phones.values():
        phone.wait_event("REGISTER_OK", timeout=10)
    phones["102"].dial(f"sip:100@127.0.0.1:{fd.sip_port}")
    phones["103"].wait_event("CALL_ESTABLISHED", timeout=15)
    phones["102"].wait_event("CALL_ESTABLISHED", timeout=10)
    time.sleep(0.5)
    phones["102"].hangup()
    phones["103"].wait_event("CALL_CLOSED", timeout=10)
    assert "CALL_INCOMING" not in phones["101"].event_types()

    def ended() -> Cdr | None:
        with database(fd) as db, db.session() as s:
            row = s.scalar(select(Cdr).where(Cdr.callee == "100", Cdr.ended_at.is_not(None)))
            if row is not None:
                s.expunge(row)
            return row

    cdr = wait_for("the CDR of the call to the main number", ended)
    assert cdr.callee_answered_by == "103"
    assert [step["node"] for step in cdr.path][:2] == ["start", "ring-om"]

    audit = api(fd, token, "GET", "/api/v1/audit", params={"resource_type": "flow"}).json()
    assert [(e["action"], e["actor"], e["channel"]) for e in audit][-2:] == [
        ("draft", "102", "api"), ("publish", "102", "api")]
    assert api(fd, token, "GET", "/api/v1/audit/verify").status_code == 403  # not theirs
    verified = fd.cli("audit", "verify", "--data", str(fd.data_dir), *fd._db_args(), check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
