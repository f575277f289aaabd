"""Voicemail, menus and message-waiting with real phones against a real `frontdesk serve`.

baresip leaves messages (what it heard must correlate >= 0.9 with the rendered greeting, the
stored message >= 0.9 with what it said, even after kill -9 right after hanging up);
linphonec listens to a message through *97 with its PIN; a SIPp subscriber gets the
message-waiting NOTIFYs with the right counts; DTMF drives a menu that transfers the caller;
SIPp offers a codec we lack (488) and misbehaves on RTP (garbage, wrong payload type,
silence); a message hits the maximum length; the disk fills up mid-message; the owner
records a personal greeting by phone that waits for the Phone Manager's approval (through
org's change path: audited, permission-checked), and callers then hear it.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from frontdesk_proc import FrontdeskProcess, options_ping
from integration_kit import registered_baresip

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
SCENARIOS = Path(__file__).parent / "scenarios"
ENV = {"FRONTDESK_RTP_PORTS": "0", "FRONTDESK_MEDIA_TIMEOUT": "5"}


class Office:
    """A server with the demo tenant, its mailbox 102 set to PIN 1234 (short to type), and
    the mailbox's rendered greeting."""

    def __init__(self, tmp: Path, *setup: list[str]) -> None:
        self.tmp = tmp
        self.fd = FrontdeskProcess(tmp / "fd")
        self.fd.init_demo()
        self.cli("voicemail", "mailbox", "set", "102", "--pin", "1234", "--escalate-to", "102")
        self.cli("voicemail", "template", "--var", "service_manager_extension=102")
        for args in setup:
            self.cli(*args)
        self.greeting = tmp / "greeting.wav"
        self.cli("voicemail", "greeting", "render", "102", "--out", str(self.greeting))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.fd.cli(*args, "--data", str(self.fd.data_dir))

    def start(self) -> Office:
        self.fd.start(extra_env=ENV)
        return self

    def messages(self) -> list[dict[str, Any]]:
        return list(json.loads(self.cli("voicemail", "list", "--json").stdout))

    def wait_messages(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages()
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.3)

    def export(self, message_id: str) -> Path:
        out = self.tmp / f"{message_id}.wav"
        self.cli("voicemail", "export", message_id, str(out))
        return out

    def caller_audio(self, voice: Path, name: str = "caller") -> Path:
        """What a caller's phone sends: silence through greeting and tone, then ``voice``."""
        lead = silence_wav(self.tmp / f"{name}-lead.wav", duration(self.greeting) + 1.5)
        tail = pad_silence(voice, self.tmp / f"{name}-tail.wav", after=40.0)
        return concat_wavs(self.tmp / f"{name}.wav", lead, tail)

    def log(self) -> str:
        return self.fd.log_tail(100_000)


@pytest.fixture(scope="module")
def voice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speech_wav(
        tmp_path_factory.mktemp("voice") / "message.wav",
        "Hello, this is Carol from Acme. The printer on the second floor is "
        "broken again, please call me back.",
    )


@pytest.fixture
def office(tmp_path: Path) -> Iterator[Office]:
    made = Office(tmp_path).start()
    yield made
    made.fd.stop()
    print(f"\n--- frontdesk log ---\n{made.fd.log_tail(150)}")
    assert "Traceback" not in made.log()


def baresip(
    make: Callable[..., BaresipPhone], office: Office, number: str, **options: Any
) -> BaresipPhone:
    return registered_baresip(make, office.fd, number, **options)


def leave_message(
    make: Callable[..., BaresipPhone],
    office: Office,
    voice: Path,
    *,
    dial: str = "102",
    end: str = "#",
    codecs: tuple[str, ...] = ("PCMU",),
) -> BaresipPhone:
    phone = baresip(make, office, "101", audio_file=office.caller_audio(voice), codecs=codecs)
    phone.dial(f"sip:{dial}@127.0.0.1:{office.fd.sip_port}")
    phone.wait_event("CALL_ESTABLISHED", timeout=10)
    time.sleep(duration(office.greeting) + 1.5 + duration(voice) + 1.0)
    if end == "#":
        phone.send_dtmf("#")
        phone.wait_event("CALL_CLOSED", timeout=15)  # "saved, goodbye", then our BYE
    else:
        phone.hangup()
        phone.wait_event("CALL_CLOSED", timeout=5)
    return phone


@pytest.mark.parametrize(("codec", "end"), [("PCMU", "#"), ("PCMA", "hangup")])
def test_baresip_leaves_a_message_that_survives_kill9(
    office: Office, baresip_phone: Callable[..., BaresipPhone], voice: Path, codec: str, end: str
) -> None:
    phone = leave_message(baresip_phone, office, voice, end=end, codecs=(codec,))
    office.fd.kill9()  # a moment after the caller is gone
    heard = best_correlation(phone.last_recording().heard, office.greeting)
    office.fd.start(extra_env=ENV)
    [message] = office.wait_messages(1)
    assert (message["caller"], message["status"]) == ("101", "new")
    stored = best_correlation(office.export(message["id"]), voice)
    assert heard >= HEARD and stored >= HEARD, (heard, stored)
    assert f"{codec}/" in office.log()


def test_linphonec_listens_and_saves_through_star97(
    office: Office,
    baresip_phone: Callable[..., BaresipPhone],
    linphone_phone: Callable[..., LinphonePhone],
    voice: Path,
) -> None:
    leave_message(baresip_phone, office, voice)
    owner = linphone_phone(
        "102",
        password=office.fd.password("102"),
        domain="127.0.0.1",
        proxy=f"sip:127.0.0.1:{office.fd.sip_port}",
        play_file=silence_wav(office.tmp / "quiet.wav", 5.0),
    )
    owner.wait_registered(timeout=10)
    owner.call(f"sip:*97@127.0.0.1:{office.fd.sip_port}")
    owner.wait_for(CONNECTED, timeout=10)
    time.sleep(1.0)
    owner.send_dtmf("1234#")  # PIN (about a second per digit)
    time.sleep(1.0)
    owner.send_dtmf("1")  # listen: "Message 1, from 1 0 1.", then the message
    time.sleep(3.0 + duration(voice) + 1.0)
    owner.send_dtmf("9")  # save
    time.sleep(2.0)
    owner.terminate()
    owner.wait_for(ENDED, timeout=10)
    listened = aligned_correlation(owner.heard(), voice)
    [message] = office.messages()
    assert listened >= HEARD, listened
    assert (message["status"], message["heard_by"]) == ("saved", "102")
    [report] = json.loads(office.cli("voicemail", "compliance", "--mailbox", "102",
                                     "--json").stdout)
    assert report["checks"][0]["by"] == "102" and report["checks"][0]["channel"] == "phone"


def test_sipp_subscriber_gets_message_waiting_counts(
    office: Office, baresip_phone: Callable[..., BaresipPhone], voice: Path
) -> None:
    sipp = start_sipp(
        SCENARIOS / "mwi_subscribe.xml",
        f"127.0.0.1:{office.fd.sip_port}",
        service="102",
        timeout=120,
        extra_args=["-au", "102", "-ap", office.fd.password("102")],
    )
    with sipp:
        time.sleep(1.0)
        leave_message(baresip_phone, office, voice)
        result = sipp.wait(120)
    assert result.ok, result.describe()


def test_dtmf_drives_the_menu_and_the_caller_is_transferred(
    tmp_path: Path, baresip_phone: Callable[..., BaresipPhone]
) -> None:
    office = Office(
        tmp_path,
        [
            "menu",
            "add",
            "500",
            "--name",
            "Main menu",
            "--prompt",
            "For the service coordinator press 1. To leave a message press 2.",
            "--choice",
            "1=extension:103",
            "--choice",
            "2=voicemail:102",
        ],
    ).start()
    try:
        caller = baresip(baresip_phone, office, "101")
        coordinator = baresip(baresip_phone, office, "103", answermode="auto")
        caller.dial(f"sip:500@127.0.0.1:{office.fd.sip_port}")
        caller.wait_event("CALL_ESTABLISHED", timeout=10)
        time.sleep(1.5)
        caller.send_dtmf("1")
        transfer = caller.wait_event("TRANSFER", timeout=10)
        coordinator.wait_event("CALL_ESTABLISHED", timeout=10)
        assert "sip:103@" in transfer.param
        log = office.log()
        assert "menu Main menu: caller chose 1 -> extension:103" in log
        assert "transferring the caller to 103" in log
    finally:
        office.fd.stop()


def test_an_offer_without_g711_gets_488(office: Office) -> None:
    sipp = start_sipp(
        SCENARIOS / "uac_g729_488.xml",
        f"127.0.0.1:{office.fd.sip_port}",
        service="*98102",
        keys={"caller": "101"},
        timeout=20,
        extra_args=["-au", "101", "-ap", office.fd.password("101")],
    )
    with sipp:
        result = sipp.wait(30)
    assert result.ok, result.describe()
    assert "refused with 488: no common audio codec" in office.log()


def _probe(office: Office, media: socket.socket, behave: str) -> Any:
    """A SIPp call to the echo test whose RTP is ``media``; misbehave, then go quiet."""
    port = media.getsockname()[1]
    sipp = start_sipp(
        SCENARIOS / "uac_media_probe.xml",
        f"127.0.0.1:{office.fd.sip_port}",
        service="*43",
        timeout=40,
        keys={"caller": "101", "rtp_port": str(port), "codec_pt": "0", "codec": "PCMU"},
        extra_args=["-au", "101", "-ap", office.fd.password("101")],
    )
    with sipp:
        media.settimeout(10)
        _, server = media.recvfrom(2048)  # the server's silence tells us its RTP port
        if behave == "misbehave":
            for seq in range(25):  # half a second of real audio latches the stream to us
                media.sendto(
                    struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 7) + b"\xff" * 160, server
                )
                time.sleep(0.02)
            media.sendto(b"this is not RTP at all", server)
            media.sendto(struct.pack("!BBHII", 0x80, 18, 99, 99 * 160, 7) + b"\x00" * 20, server)
        return sipp.wait(40)


@pytest.mark.parametrize("behave", ["misbehave", "silent"])
def test_bad_rtp_and_a_caller_who_sends_no_audio(office: Office, behave: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as media:
        media.bind(("127.0.0.1", 0))
        result = _probe(office, media, behave)
    assert result.ok, result.describe()  # the server hung up with BYE, cleanly
    log = office.log()
    if behave == "misbehave":
        assert "not RTP (wrong version or too short)" in log
        assert "payload type 18" in log and "negotiated 0 (PCMU) or 101" in log
        assert "no RTP from the caller for 5 s (since the last packet" in log
    else:
        assert "no RTP from the caller for 5 s (since it answered, 0 packets" in log
    assert options_ping(office.fd.sip_port) is not None


def test_a_message_stops_at_the_maximum_length(
    tmp_path: Path, baresip_phone: Callable[..., BaresipPhone], voice: Path
) -> None:
    office = Office(tmp_path, ["voicemail", "template", "--max-seconds", "10"]).start()
    try:
        long_voice = concat_wavs(tmp_path / "long.wav", voice, voice, voice)
        phone = baresip(baresip_phone, office, "101", audio_file=office.caller_audio(long_voice))
        phone.dial(f"sip:102@127.0.0.1:{office.fd.sip_port}")
        phone.wait_event("CALL_ESTABLISHED", timeout=10)
        phone.wait_event("CALL_CLOSED", timeout=duration(office.greeting) + 25)
        [message] = office.wait_messages(1)
        assert 9.9 <= message["duration"] <= 10.01
        assert "ended by max-length" in office.log()
    finally:
        office.fd.stop()


def test_a_full_disk_ends_the_message_cleanly(
    tmp_path: Path, baresip_phone: Callable[..., BaresipPhone], voice: Path
) -> None:
    office = Office(tmp_path)
    store = office.fd.data_dir / "voicemail"
    store.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(store)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up: {mounted.stderr.strip()}")
    try:
        office.start()
        leave_message(baresip_phone, office, voice, end="hangup")
        [message] = office.wait_messages(1)
        log = office.log()
        assert "No space left on device" in log and "free disk space under" in log
        assert message["duration"] < duration(voice)  # kept up to where the disk filled
        assert options_ping(office.fd.sip_port) is not None
    finally:
        office.fd.stop()
        subprocess.run(["umount", str(store)], check=False)


def test_echo_returns_what_the_caller_says_and_the_digits(
    office: Office, baresip_phone: Callable[..., BaresipPhone], voice: Path
) -> None:
    phone = baresip(
        baresip_phone,
        office,
        "101",
        audio_file=pad_silence(voice, office.tmp / "echo.wav", 0.5, 30.0),
    )
    phone.dial(f"sip:*43@127.0.0.1:{office.fd.sip_port}")
    phone.wait_event("CALL_ESTABLISHED", timeout=10)
    time.sleep(duration(voice) + 1.5)
    phone.send_dtmf("159#")
    echoed = "".join(phone.wait_event("CALL_DTMF_START", timeout=5).param for _ in "159#")
    phone.hangup()
    phone.wait_event("CALL_CLOSED")
    assert echoed == "159#"
    assert best_correlation(phone.last_recording().heard, voice) >= HEARD


def test_an_extension_that_does_not_answer_goes_to_voicemail(
    tmp_path: Path, baresip_phone: Callable[..., BaresipPhone], voice: Path
) -> None:
    office = Office(tmp_path, ["ext", "set", "102", "--ring-timeout", "3"]).start()
    try:
        callee = baresip(baresip_phone, office, "102")  # rings, nobody picks up
        phone = baresip(baresip_phone, office, "101", audio_file=office.caller_audio(voice))
        phone.dial(f"sip:102@127.0.0.1:{office.fd.sip_port}")
        callee.wait_event("CALL_INCOMING", timeout=10)
        phone.wait_event("CALL_ESTABLISHED", timeout=10)  # after 3 s: voicemail answers
        callee.wait_event("CALL_CLOSED", timeout=5)  # the phone stops ringing
        time.sleep(duration(office.greeting) + 1.0)
        phone.hangup()
        phone.wait_event("CALL_CLOSED")
        assert best_correlation(phone.last_recording().heard, office.greeting) >= HEARD
        assert "102 did not answer; 101 goes to voicemail" in office.log()
    finally:
        office.fd.stop()


GREETING_LEAD = 9.5  # seconds of silence before the owner speaks: PIN, "5", the prompt, tone


def test_the_owner_records_a_greeting_by_phone_and_the_phone_manager_approves_it(
    office: Office, baresip_phone: Callable[..., BaresipPhone], voice: Path
) -> None:
    """baresip as 102 records a personal greeting through *97 under the default policy
    (approval_required): it waits, audited with the owner as actor on channel "job"; the
    service manager may not approve it, the Phone Manager does; callers then hear it, and
    the audit chain verifies."""
    office.cli("role", "grant", "101", "phone_manager")
    lead = silence_wav(office.tmp / "greeting-lead.wav", GREETING_LEAD)
    spoken = pad_silence(voice, office.tmp / "greeting-voice.wav", after=30.0)
    owner = baresip(baresip_phone, office, "102",
                    audio_file=concat_wavs(office.tmp / "greeting-call.wav", lead, spoken))
    owner.dial(f"sip:*97@127.0.0.1:{office.fd.sip_port}")
    owner.wait_event("CALL_ESTABLISHED", timeout=10)
    started = time.monotonic()
    time.sleep(1.0)
    owner.send_dtmf("1234#")
    time.sleep(1.0)
    owner.send_dtmf("5")  # record a personal greeting
    time.sleep(max(0.0, started + GREETING_LEAD + duration(voice) + 0.8 - time.monotonic()))
    owner.send_dtmf("#")  # done
    time.sleep(1.0)
    owner.send_dtmf("1")  # keep it
    greetings = _wait_greetings(office, 1)
    owner.hangup()
    owner.wait_event("CALL_CLOSED", timeout=10)
    [greeting] = greetings
    assert (greeting["mailbox"], greeting["kind"], greeting["status"], greeting["created_by"]) \
        == ("102", "phone", "pending_approval", "102")
    recorded = [e for e in json.loads(office.cli("audit", "list", "--json").stdout)
                if e["resource_type"] == "greeting"]
    assert [(e["actor"], e["channel"], e["action"]) for e in recorded] == [("102", "job", "create")]
    # announced on the server's ownership event bus, the Phone Manager (101) told
    assert "voicemail: published org.greeting.created, org.informed.user." in office.log()
    key = str(greeting["id"])
    denied = office.fd.cli("voicemail", "greeting", "approve", key, "--as", "102", "--data",
                           str(office.fd.data_dir), check=False)
    assert denied.returncode == 2 and "needs permission greeting.update" in denied.stderr + \
        denied.stdout
    assert f"greeting {key}: active" in office.cli(
        "voicemail", "greeting", "approve", key, "--as", "101").stdout
    personal = office.tmp / "personal.wav"
    office.cli("voicemail", "greeting", "render", "102", "--out", str(personal))
    assert best_correlation(personal, voice) >= HEARD
    caller = baresip(baresip_phone, office, "103")
    caller.dial(f"sip:*98102@127.0.0.1:{office.fd.sip_port}")
    caller.wait_event("CALL_ESTABLISHED", timeout=10)
    time.sleep(duration(personal) + 1.0)
    caller.hangup()
    caller.wait_event("CALL_CLOSED", timeout=5)
    heard = best_correlation(caller.last_recording().heard, voice)
    print(f"personal greeting vs what the owner said: {best_correlation(personal, voice):.3f}; "
          f"what a caller heard vs it: {heard:.3f}")
    assert heard >= HEARD, heard
    assert "audit log intact" in office.cli("audit", "verify").stdout


def _wait_greetings(office: Office, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = list(json.loads(office.cli("voicemail", "greeting", "list", "--json").stdout))
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.3)
