"""Prompts: espeak-ng speech cached by content hash, uploads converted by sox, bad uploads
rejected with an error that names the file, the problem and the fix."""

from __future__ import annotations

import asyncio
import math
import shutil
import struct
import wave
from pathlib import Path

import pytest

from frontdesk.media.prompts import PromptError, PromptLibrary, tone
from frontdesk.media.wav import read_pcm

pytestmark = pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("sox")),
    reason="needs espeak-ng and sox (Debian packages)",
)


def write(path: Path, rate: int, channels: int, seconds: float, level: float = 0.5) -> Path:
    count = int(rate * seconds)
    frames = []
    for i in range(count):
        value = int(level * 32767 * math.sin(2 * math.pi * 440 * i / rate))
        frames.append(struct.pack("<h", value) * channels)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(frames))
    return path


def test_speech_is_rendered_once_and_cached_by_content(tmp_path: Path) -> None:
    lib = PromptLibrary(tmp_path)
    first = lib.render("You have reached the voice mail for Service Manager.")
    again = lib.render("You have reached the voice mail for Service Manager.")
    other = lib.render("Please leave a message.")
    assert first == again != other
    assert lib.renders == 2
    pcm = read_pcm(first)
    assert len(pcm) / 16000 > 1.5  # real speech, several seconds
    assert first.parent == tmp_path / "prompts" / "tts"
    prompt = asyncio.run(lib.speech("You have reached the voice mail for Service Manager."))
    assert prompt.pcm == pcm and len(prompt.frames("PCMA")) == math.ceil(len(pcm) / 320)
    assert PromptLibrary(tmp_path).render("Please leave a message.") == other  # on disk


def test_empty_text_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="empty prompt"):
        PromptLibrary(tmp_path).render("   ")


def test_a_stereo_44k_upload_is_converted(tmp_path: Path) -> None:
    src = write(tmp_path / "my greeting.wav", 44100, 2, 2.0)
    stored = PromptLibrary(tmp_path).import_upload(src)
    assert stored.parent.name == "uploads"
    assert abs(len(read_pcm(stored)) - 32000) < 200


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda d: d / "missing.wav", "does not exist"),
        (lambda d: (d / "empty.wav").write_bytes(b"") or d / "empty.wav", "is empty"),
        (
            lambda d: (d / "notes.wav").write_text("not audio at all") and d / "notes.wav",
            "is not audio sox can read",
        ),
        (lambda d: write(d / "short.wav", 8000, 1, 0.3), "at least 1 s"),
        (lambda d: write(d / "long.wav", 8000, 1, 4.0), "at most 3 s"),
        (lambda d: write(d / "quiet.wav", 16000, 1, 2.0, level=0.001), "is silent"),
    ],
)
def test_bad_uploads_are_rejected_with_a_clear_reason(tmp_path: Path, make, problem: str) -> None:  # type: ignore[no-untyped-def]
    src = make(tmp_path)
    with pytest.raises(PromptError) as info:
        PromptLibrary(tmp_path).import_upload(src, max_seconds=3)
    assert problem in str(info.value) and src.name in str(info.value)


def test_tone_is_a_beep() -> None:
    beep = tone(1000, 250)
    assert beep.seconds == 0.25 and max(struct.unpack("<2000h", beep.pcm)) > 9000
