"""WAV files for prompts and messages (8 kHz mono 16-bit PCM), written so a crash loses nothing.

`DurableRecorder` writes a message while it is spoken: samples go to ``<name>.wav.part``
(placed by RTP timestamp, so lost or silence-suppressed packets become silence and late
ones are dropped), flushed to the operating system every quarter second — after that a
``kill -9`` of the server cannot lose them. ``finish()`` writes the real header, fsyncs the
file, renames it to ``<name>.wav`` and fsyncs the directory; only then is the message
stored. `recover_partials` turns ``.part`` files left by a crash into complete WAVs at
start-up. A full disk stops the recording with the error kept in ``error`` (what was
written is kept); it never raises into the RTP path.

`write_wav_atomic` does the same temp-file/fsync/rename dance for prompts and greetings.
This module never talks to the network or the database; ``finish`` and
``recover_partials`` block (call them through ``asyncio.to_thread``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import struct
import wave
from pathlib import Path

log = logging.getLogger("frontdesk.media.wav")

RATE = 8000
HEADER_BYTES = 44
PART_SUFFIX = ".part"
SILENCE_PEAK = 512  # |sample| below this (about -36 dBFS) counts as silence
FLUSH_BYTES = RATE // 2  # a quarter second of 16-bit audio


class WavError(ValueError):
    """A WAV file is not 8 kHz mono 16-bit PCM (the message says what it is instead)."""


def wav_header(data_bytes: int, rate: int = RATE) -> bytes:
    """A canonical 44-byte PCM WAV header for mono 16-bit audio."""
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,
        1,
        rate,
        rate * 2,
        2,
        16,
        b"data",
        data_bytes,
    )


def read_pcm(path: Path) -> bytes:
    """The samples of an 8 kHz mono 16-bit WAV; WavError naming what is wrong otherwise."""
    try:
        with wave.open(str(path), "rb") as wav:
            shape = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
            if shape != (RATE, 1, 2):
                raise WavError(
                    f"{path}: {shape[0]} Hz, {shape[1]} channel(s), "
                    f"{8 * shape[2]}-bit; expected 8000 Hz mono 16-bit PCM"
                )
            return wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise WavError(f"{path}: not a PCM WAV file ({exc})") from exc


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_wav_atomic(path: Path, pcm: bytes, rate: int = RATE) -> Path:
    """Write ``pcm`` as ``path`` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        out.write(wav_header(len(pcm), rate))
        out.write(pcm)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


# high byte of a 16-bit sample -> 1 when |sample| >= 512 (about -36 dBFS): speech, not silence
_LOUD_HIGH_BYTE = bytes(1 if 2 <= h <= 0x7F or 0x80 <= h <= 0xFD else 0 for h in range(256))


def loud(pcm: bytes) -> bool:
    """True when any sample reaches about -36 dBFS (a C-speed test: no Python loop)."""
    return b"\x01" in pcm[1::2].translate(_LOUD_HIGH_BYTE)


def peak(pcm: bytes) -> int:
    """The largest absolute 16-bit sample value in ``pcm``."""
    if len(pcm) < 2:
        return 0
    samples = memoryview(pcm)[: len(pcm) // 2 * 2].cast("h")
    return max(max(samples), -min(samples))


class DurableRecorder:
    """Records one message into ``final_path`` (see the module docstring)."""

    def __init__(self, final_path: Path, max_seconds: float, max_gap_seconds: float = 5.0) -> None:
        self.final_path = final_path
        self.part_path = final_path.with_name(final_path.name + PART_SUFFIX)
        self.max_samples = int(max_seconds * RATE)
        self.max_gap = int(max_gap_seconds * RATE)
        self.samples = 0
        self.voiced_samples = 0
        self.last_voice_sample = 0
        self.error: OSError | None = None
        self._fd: int | None = None
        self._buffer = bytearray()
        # the first flush comes at a random point, so that hundreds of recordings started
        # together do not all write in the same 20 ms frame afterwards
        self._flush_at = random.randint(FLUSH_BYTES // 4, FLUSH_BYTES)
        self._expected: int | None = None
        self.finished = False

    @property
    def seconds(self) -> float:
        return self.samples / RATE

    @property
    def full(self) -> bool:
        return self.samples >= self.max_samples

    def silent_for(self) -> float:
        """Seconds since the last frame louder than silence."""
        return (self.samples - self.last_voice_sample) / RATE

    def open(self) -> None:
        self.final_path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.part_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        os.write(self._fd, wav_header(0))

    def write(self, pcm: bytes, timestamp: int) -> bool:
        """Add one decoded RTP payload; False once the maximum length is reached."""
        if self.error is not None or self._fd is None or self.finished:
            return False
        if self.full:
            return False
        count = len(pcm) // 2
        if self._expected is None:
            self._expected = timestamp
        gap = (timestamp - self._expected) & 0xFFFFFFFF
        if gap >= 0x80000000:
            return True  # late or duplicate: that time is already written
        if 0 < gap <= self.max_gap:
            self._append(b"\x00\x00" * min(gap, self.max_samples - self.samples))
        self._expected = (timestamp + count) & 0xFFFFFFFF
        room = self.max_samples - self.samples
        chunk = pcm[: 2 * room] if count > room else pcm
        if loud(chunk):
            self.voiced_samples += len(chunk) // 2
            self.last_voice_sample = self.samples + len(chunk) // 2
        self._append(chunk)
        return not self.full

    def receive(self, pcm: bytes, timestamp: int) -> None:
        """`write` as an RTP stream's ``on_audio`` callback."""
        self.write(pcm, timestamp)

    def _append(self, pcm: bytes) -> None:
        self._buffer += pcm
        self.samples += len(pcm) // 2
        if len(self._buffer) >= self._flush_at:
            self._flush_at = FLUSH_BYTES
            self.flush()

    def flush(self) -> None:
        """Hand buffered samples to the operating system (survives a process kill)."""
        if self._fd is None or not self._buffer or self.error is not None:
            return
        data = bytes(self._buffer)
        try:
            written = os.write(self._fd, data)
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            self.error = exc
            log.error(
                "recording %s stopped after %.1f s: cannot write (%s); the audio up to "
                "here is kept — free disk space under %s",
                self.final_path.name,
                self.seconds,
                exc.strerror or exc,
                self.final_path.parent,
            )
        self._buffer.clear()

    def finish(self) -> Path:
        """Make the recording a complete, durable WAV (blocking). Returns its path."""
        self.flush()
        fd, self._fd = self._fd, None
        self.finished = True
        if fd is None:
            raise FileNotFoundError(f"recording {self.final_path} was never opened")
        try:
            size = os.fstat(fd).st_size
            os.pwrite(fd, wav_header(max(0, size - HEADER_BYTES)), 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.part_path, self.final_path)
        fsync_dir(self.final_path.parent)
        return self.final_path

    def discard(self) -> None:
        """Throw the recording away (too short, only silence, caller gave up)."""
        fd, self._fd = self._fd, None
        self.finished = True
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            self.part_path.unlink()


def recover_partials(root: Path) -> list[Path]:
    """Complete every ``*.wav.part`` under ``root`` left by a crash; empty ones are removed."""
    recovered: list[Path] = []
    if not root.exists():
        return recovered
    for part in sorted(root.rglob(f"*.wav{PART_SUFFIX}")):
        final = part.with_name(part.name[: -len(PART_SUFFIX)])
        try:
            size = part.stat().st_size
            if size <= HEADER_BYTES:
                part.unlink()
                continue
            data = size - HEADER_BYTES
            with open(part, "r+b") as f:
                if data % 2:
                    f.truncate(size - 1)
                    data -= 1
                f.write(wav_header(data))
                f.flush()
                os.fsync(f.fileno())
            os.replace(part, final)
            fsync_dir(final.parent)
            recovered.append(final)
        except OSError as exc:
            log.error("could not recover the interrupted recording %s: %s", part, exc)
    return recovered
