"""`frontdesk serve --sip-workers 3`: two SIP worker processes beside the main one, with SIPp.

What a user of a multi-core registrar relies on: a worker that dies (kill -9) is started
again and, meanwhile, the main process answers the REGISTERs it owned; calls reach phones
whichever process registered them; the brute-force guard counts failures seen by every
process together; a kill -9 of the main process takes its workers with it and the next start
still has every registration (the workers' own journals). The suite test_sipp_calls.py runs
its register/call tests against a server with one worker too.

Which worker owns an extension is ``sip.affinity.owner(tenant_id, number, 3)``; the tests
pick extensions of both workers from the demo tenant, so a wrong split fails them.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from frontdesk_proc import FrontdeskProcess, options_ping
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

WORKERS = ("--sip-workers", "3")
DEMO_NUMBERS = ("101", "102", "103", "201", "202", "203")


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def split_by_owner(fd: FrontdeskProcess) -> tuple[list[str], list[str]]:
    """Demo extensions owned by worker 1 and by worker 2."""
    with database(fd) as db, db.session() as s:
        tenant_id = s.scalars(select(Tenant.id).where(Tenant.default.is_(True))).one()
    first = [n for n in DEMO_NUMBERS if owner(tenant_id, n, 3) == 1]
    second = [n for n in DEMO_NUMBERS if owner(tenant_id, n, 3) == 2]
    assert len(first) >= 2 and len(second) >= 2, (first, second)  # both kinds in the demo
    return first, second


def worker_pid(fd: FrontdeskProcess, index: int, not_pid: int | None = None) -> int:
    """The pid of SIP worker ``index`` (the newest start in the log), once it runs."""
    def probe() -> int | None:
        started = re.findall(rf"SIP worker {index} started \(pid (\d+)\)", fd.log_tail(400))
        pid = int(started[-1]) if started else None
        return pid if pid is not None and pid != not_pid and alive(pid) else None

    return int(wait_for(f"SIP worker {index}", probe, timeout=30))


def wait_ready(fd: FrontdeskProcess, index: int, count: int) -> None:
    wait_for(f"'SIP worker {index} ready' x{count} in the log",
             lambda: len(re.findall(rf"SIP worker {index} ready", fd.log_tail(400))) >= count,
             timeout=30)


@pytest.fixture
def fd(frontdesk_factory: Callable[..., FrontdeskProcess]) -> Iterator[FrontdeskProcess]:
    server = frontdesk_factory(serve_args=(*WORKERS, "--auth-max-failures", "4"))
    wait_ready(server, 1, 1)
    wait_ready(server, 2, 1)
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
    first_owned, second_owned = split_by_owner(fd)
    caller = second_owned[0]
    first = worker_pid(fd, 1)
    # a phone registered through worker 1
    port = phone_port()
    reg = sipp_register(fd, first_owned[0], port)
    assert reg.ok, reg.describe()
    wait_for("the worker's binding in the main process",
             lambda: health(fd)["registrations"] >= 1)
    os.kill(first, 9)
    # while it is down (and restarting) the main process answers its REGISTERs
    reg = sipp_register(fd, first_owned[1], phone_port())
    assert reg.ok, reg.describe()
    second = worker_pid(fd, 1, not_pid=first)
    assert second != first
    wait_ready(fd, 1, 2)
    assert f"SIP worker 1 (pid {first}) exited" in fd.log_tail(400)
    # the new worker serves its extensions again; the phone registered before the kill and
    # the one registered meanwhile are both reachable for calls
    reg = sipp_register(fd, first_owned[2 % len(first_owned)], phone_port())
    assert reg.ok, reg.describe()
    with sipp_phone("uas_answer.xml", port) as phone:
        call = sipp_call(fd, caller, first_owned[0], pause_ms=300)
        answered = phone.wait()
    assert call.ok, call.describe()
    assert answered.ok, answered.describe()
    cdr = wait_cdr(fd, first_owned[0])
    assert cdr["disposition"] == "answered", cdr
    aors = {r["aor"] for r in read_registrations(fd)}
    assert {first_owned[0], first_owned[1]} <= aors, aors
    assert_healthy(fd)


def test_failed_authentications_are_counted_across_processes(fd: FrontdeskProcess) -> None:
    first_owned, second_owned = split_by_owner(fd)
    # four wrong passwords (the server blocks after 4): two extensions of each worker
    for number in (first_owned[0], second_owned[0], first_owned[1], second_owned[1]):
        result = sipp_register(fd, number, phone_port(), password="wrong-password",
                               scenario="reg_bad_auth.xml")
        assert result.ok, result.describe()  # 401, then 401 again to the wrong answer
    wait_for("the block in the log", lambda: "blocking 127.0.0.1" in fd.log_tail(200))
    # no process answers 127.0.0.1 any more, whoever owns the extension
    time.sleep(0.3)  # the block reaches the workers over their links
    assert raw_register(fd, first_owned[0]) is None
    assert raw_register(fd, second_owned[0]) is None
    assert options_ping(fd.sip_port, 1.0) is None  # the main process drops it too
    wait_for("the four failures in /health",
             lambda: health(fd)["sip"].get("auth_failures", 0) >= 4)
    time.sleep(0.3)
    assert health(fd)["sip"].get("auth_failures", 0) == 4


def test_kill_9_of_the_main_process_keeps_every_registration(fd: FrontdeskProcess) -> None:
    first_owned, second_owned = split_by_owner(fd)
    numbers = [first_owned[0], second_owned[0]]
    for number in numbers:
        reg = sipp_register(fd, number, phone_port())
        assert reg.ok, reg.describe()
    wait_for("both bindings in the database",
             lambda: {r["aor"] for r in read_registrations(fd)} >= set(numbers))
    workers = [worker_pid(fd, 1), worker_pid(fd, 2)]
    fd.kill9()
    # the workers do not outlive the main process (they would hold the SIP port)
    wait_for("the workers to exit with the main process",
             lambda: not any(alive(pid) for pid in workers))
    fd.start()
    wait_ready(fd, 1, 2)
    wait_ready(fd, 2, 2)
    assert {r["aor"] for r in read_registrations(fd)} >= set(numbers)
    assert health(fd)["registrations"] >= 2
