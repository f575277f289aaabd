"""Call control on live calls with real phones (baresip) against a real `frontdesk serve`:
a flow's Play node answers the caller with our media (baresip hears the prompt, correlation
>= 0.9 with the rendered prompt), the next ring step re-bridges the caller to another phone
(RFC 3725: delayed-offer INVITE, re-INVITE with the callee's offer) and both hear each other;
a Menu node driven by DTMF; and the CDR path for both."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from frontdesk_proc import FrontdeskProcess
from inprocess_server import InProcessServer
from integration_kit import registered_baresip

from frontdesk.media.prompts import PromptLibrary
from peers import (
    BaresipPhone,
    LinphonePhone,
    aligned_correlation,
    best_correlation,
    pad_silence,
    silence_wav,
    speech_wav,
    start_sipp,
)
from peers.audio import concat_wavs, duration
from peers.linphone import CONNECTED, ENDED

pytestmark = [pytest.mark.peers, pytest.mark.timeout(180)]
HEARD = 0.9
#: baresip 1.0.0 flushes its jitter buffer when the SSRC changes (a re-INVITE to another
#: phone) but keeps the old sequence number as the one to play next, so a new phone whose
#: sequence numbers are "behind" (linphonec starts at 0) is dropped as too late for the rest
#: of the call ("dropping ... (Connection timed out)"). A caller whose media is moved runs
#: without the jitter buffer; the RTP reaches it either way (checked in the capture).
NO_JITTER_BUFFER = ("jitter_buffer_delay 0-0",)
ENV = {"FRONTDESK_RTP_PORTS": "0", "FRONTDESK_MEDIA_TIMEOUT": "20"}
WELCOME = "Thank you for calling Acme. Please hold while we connect you."
MENU = "For the service manager, press one. For the coordinator, press two."

PLAY_FLOW = f"""\
name: front-desk
title: a prompt, then the service manager
timezone: UTC
messages:
  welcome: "{WELCOME}"
nodes:
  start: {{type: start, next: welcome}}
  welcome: {{type: play, message: welcome, next: ring-sm}}
  ring-sm: {{type: ring, targets: ["102"], timeout: 15, no_answer: goodbye, busy: goodbye}}
  goodbye: {{type: hangup}}
"""

MENU_FLOW = f"""\
name: front-desk
title: a menu
timezone: UTC
messages:
  menu: "{MENU}"
nodes:
  start: {{type: start, next: choose}}
  choose:
    type: menu
    prompt: menu
    choices: {{"1": ring-sm, "2": ring-sc}}
    timeout: 8
    retries: 1
    no_input: goodbye
    invalid: goodbye
  ring-sm: {{type: ring, targets: ["102"], timeout: 15, no_answer: goodbye, busy: goodbye}}
  ring-sc: {{type: ring, targets: ["103"], timeout: 15, no_answer: goodbye, busy: goodbye}}
  goodbye: {{type: hangup}}
"""

VOICEMAIL_FLOW = f"""\
name: front-desk
title: a prompt, the service manager for 5 s, then his voicemail
timezone: UTC
messages:
  welcome: "{WELCOME}"
nodes:
  start: {{type: start, next: welcome}}
  welcome: {{type: play, message: welcome, next: ring-sm}}
  ring-sm: {{type: ring, targets: ["102"], timeout: 5, no_answer: vm, busy: vm}}
  vm: {{type: voicemail, mailbox: "102"}}
"""


def cli(fd: FrontdeskProcess, *args: str) -> Any:
    """``frontdesk <args> --data <fd's data dir>``."""
    return fd.cli(*args, "--data", str(fd.data_dir))


def serve(tmp: Path, flow: str, *setup: tuple[str, ...]) -> FrontdeskProcess:
    fd = FrontdeskProcess(tmp / "fd")
    fd.init_demo()
    for args in setup:
        cli(fd, *args)
    (tmp / "flow.yaml").write_text(flow)
    cli(fd, "flow", "publish", "--file", str(tmp / "flow.yaml"), "--actor", "test")
    fd.start(extra_env=ENV)
    return fd


@contextmanager
def running(fd: FrontdeskProcess) -> Iterator[FrontdeskProcess]:
    """Stops ``fd`` and prints its log however the block ends; if the block passed, checks
    that no traceback reached the log."""
    try:
        yield fd
    finally:
        fd.stop()
        print(f"\n--- frontdesk log ---\n{fd.log_tail(120)}")
    assert "Traceback" not in fd.log_tail(10_000)


@pytest.fixture
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("voices")
    prompts = PromptLibrary(tmp)
    return {
        "welcome": prompts.render(WELCOME),
        "menu": prompts.render(MENU),
        "caller": speech_wav(
            tmp / "caller.wav",
            "Hello, my printer is broken again, can somebody please come over this afternoon?",
        ),
        "manager": speech_wav(
            tmp / "manager.wav", "Service desk, this is Dana speaking, how can I help you today?"
        ),
    }


def speaking(
    make: Callable[..., BaresipPhone],
    fd: FrontdeskProcess,
    number: str,
    audio_file: Path,
    **options: Any,
) -> BaresipPhone:
    """An auto-answering phone that plays ``audio_file``."""
    return registered_baresip(make, fd, number, answermode="auto", audio_file=audio_file, **options)


def moved_caller(
    make: Callable[..., BaresipPhone], fd: FrontdeskProcess, audio_file: Path
) -> BaresipPhone:
    """Extension 101 playing ``audio_file``, without the jitter buffer (NO_JITTER_BUFFER)."""
    return registered_baresip(make, fd, "101", extra_config=NO_JITTER_BUFFER, audio_file=audio_file)


def dial(caller: BaresipPhone, fd: FrontdeskProcess, number: str) -> None:
    caller.dial(f"sip:{number}@127.0.0.1:{fd.sip_port}")


def lead_then(tmp: Path, name: str, lead: float, voice: Path) -> Path:
    """``lead`` seconds of silence, ``voice``, then a long silence (baresip hangs up when
    its audio file ends)."""
    first = silence_wav(tmp / f"{name}-lead.wav", lead)
    tail = pad_silence(voice, tmp / f"{name}-tail.wav", after=40.0)
    return concat_wavs(tmp / f"{name}.wav", first, tail)


def answered_cdr(fd: FrontdeskProcess, timeout: float = 8.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        done = [c for c in fd.cdrs() if c["disposition"] == "answered" and c["ended_at"]]
        if done or time.monotonic() > deadline:
            assert done, fd.cdrs()
            return done[0]
        time.sleep(0.2)


def cdr_path(fd: FrontdeskProcess, cdr_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    with sqlite3.connect(fd.data_dir / "frontdesk.db") as db:
        path, extra = db.execute("select path, extra from cdrs where id = ?", (cdr_id,)).fetchone()
    return json.loads(path or "[]"), json.loads(extra or "{}")


def stored_messages(fd: FrontdeskProcess, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The voicemail messages, once there is at least one."""
    deadline = time.monotonic() + timeout
    while not (found := json.loads(cli(fd, "voicemail", "list", "--json").stdout)):
        assert time.monotonic() < deadline, "no message stored"
        time.sleep(0.3)
    return found


@pytest.fixture
def play_server(tmp_path: Path) -> Iterator[FrontdeskProcess]:
    with running(serve(tmp_path, PLAY_FLOW)) as fd:
        yield fd


def test_prompt_then_ring_connects_both_phones(
    play_server: FrontdeskProcess,
    baresip_phone: Callable[..., BaresipPhone],
    voices: dict[str, Path],
    tmp_path: Path,
) -> None:
    fd = play_server
    prompt_seconds = duration(voices["welcome"])
    manager = speaking(
        baresip_phone, fd, "102", lead_then(tmp_path, "manager", 1.5, voices["manager"])
    )
    caller = moved_caller(
        baresip_phone, fd, lead_then(tmp_path, "caller", prompt_seconds + 4.0, voices["caller"])
    )
    dial(caller, fd, "100")
    caller.wait_event("CALL_ESTABLISHED", timeout=10)  # our media answers: the prompt
    manager.wait_event("CALL_ESTABLISHED", timeout=prompt_seconds + 10)
    time.sleep(4.0 + duration(voices["caller"]) + 1.0)
    caller.hangup()
    manager.wait_event("CALL_CLOSED", timeout=10)

    heard = caller.last_recording().heard
    scores = (
        best_correlation(heard, voices["welcome"]),
        best_correlation(heard, voices["manager"]),
        best_correlation(manager.last_recording().heard, voices["caller"]),
    )
    print(
        f"correlation: prompt {scores[0]:.3f}, caller hears manager {scores[1]:.3f}, "
        f"manager hears caller {scores[2]:.3f}"
    )
    assert min(scores) >= HEARD, scores
    cdr = answered_cdr(fd)
    assert (cdr["caller"], cdr["callee"], cdr["callee_answered_by"]) == ("101", "100", "102")
    path, extra = cdr_path(fd, cdr["id"])
    nodes = [step["node"] for step in path]
    assert nodes[:3] == ["start", "welcome", "welcome"] and "ring-sm" in nodes, path
    assert "skipped" not in extra and extra["flow"] == "front-desk"
    assert len(fd.cdrs()) == 1  # one call, one record, the same id throughout


@pytest.fixture
def menu_server(tmp_path: Path) -> Iterator[FrontdeskProcess]:
    with running(serve(tmp_path, MENU_FLOW)) as fd:
        yield fd


def test_menu_key_two_rings_the_coordinator(
    menu_server: FrontdeskProcess,
    baresip_phone: Callable[..., BaresipPhone],
    voices: dict[str, Path],
    tmp_path: Path,
) -> None:
    fd = menu_server
    manager = registered_baresip(baresip_phone, fd, "102", answermode="auto")
    coordinator = speaking(
        baresip_phone, fd, "103", lead_then(tmp_path, "coord", 1.0, voices["manager"])
    )
    caller = registered_baresip(baresip_phone, fd, "101", extra_config=NO_JITTER_BUFFER)
    dial(caller, fd, "100")
    caller.wait_event("CALL_ESTABLISHED", timeout=10)
    time.sleep(1.5)  # into the prompt: type-ahead cuts it short
    caller.send_dtmf("2")
    coordinator.wait_event("CALL_ESTABLISHED", timeout=10)
    time.sleep(1.0 + duration(voices["manager"]) + 1.0)
    caller.hangup()
    coordinator.wait_event("CALL_CLOSED", timeout=10)
    assert "CALL_INCOMING" not in manager.event_types()
    heard = caller.last_recording().heard
    assert best_correlation(heard, voices["manager"]) >= HEARD
    cdr = answered_cdr(fd)
    assert cdr["callee_answered_by"] == "103"
    path, _ = cdr_path(fd, cdr["id"])
    notes = " / ".join(step["note"] for step in path)
    assert "caller pressed 2" in notes and "ring-sc" in [s["node"] for s in path], path


def test_nobody_answers_after_the_prompt_so_voicemail_takes_the_message(
    tmp_path: Path, baresip_phone: Callable[..., BaresipPhone], voices: dict[str, Path]
) -> None:
    greeting = tmp_path / "greeting.wav"
    fd = serve(
        tmp_path,
        VOICEMAIL_FLOW,  # into the demo's mailbox 102
        ("voicemail", "greeting", "render", "102", "--out", str(greeting)),
    )
    with running(fd):
        manager = registered_baresip(baresip_phone, fd, "102")  # rings, nobody picks up
        lead = duration(voices["welcome"]) + 5.0 + duration(greeting) + 2.5
        caller = registered_baresip(
            baresip_phone,
            fd,
            "101",
            audio_file=lead_then(tmp_path, "caller", lead, voices["caller"]),
        )
        dial(caller, fd, "100")
        caller.wait_event("CALL_ESTABLISHED", timeout=10)
        manager.wait_event("CALL_INCOMING", timeout=duration(voices["welcome"]) + 5)
        manager.wait_event("CALL_CLOSED", timeout=8)  # cancelled after its 5 s
        time.sleep(lead - duration(voices["welcome"]) - 5.0 + duration(voices["caller"]))
        caller.hangup()
        caller.wait_event("CALL_CLOSED", timeout=5)
        heard = caller.last_recording().heard
        scores = [best_correlation(heard, voices["welcome"]), best_correlation(heard, greeting)]
        found = stored_messages(fd)
        out = tmp_path / "message.wav"
        cli(fd, "voicemail", "export", found[0]["id"], str(out))
        scores.append(best_correlation(out, voices["caller"]))
        print("prompt, greeting, stored message: " + ", ".join(f"{x:.3f}" for x in scores))
        assert min(scores) >= HEARD, scores
        (cdr,) = fd.cdrs()
        path, _ = cdr_path(fd, cdr["id"])
        assert [s["node"] for s in path][-1] == "vm", path
        assert cdr["callee_answered_by"] == "frontdesk" and cdr["ended_at"], cdr


# --- answer-time actions: server.call_control on an answered call ---------------------------


class Office:
    """The demo tenant (with its mailbox 102) in an in-process PbxServer (see
    inprocess_server)."""

    def __init__(self, tmp: Path) -> None:
        self.fd = FrontdeskProcess(tmp / "fd")  # for the CLI and the demo passwords
        self.fd.init_demo()
        self.greeting = tmp / "greeting.wav"
        self.cli("voicemail", "greeting", "render", "102", "--out", str(self.greeting))
        self.live = InProcessServer(self.fd.data_dir, ENV).start()
        self.fd.sip_port = self.live.sip_port

    def cli(self, *args: str) -> Any:
        return cli(self.fd, *args)

    def answered(self, caller: BaresipPhone, callee: BaresipPhone, number: str) -> str:
        """``caller`` (extension 101) dials ``number``, ``callee`` answers: the CDR id."""
        dial(caller, self.fd, number)
        callee.wait_event("CALL_ESTABLISHED", timeout=10)
        return self.live_call("101")

    def live_call(self, caller: str) -> str:
        """The CDR id of the answered call from ``caller``."""

        def find(server: Any) -> list[str]:
            return [
                c.id
                for c, side in server.engine.calls.dialogs.values()
                if side == "a" and c.caller == caller and c.state == "answered"
            ]

        deadline = time.monotonic() + 5
        while not (found := self.live.inspect(find)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(found) == 1, found
        return found[0]

    def control(self) -> Any:
        assert self.live.server is not None
        return self.live.server.call_control


@pytest.fixture
def office(tmp_path: Path) -> Iterator[Office]:
    made = Office(tmp_path)
    yield made
    made.live.stop()


def test_transfer_moves_the_caller_to_another_phone(
    office: Office,
    baresip_phone: Callable[..., BaresipPhone],
    voices: dict[str, Path],
    tmp_path: Path,
) -> None:
    fd = office.fd
    receptionist = registered_baresip(baresip_phone, fd, "102", answermode="auto")
    manager = speaking(
        baresip_phone, fd, "103", lead_then(tmp_path, "manager", 1.5, voices["manager"])
    )
    caller = moved_caller(baresip_phone, fd, lead_then(tmp_path, "caller", 5.0, voices["caller"]))
    cdr_id = office.answered(caller, receptionist, "102")
    started = time.monotonic()
    result = office.live.run(office.control().transfer(cdr_id, "103", "dana@acme"))
    print(f"transfer to an auto-answering baresip took {time.monotonic() - started:.3f} s")
    assert result["status"] == "connected" and result["answered_by"] == "103", result
    receptionist.wait_event("CALL_CLOSED", timeout=5)  # BYE to the old callee
    manager.wait_event("CALL_ESTABLISHED", timeout=5)
    time.sleep(5.0 + duration(voices["caller"]) + 1.0)
    caller.hangup()
    manager.wait_event("CALL_CLOSED", timeout=10)
    heard_by_caller = best_correlation(caller.last_recording().heard, voices["manager"])
    heard_by_manager = best_correlation(manager.last_recording().heard, voices["caller"])
    print(
        f"after transfer: caller hears manager {heard_by_caller:.3f}, "
        f"manager hears caller {heard_by_manager:.3f}"
    )
    assert min(heard_by_caller, heard_by_manager) >= HEARD
    cdr = answered_cdr(fd)
    assert cdr["id"] == cdr_id and cdr["callee_answered_by"] == "103"
    _, extra = cdr_path(fd, cdr_id)
    (action,) = extra["call_control"]
    assert (action["action"], action["target"], action["actor"], action["status"]) == (
        "transfer",
        "103",
        "dana@acme",
        "connected",
    )


def test_transfer_to_a_linphonec_phone(
    office: Office,
    baresip_phone: Callable[..., BaresipPhone],
    linphone_phone: Callable[..., LinphonePhone],
    voices: dict[str, Path],
    tmp_path: Path,
) -> None:
    """A second SIP stack answers the delayed-offer INVITE with its own offer."""
    fd = office.fd
    receptionist = registered_baresip(baresip_phone, fd, "102", answermode="auto")
    coordinator = linphone_phone(
        "103",
        password=fd.password("103"),
        domain="127.0.0.1",
        proxy=f"sip:127.0.0.1:{fd.sip_port}",
        autoanswer=True,
        play_file=pad_silence(voices["manager"], tmp_path / "coord.wav", before=1.0, after=1.0),
    )
    coordinator.wait_registered(timeout=10)
    caller = moved_caller(baresip_phone, fd, lead_then(tmp_path, "caller", 5.0, voices["caller"]))
    cdr_id = office.answered(caller, receptionist, "102")
    result = office.live.run(office.control().transfer(cdr_id, "103", "dana@acme"))
    assert result["status"] == "connected", result
    coordinator.wait_for(CONNECTED, timeout=5)
    receptionist.wait_event("CALL_CLOSED", timeout=5)
    time.sleep(5.0 + duration(voices["caller"]) + 1.0)
    caller.hangup()
    coordinator.wait_for(ENDED, timeout=10)
    heard_by_caller = best_correlation(caller.last_recording().heard, voices["manager"])
    heard_by_coordinator = aligned_correlation(coordinator.heard(), voices["caller"])
    print(
        f"linphonec: caller hears it {heard_by_caller:.3f}, it hears the caller "
        f"{heard_by_coordinator:.3f}"
    )
    assert min(heard_by_caller, heard_by_coordinator) >= HEARD


def test_to_voicemail_leaves_a_message(
    office: Office,
    baresip_phone: Callable[..., BaresipPhone],
    voices: dict[str, Path],
    tmp_path: Path,
) -> None:
    fd = office.fd
    technician = registered_baresip(baresip_phone, fd, "103", answermode="auto")
    lead = 3.0 + duration(office.greeting) + 2.0
    caller = moved_caller(baresip_phone, fd, lead_then(tmp_path, "caller", lead, voices["caller"]))
    cdr_id = office.answered(caller, technician, "103")
    time.sleep(1.0)
    result = office.live.run(office.control().to_voicemail(cdr_id, "102", "dana@acme"))
    assert result["status"] == "voicemail", result
    technician.wait_event("CALL_CLOSED", timeout=5)
    time.sleep(lead + duration(voices["caller"]) - 1.0)
    caller.hangup()
    caller.wait_event("CALL_CLOSED", timeout=5)
    greeting = best_correlation(caller.last_recording().heard, office.greeting)
    (message,) = stored_messages(fd)
    out = tmp_path / "message.wav"
    office.cli("voicemail", "export", message["id"], str(out))
    stored = best_correlation(out, voices["caller"])
    print(f"to voicemail: caller hears greeting {greeting:.3f}, message holds voice {stored:.3f}")
    assert greeting >= HEARD and stored >= HEARD
    cdr = answered_cdr(fd)
    assert cdr["id"] == cdr_id and cdr["callee_answered_by"] == "frontdesk"
    _, extra = cdr_path(fd, cdr_id)
    assert extra["call_control"][0]["action"] == "to_voicemail"
    assert extra["call_control"][0]["status"] == "voicemail"


def test_unknown_calls_and_targets_get_clear_errors(
    office: Office, baresip_phone: Callable[..., BaresipPhone]
) -> None:
    from frontdesk.pbx.callcontrol_live import CallControlError, UnknownCall, UnknownTarget

    control = office.control()
    with pytest.raises(UnknownCall, match="not a live call"):
        office.live.run(control.transfer("no-such-call", "103", "dana"))
    fd = office.fd
    callee = registered_baresip(baresip_phone, fd, "103", answermode="auto")
    caller = registered_baresip(baresip_phone, fd, "101")
    cdr_id = office.answered(caller, callee, "103")
    with pytest.raises(UnknownTarget, match="extension 999 does not exist"):
        office.live.run(control.transfer(cdr_id, "999", "dana"))
    with pytest.raises(CallControlError, match="no registered phone"):
        office.live.run(control.transfer(cdr_id, "201", "dana"))
    with pytest.raises(UnknownTarget, match="mailbox 104 does not exist"):  # 101-203 have one
        office.live.run(control.to_voicemail(cdr_id, "104", "dana"))
    caller.hangup()
    callee.wait_event("CALL_CLOSED", timeout=5)


# --- SIPp as the phone the caller is moved to: the signalling on the wire --------------------

SCENARIOS = Path(__file__).parent / "scenarios"


def sipp_as_103(office: Office, scenario: str) -> Any:
    """SIPp answering as extension 103 (its binding put straight into the location
    service: the registration is not what is tested here)."""
    from frontdesk.pbx.location import Binding
    from frontdesk.sip.peer import Peer

    sipp = start_sipp(SCENARIOS / scenario, None, timeout=30)
    port = sipp.local_port

    def bind(server: Any) -> None:
        tenant = server.engine.directory.default.id
        now = asyncio.get_running_loop().time()
        peer = Peer("udp", "127.0.0.1", port)
        binding = Binding(tenant, "103", f"sip:103@127.0.0.1:{port}", peer, now + 300, "sipp", 1)
        server.engine.location.save(binding, 5)

    office.live.inspect(bind)
    return sipp


def test_sipp_checks_the_delayed_offer_and_the_ack_with_the_answer(
    office: Office, baresip_phone: Callable[..., BaresipPhone]
) -> None:
    fd = office.fd
    receptionist = registered_baresip(baresip_phone, fd, "102", answermode="auto")
    caller = registered_baresip(baresip_phone, fd, "101")
    sipp = sipp_as_103(office, "uas_delayed_offer.xml")
    with sipp:
        cdr_id = office.answered(caller, receptionist, "102")
        result = office.live.run(office.control().transfer(cdr_id, "103", "dana@acme"))
        if result["status"] != "connected":
            raise AssertionError(f"{result}\n{sipp.stop().describe()}")
        receptionist.wait_event("CALL_CLOSED", timeout=5)
        time.sleep(1.0)
        caller.hangup()
        outcome = sipp.wait(20)
    assert outcome.ok, outcome.describe()


def test_sipp_busy_target_leaves_the_caller_where_it_was(
    office: Office, baresip_phone: Callable[..., BaresipPhone]
) -> None:
    fd = office.fd
    receptionist = registered_baresip(baresip_phone, fd, "102", answermode="auto")
    caller = registered_baresip(baresip_phone, fd, "101")
    sipp = sipp_as_103(office, "uas_busy.xml")
    with sipp:
        cdr_id = office.answered(caller, receptionist, "102")
        result = office.live.run(office.control().transfer(cdr_id, "103", "dana@acme"))
        outcome = sipp.wait(10)
    assert outcome.ok, outcome.describe()
    assert (result["status"], result["sip_code"]) == ("busy", 486), result
    assert "CALL_CLOSED" not in receptionist.event_types()  # still talking to 102
    assert office.live_call("101") == cdr_id
    caller.hangup()
    receptionist.wait_event("CALL_CLOSED", timeout=5)
    _, extra = cdr_path(fd, answered_cdr(fd)["id"])
    assert extra["call_control"][0]["status"] == "busy"
