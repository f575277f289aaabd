"""What the server keeps across a graceful restart and across ``kill -9``.

Registrations: a phone registered before the stop is called after the start, without
registering again (the binding came back from the database / journal). CDRs: a call that
ended right before ``kill -9`` keeps its answered record; a call that was in progress is
closed as "interrupted" when the server starts again. The kill comes straight after the
SIP exchange, with no wait for the database: the write-behind journal must have it.
"""

from __future__ import annotations

import pytest
from frontdesk_proc import FrontdeskProcess
from integration_kit import (
    assert_healthy,
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

pytestmark = [pytest.mark.peers, pytest.mark.timeout(150)]


def _register(fd: FrontdeskProcess, number: str) -> int:
    port = phone_port()
    reg = sipp_register(fd, number, port)
    assert reg.ok, reg.describe()
    return port


def _call_reaches_phone(fd: FrontdeskProcess, callee: str, port: int) -> None:
    with sipp_phone("uas_answer.xml", port) as phone:
        caller = sipp_call(fd, "101", callee, pause_ms=300)
        callee_result = phone.wait()
    assert caller.ok, caller.describe()
    assert callee_result.ok, callee_result.describe()
    cdr = wait_cdr(fd, callee)
    assert (cdr["disposition"], cdr["callee_answered_by"]) == ("answered", callee), cdr


def test_registrations_survive_graceful_restart_and_kill9(frontdesk: FrontdeskProcess) -> None:
    fd = frontdesk
    port_102 = _register(fd, "102")
    wait_for("binding of 102", lambda: [r for r in read_registrations(fd) if r["aor"] == "102"])
    fd.stop()  # SIGTERM: flushes the journal and exits
    fd.start()
    mark = log_size(fd)
    _call_reaches_phone(fd, "102", port_102)
    assert_healthy(fd, mark)

    port_103 = _register(fd, "103")
    fd.kill9()  # at once: the binding may exist only in the journal
    fd.start()
    mark = log_size(fd)
    assert [r["port"] for r in read_registrations(fd) if r["aor"] == "103"] == [port_103]
    _call_reaches_phone(fd, "103", port_103)
    assert_healthy(fd, mark)


def test_cdrs_survive_kill9_and_a_call_in_progress_is_interrupted(
        frontdesk: FrontdeskProcess) -> None:
    fd = frontdesk
    port_102 = _register(fd, "102")
    port_103 = _register(fd, "103")
    wait_for("bindings", lambda: len(read_registrations(fd)) == 2)

    # a completed call, then kill -9 the moment the caller has its 200 to BYE
    with sipp_phone("uas_answer.xml", port_102) as phone:
        caller = sipp_call(fd, "101", "102", pause_ms=500)
        fd.kill9()
        callee = phone.wait()
    assert caller.ok, caller.describe()
    assert callee.ok, callee.describe()
    fd.start()
    done = wait_cdr(fd, "102")
    assert (done["disposition"], done["hangup_side"]) == ("answered", "caller"), done
    assert done["billsec"] >= 0.45, done

    # a call in progress (answered, talking) when the server is killed
    with sipp_phone("uas_answer.xml", port_103, timeout=60) as phone:
        talking = sipp_call(fd, "101", "103", pause_ms=60_000, timeout=60, background=True)
        try:
            wait_for("the call to 103 answered", lambda: [
                c for c in read_cdrs(fd) if c["callee"] == "103" and c["answered_at"]], 15)
            fd.kill9()
        finally:
            talking.stop()
        phone.stop()
    fd.start()
    mark = log_size(fd)
    cdr = wait_cdr(fd, "103")
    assert (cdr["disposition"], cdr["hangup_side"]) == ("interrupted", "system"), cdr
    assert cdr["answered_at"] and cdr["ended_at"], cdr
    # the answered call before is untouched
    assert [c["disposition"] for c in read_cdrs(fd) if c["callee"] == "102"] == ["answered"]
    assert_healthy(fd, mark)
