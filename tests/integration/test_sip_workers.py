"""`frontdesk serve --sip-workers 2`: a SIP worker process beside the main one, with SIPp.

What a user of a multi-core registrar relies on: a worker that dies (kill -9) is started
again and, meanwhile, the main process answers the REGISTERs it owned; calls reach phones
whichever process registered them; the brute-force guard counts failures seen by every
process together; a kill -9 of the main process takes its worker with it and the next start
still has every registration (the worker's own journal). The suite test_sipp_calls.py runs
its register/call tests against a server with a worker too.

Which process owns an extension is ``sip.affinity.owner(tenant_id, number, 2)``; the tests
pick extensions of both kinds from the demo tenant, so a wrong split fails them.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from frontdesk_proc import FrontdeskProcess
from integration_kit import (
    assert_healthy,
    database,
    health,
    phone_port,
    read_registrations,
    sipp_call,
    sipp_phone,
    sipp_register,
    wait_cdr,
    wait_for,
)
from sqlalchemy import select

from frontdesk.sip.affinity import owner
from frontdesk.store.models import Tenant

pytestmark = [pytest.mark.peers, pytest.mark.timeout(120)]

WORKERS = ("--sip-workers", "2")
DEMO_NUMBERS = ("101", "102", "103", "201", "202", "203")


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def split_by_owner(fd: FrontdeskProcess) -> tuple[list[str], list[str]]:
    """Demo extensions owned by the main process and by worker 1."""
    with database(fd) as db, db.session() as s:
        tenant_id = s.scalars(select(Tenant.id).where(Tenant.default.is_(True))).one()
    main = [n for n in DEMO_NUMBERS if owner(tenant_id, n, 2) == 0]
    worker = [n for n in DEMO_NUMBERS if owner(tenant_id, n, 2) == 1]
    assert main and worker, (main, worker)  # the demo tenant has both kinds
    return main, worker


def worker_pid(fd: FrontdeskProcess, not_pid: int | None = None) -> int:
    assert fd.proc is not None
    main_pid = fd.proc.pid

    def probe() -> int | None:
        pids = [p for p in children(main_pid) if p != not_pid and alive(p)]
        return pids[0] if pids else None

    return int(wait_for("the SIP worker process", probe, timeout=30))


def wait_ready(fd: FrontdeskProcess, count: int) -> None:
    wait_for(f"'SIP worker 1 ready' x{count} in the log",
             lambda: len(re.findall(r"SIP worker 1 ready", fd.log_tail(400))) >= count,
             timeout=30)


@pytest.fixture
def fd(frontdesk_factory: Callable[..., FrontdeskProcess]) -> Iterator[FrontdeskProcess]:
    server = frontdesk_factory(serve_args=(*WORKERS, "--auth-max-failures", "4"))
    wait_ready(server, 1)
    yield server


def raw_register(fd: FrontdeskProcess, number: str, timeout: float = 1.0) -> bytes | None:
    """One REGISTER without credentials from a fresh UDP port: the 401, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        port = s.getsockname()[1]
        tag = time.monotonic_ns()
        s.sendto((
            f"REGISTER sip:127.0.0.1:{fd.sip_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{tag};rport\r\n"
            f"From: <sip:{number}@127.0.0.1>;tag=r{tag}\r\nTo: <sip:{number}@127.0.0.1>\r\n"
            f"Call-ID: raw-{tag}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{number}@127.0.0.1:{port}>"
            "\r\nMax-Forwards: 70\r\nExpires: 60\r\nContent-Length: 0\r\n\r\n").encode(),
            ("127.0.0.1", fd.sip_port))
        try:
            return s.recv(65535)
        except OSError:
            return None


def test_a_killed_worker_is_restarted_and_its_phones_stay_reachable(
        fd: FrontdeskProcess) -> None:
    main_owned, worker_owned = split_by_owner(fd)
    first = worker_pid(fd)
    # a phone registered through the worker, called from a main-owned extension
    port = phone_port()
    reg = sipp_register(fd, worker_owned[0], port)
    assert reg.ok, reg.describe()
    wait_for("the worker's binding in the main process",
             lambda: health(fd)["registrations"] >= 1)
    os.kill(first, 9)
    # while it is down (and restarting) the main process answers the worker's REGISTERs
    reg = sipp_register(fd, worker_owned[1], phone_port())
    assert reg.ok, reg.describe()
    second = worker_pid(fd, not_pid=first)
    assert second != first
    wait_ready(fd, 2)
    assert f"SIP worker 1 (pid {first}) exited" in fd.log_tail(400)
    # the new worker serves its extensions again; the phone registered before the kill and
    # the one registered meanwhile are both reachable for calls
    reg = sipp_register(fd, worker_owned[2 % len(worker_owned)], phone_port())
    assert reg.ok, reg.describe()
    with sipp_phone("uas_answer.xml", port) as phone:
        call = sipp_call(fd, main_owned[0], worker_owned[0], pause_ms=300)
        answered = phone.wait()
    assert call.ok, call.describe()
    assert answered.ok, answered.describe()
    cdr = wait_cdr(fd, worker_owned[0])
    assert cdr["disposition"] == "answered", cdr
    aors = {r["aor"] for r in read_registrations(fd)}
    assert {worker_owned[0], worker_owned[1]} <= aors, aors
    assert_healthy(fd)


def test_failed_authentications_are_counted_across_processes(fd: FrontdeskProcess) -> None:
    main_owned, worker_owned = split_by_owner(fd)
    # four wrong passwords (the server blocks after 4): two extensions of each process
    for number in (main_owned[0], worker_owned[0], main_owned[1], worker_owned[1]):
        result = sipp_register(fd, number, phone_port(), password="wrong-password",
                               scenario="reg_bad_auth.xml")
        assert result.ok, result.describe()  # 401, then 401 again to the wrong answer
    wait_for("the block in the log", lambda: "blocking 127.0.0.1" in fd.log_tail(200))
    # neither process answers 127.0.0.1 any more, whoever owns the extension
    time.sleep(0.3)  # the block reaches the worker over its link
    assert raw_register(fd, worker_owned[0]) is None
    assert raw_register(fd, main_owned[0]) is None
    wait_for("the four failures in /health",
             lambda: health(fd)["sip"].get("auth_failures", 0) >= 4)
    time.sleep(0.3)
    assert health(fd)["sip"].get("auth_failures", 0) == 4


def test_kill_9_of_the_main_process_keeps_every_registration(fd: FrontdeskProcess) -> None:
    main_owned, worker_owned = split_by_owner(fd)
    numbers = [main_owned[0], worker_owned[0]]
    for number in numbers:
        reg = sipp_register(fd, number, phone_port())
        assert reg.ok, reg.describe()
    wait_for("both bindings in the database",
             lambda: {r["aor"] for r in read_registrations(fd)} >= set(numbers))
    worker = worker_pid(fd)
    fd.kill9()
    # the worker does not outlive the main process (it would hold the SIP port)
    wait_for("the worker to exit with the main process", lambda: not alive(worker))
    fd.start()
    wait_ready(fd, 2)
    assert {r["aor"] for r in read_registrations(fd)} >= set(numbers)
    assert health(fd)["registrations"] >= 2
