"""Helpers for tests that drive the real ``frontdesk serve`` process with real peers.

What it is for: reading what the server stored (CDRs, registrations) straight from its
database, asking its /health endpoint, checking after a test that it is alive, answering
and logged no traceback, adding extensions before it starts, and running SIPp as a phone
(register, answer/busy/ring, call) through ``tests/peers/sipp.py`` (bounded runs, own
processes only).

What it must never do: change the server's data while it runs except through the CLI (as a
person would), wait without a bound, or stop a process it did not start.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from frontdesk_proc import FrontdeskProcess, options_ping
from sip_raw import wait_bound

from frontdesk.cli import _cdr_dict
from frontdesk.store import repo
from frontdesk.store.db import Database, sqlite_url
from frontdesk.store.models import Cdr, Registration
from peers import BaresipPhone
from peers.ports import free_port
from peers.sipp import SippProcess, SippResult, run_sipp, start_sipp

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"

# Server bugs found by this suite and not fixed yet (owned by other modules). A test that
# fails *and* finds the bug's signature in the server log is reported as xfail naming the bug;
# once the bug is fixed the test runs its assertions as usual (nothing to edit).
KNOWN_BUG_SIGNATURES = {
    "assert isinstance(transport, asyncio.Transport)":
        "known bug (net/transport.py): under uvloop every TCP connection fails in "
        "connection_made: uvloop's TCPTransport is not a subclass of asyncio.Transport",
}
RELOAD_BUG = ("known bug (pbx/server.py _fingerprint_now): `frontdesk ext set --ring-timeout` "
              "is not picked up by a running server; the fingerprint only counts rows and max ids")


Extensions = dict[str, tuple[str, int | None]]  # number -> (password, ring timeout)


class ServerFactory:
    """Makes FrontdeskProcess servers (demo tenant, optional extra extensions) and stops
    every one of them at the end."""

    def __init__(self, base: Path, empty_pg: Callable[[], str] | None = None) -> None:
        self.base = base
        self.empty_pg = empty_pg
        self.servers: list[FrontdeskProcess] = []

    def __call__(self, db: str = "sqlite", extensions: Extensions | None = None,
                 start: bool = True, serve_args: tuple[str, ...] = ()) -> FrontdeskProcess:
        data_dir = self.base / f"fd{len(self.servers)}"
        data_dir.mkdir(parents=True)
        if db == "sqlite":
            url = sqlite_url(data_dir)
        else:
            assert self.empty_pg is not None, "this factory has no PostgreSQL"
            url = self.empty_pg()
        fd = FrontdeskProcess(data_dir, url, serve_args)
        self.servers.append(fd)
        try:
            fd.init_demo()
        except subprocess.CalledProcessError as e:
            pytest.fail(f"`frontdesk init --demo` failed ({e.returncode}):\n{e.stderr}")
        if extensions:
            add_extensions(fd, extensions)
        if start:
            fd.start()
        return fd

    def stop_all(self) -> None:
        for fd in self.servers:
            try:
                fd.stop()
            finally:
                print(f"\n--- frontdesk {fd.data_dir.name} log tail ---\n{fd.log_tail(40)}")

    def start_all(self, servers: list[FrontdeskProcess]) -> None:
        """Start several servers at once (each start waits for its OPTIONS answer)."""
        with ThreadPoolExecutor(len(servers)) as pool:
            for future in [pool.submit(fd.start) for fd in servers]:
                future.result()


# --- the server's database ---------------------------------------------------------------
def registered_baresip(
    make: Callable[..., BaresipPhone], fd: FrontdeskProcess, number: str, **options: Any
) -> BaresipPhone:
    """A baresip phone (from the ``baresip_phone`` fixture's ``make``) registered to ``fd``
    as extension ``number`` with its demo password; returns once the REGISTER got 200."""
    phone = make(
        number,
        password=fd.password(number),
        domain=f"127.0.0.1:{fd.sip_port}",
        register=True,
        **options,
    )
    phone.wait_event("REGISTER_OK", timeout=10)
    return phone


def db_url(fd: FrontdeskProcess) -> str:
    assert fd.db_url, "integration fixtures always pass an explicit --db URL"
    return fd.db_url


@contextmanager
def database(fd: FrontdeskProcess) -> Iterator[Database]:
    db = Database(db_url(fd))
    try:
        yield db
    finally:
        db.close()


def read_cdrs(fd: FrontdeskProcess) -> list[dict[str, Any]]:
    """All CDRs, newest first, in the same shape as ``frontdesk cdr --json``."""
    from sqlalchemy import select

    with database(fd) as db, db.session() as s:
        return [_cdr_dict(r) for r in s.scalars(select(Cdr).order_by(Cdr.started_at.desc()))]


def read_registrations(fd: FrontdeskProcess) -> list[dict[str, Any]]:
    """Current (unexpired) registrations."""
    from sqlalchemy import select

    with database(fd) as db, db.session() as s:
        rows = s.scalars(select(Registration).where(Registration.expires_at > time.time()))
        return [{"aor": r.aor, "contact": r.contact_uri, "transport": r.transport,
                 "host": r.source_host, "port": r.source_port, "expires_at": r.expires_at,
                 "user_agent": r.user_agent} for r in rows]


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 10.0,
             interval: float = 0.1) -> Any:
    """Poll ``probe`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def wait_cdr(fd: FrontdeskProcess, callee: str, *, ended: bool = True,
             timeout: float = 10.0) -> dict[str, Any]:
    """The CDR of the (one) call to ``callee``, once it has ended (or exists)."""
    def probe() -> dict[str, Any] | None:
        rows = [c for c in read_cdrs(fd) if c["callee"] == callee]
        assert len(rows) <= 1, f"more than one CDR for callee {callee}: {rows}"
        if rows and (rows[0]["ended_at"] or not ended):
            return rows[0]
        return None
    return wait_for(f"a CDR for callee {callee}", probe, timeout)  # type: ignore[no-any-return]


def add_extensions(fd: FrontdeskProcess, extensions: Extensions) -> None:
    """Add extensions {number: (password, ring timeout or None)} to the demo tenant, before
    the server starts (a running server would pick them up on its next refresh)."""
    with database(fd) as db, db.session() as s:
        tenant = repo.get_tenant_by_slug(s, "demo")
        assert tenant is not None, "init_demo() first"
        for number, (password, ring_timeout) in extensions.items():
            repo.create_user_with_extension(s, tenant, number, f"Test {number}", password)
            if ring_timeout is not None:
                ext = repo.get_extension(s, tenant.id, number)
                assert ext is not None
                ext.ring_timeout = ring_timeout
        s.commit()
    fd.demo["extensions"] += [{"number": n, "password": p} for n, (p, _) in extensions.items()]


# --- the server's health -----------------------------------------------------------------
def health(fd: FrontdeskProcess, timeout: float = 10.0) -> dict[str, Any]:
    url = f"http://127.0.0.1:{fd.http_port}/health"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return dict(json.loads(r.read()))
        except OSError as e:
            if time.monotonic() > deadline:
                pytest.fail(f"GET {url} failed: {e}")
            time.sleep(0.2)


def log_size(fd: FrontdeskProcess) -> int:
    try:
        return fd.log_path.stat().st_size
    except FileNotFoundError:
        return 0


def log_since(fd: FrontdeskProcess, offset: int) -> str:
    with fd.log_path.open("rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def known_bug(fd: FrontdeskProcess, since: int = 0) -> str | None:
    text = log_since(fd, since)
    for signature, description in KNOWN_BUG_SIGNATURES.items():
        if signature in text:
            return description
    return None


@contextmanager
def known_bugs_as_xfail(fd: FrontdeskProcess, since: int) -> Iterator[None]:
    """Run a block; if it fails and the server log shows a known bug, report xfail."""
    try:
        yield
    except BaseException:
        bug = known_bug(fd, since)
        if bug:
            pytest.xfail(bug)
        raise


def assert_healthy(fd: FrontdeskProcess, since: int = 0, *, sip_ping: bool = True) -> None:
    """The server still runs, answers OPTIONS, logged no traceback since ``since`` and its
    /health counts no internal error."""
    assert fd.proc is not None and fd.proc.poll() is None, (
        f"frontdesk exited ({fd.proc.returncode if fd.proc else 'never started'}):\n"
        + fd.log_tail())
    if sip_ping:
        answer = options_ping(fd.sip_port, 2.0) or options_ping(fd.sip_port, 2.0)
        assert answer is not None and answer.startswith(b"SIP/2.0 200 "), (
            f"no 200 to OPTIONS: {answer!r}")
    text = log_since(fd, since)
    if "Traceback" in text:
        bug = known_bug(fd, since)
        if bug:
            pytest.xfail(bug)
        pytest.fail("server logged a traceback:\n" + text[-6000:])
    h = health(fd)
    assert h["status"] == "ok", h
    assert h["sip"].get("internal_errors", 0) == 0, h


# --- SIPp as a phone ---------------------------------------------------------------------
def sipp_transport(transport: str) -> str:
    return {"udp": "u1", "tcp": "t1"}[transport]


def phone_port() -> int:
    """A port free for UDP and TCP, so a SIPp phone can register from it and listen on it."""
    return free_port(udp=True, tcp=True)


def sipp_register(fd: FrontdeskProcess, number: str, port: int, *, transport: str = "udp",
                  password: str | None = None, scenario: str = "reg_auth.xml",
                  timeout: float = 15.0) -> SippResult:
    """REGISTER ``number`` from 127.0.0.1:``port`` with digest auth (401, then 200)."""
    return run_sipp(
        SCENARIOS / scenario, f"127.0.0.1:{fd.sip_port}", local_port=port, calls=1,
        timeout=timeout, transport=sipp_transport(transport), service=number,
        extra_args=["-au", number, "-ap", password or fd.password(number)])


def sipp_phone(scenario: str, port: int, *, transport: str = "udp",
               timeout: float = 30.0) -> SippProcess:
    """A SIPp UAS (uas_answer.xml, uas_busy.xml, uas_ring_forever.xml) listening on ``port``
    for one call; returns once it is bound."""
    phone = start_sipp(SCENARIOS / scenario, None, local_port=port, calls=1, timeout=timeout,
                       transport=sipp_transport(transport))
    if not wait_bound(port, transport, 10.0):
        result = phone.stop()
        pytest.fail(f"SIPp {scenario} did not bind {transport} port {port}:\n"
                    + result.describe())
    return phone


def sipp_call(fd: FrontdeskProcess, caller: str, callee: str, *,
              scenario: str = "uac_call.xml", transport: str = "udp", pause_ms: int = 1000,
              timeout: float = 30.0, background: bool = False) -> Any:
    """Call ``callee`` as ``caller`` (digest auth); a SippResult, or the SippProcess when
    ``background``."""
    options: dict[str, Any] = dict(
        local_port=phone_port(), calls=1, timeout=timeout, transport=sipp_transport(transport),
        service=callee, keys={"caller": caller},
        extra_args=["-au", caller, "-ap", fd.password(caller), "-d", str(pause_ms)])
    target = f"127.0.0.1:{fd.sip_port}"
    if background:
        return start_sipp(SCENARIOS / scenario, target, **options)
    return run_sipp(SCENARIOS / scenario, target, **options)


def incoming_calls(result: SippResult) -> int:
    """How many calls a SIPp UAS received (from its statistics)."""
    try:
        return int(result.stats.get("IncomingCall(C)", "0") or 0)
    except ValueError:
        return 0
