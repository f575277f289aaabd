"""DurableRecorder: samples placed by RTP timestamp, max length, full disk, and nothing lost
when the process is killed with SIGKILL while recording or right after finishing."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
import wave
from pathlib import Path

import pytest

from frontdesk.media.wav import (
    DurableRecorder,
    WavError,
    read_pcm,
    recover_partials,
    write_wav_atomic,
)

LOUD = b"\x00\x10" * 160  # 20 ms at 4096
QUIET = b"\x00\x00" * 160


def test_recorder_places_frames_by_timestamp(tmp_path: Path) -> None:
    rec = DurableRecorder(tmp_path / "m.wav", max_seconds=10)
    rec.open()
    rec.write(LOUD, 1000)
    rec.write(LOUD, 1160)
    rec.write(LOUD, 1640)  # two frames lost or suppressed: 320 samples of silence
    rec.write(LOUD, 1160)  # late duplicate: dropped
    path = rec.finish()
    pcm = read_pcm(path)
    assert len(pcm) == 2 * (160 * 3 + 320)
    assert pcm[2 * 320 : 2 * 640] == b"\x00" * 640
    assert not rec.part_path.exists()


def test_recorder_stops_at_the_maximum_length(tmp_path: Path) -> None:
    rec = DurableRecorder(tmp_path / "m.wav", max_seconds=0.05)  # 400 samples
    rec.open()
    results = [rec.write(LOUD, 160 * i) for i in range(5)]
    assert results == [True, True, False, False, False]
    assert len(read_pcm(rec.finish())) == 800


def test_recorder_tracks_silence(tmp_path: Path) -> None:
    rec = DurableRecorder(tmp_path / "m.wav", max_seconds=10)
    rec.open()
    rec.write(LOUD, 0)
    for i in range(1, 11):
        rec.write(QUIET, 160 * i)
    assert rec.silent_for() == pytest.approx(0.2)
    assert rec.voiced_samples == 160
    rec.discard()
    assert not list(tmp_path.iterdir())


def test_a_full_disk_keeps_what_was_written_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rec = DurableRecorder(tmp_path / "m.wav", max_seconds=10)
    rec.open()
    for i in range(13):
        rec.write(LOUD, 160 * i)
    rec.flush()  # these 13 frames reached the operating system
    real_write = os.write

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    for i in range(13, 30):
        rec.write(LOUD, 160 * i)
    monkeypatch.setattr(os, "write", real_write)
    assert rec.error is not None and rec.error.errno == errno.ENOSPC
    assert rec.write(LOUD, 160 * 31) is False
    kept = read_pcm(rec.finish())
    assert len(kept) == 2 * 160 * 13
    assert "No space left on device" in caplog.text and "free disk space" in caplog.text


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from frontdesk.media.wav import DurableRecorder
    rec = DurableRecorder(Path(sys.argv[1]), max_seconds=60)
    rec.open()
    for i in range(100):                       # 2 s of audio
        rec.write(b"\\x00\\x10" * 160, 160 * i)
    rec.flush()
    if sys.argv[2] == "finish":
        rec.finish()
    print("ready", flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("stage", ["recording", "finish"])
def test_sigkill_loses_nothing(tmp_path: Path, stage: str) -> None:
    target = tmp_path / "box" / "msg.wav"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target), stage], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    recovered = recover_partials(tmp_path)
    assert recovered == ([] if stage == "finish" else [target])
    with wave.open(str(target), "rb") as wav:
        assert wav.getnframes() == 16000 and wav.getframerate() == 8000


def test_recover_removes_empty_partials(tmp_path: Path) -> None:
    rec = DurableRecorder(tmp_path / "m.wav", max_seconds=10)
    rec.open()
    assert recover_partials(tmp_path) == []
    assert not list(tmp_path.iterdir())


def test_read_pcm_names_the_wrong_format(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(b"\x00" * 400)
    with pytest.raises(WavError, match="44100 Hz, 2 channel"):
        read_pcm(path)
    (tmp_path / "t.wav").write_text("hello")
    with pytest.raises(WavError, match="not a PCM WAV"):
        read_pcm(tmp_path / "t.wav")
    write_wav_atomic(tmp_path / "ok.wav", b"\x01\x00" * 8)
    assert read_pcm(tmp_path / "ok.wav") == b"\x01\x00" * 8
    _ = time


def test_loud_finds_speech_level_samples() -> None:
    import struct

    from frontdesk.media.wav import loud

    for value in (0, 300, 511, -512, 512, -513, 32767, -32768):
        pcm = struct.pack("<160h", *([0] * 159 + [value]))
        assert loud(pcm) == (value >= 512 or value <= -513), value
