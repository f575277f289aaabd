"""SIPp phones through the real Frontdesk server, on SQLite and on PostgreSQL.

Registration with digest auth (and refused with a wrong password), then calls from a SIPp
caller (101, authenticated with Proxy-Authorization) to SIPp phones registered as other
extensions: answered and hung up by the caller, busy, not answered before the ring timeout,
cancelled by the caller, to an extension with no phone registered, and to a number that
does not exist. Each outcome is checked on the wire (what both SIPp sides saw) and in the
CDR the server stored. One register + call runs over TCP.

One server per database serves the whole module; every test uses its own callee extension
(30x), so the tests do not depend on each other or on their order.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time

import pytest
from frontdesk_proc import FrontdeskProcess
from integration_kit import (
    RELOAD_BUG,
    assert_healthy,
    health,
    incoming_calls,
    known_bugs_as_xfail,
    log_since,
    log_size,
    phone_port,
    read_cdrs,
    read_registrations,
    sipp_call,
    sipp_phone,
    sipp_register,
    wait_cdr,
    wait_for,
)

from peers.sipp import SippProcess

pytestmark = [pytest.mark.peers, pytest.mark.timeout(90)]

RING_TIMEOUT = 3  # seconds, set on extension 305 before the server starts
LIVE_RING_TIMEOUT = 2  # set on 306 with `frontdesk ext set` while the server runs
MODULE_EXTENSIONS = {n: (secrets.token_urlsafe(9), RING_TIMEOUT if n == "305" else None)
                     for n in ("301", "302", "303", "304", "305", "306", "307", "308", "309")}
CALLER = "101"


@pytest.fixture
def fd(frontdesk_module_db: FrontdeskProcess) -> FrontdeskProcess:
    return frontdesk_module_db


@pytest.fixture
def log_mark(fd: FrontdeskProcess) -> int:
    return log_size(fd)


def registered_phone(fd: FrontdeskProcess, number: str, scenario: str,
                     transport: str = "udp", timeout: float = 30.0) -> SippProcess:
    """Register ``number`` from a fresh port with SIPp, then run the SIPp UAS ``scenario``
    on that port (the server sends the call to where the REGISTER came from)."""
    port = phone_port()
    reg = sipp_register(fd, number, port, transport=transport)
    assert reg.ok, reg.describe()
    wait_for(f"binding of {number}", lambda: [r for r in read_registrations(fd)
                                              if r["aor"] == number])
    return sipp_phone(scenario, port, transport=transport, timeout=timeout)


def test_register_with_digest_auth_creates_binding(fd: FrontdeskProcess, log_mark: int) -> None:
    port = phone_port()
    result = sipp_register(fd, "301", port)
    assert result.ok, result.describe()  # 401 challenge, then 200 to the answered REGISTER
    rows = wait_for("binding of 301", lambda: [r for r in read_registrations(fd)
                                               if r["aor"] == "301"])
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["transport"], row["host"], row["port"]) == ("udp", "127.0.0.1", port)
    assert row["contact"].startswith(f"sip:301@127.0.0.1:{port}"), row
    assert row["user_agent"] == "SIPp"
    assert 3000 < row["expires_at"] - time.time() <= 3600  # Expires: 3600 was granted
    # what an administrator sees
    out = subprocess.run(
        [sys.executable, "-m", "frontdesk", "registrations", "--data", str(fd.data_dir),
         "--db", fd.db_url or ""], capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "COLUMNS": "250"})
    line = next((ln for ln in out.stdout.splitlines() if " 301 " in ln), "")
    assert f"udp:127.0.0.1:{port}" in line and "SIPp" in line, out.stdout
    assert health(fd)["registrations"] >= 1
    assert_healthy(fd, log_mark)


def test_register_with_wrong_password_is_challenged_again(fd: FrontdeskProcess,
                                                          log_mark: int) -> None:
    failures_before = health(fd)["sip"].get("auth_failures", 0)
    result = sipp_register(fd, "302", phone_port(), password="not-the-password",
                           scenario="reg_bad_auth.xml")
    assert result.ok, result.describe()  # 401, then 401 again to the wrong answer
    # a SIP worker (serve --sip-workers) reports its counters within 0.1 s
    wait_for("the failure in /health",
             lambda: health(fd)["sip"].get("auth_failures", 0) > failures_before)
    time.sleep(0.3)  # a binding would be journalled within 50 ms; a second failure counted
    assert not [r for r in read_registrations(fd) if r["aor"] == "302"]
    assert health(fd)["sip"].get("auth_failures", 0) == failures_before + 1
    assert_healthy(fd, log_mark)


def test_answered_call_hung_up_by_caller(fd: FrontdeskProcess, log_mark: int) -> None:
    pause_ms = 1500
    with registered_phone(fd, "303", "uas_answer.xml") as phone:
        started = time.monotonic()
        caller = sipp_call(fd, CALLER, "303", pause_ms=pause_ms)
        elapsed = time.monotonic() - started
        callee = phone.wait()
    assert caller.ok, caller.describe()  # 407, INVITE with credentials, 180, 200, ACK, BYE/200
    assert callee.ok, callee.describe()  # INVITE, 180, 200, ACK, BYE relayed by Frontdesk
    cdr = wait_cdr(fd, "303")
    assert cdr["disposition"] == "answered", cdr
    assert cdr["hangup_side"] == "caller", cdr
    assert (cdr["caller"], cdr["caller_name"]) == (CALLER, "Office Manager")
    assert cdr["callee_answered_by"] == "303"
    assert cdr["answered_at"] and cdr["ended_at"]
    # talk time is the caller's pause: never shorter, and not longer than the whole run
    assert pause_ms / 1000 - 0.05 <= cdr["billsec"] <= elapsed, (cdr, elapsed)
    assert cdr["duration"] >= cdr["billsec"]
    assert_healthy(fd, log_mark)


def test_busy_callee(fd: FrontdeskProcess, log_mark: int) -> None:
    with registered_phone(fd, "304", "uas_busy.xml") as phone:
        caller = sipp_call(fd, CALLER, "304", scenario="uac_expect_486.xml")
        callee = phone.wait()
    assert caller.ok, caller.describe()  # the caller got 486 Busy Here
    assert callee.ok, callee.describe()  # and Frontdesk ACKed the phone's 486
    cdr = wait_cdr(fd, "304")
    assert (cdr["disposition"], cdr["sip_code"], cdr["hangup_side"]) == ("busy", 486, "callee")
    assert cdr["answered_at"] is None and cdr["billsec"] == 0
    assert_healthy(fd, log_mark)


def _no_answer(fd: FrontdeskProcess, number: str, ring_timeout: float) -> None:
    with registered_phone(fd, number, "uas_ring_forever.xml") as phone:
        caller = sipp_call(fd, CALLER, number, scenario="uac_expect_480.xml")
        callee = phone.wait()
    assert caller.ok, caller.describe()  # 180 relayed, then 480 when the ring timeout ran out
    assert callee.ok, callee.describe()  # the ringing phone got CANCEL (200 + 487 + ACK)
    cdr = wait_cdr(fd, number)
    assert (cdr["disposition"], cdr["sip_code"], cdr["hangup_side"]) == (
        "no-answer", 480, "system"), cdr
    # rang for the extension's ring timeout, far less than the tenant default of 30 s
    assert ring_timeout - 0.05 <= cdr["duration"] < ring_timeout + 10, cdr


def test_no_answer_gives_480_after_ring_timeout_and_cancels_the_phone(
        fd: FrontdeskProcess, log_mark: int) -> None:
    _no_answer(fd, "305", RING_TIMEOUT)
    assert_healthy(fd, log_mark)


def test_ring_timeout_changed_while_running(fd: FrontdeskProcess, log_mark: int) -> None:
    """`frontdesk ext set --ring-timeout` on a running server applies within a few seconds."""
    subprocess.run([sys.executable, "-m", "frontdesk", "ext", "set", "306", "--ring-timeout",
                    str(LIVE_RING_TIMEOUT), "--data", str(fd.data_dir), "--db", fd.db_url or ""],
                   check=True, capture_output=True, timeout=60)
    deadline = time.monotonic() + 6  # the server looks for changes every 2 s
    while "configuration changed" not in log_since(fd, log_mark):
        if time.monotonic() > deadline:
            pytest.xfail(RELOAD_BUG)
        time.sleep(0.2)
    _no_answer(fd, "306", LIVE_RING_TIMEOUT)
    assert_healthy(fd, log_mark)


def test_caller_cancels_while_ringing(fd: FrontdeskProcess, log_mark: int) -> None:
    with registered_phone(fd, "307", "uas_ring_forever.xml") as phone:
        caller = sipp_call(fd, CALLER, "307", scenario="uac_cancel.xml")
        callee = phone.wait()
    assert caller.ok, caller.describe()  # 180, CANCEL -> 200, then 487 Request Terminated
    assert callee.ok, callee.describe()  # the phone got CANCEL for its ringing INVITE
    cdr = wait_cdr(fd, "307")
    assert (cdr["disposition"], cdr["sip_code"], cdr["hangup_side"]) == (
        "cancelled", 487, "caller"), cdr
    assert cdr["answered_at"] is None
    assert_healthy(fd, log_mark)


def test_extension_without_registered_phone_gives_480(fd: FrontdeskProcess,
                                                     log_mark: int) -> None:
    caller = sipp_call(fd, CALLER, "308", scenario="uac_expect_480.xml")
    assert caller.ok, caller.describe()
    cdr = wait_cdr(fd, "308")
    assert (cdr["disposition"], cdr["sip_code"]) == ("failed", 480), cdr
    assert_healthy(fd, log_mark)


def test_unknown_extension_gives_404(fd: FrontdeskProcess, log_mark: int) -> None:
    caller = sipp_call(fd, CALLER, "555", scenario="uac_expect_404.xml")
    assert caller.ok, caller.describe()
    time.sleep(0.3)
    assert not [c for c in read_cdrs(fd) if c["callee"] == "555"]  # nothing was called
    assert_healthy(fd, log_mark)


def test_register_and_call_over_tcp(fd: FrontdeskProcess, log_mark: int) -> None:
    with known_bugs_as_xfail(fd, log_mark):
        port = phone_port()
        reg = sipp_register(fd, "309", port, transport="tcp")
        assert reg.ok, reg.describe()
        rows = wait_for("TCP binding of 309",
                        lambda: [r for r in read_registrations(fd) if r["aor"] == "309"])
        assert (rows[0]["transport"], rows[0]["port"]) == ("tcp", port), rows
        with sipp_phone("uas_answer.xml", port, transport="tcp") as phone:
            caller = sipp_call(fd, CALLER, "309", transport="tcp", pause_ms=500)
            callee = phone.wait()
        assert caller.ok, caller.describe()
        assert callee.ok, callee.describe()
        assert incoming_calls(callee) == 1
        cdr = wait_cdr(fd, "309")
        assert (cdr["disposition"], cdr["hangup_side"]) == ("answered", "caller"), cdr
        assert_healthy(fd, log_mark)
