"""SIP scanners against the real server: extension enumeration learns nothing, password
guessing gets the source blocked and never places a call.

What scanners do (SIPVicious svwar/svcrack, the tools behind most toll-fraud attempts):
enumerate extensions by comparing the answers to REGISTER/INVITE/OPTIONS for many numbers
(a 404 or 403 for missing ones gives existing ones away), then guess passwords for the ones
found. Frontdesk must answer an existing and a missing extension identically (a challenge
for both, same headers, only the nonce differs), count failed digest answers per source and
then drop everything from that source (silence: a scanner cannot even tell it was blocked).

The raw tests do what the tools do with plain UDP, so they run everywhere; the SIPVicious
tests run the Debian ``sipvicious`` tools themselves (skipped if they are not installed).
Every test has its own server, because a blocked 127.0.0.1 stays blocked for 10 minutes.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from frontdesk_proc import FrontdeskProcess, options_ping
from integration_kit import (
    assert_healthy,
    health,
    incoming_calls,
    log_size,
    phone_port,
    read_cdrs,
    read_registrations,
    sipp_phone,
    sipp_register,
    wait_for,
)
from sip_raw import SDP, SipResponse, UdpClient, build_request, digest_answer

from peers.ports import free_udp_port
from peers.sipp import SippProcess

pytestmark = [pytest.mark.peers, pytest.mark.timeout(120)]

GUARD_MAX_FAILURES = 10  # AuthFailureGuard default: 10 failures in 60 s block for 600 s


# --- helpers -----------------------------------------------------------------------------
def _normalized(r: SipResponse, number: str) -> list[tuple[str, str]]:
    """The response with what must differ per request (tags, branch, Call-ID, nonce) and
    the probed number blanked out: what a scanner can compare."""
    out = [("status", f"{r.status} {r.reason}")]
    for name, value in r.headers:
        value = re.sub(r"(tag|branch)=[^;,\s]+", r"\1=X", value)
        value = re.sub(r'nonce="[^"]*"', 'nonce="X"', value)
        value = value.replace(f"sip:{number}@", "sip:N@").replace(f'"{number}"', '"N"')
        if name.lower() == "call-id":
            value = "X"
        out.append((name.lower(), value))
    return out


def _probe(client: UdpClient, fd: FrontdeskProcess, method: str, number: str,
           auth: tuple[str, str] | None = None) -> SipResponse:
    """One scanner-style request for ``number`` (optionally a wrong digest answer as
    ``auth`` = (user, password)); the final response."""
    ruri = f"sip:{number}@127.0.0.1" if method != "REGISTER" else "sip:127.0.0.1"
    call_id = secrets.token_hex(8)

    def send(cseq: int, extra: list[tuple[str, str]]) -> SipResponse:
        data = build_request(method, ruri, local_port=client.local_port,
                             to=f"sip:{number}@127.0.0.1", from_=f"sip:{number}@127.0.0.1",
                             cseq=cseq, call_id=call_id, extra=extra,
                             body=SDP if method == "INVITE" else b"")
        client.send(data)
        ex = client.collect(3.0, until_final=True)
        finals = [x for x in ex.finals if x.call_id and x.call_id.startswith(call_id)
                  and x.get("CSeq") == f"{cseq} {method}"]
        assert finals, f"no answer to {method} {ruri}: {ex.responses}"
        return finals[0]

    first = send(1, [])
    if auth is None:
        return first
    header = "Proxy-Authorization" if method != "REGISTER" else "Authorization"
    challenge = first.get("Proxy-Authenticate" if method != "REGISTER" else "WWW-Authenticate")
    assert challenge, first.raw
    answer = digest_answer(challenge, method=method, uri=ruri, user=auth[0], password=auth[1])
    return send(2, [(header, answer)])


def _registered_phone(fd: FrontdeskProcess, number: str) -> SippProcess:
    port = phone_port()
    reg = sipp_register(fd, number, port)
    assert reg.ok, reg.describe()
    wait_for(f"binding of {number}",
             lambda: [r for r in read_registrations(fd) if r["aor"] == number])
    return sipp_phone("uas_answer.xml", port, timeout=60)


def _invite_with_password(fd: FrontdeskProcess, client: UdpClient, caller: str, callee: str,
                          password: str, challenge: str) -> list[SipResponse]:
    """An INVITE answering ``challenge`` as ``caller``; the responses within 2 s."""
    ruri = f"sip:{callee}@127.0.0.1"
    auth = digest_answer(challenge, method="INVITE", uri=ruri, user=caller, password=password)
    call_id = secrets.token_hex(8)
    client.send(build_request("INVITE", ruri, local_port=client.local_port,
                              to=ruri, from_=f"sip:{caller}@127.0.0.1", call_id=call_id,
                              extra=[("Proxy-Authorization", auth)], body=SDP))
    ex = client.collect(2.0, until_final=True)
    return [r for r in ex.responses if (r.call_id or "").startswith(call_id)]


def _assert_no_call_placed(fd: FrontdeskProcess, phone: SippProcess) -> None:
    result = phone.stop()
    assert incoming_calls(result) == 0, "an INVITE reached the phone:\n" + result.describe()
    assert read_cdrs(fd) == []
    h = health(fd)
    assert h["active_calls"] == 0 and h["completed_calls"] == 0, h


def _assert_blocked(fd: FrontdeskProcess) -> dict[str, int]:
    """127.0.0.1 is blocked: OPTIONS goes unanswered, the guard counted and dropped."""
    assert options_ping(fd.sip_port, 1.0) is None, "a blocked source still gets answers"
    sip = health(fd)["sip"]
    assert sip.get("auth_failures", 0) >= GUARD_MAX_FAILURES, sip
    assert sip.get("dropped_blocked", 0) >= 1, sip
    return dict(sip)


# --- raw UDP: what svwar and svcrack do --------------------------------------------------
def test_enumeration_cannot_tell_existing_from_missing_extensions(
        frontdesk: FrontdeskProcess) -> None:
    fd, mark = frontdesk, log_size(frontdesk)
    with _registered_phone(fd, "102"), UdpClient(fd.sip_port) as client:
        for method in ("REGISTER", "INVITE", "OPTIONS"):
            answers = {n: _normalized(_probe(client, fd, method, n), n)
                       for n in ("101", "102", "555")}  # idle, registered, missing
            assert answers["101"] == answers["555"] == answers["102"], (method, answers)
            if method != "OPTIONS":
                assert answers["555"][0][1].startswith(
                    "401" if method == "REGISTER" else "407"), answers["555"]
        # a wrong password for an existing user and for a missing one: same answer
        for method in ("REGISTER", "INVITE"):
            wrong = {n: _normalized(_probe(client, fd, method, n, auth=(n, "guess1")), n)
                     for n in ("101", "555")}
            assert wrong["101"] == wrong["555"], (method, wrong)
            assert wrong["555"][0][1][:3] in ("401", "407"), wrong
    assert_healthy(fd, mark)


def test_password_guessing_blocks_the_source_and_places_no_call(
        frontdesk: FrontdeskProcess) -> None:
    fd, mark = frontdesk, log_size(frontdesk)
    phone = _registered_phone(fd, "102")
    with phone, UdpClient(fd.sip_port) as client:
        challenge = _probe(client, fd, "INVITE", "102").get("Proxy-Authenticate")
        assert challenge
        answered = 0
        for attempt in range(GUARD_MAX_FAILURES + 5):
            responses = _invite_with_password(fd, client, "101", "102", f"guess{attempt}",
                                              challenge)
            if not responses:
                break
            assert [r.status for r in responses if r.status >= 200] == [407], responses
            challenge = responses[-1].get("Proxy-Authenticate") or challenge
            answered += 1
        assert answered == GUARD_MAX_FAILURES, f"blocked after {answered} failed answers"
        # now even the right password places no call: the source is blocked
        assert _invite_with_password(fd, client, "101", "102", fd.password("101"),
                                     challenge) == []
        _assert_blocked(fd)
        _assert_no_call_placed(fd, phone)
    assert "blocking 127.0.0.1" in fd.log_tail(200)
    assert_healthy(fd, mark, sip_ping=False)


# --- the real tools ----------------------------------------------------------------------
def _sipvicious(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed (Debian package sipvicious); the raw UDP tests "
                    "above cover the same behaviour")
    return path


def _run_tool(argv: list[str], timeout: float = 60.0) -> str:
    """Run a SIPVicious tool to completion (killed, by its own PID, if it overruns)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{argv[0]} did not finish in {timeout:g} s: {e.output!r}")
    return done.stdout + done.stderr


def _reported(output: str) -> dict[str, str]:
    """svwar's result table: extension -> authentication kind."""
    rows = re.findall(r"^\|\s*(\S+)\s*\|\s*(\S+)\s*\|$", output, re.M)
    return {ext: kind for ext, kind in rows if ext != "Extension"}


def test_svwar_cannot_tell_existing_from_missing_extensions(
        frontdesk: FrontdeskProcess) -> None:
    svwar = _sipvicious("svwar")
    fd, mark = frontdesk, log_size(frontdesk)
    with _registered_phone(fd, "102"):
        for method in ("REGISTER", "INVITE"):  # OPTIONS: 200 for any number, by design
            output = _run_tool([svwar, "--force", "-m", method, "-e", "101-103,555",
                                "-b", "127.0.0.1", "-P", str(free_udp_port()), "-t", "0.2",
                                "--maximumtime", "3", "-p", str(fd.sip_port), "127.0.0.1"])
            assert "SIP/2.0 " in output or "found nothing" in output, output
            found = _reported(output)
            for number in ("101", "102", "103"):  # existing ones look like the missing 555
                assert found.get(number) == found.get("555"), (method, found, output[-2000:])
    assert_healthy(fd, mark)


def test_svcrack_gets_blocked_before_it_reaches_the_right_password(
        frontdesk: FrontdeskProcess, tmp_path: Path) -> None:
    svcrack = _sipvicious("svcrack")
    fd, mark = frontdesk, log_size(frontdesk)
    dictionary = tmp_path / "passwords.txt"
    password = fd.password("101")
    dictionary.write_text("\n".join([f"guess{i}" for i in range(20)] + [password]) + "\n")
    phone = _registered_phone(fd, "102")
    with phone:
        output = _run_tool([svcrack, "-u", "101", "-d", str(dictionary), "-b", "127.0.0.1",
                            "-P", str(free_udp_port()), "--maximumtime", "3",
                            "-p", str(fd.sip_port), "127.0.0.1"], timeout=90)
        assert password not in output, output[-2000:]  # the tool never found it
        _assert_blocked(fd)
        with UdpClient(fd.sip_port) as client:  # a call with the right password: silence
            ruri = "sip:102@127.0.0.1"
            client.send(build_request("INVITE", ruri, local_port=client.local_port, to=ruri,
                                      from_="sip:101@127.0.0.1", body=SDP))
            assert client.collect(2.0).responses == []
        _assert_no_call_placed(fd, phone)
    assert_healthy(fd, mark, sip_ping=False)
