"""Real phones through a real Frontdesk: baresip and linphonec register with the demo tenant
and call each other; each must hear what the other played (cross-correlation >= 0.9), the
call ends from either side, and the CDR says what happened.

The audio flows directly between the phones (Frontdesk passes SDP through unchanged), so
these tests prove the signalling is right end to end: registration with digest auth, the
INVITE forked to the registered contact, 180/200/ACK, BYE from either side.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from frontdesk_proc import FrontdeskProcess
from integration_kit import registered_baresip

from peers import (
    BaresipPhone,
    LinphonePhone,
    aligned_correlation,
    best_correlation,
    pad_silence,
    speech_wav,
)
from peers.audio import duration
from peers.linphone import CONNECTED, ENDED, INCOMING

pytestmark = [pytest.mark.peers, pytest.mark.timeout(120)]

HEARD, NOT_HEARD = 0.9, 0.3


class Voices:
    def __init__(self, folder: Path) -> None:
        self.a = speech_wav(folder / "a.wav", "This is the office manager. Three green apples on the desk.")
        self.b = speech_wav(folder / "b.wav", "Service manager speaking. The technician arrives at noon.")
        self.a_play = pad_silence(self.a, folder / "a_play.wav", before=0.3, after=30.0)
        self.b_play = pad_silence(self.b, folder / "b_play.wav", before=0.3, after=30.0)

    def talk_time(self) -> float:
        return max(duration(self.a), duration(self.b)) + 1.5


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Voices:
    return Voices(tmp_path_factory.mktemp("voices"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FrontdeskProcess]:
    fd = FrontdeskProcess(tmp_path / "fd")
    fd.init_demo()
    fd.start()
    yield fd
    fd.stop()
    print(f"\n--- frontdesk log ---\n{fd.log_tail(80)}")
    assert "Traceback" not in fd.log_tail(10_000)


def registered_linphone(make: Callable[..., LinphonePhone], fd: FrontdeskProcess, number: str,
                        **options: object) -> LinphonePhone:
    phone = make(number, password=fd.password(number), domain="127.0.0.1",
                 proxy=f"sip:127.0.0.1:{fd.sip_port}", **options)
    phone.wait_registered(timeout=10)
    return phone


def wait_cdr(fd: FrontdeskProcess, disposition: str, timeout: float = 5.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        done = [c for c in fd.cdrs() if c["disposition"] == disposition]
        if done or time.monotonic() > deadline:
            assert done, f"no CDR with disposition {disposition}: {fd.cdrs()}"
            return done[0]
        time.sleep(0.2)


def test_baresip_calls_linphonec_through_frontdesk(
    server: FrontdeskProcess, baresip_phone: Callable[..., BaresipPhone],
    linphone_phone: Callable[..., LinphonePhone], voices: Voices,
) -> None:
    office = registered_baresip(baresip_phone, server, "101", audio_file=voices.a_play)
    service = registered_linphone(linphone_phone, server, "102", play_file=voices.b_play)

    office.dial(f"sip:102@127.0.0.1:{server.sip_port}")
    service.wait_for(INCOMING, timeout=10)
    service.answer()
    service.wait_for(CONNECTED)
    office.wait_event("CALL_ESTABLISHED", timeout=10)
    time.sleep(voices.talk_time())
    office.hangup()
    office.wait_event("CALL_CLOSED")
    service.wait_for(ENDED, timeout=10)

    heard_by_service = aligned_correlation(service.heard(), voices.a)
    heard_by_office = best_correlation(office.last_recording().heard, voices.b)
    assert heard_by_service >= HEARD and heard_by_office >= HEARD, (heard_by_service, heard_by_office)
    assert best_correlation(office.last_recording().heard, voices.a) < NOT_HEARD
    cdr = wait_cdr(server, "answered")
    assert (cdr["caller"], cdr["callee"], cdr["hangup_side"]) == ("101", "102", "caller")
    assert float(cdr["billsec"]) >= voices.talk_time() - 1  # type: ignore[arg-type]


def test_linphonec_calls_baresip_and_the_callee_hangs_up(
    server: FrontdeskProcess, baresip_phone: Callable[..., BaresipPhone],
    linphone_phone: Callable[..., LinphonePhone], voices: Voices,
) -> None:
    office = registered_baresip(baresip_phone, server, "101", audio_file=voices.a_play,
                                answermode="auto")
    coordinator = registered_linphone(linphone_phone, server, "103", play_file=voices.b_play)

    coordinator.call(f"sip:101@127.0.0.1:{server.sip_port}")
    coordinator.wait_for(CONNECTED, timeout=10)
    office.wait_event("CALL_ESTABLISHED", timeout=10)
    time.sleep(voices.talk_time())
    office.hangup()
    office.wait_event("CALL_CLOSED")
    coordinator.wait_for(ENDED, timeout=10)

    assert best_correlation(office.last_recording().heard, voices.b) >= HEARD
    assert aligned_correlation(coordinator.heard(), voices.a) >= HEARD
    cdr = wait_cdr(server, "answered")
    assert (cdr["caller"], cdr["callee"], cdr["hangup_side"]) == ("103", "101", "callee")


def test_baresip_to_baresip_with_dtmf_and_a_tcp_phone(
    server: FrontdeskProcess, baresip_phone: Callable[..., BaresipPhone], voices: Voices,
) -> None:
    office = registered_baresip(baresip_phone, server, "101", audio_file=voices.a_play)
    tech = registered_baresip(baresip_phone, server, "201", audio_file=voices.b_play,
                              answermode="auto", account_params=";transport=tcp")
    office.dial(f"sip:201@127.0.0.1:{server.sip_port}")
    office.wait_event("CALL_ESTABLISHED", timeout=10)
    tech.wait_event("CALL_ESTABLISHED", timeout=10)
    office.send_dtmf("42#")
    got = "".join(tech.wait_event("CALL_DTMF_START", timeout=5).param for _ in "42#")
    time.sleep(voices.talk_time())
    tech.hangup()
    office.wait_event("CALL_CLOSED", timeout=10)
    assert got == "42#"
    assert best_correlation(tech.last_recording().heard, voices.a) >= HEARD
    assert best_correlation(office.last_recording().heard, voices.b) >= HEARD


def test_busy_phone_rejects_and_caller_hears_busy(
    server: FrontdeskProcess, baresip_phone: Callable[..., BaresipPhone],
) -> None:
    office = registered_baresip(baresip_phone, server, "101")
    tech = registered_baresip(baresip_phone, server, "202")
    office.dial(f"sip:202@127.0.0.1:{server.sip_port}")
    tech.wait_event("CALL_INCOMING", timeout=10)
    tech.hangup()  # rejecting an incoming call: baresip answers 486 Busy Here
    closed = office.wait_event("CALL_CLOSED", timeout=10)
    assert "486" in str(closed.param) or "Busy" in str(closed.param), closed
    assert wait_cdr(server, "busy")["callee"] == "202"
