"""The REST API served by `frontdesk serve` itself — the same process and event loop that
answers SIP: the demo's administrator signs in with the password `init --demo` printed,
changes configuration over HTTP while SIP keeps answering, and the change is audited."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from frontdesk_proc import FrontdeskProcess, options_ping


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FrontdeskProcess]:
    proc = FrontdeskProcess(tmp_path)
    proc.init_demo()
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        print(proc.log_tail())


def test_api_and_sip_in_one_process(server: FrontdeskProcess) -> None:
    base = f"http://127.0.0.1:{server.http_port}"
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/health").json()["status"] == "ok"
        login = http.post("/api/v1/login", json={"tenant": "demo", **server.demo["admin"]})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        made = http.post("/api/v1/extensions", headers=headers, json={
            "number": "104", "display_name": "Desk 4", "sip_password": "desk4secret"})
        assert made.status_code == 201, made.text
        assert options_ping(server.sip_port) is not None  # SIP still answers
        entries = http.get("/api/v1/audit?resource_type=extension&resource_key=104",
                           headers=headers).json()
        assert [(e["actor"], e["channel"], e["action"]) for e in entries] == [
            ("admin", "api", "create")]
        assert http.get("/api/v1/audit/verify", headers=headers).json()["ok"] is True
    listed = server.cli("ext", "list", "--data", str(server.data_dir)).stdout
    assert "104" in listed and "Desk 4" in listed
