"""SIP trunks on a real `frontdesk serve`, with SIPp as the carrier at its own loopback
address (127.0.0.2) and SIPp phones registered as extensions:

(a) the carrier delivers a call to the main number's DID: no challenge, the published flow
    rings the office manager's (SIPp) phone, which answers; the CDR has the caller ID in
    E.164 and the trunk;
(b) an extension dials 9 + a national number: the carrier (SIPp UAS) gets the INVITE with
    the E.164 number in the Request-URI, challenges with 401 (qop=auth), and answers only
    after verifying the Authorization header against the trunk's password;
(c) an unknown DID is refused 404 with the reason;
(d) an INVITE to a DID from an address that is no carrier is challenged (407), no call;
(e) a real baresip phone answers a DID mapped to its extension, then dials out (same
    challenging SIPp carrier) and hangs up;
(f) switching registration on (`trunk set --register`, server running) registers at a SIPp
    registrar that challenges, verifies the digest, grants 4 s and checks the refresh;
(g) switched to TCP (`trunk set --transport tcp`), the call out reaches a SIPp carrier
    listening on TCP;
(h) a flow whose transfer goes to an outside number forwards the carrier's call back out
    through the trunk (challenged, verified, answered, BYE relayed).
The trunk is made with `frontdesk trunk add` (the one change path)."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from frontdesk_proc import FrontdeskProcess
from integration_kit import (
    SCENARIOS,
    assert_healthy,
    phone_port,
    read_cdrs,
    sipp_call,
    sipp_phone,
    sipp_register,
    wait_for,
)

from frontdesk.store.db import sqlite_url
from peers import BaresipPhone
from peers.sipp import run_sipp, start_sipp

pytestmark = [pytest.mark.peers, pytest.mark.timeout(120)]

CARRIER_IP = "127.0.0.2"
FLOW = """\
name: front-desk
timezone: UTC
nodes:
  start: {type: start, next: ring-om}
  ring-om: {type: ring, targets: ["101"], timeout: 15, no_answer: goodbye, busy: goodbye}
  goodbye: {type: hangup}
"""


def _carrier_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((CARRIER_IP, 0))
        return int(s.getsockname()[1])


@pytest.fixture
def trunked(tmp_path: Path) -> Iterator[tuple[FrontdeskProcess, int]]:
    fd = FrontdeskProcess(tmp_path / "fd", db_url=sqlite_url(tmp_path / "fd"))
    fd.init_demo()
    (tmp_path / "flow.yaml").write_text(FLOW)
    data = ("--data", str(fd.data_dir), "--db", sqlite_url(fd.data_dir))
    fd.cli("flow", "publish", "--file", str(tmp_path / "flow.yaml"), "--actor", "test", *data)
    port = _carrier_port()
    fd.cli("trunk", "add", "carrier", "--host", CARRIER_IP, "--port", str(port),
           "--username", "acme-trunk", "--password", "carrier-pw", "--source", CARRIER_IP,
           "--did", "+15551230000=main", "--did", "+15551230101=ext:101",
           "--dial-rule", "9", "--dial-rule", "+", "--caller-id", "+15551230000", *data)
    fd.start()
    yield fd, port
    fd.stop()
    assert "Traceback" not in fd.log_tail(10_000), fd.log_tail(80)


def _carrier_call(fd: FrontdeskProcess, scenario: str, did: str, *, source: str = CARRIER_IP,
                  pause_ms: int = 500) -> Any:
    return run_sipp(SCENARIOS / scenario, f"127.0.0.1:{fd.sip_port}", calls=1, timeout=20,
                    service=did, keys={"caller": "2125550147"},
                    extra_args=["-i", source, "-d", str(pause_ms)])


def _extra(fd: FrontdeskProcess, cdr_id: str) -> dict[str, Any]:
    with sqlite3.connect(fd.data_dir / "frontdesk.db") as db:
        (extra,) = db.execute("select extra from cdrs where id = ?", (cdr_id,)).fetchone()
    return dict(json.loads(extra or "{}"))


def _answered(fd: FrontdeskProcess) -> dict[str, Any]:
    return wait_for("an answered, ended CDR", lambda: next(
        (c for c in read_cdrs(fd) if c["disposition"] == "answered" and c["ended_at"]), None))


def test_a_did_call_from_the_carrier_reaches_the_flow(trunked) -> None:  # type: ignore[no-untyped-def]
    fd, _ = trunked
    port = phone_port()
    assert sipp_register(fd, "101", port).ok
    with sipp_phone("uas_answer.xml", port) as office:
        carrier = _carrier_call(fd, "trunk_carrier_call.xml", "+15551230000")
        answered = office.wait()
    assert carrier.ok, carrier.describe()
    assert answered.ok, answered.describe()
    cdr = _answered(fd)
    assert (cdr["caller"], cdr["callee"], cdr["callee_answered_by"]) == (
        "+12125550147", "100", "101")
    extra = _extra(fd, cdr["id"])
    assert extra["flow"] == "front-desk"
    assert extra["trunk"] == {"name": "carrier", "direction": "in", "number": "+15551230000"}
    assert_healthy(fd)


def test_an_extension_dials_out_and_the_carriers_challenge_is_answered(trunked) -> None:  # type: ignore[no-untyped-def]
    fd, carrier_port = trunked
    with start_sipp(SCENARIOS / "trunk_carrier_uas_auth.xml", None, local_port=carrier_port,
                    calls=1, timeout=20, keys={"user": "acme-trunk", "password": "carrier-pw"},
                    extra_args=["-i", CARRIER_IP]) as carrier:
        caller = sipp_call(fd, "101", "92125550147", pause_ms=500)
        result = carrier.wait()
    assert result.ok, result.describe()  # R-URI, Authorization present and verified
    assert caller.ok, caller.describe()
    cdr = _answered(fd)
    assert (cdr["caller"], cdr["callee"]) == ("101", "+12125550147")
    assert _extra(fd, cdr["id"])["trunk"] == {"name": "carrier", "direction": "out",
                                              "number": "+12125550147"}


def test_an_unknown_did_is_refused(trunked) -> None:  # type: ignore[no-untyped-def]
    fd, _ = trunked
    result = _carrier_call(fd, "trunk_carrier_expect_404.xml", "+15559999999")
    assert result.ok, result.describe()  # 404 naming the number as no DID of the trunk
    assert read_cdrs(fd) == []


def test_an_invite_from_another_address_is_challenged_and_places_no_call(trunked) -> None:  # type: ignore[no-untyped-def]
    fd, _ = trunked
    port = phone_port()
    assert sipp_register(fd, "101", port).ok
    with sipp_phone("uas_answer.xml", port, timeout=5) as office:
        spoofed = _carrier_call(fd, "trunk_carrier_expect_407.xml", "+15551230000",
                                source="127.0.0.1")
        rang = office.stop()
    assert spoofed.ok, spoofed.describe()
    assert rang.stats.get("IncomingCall(C)", "0") in ("0", ""), rang.describe()
    assert read_cdrs(fd) == []


def _baresip(make: Callable[..., BaresipPhone], fd: FrontdeskProcess, number: str,
             **options: object) -> BaresipPhone:
    phone = make(number, password=fd.password(number), domain=f"127.0.0.1:{fd.sip_port}",
                 register=True, **options)
    phone.wait_event("REGISTER_OK", timeout=10)
    return phone


def test_a_baresip_phone_answers_a_did_and_dials_out_through_the_trunk(
        trunked, baresip_phone: Callable[..., BaresipPhone]) -> None:  # type: ignore[no-untyped-def]
    fd, carrier_port = trunked
    ann = _baresip(baresip_phone, fd, "101", answermode="auto")
    # in: the carrier delivers +15551230101 (mapped to ext:101); the real phone answers
    carrier = _carrier_call(fd, "trunk_carrier_call.xml", "+15551230101", pause_ms=1500)
    assert carrier.ok, carrier.describe()
    ann.wait_event("CALL_ESTABLISHED", timeout=10)
    ann.wait_event("CALL_CLOSED", timeout=10)
    # out: the phone dials 9 + a national number; the carrier challenges, then answers
    with start_sipp(SCENARIOS / "trunk_carrier_uas_auth.xml", None, local_port=carrier_port,
                    calls=1, timeout=20, keys={"user": "acme-trunk", "password": "carrier-pw"},
                    extra_args=["-i", CARRIER_IP]) as far:
        ann.dial(f"sip:92125550147@127.0.0.1:{fd.sip_port}")
        ann.wait_event("CALL_ESTABLISHED", timeout=15)
        time.sleep(1)
        ann.hangup()
        result = far.wait()
    assert result.ok, result.describe()  # E.164 R-URI, verified digest, our BYE answered
    cdrs = wait_for("two ended CDRs", lambda: [c for c in read_cdrs(fd) if c["ended_at"]]
                    if len([c for c in read_cdrs(fd) if c["ended_at"]]) == 2 else None)
    by_callee = {c["callee"]: c for c in cdrs}
    assert by_callee["101"]["caller"] == "+12125550147"
    assert by_callee["+12125550147"]["caller"] == "101"
    assert {c["disposition"] for c in cdrs} == {"answered"}
    assert_healthy(fd)


def test_switching_registration_on_registers_at_the_carrier_and_refreshes(trunked) -> None:  # type: ignore[no-untyped-def]
    fd, carrier_port = trunked
    with start_sipp(SCENARIOS / "trunk_carrier_registrar.xml", None, local_port=carrier_port,
                    calls=1, timeout=30, keys={"user": "acme-trunk", "password": "carrier-pw"},
                    extra_args=["-i", CARRIER_IP]) as registrar:
        # through the change path while the server runs: it notices and registers
        fd.cli("trunk", "set", "carrier", "--register", "--data", str(fd.data_dir),
               "--db", sqlite_url(fd.data_dir))
        result = registrar.wait()
    assert result.ok, result.describe()  # both REGISTERs verified; refreshed within 4 s
    assert_healthy(fd)


def test_a_tcp_trunk_dials_out_over_tcp(trunked) -> None:  # type: ignore[no-untyped-def]
    fd, carrier_port = trunked
    fd.cli("trunk", "set", "carrier", "--transport", "tcp", "--data", str(fd.data_dir),
           "--db", sqlite_url(fd.data_dir))
    time.sleep(3)  # the running server reloads its configuration snapshot every 2 s
    with start_sipp(SCENARIOS / "trunk_carrier_uas_auth.xml", None, local_port=carrier_port,
                    calls=1, timeout=20, transport="t1",
                    keys={"user": "acme-trunk", "password": "carrier-pw"},
                    extra_args=["-i", CARRIER_IP]) as carrier:
        caller = sipp_call(fd, "101", "92125550147", pause_ms=500)
        result = carrier.wait()
    assert result.ok, result.describe()  # over TCP: R-URI, digest verified, BYE answered
    assert caller.ok, caller.describe()


TRANSFER_FLOW = """\
name: front-desk
timezone: UTC
nodes:
  start: {type: start, next: answering-service}
  answering-service: {type: transfer, number: "+12125550147"}
"""


def test_the_flow_forwards_a_carriers_call_out_through_the_trunk(trunked, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fd, carrier_port = trunked
    (tmp_path / "transfer.yaml").write_text(TRANSFER_FLOW)
    fd.cli("flow", "publish", "--file", str(tmp_path / "transfer.yaml"), "--actor", "test",
           "--data", str(fd.data_dir), "--db", sqlite_url(fd.data_dir))
    time.sleep(3)  # the running server reloads its configuration snapshot every 2 s
    with start_sipp(SCENARIOS / "trunk_carrier_uas_auth.xml", None, local_port=carrier_port,
                    calls=1, timeout=20, keys={"user": "acme-trunk", "password": "carrier-pw"},
                    extra_args=["-i", CARRIER_IP]) as far_end:
        incoming = _carrier_call(fd, "trunk_carrier_call.xml", "+15551230000")
        forwarded = far_end.wait()
    assert incoming.ok, incoming.describe()  # the carrier's caller is connected ...
    assert forwarded.ok, forwarded.describe()  # ... to the answering service, out again
    cdr = _answered(fd)
    assert _extra(fd, cdr["id"])["trunk"] == {"name": "carrier", "direction": "in",
                                              "number": "+15551230000",
                                              "forwarded_to": "+12125550147"}
