"""The transfer key of a real phone against a real `frontdesk serve`: the receptionist's
baresip answers a call and blind-transfers it (``/transfer``: REFER in the call's dialog);
the PBX moves the caller to extension 103 (RFC 3725 re-bridge), the receptionist's call
ends, the caller and 103 hear each other (correlation >= 0.9), and the CDR records who
transferred the call to whom."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from frontdesk_proc import FrontdeskProcess
from integration_kit import registered_baresip
from test_call_control_live import (
    ENV,
    HEARD,
    answered_cdr,
    cdr_path,
    dial,
    lead_then,
    moved_caller,
    running,
    speaking,
    voices,
)

from peers import BaresipPhone, best_correlation
from peers.audio import duration

pytestmark = [pytest.mark.peers, pytest.mark.timeout(180)]
__all__ = ["voices"]  # the fixture, shared with the call-control live tests


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FrontdeskProcess]:
    fd = FrontdeskProcess(tmp_path / "fd")
    fd.init_demo()
    fd.start(extra_env=ENV)
    with running(fd):
        yield fd


def test_receptionist_blind_transfers_with_the_phones_transfer_key(
    server: FrontdeskProcess,
    baresip_phone: Callable[..., BaresipPhone],
    voices: dict[str, Path],
    tmp_path: Path,
) -> None:
    fd = server
    receptionist = registered_baresip(baresip_phone, fd, "102", answermode="auto")
    manager = speaking(
        baresip_phone, fd, "103", lead_then(tmp_path, "manager", 1.5, voices["manager"])
    )
    # the caller's far end changes by re-INVITE: no jitter buffer (baresip 1.0, see NO_JITTER_BUFFER)
    caller = moved_caller(baresip_phone, fd, lead_then(tmp_path, "caller", 6.0, voices["caller"]))
    dial(caller, fd, "102")
    receptionist.wait_event("CALL_ESTABLISHED", timeout=10)
    time.sleep(1.0)
    receptionist.transfer(f"sip:103@127.0.0.1:{fd.sip_port}")
    manager.wait_event("CALL_ESTABLISHED", timeout=10)
    receptionist.wait_event("CALL_CLOSED", timeout=10)  # her leg ends after the transfer
    time.sleep(5.0 + duration(voices["caller"]) + 1.0)
    caller.hangup()
    manager.wait_event("CALL_CLOSED", timeout=10)
    heard_by_caller = best_correlation(caller.last_recording().heard, voices["manager"])
    heard_by_manager = best_correlation(manager.last_recording().heard, voices["caller"])
    print(
        f"after the transfer key: caller hears 103 {heard_by_caller:.3f}, "
        f"103 hears the caller {heard_by_manager:.3f}"
    )
    assert min(heard_by_caller, heard_by_manager) >= HEARD
    cdr = answered_cdr(fd)
    assert (cdr["caller"], cdr["callee"], cdr["callee_answered_by"]) == ("101", "102", "103")
    _, extra = cdr_path(fd, cdr["id"])
    (action,) = extra["call_control"]
    assert (action["action"], action["kind"], action["via"]) == ("transfer", "blind", "REFER")
    assert (action["actor"], action["target"], action["status"]) == ("102", "103", "connected")
