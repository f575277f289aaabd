"""Prompts: text rendered to speech with espeak-ng, uploaded recordings checked and converted
with sox, tones — all as 8 kHz mono 16-bit audio ready for G.711.

Rendered speech is cached on disk under ``DATA/prompts/tts/<sha256>.wav``, the hash covering
the text, voice, speed and renderer version, so the same words are rendered once per data
directory and a changed template renders anew. Uploads are converted (any rate, channels or
format sox reads), checked (length, not silent) and stored under
``DATA/prompts/uploads/<sha256 of the audio>.wav``; a bad file raises `PromptError` naming the
file, the problem and the fix. Decoded prompts are kept in a small in-memory cache, with
their G.711 frames per codec, so hundreds of calls share one copy.

Rendering and conversion run external programs and block: call them through
``asyncio.to_thread`` (``speech`` does). This module never touches SIP, RTP or the database.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import shutil
import struct
import subprocess
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from frontdesk.media.wav import RATE, SILENCE_PEAK, WavError, peak, read_pcm, write_wav_atomic

RENDERER_VERSION = "espeak-ng/sox v1"
DEFAULT_VOICE = "en-us"
DEFAULT_SPEED = 150
TOOL_TIMEOUT = 60
MEMORY_CACHE = 64


class PromptError(ValueError):
    """Text could not be rendered or a file could not be used as a prompt."""


@dataclass(slots=True)
class Prompt:
    """Audio ready to play: PCM plus its G.711 frames per codec (computed once)."""

    key: str
    pcm: bytes
    path: Path | None = None
    _frames: dict[str, list[bytes]] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / RATE

    def frames(self, codec: str) -> list[bytes]:
        cached = self._frames.get(codec)
        if cached is None:
            # imported here: the RTP stack (aiortp, numpy) costs ~0.3 s, which CLI commands
            # that only store prompts would otherwise pay at import
            from frontdesk.media.rtp import encode_frames

            cached = self._frames[codec] = encode_frames(self.pcm, codec)
        return cached


def tone(freq: float = 1000.0, ms: int = 300, level: float = 0.3) -> Prompt:
    """A sine beep (the "leave your message after the tone" tone)."""
    count = RATE * ms // 1000
    amplitude = level * 32767
    samples = (int(amplitude * math.sin(2 * math.pi * freq * i / RATE)) for i in range(count))
    pcm = struct.pack(f"<{count}h", *samples)
    return Prompt(f"tone:{freq}:{ms}", pcm)


def silence(ms: int) -> Prompt:
    return Prompt(f"silence:{ms}", b"\x00\x00" * (RATE * ms // 1000))


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PromptError(
            f"{name} is not installed; install the Debian package {package} "
            f"(apt-get install {package})"
        )
    return found


def _run(argv: list[str], what: str) -> None:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PromptError(f"{what}: {argv[0]} took longer than {TOOL_TIMEOUT} s") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        reason = detail[-1] if detail else f"exit status {done.returncode}"
        raise PromptError(f"{what}: {reason}")


def _to_8k(sox: str, src: Path, dst: Path, what: str) -> None:
    _run(
        [
            sox,
            "-q",
            str(src),
            "-r",
            str(RATE),
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            str(dst),
        ],
        what,
    )


class PromptLibrary:
    """Renders, converts and caches prompts under ``data_dir/prompts``."""

    def __init__(
        self, data_dir: Path, voice: str = DEFAULT_VOICE, speed: int = DEFAULT_SPEED
    ) -> None:
        self.root = data_dir / "prompts"
        self.voice = voice
        self.speed = speed
        self._memory: OrderedDict[str, Prompt] = OrderedDict()
        self.renders = 0

    # --- speech ---------------------------------------------------------------------------
    def speech_path(self, text: str) -> Path:
        """Where the rendering of ``text`` is (or will be) cached."""
        key = f"{RENDERER_VERSION}|{self.voice}|{self.speed}|{text}"
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return self.root / "tts" / f"{digest}.wav"

    def render(self, text: str) -> Path:
        """Render ``text`` to an 8 kHz WAV (cached by content hash). Blocking."""
        text = text.strip()
        if not text:
            raise PromptError("cannot render an empty prompt text; write what callers should hear")
        path = self.speech_path(text)
        if path.exists():
            return path
        espeak = _tool("espeak-ng", "espeak-ng")
        sox = _tool("sox", "sox")
        with tempfile.TemporaryDirectory(prefix="fd-tts-") as tmp:
            source, raw, out = Path(tmp) / "text.txt", Path(tmp) / "raw.wav", Path(tmp) / "8k.wav"
            source.write_text(text, encoding="utf-8")
            what = f"could not render prompt {text[:40]!r} with espeak-ng voice {self.voice!r}"
            _run(
                [
                    espeak,
                    "-v",
                    self.voice,
                    "-s",
                    str(self.speed),
                    "-w",
                    str(raw),
                    "-f",
                    str(source),
                ],
                what,
            )
            _to_8k(sox, raw, out, what)
            write_wav_atomic(path, read_pcm(out))
        self.renders += 1
        return path

    async def speech(self, text: str) -> Prompt:
        """The prompt for ``text``, rendering it in a worker thread the first time."""
        path = self.speech_path(text.strip())
        cached = self._memory.get(str(path))
        if cached is not None:
            self._memory.move_to_end(str(path))
            return cached
        path = await asyncio.to_thread(self.render, text)
        return self.load(path)

    # --- files ----------------------------------------------------------------------------
    def load(self, path: Path) -> Prompt:
        """A WAV prompt from disk (8 kHz mono 16-bit), kept in the memory cache."""
        key = str(path)
        cached = self._memory.get(key)
        if cached is not None:
            self._memory.move_to_end(key)
            return cached
        prompt = Prompt(key, read_pcm(path), path)
        self._memory[key] = prompt
        while len(self._memory) > MEMORY_CACHE:
            self._memory.popitem(last=False)
        return prompt

    def import_upload(
        self,
        src: Path,
        *,
        label: str = "greeting",
        min_seconds: float = 1.0,
        max_seconds: float = 300.0,
    ) -> Path:
        """Check and convert an uploaded recording; return the stored 8 kHz WAV. Blocking.

        Raises PromptError naming the file, what is wrong with it and what to do.
        """
        name = f"{label} file {src.name!r}"
        if not src.is_file():
            raise PromptError(f"{name} does not exist; give the path of a WAV file")
        if src.stat().st_size == 0:
            raise PromptError(f"{name} is empty (0 bytes); record the {label} again")
        sox = _tool("sox", "sox")
        with tempfile.TemporaryDirectory(prefix="fd-upload-") as tmp:
            out = Path(tmp) / "8k.wav"
            _to_8k(
                sox,
                src,
                out,
                f"{name} is not audio sox can read — upload a WAV file (any rate, mono or stereo)",
            )
            try:
                pcm = read_pcm(out)
            except WavError as exc:
                raise PromptError(f"{name} could not be converted: {exc}") from exc
        seconds = len(pcm) / 2 / RATE
        if seconds < min_seconds:
            raise PromptError(
                f"{name} is {seconds:.1f} s long; a {label} must last at least "
                f"{min_seconds:.0f} s — record a longer one"
            )
        if seconds > max_seconds:
            raise PromptError(
                f"{name} is {seconds:.0f} s long; a {label} may last at most "
                f"{max_seconds:.0f} s — trim it"
            )
        if peak(pcm) < SILENCE_PEAK:
            raise PromptError(
                f"{name} is silent (peak level below -36 dBFS); check the "
                "microphone and record it again"
            )
        digest = hashlib.sha256(pcm).hexdigest()
        return write_wav_atomic(self.root / "uploads" / f"{digest}.wav", pcm)
