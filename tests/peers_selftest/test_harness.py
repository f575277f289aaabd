"""Self-tests of the real-peer harness, with no Frontdesk server in the path.

What it is for: prove that tests/peers drives real phones and measures real audio: two
phones call each other directly (peer to peer on 127.0.0.1), each plays a different
utterance, and each one's recording must contain what the *other* played (correlation
>= 0.9) and not what it played itself or a phrase nobody played (< 0.3). DTMF must
arrive digit for digit; SIPp must report success for a working peer and failure for a
dead one.

What it must never do: depend on Frontdesk code, or pass without the peers having
exchanged the audio/digits (every assertion compares against something that can differ).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from peers import (
    SCENARIOS,
    BaresipPhone,
    LinphonePhone,
    aligned_correlation,
    best_correlation,
    free_udp_port,
    pad_silence,
    run_sipp,
    speech_wav,
    start_sipp,
)
from peers.audio import duration
from peers.linphone import CONNECTED, DTMF, ENDED, INCOMING, LinphoneError

pytestmark = [pytest.mark.peers, pytest.mark.timeout(60)]

REGISTRAR = SCENARIOS / "register_auth_uas.xml"  # MD5 digest, -key user/password
HEARD = 0.9  # what the other phone played, through G.711
NOT_HEARD = 0.3  # what this phone played itself, or a phrase nobody played


class Voices:
    """Three distinct utterances (references) and padded copies that phones play."""

    def __init__(self, folder: Path) -> None:
        self.a = speech_wav(
            folder / "a.wav", "Phone A here. Seven lemons, four blue kites, one quiet river."
        )
        self.b = speech_wav(
            folder / "b.wav", "Good morning from phone B. Please hold while I check the order."
        )
        self.nobody = speech_wav(
            folder / "nobody.wav", "This sentence is never played by any phone in the test."
        )
        # baresip hangs up when its file ends: pad with silence beyond the call's length
        self.a_play = pad_silence(self.a, folder / "a_play.wav", before=0.3, after=30.0)
        self.b_play = pad_silence(self.b, folder / "b_play.wav", before=0.3, after=30.0)

    def talk_time(self) -> float:
        """Long enough for both utterances to be heard completely."""
        return max(duration(self.a), duration(self.b)) + 1.5


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Voices:
    return Voices(tmp_path_factory.mktemp("voices"))


def assert_heard(
    recording: Path, other: Path, own: Path, nobody: Path, who: str, strict: bool = True
) -> None:
    """``other`` is in the recording, ``own`` and ``nobody`` are not.

    strict: one lag for the whole utterance (baresip records sample-exact); otherwise
    aligned_correlation, which allows the small jitter-buffer slips linphonec makes.
    """
    score = best_correlation if strict else aligned_correlation
    refs = (("other", other), ("own", own), ("nobody", nobody))
    scores = {name: round(score(recording, ref), 3) for name, ref in refs}
    message = f"{who}: {score.__name__} of {recording.name} with each reference: {scores}"
    assert scores["other"] >= HEARD, message
    assert scores["own"] < NOT_HEARD, message
    assert scores["nobody"] < NOT_HEARD, message


def test_baresip_calls_baresip_directly_and_each_hears_the_other(
    baresip_phone: Callable[..., BaresipPhone], voices: Voices
) -> None:
    alice = baresip_phone("alice", audio_file=voices.a_play)
    bob = baresip_phone("bob", audio_file=voices.b_play, answermode="manual")

    alice.dial(bob.uri)
    incoming = bob.wait_event("CALL_INCOMING")
    assert incoming.peer_uri == "sip:alice@127.0.0.1", incoming
    bob.accept()
    alice.wait_event("CALL_ESTABLISHED")
    bob.wait_event("CALL_ESTABLISHED")
    time.sleep(voices.talk_time())
    alice.hangup()
    alice.wait_event("CALL_CLOSED")
    bob.wait_event("CALL_CLOSED")

    assert_heard(bob.last_recording().heard, voices.a, voices.b, voices.nobody, "bob")
    assert_heard(alice.last_recording().heard, voices.b, voices.a, voices.nobody, "alice")
    # what baresip says it sent is what we gave it
    assert best_correlation(alice.last_recording().sent, voices.a) >= HEARD


def test_baresip_records_even_from_a_deep_working_directory(
    tmp_path: Path, voices: Voices
) -> None:
    """baresip 1.0 silently records nothing when its dump file's path passes 128 bytes
    (pytest-xdist's tmp paths did): the phone must still leave recordings to check."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with (
        BaresipPhone(deep / "alice", "alice", audio_file=voices.a_play) as alice,
        BaresipPhone(deep / "bob", "bob", audio_file=voices.b_play, answermode="auto") as bob,
    ):
        assert len(str(alice.record_dir / "dump-2026-11-24-03-07-01-dec.wav")) > 128
        alice.dial(bob.uri)
        alice.wait_event("CALL_ESTABLISHED")
        time.sleep(voices.talk_time())
        alice.hangup()
        alice.wait_event("CALL_CLOSED")
        assert_heard(alice.last_recording().heard, voices.b, voices.a, voices.nobody, "alice")
        link = alice._snd_link
        assert link is not None and link.is_symlink()
    assert not link.exists() and not link.is_symlink()  # removed when the phone stopped
    assert list(alice.record_dir.glob("dump-*-dec.wav"))  # the recordings stay


def test_baresip_calls_linphonec_directly_and_each_hears_the_other(
    baresip_phone: Callable[..., BaresipPhone],
    linphone_phone: Callable[..., LinphonePhone],
    voices: Voices,
) -> None:
    alice = baresip_phone("alice", audio_file=voices.a_play)
    carol = linphone_phone("carol", play_file=voices.b_play)

    alice.dial(carol.uri)
    carol.wait_for(INCOMING)
    carol.answer()
    carol.wait_for(CONNECTED)
    alice.wait_event("CALL_ESTABLISHED")
    time.sleep(voices.talk_time())
    alice.hangup()
    alice.wait_event("CALL_CLOSED")
    carol.wait_for(ENDED)

    assert_heard(
        carol.heard(), voices.a, voices.b, voices.nobody, "carol (linphonec)", strict=False
    )
    assert_heard(alice.last_recording().heard, voices.b, voices.a, voices.nobody, "alice (baresip)")


def test_linphonec_calls_baresip_directly_and_each_hears_the_other(
    baresip_phone: Callable[..., BaresipPhone],
    linphone_phone: Callable[..., LinphonePhone],
    voices: Voices,
) -> None:
    bob = baresip_phone("bob", audio_file=voices.b_play, answermode="auto")
    carol = linphone_phone("carol", play_file=voices.a_play)

    carol.call(bob.uri)
    carol.wait_for(CONNECTED)
    bob.wait_event("CALL_ESTABLISHED")
    time.sleep(voices.talk_time())
    carol.terminate()
    carol.wait_for(ENDED)
    bob.wait_event("CALL_CLOSED")

    assert_heard(bob.last_recording().heard, voices.a, voices.b, voices.nobody, "bob (baresip)")
    assert_heard(
        carol.heard(), voices.b, voices.a, voices.nobody, "carol (linphonec)", strict=False
    )


def test_baresip_sends_rfc4733_dtmf_to_baresip(baresip_phone: Callable[..., BaresipPhone]) -> None:
    alice = baresip_phone("alice")
    bob = baresip_phone("bob", answermode="auto")
    digits = "1234567890*#"

    alice.dial(bob.uri)
    alice.wait_event("CALL_ESTABLISHED")
    bob.wait_event("CALL_ESTABLISHED")
    alice.send_dtmf(digits)
    received = "".join(bob.wait_event("CALL_DTMF_START", timeout=5).param for _ in digits)
    alice.hangup()
    bob.wait_event("CALL_CLOSED")

    assert received == digits
    assert bob.dtmf_received() == digits  # and nothing extra


def test_linphonec_sends_dtmf_to_baresip_and_back(
    baresip_phone: Callable[..., BaresipPhone], linphone_phone: Callable[..., LinphonePhone]
) -> None:
    bob = baresip_phone("bob", answermode="auto")
    carol = linphone_phone("carol")

    carol.call(bob.uri)
    carol.wait_for(CONNECTED)
    bob.wait_event("CALL_ESTABLISHED")
    carol.send_dtmf("3#")
    from_carol = "".join(bob.wait_event("CALL_DTMF_START", timeout=5).param for _ in "3#")
    bob.send_dtmf("9*")
    from_bob = "".join(carol.wait_for(DTMF, timeout=5).group("digit") for _ in "9*")
    bob.hangup()
    carol.wait_for(ENDED)

    assert (from_carol, from_bob) == ("3#", "9*")


@pytest.mark.parametrize("password", ["secret", "wrong"])
def test_baresip_registers_with_digest_auth_only_with_the_right_password(
    baresip_phone: Callable[..., BaresipPhone], tmp_path: Path, password: str
) -> None:
    keys = {"user": "alice", "password": "secret"}
    with start_sipp(REGISTRAR, calls=1, timeout=15, keys=keys, workdir=tmp_path / "reg") as reg:
        alice = baresip_phone(
            "alice", password=password, outbound=f"sip:127.0.0.1:{reg.local_port}"
        )
        if password == "secret":
            assert alice.wait_event("REGISTER_OK", timeout=10).param == "200 OK"
        else:
            assert alice.wait_event("REGISTER_FAIL", timeout=10).param.startswith("403")
        alice.stop()  # the un-REGISTER completes the registrar's one "call"
        result = reg.wait(timeout=15)
    assert result.ok == (password == "secret"), result.describe()


@pytest.mark.parametrize("password", ["secret", "wrong"])
def test_linphonec_registers_with_digest_auth_only_with_the_right_password(
    linphone_phone: Callable[..., LinphonePhone], tmp_path: Path, password: str
) -> None:
    keys = {"user": "carol", "password": "secret"}
    with start_sipp(REGISTRAR, calls=1, timeout=15, keys=keys, workdir=tmp_path / "reg") as reg:
        carol = linphone_phone("carol", password=password, proxy=f"sip:127.0.0.1:{reg.local_port}")
        if password == "secret":
            assert carol.wait_registered(timeout=10).group("identity") == "sip:carol@127.0.0.1"
        else:
            with pytest.raises(LinphoneError, match="not registered"):
                carol.wait_registered(timeout=3)
        carol.stop()
        result = reg.wait(timeout=15)
    assert result.ok == (password == "secret"), result.describe()


def test_sipp_reports_success_against_a_live_peer_and_failure_against_a_dead_one(
    tmp_path: Path,
) -> None:
    with start_sipp(None, builtin="uas", calls=3, timeout=20, workdir=tmp_path / "uas") as uas:
        client = run_sipp(
            None,
            f"127.0.0.1:{uas.local_port}",
            builtin="uac",
            calls=3,
            rate=10,
            timeout=15,
            workdir=tmp_path / "uac",
        )
        server = uas.wait(timeout=15)
    assert client.ok, client.describe()
    assert (client.successful, client.failed) == (3, 0), client.describe()
    assert server.successful == 3, server.describe()

    nobody_there = free_udp_port()
    dead = run_sipp(
        None,
        f"127.0.0.1:{nobody_there}",
        builtin="uac",
        calls=1,
        timeout=3,
        workdir=tmp_path / "dead",
    )
    assert not dead.ok
    assert dead.returncode != 0 and dead.successful == 0, dead.describe()
