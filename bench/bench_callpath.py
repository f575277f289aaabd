"""Call-path benchmark: the real `SipEngine` in memory, driven like the SIPp bench drives it.

One call is what ``../shared/bench/uac_proxy.xml`` + ``uas_proxy.xml`` do through our B2BUA:
INVITE from the caller, 180 and 200 from the callee, ACK and BYE from the caller, 200 to
the BYE from the callee (6 messages into the engine, 8 out). A REGISTER loop sends what
``reg.xml`` sends (one REGISTER per user, 1,000 distinct users, trusted loopback, no auth).

Only the engine's own work is timed (``receive`` + ``drain``): the driver never parses what
the engine sends with our parser; it cuts the header lines it must echo out of the bytes
with one regex and builds its messages from templates (INVITEs and REGISTERs pre-built), so
a faster or slower parser cannot move the driver's share. Times are CPU time of this process
(not wall time: on a loaded machine that also counts other processes' turns), best of
``--repeat`` rounds, with the collector set up as ``pbx/server.py`` does. Absolute numbers
depend on the machine: compare runs of the same machine, ideally interleaved.

An authenticated registration is what ``bench/reg_auth_bench.xml`` does: REGISTER -> 401,
REGISTER with an MD5 digest (computed by the driver with hashlib) -> 200.

Run: ``python bench/bench_callpath.py`` (``--profile calls|registers|auth`` adds a cProfile);
``PYTHONPATH=build/compiled`` for the mypyc build (``scripts/build_compiled.py``), named in
the first line printed.
This file never asserts on speed.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import pstats
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "pbx"))

from inmemory import DOMAIN, SDP_A, SDP_B, make_directory

from frontdesk.compiled import describe
from frontdesk.pbx.engine import SipEngine
from frontdesk.pbx.location import LocationService
from frontdesk.sip.peer import Peer

UAC = Peer("udp", "127.0.0.1", 5261)  # the caller (SIPp uac_proxy.xml)
UAS = Peer("udp", "127.0.0.1", 5290)  # the callee "bench" (SIPp uas_proxy.xml)
REG = Peer("udp", "127.0.0.1", 5262)  # the registering SIPp (reg.xml)
USERS = 1000

_ECHO_RE = re.compile(rb"^(?:Via|From|To|Call-ID|CSeq): [^\r]*\r\n", re.M)
_TO_TAG_RE = re.compile(rb"^To: [^\r]*;tag=([^;\r]+)", re.M)


def new_engine() -> SipEngine:
    users = {"bench": "x", "sipp": "x"} | {f"u{i}": "x" for i in range(USERS)}
    directory = make_directory(users, trusted_loopback=True)
    engine = SipEngine(
        directory,
        LocationService(lambda kind, b: None),
        via_host="127.0.0.1:5080",
        secret=b"0123456789abcdef0123456789abcdef",
        cdr_sink=lambda cdr: None,
    )
    engine.qualifier.start(0.0)
    engine.receive(register_bytes("bench", UAS.port, 0), UAS, 0.0)
    engine.drain()
    return engine


def register_bytes(user: str, port: int, i: int) -> bytes:
    return (
        f"REGISTER sip:127.0.0.1:5080 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{i}-r\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:{user}@127.0.0.1>;tag=4242R{i}\r\n"
        f"To: <sip:{user}@127.0.0.1>\r\n"
        f"Call-ID: {i}-reg@127.0.0.1\r\n"
        f"CSeq: 1 REGISTER\r\n"
        f"Contact: <sip:{user}@127.0.0.1:{port}>\r\n"
        f"Expires: 3600\r\n"
        f"User-Agent: sipp-bench\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def auth_register_bytes(i: int, cseq: int, authorization: str = "") -> bytes:
    """What ``bench/reg_auth_bench.xml`` sends: AOR "bench", a new contact per call."""
    return (
        f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5262;branch=z9hG4bK-{i}-{cseq}\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:bench@{DOMAIN}>;tag={i}A\r\n"
        f"To: <sip:bench@{DOMAIN}>\r\n"
        f"Call-ID: {i}-auth@127.0.0.1\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        f"Contact: <sip:bench-{i}@127.0.0.1:5262>\r\n"
        f"{authorization}"
        f"Expires: 3600\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


_CHALLENGE_RE = re.compile(rb'^WWW-Authenticate: Digest (.*)$', re.M)
_PARAM_RE = re.compile(rb'([a-z]+)=(?:"([^"]*)"|([^,\s]*))')


def digest_authorization(challenge: bytes, i: int) -> str:
    """SIPp's answer to our 401 (MD5, qop=auth), computed here with hashlib, not our code."""
    m = _CHALLENGE_RE.search(challenge)
    assert m is not None, challenge
    params = {k.decode(): (q or t).decode() for k, q, t in _PARAM_RE.findall(m.group(1))}
    realm, nonce, opaque = params["realm"], params["nonce"], params.get("opaque")
    uri, cnonce, nc = f"sip:{DOMAIN}", f"{i:08x}", "00000001"
    ha1 = hashlib.md5(f"bench:{realm}:x".encode()).hexdigest()
    ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
    response = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    extra = f',opaque="{opaque}"' if opaque is not None else ""
    return (
        f'Authorization: Digest username="bench",realm="{realm}",cnonce="{cnonce}",nc={nc},'
        f'qop=auth,uri="{uri}",nonce="{nonce}",response="{response}",algorithm=MD5{extra}\r\n'
    )


def invite_bytes(i: int) -> bytes:
    return (
        f"INVITE sip:bench@127.0.0.1:5080 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5261;branch=z9hG4bK-{i}-0\r\n"
        f"From: sipp <sip:sipp@127.0.0.1:5261>;tag={i}T\r\n"
        f"To: <sip:bench@127.0.0.1:5080>\r\n"
        f"Call-ID: {i}-c@127.0.0.1\r\n"
        f"CSeq: 1 INVITE\r\n"
        f"Contact: sip:sipp@127.0.0.1:5261\r\n"
        f"Max-Forwards: 70\r\n"
        f"Subject: Performance Test\r\n"
        f"Content-Type: application/sdp\r\n"
        f"Content-Length: {len(SDP_A)}\r\n\r\n"
    ).encode() + SDP_A


def in_dialog_bytes(method: str, i: int, step: int, cseq: int, to_tag: bytes) -> bytes:
    return (
        f"{method} sip:bench@127.0.0.1:5080 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5261;branch=z9hG4bK-{i}-{step}\r\n"
        f"From: sipp <sip:sipp@127.0.0.1:5261>;tag={i}T\r\n"
        f"To: <sip:bench@127.0.0.1:5080>;tag={to_tag.decode()}\r\n"
        f"Call-ID: {i}-c@127.0.0.1\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"Max-Forwards: 70\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def response_bytes(
    request: bytes, status: bytes, to_tag: bytes | None, extra: bytes = b"", body: bytes = b""
) -> bytes:
    """A UAS response echoing the request's Via/From/To/Call-ID/CSeq lines (RFC 3261 §8.2.6)."""
    head, _, _ = request.partition(b"\r\n\r\n")
    lines = _ECHO_RE.findall(head + b"\r\n")
    if to_tag is not None:
        lines = [
            ln[:-2] + b";tag=" + to_tag + b"\r\n" if ln.startswith(b"To:") else ln for ln in lines
        ]
    return (
        b"SIP/2.0 "
        + status
        + b"\r\n"
        + b"".join(lines)
        + extra
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def sent_to(out: list[tuple[bytes, Peer]], peer: Peer, start: bytes) -> bytes:
    for data, p in out:
        if p == peer and data.startswith(start):
            return data
    raise AssertionError(f"the engine sent no {start!r} to {peer}: {[d[:20] for d, _ in out]}")


def _timer_overhead() -> float:
    """What one ``Clock.send`` measurement costs by itself (two ``process_time`` calls)."""
    best = float("inf")
    for _ in range(20):
        spent = 0.0
        for _ in range(1000):
            t = time.process_time()
            spent += time.process_time() - t
        best = min(best, spent / 1000)
    return best


class Clock:
    """Sums the CPU time spent inside the engine (CPU time, not wall time: on a loaded
    machine the wall clock also counts the time other processes held the core)."""

    overhead = 0.0

    def __init__(self, engine: SipEngine) -> None:
        self.engine = engine
        self.spent = 0.0

    def send(self, data: bytes, source: Peer, now: float) -> list[tuple[bytes, Peer]]:
        t = time.process_time()
        self.engine.receive(data, source, now)
        out = self.engine.drain()
        self.spent += time.process_time() - t - self.overhead
        return out


def one_call(clock: Clock, i: int, invite: bytes, now: float) -> None:
    """One SIPp-like call through the B2BUA; raises if the engine did not play along."""
    b_invite = sent_to(clock.send(invite, UAC, now), UAS, b"INVITE")
    clock.send(response_bytes(b_invite, b"180 Ringing", b"bt"), UAS, now)
    ok = response_bytes(
        b_invite,
        b"200 OK",
        b"bt",
        b"Contact: <sip:bench@127.0.0.1:5290>\r\nContent-Type: application/sdp\r\n",
        SDP_B,
    )
    a_ok = sent_to(clock.send(ok, UAS, now), UAC, b"SIP/2.0 200")
    m = _TO_TAG_RE.search(a_ok)
    assert m is not None, a_ok
    clock.send(in_dialog_bytes("ACK", i, 2, 1, m.group(1)), UAC, now)
    out = clock.send(in_dialog_bytes("BYE", i, 3, 2, m.group(1)), UAC, now)
    bye_ok = sent_to(out, UAC, b"SIP/2.0 200")  # the B2BUA answers the caller's BYE at once
    assert b"CSeq: 2 BYE" in bye_ok, bye_ok
    clock.send(response_bytes(sent_to(out, UAS, b"BYE"), b"200 OK", None), UAS, now)


def run_calls(engine: SipEngine, first: int, count: int) -> tuple[float, float]:
    """(engine CPU seconds, CPU seconds with the driver) for ``count`` calls from ``first``."""
    invites = [invite_bytes(i) for i in range(first, first + count)]
    clock = Clock(engine)
    start = time.process_time()
    for k, invite in enumerate(invites):
        i = first + k
        one_call(clock, i, invite, 1.0 + i * 0.001)
    return clock.spent, time.process_time() - start


def run_registers(engine: SipEngine, first: int, count: int) -> float:
    """Engine seconds for ``count`` REGISTERs (pre-built), users cycling over USERS."""
    regs = [register_bytes(f"u{i % USERS}", REG.port, i) for i in range(first, first + count)]
    clock = Clock(engine)
    for k, data in enumerate(regs):
        out = clock.send(data, REG, 2.0 + (first + k) * 0.0001)
        if not out[-1][0].startswith(b"SIP/2.0 200"):
            raise AssertionError(out)
    return clock.spent


def new_auth_engine() -> SipEngine:
    """An engine whose tenant requires digest authentication (like ``auth.frontdesk.test``)."""
    return SipEngine(
        make_directory({"bench": "x"}),
        LocationService(lambda kind, b: None),
        via_host="127.0.0.1:5080",
        secret=b"0123456789abcdef0123456789abcdef",
        cdr_sink=lambda cdr: None,
    )


def run_auth_registers(engine: SipEngine, first: int, count: int) -> float:
    """Engine seconds per authenticated registration: REGISTER -> 401, REGISTER+digest -> 200
    (the digest is computed by the driver, outside the timed part)."""
    clock = Clock(engine)
    for i in range(first, first + count):
        now = 3.0 + i * 0.0001
        challenge = clock.send(auth_register_bytes(i, 1), REG, now)[-1][0]
        assert challenge.startswith(b"SIP/2.0 401"), challenge
        signed = auth_register_bytes(i, 2, digest_authorization(challenge, i))
        out = clock.send(signed, REG, now)
        if not out[-1][0].startswith(b"SIP/2.0 200"):
            raise AssertionError(out)
    return clock.spent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000, help="calls per round")
    ap.add_argument("--registers", type=int, default=10000, help="REGISTERs per round")
    ap.add_argument("--auth", type=int, help="authenticated registrations per round [REGISTERs/5]")
    ap.add_argument("--repeat", type=int, default=5, help="rounds; the best one is reported")
    ap.add_argument(
        "--profile",
        choices=["calls", "registers", "auth"],
        help="cProfile one round of this workload",
    )
    args = ap.parse_args(argv)
    Clock.overhead = _timer_overhead()
    engine = new_engine()
    run_calls(engine, 0, 200)  # warm up caches and the directory
    gc.collect()  # the collector as the server sets it up (pbx/server.py)
    gc.freeze()
    gc.set_threshold(50_000, 4, 500)
    auth_engine = new_auth_engine()
    run_auth_registers(auth_engine, 0, 200)
    best_call = best_total = best_reg = best_auth = float("inf")
    n = 1000
    for _ in range(args.repeat):
        spent, total = run_calls(engine, n, args.calls)
        n += args.calls
        best_call, best_total = (
            min(best_call, spent / args.calls),
            min(best_total, total / args.calls),
        )
        best_reg = min(best_reg, run_registers(engine, n, args.registers) / args.registers)
        n += args.registers
        auths = args.auth if args.auth is not None else max(1, args.registers // 5)
        best_auth = min(best_auth, run_auth_registers(auth_engine, n, auths) / auths)
        n += auths
    print(f"python {sys.version.split()[0]}; frontdesk build: {describe()}")
    print(
        f"calls:    {best_call * 1e6:7.1f} us/call in the engine ({1 / best_call:7,.0f} calls/s; "
        f"{best_total * 1e6:.1f} us/call with the driver)"
    )
    print(
        f"REGISTER: {best_reg * 1e6:7.1f} us/REGISTER in the engine "
        f"({1 / best_reg:7,.0f} REGISTER/s)"
    )
    print(
        f"auth REGISTER (401 + digest): {best_auth * 1e6:7.1f} us/registration in the engine "
        f"({1 / best_auth:7,.0f}/s)"
    )
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        if args.profile == "calls":
            run_calls(engine, n, args.calls)
        elif args.profile == "registers":
            run_registers(engine, n, args.registers)
        else:
            run_auth_registers(auth_engine, n, args.registers // 5)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
