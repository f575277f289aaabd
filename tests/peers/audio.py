"""Test audio for real-phone tests: make reference WAVs and check what a phone heard.

What it is for: produce distinctive 8 kHz mono 16-bit WAVs (speech via espeak-ng, chirps,
tones, silence padding) that phones play, and score a phone's recording against a
reference with normalized cross-correlation at the best lag.

What it must never do: decide a test passed on its own, or accept audio that merely has
energy. A score is a number; the test picks the threshold.

Method (``best_correlation``):

1. Both files are read as 8 kHz mono floats (other rates/channels are converted with sox).
2. DC is removed and a pre-emphasis filter ``y[n] = x[n] - 0.95 x[n-1]`` is applied to both.
   This whitens speech a little, so two *different* utterances correlate weakly (their
   shared low-frequency formant energy no longer dominates), while G.711 quantization
   noise (about -38 dB) barely changes the score of the *same* utterance.
3. For every lag k the reference x (length M) is compared with the window r[k:k+M] of the
   recording (zero outside it): ``c(k) = <r_k, x> / (|r_k| |x|)``. The numerator for all
   lags comes from one FFT cross-correlation; the window energies |r_k|^2 from a running
   sum. By Cauchy-Schwarz c(k) <= 1, and a window that overlaps the reference only
   partly can score at most sqrt(share of the reference's energy it covers); so 0.9
   means at least ~81 % of the reference's energy was heard in order, sample for sample.
4. The result is the maximum over lags, so leading silence, call-setup delay and a
   looping player (linphonec repeats its file) do not matter.

``aligned_correlation`` is the same measure for receivers whose jitter buffer drops or
inserts 10-30 ms now and then (linphonec does): the reference is cut into 0.25 s pieces
and each may shift by up to 60 ms from the previous one. baresip records sample-exact,
so ``best_correlation`` suits it; use ``aligned_correlation`` for linphonec and for any
path through a jitter buffer. Both give ~1 for the reference and < 0.2 for another
utterance (measured: 0.97-1.0 versus 0.04-0.15).

A pure tone is a bad reference: it matches itself at many lags and matches any other
tone-like sound. Use speech (``speech_wav``) or a sweep (``chirp_wav``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

RATE = 8000
PRE_EMPHASIS = 0.95

FloatArray = npt.NDArray[np.float64]


def write_wav(path: Path, samples: FloatArray, rate: int = RATE) -> Path:
    """Write float samples in [-1, 1] as a mono 16-bit PCM WAV."""
    pcm = np.clip(samples, -1.0, 1.0)
    data = (pcm * 32767.0).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(data)
    return path


def tone_wav(path: str | Path, freq: float, seconds: float, level: float = 0.5) -> Path:
    """A pure sine tone. Good for "is there sound at all", bad as a correlation reference."""
    t = np.arange(int(seconds * RATE)) / RATE
    return write_wav(Path(path), level * np.sin(2 * np.pi * freq * t))


def chirp_wav(
    path: str | Path,
    seconds: float,
    f_start: float = 300.0,
    f_end: float = 3300.0,
    level: float = 0.5,
) -> Path:
    """A linear frequency sweep: a distinctive reference that matches itself at one lag only."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    k = (f_end - f_start) / seconds
    phase = 2 * np.pi * (f_start * t + 0.5 * k * t * t)
    return write_wav(Path(path), level * np.sin(phase))


def silence_wav(path: str | Path, seconds: float) -> Path:
    """Digital silence, 8 kHz mono 16-bit."""
    return write_wav(Path(path), np.zeros(int(seconds * RATE)))


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise RuntimeError(f"{tool} not found: install the Debian package (see scripts/test.sh)")
    return found


def speech_wav(path: str | Path, text: str, voice: str = "en", speed: int = 160) -> Path:
    """Render ``text`` with espeak-ng and convert it with sox to 8 kHz mono 16-bit PCM."""
    out = Path(path)
    with tempfile.TemporaryDirectory(prefix="fd-speech-") as tmp:
        raw = Path(tmp) / "espeak.wav"
        subprocess.run(
            [_require("espeak-ng"), "-v", voice, "-s", str(speed), "-w", str(raw), text],
            check=True,
            capture_output=True,
            timeout=30,
        )
        convert_wav(raw, out)
    return out


def convert_wav(src: str | Path, dst: str | Path, rate: int = RATE) -> Path:
    """Convert any WAV sox can read to ``rate`` Hz mono 16-bit PCM."""
    subprocess.run(
        [
            _require("sox"),
            str(src),
            "-r",
            str(rate),
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            str(dst),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return Path(dst)


def pad_silence(src: str | Path, dst: str | Path, before: float = 0.0, after: float = 0.0) -> Path:
    """Copy ``src`` to ``dst`` with ``before``/``after`` seconds of silence (same format).

    baresip's aufile source hangs the call up when its file ends, so pad the end by at
    least as long as the call should last.
    """
    samples, rate = read_wav(src)
    pad_a = np.zeros(int(before * rate))
    pad_b = np.zeros(int(after * rate))
    return write_wav(Path(dst), np.concatenate([pad_a, samples, pad_b]), rate)


def concat_wavs(dst: str | Path, *parts: str | Path) -> Path:
    """Concatenate WAVs of the same rate into one mono 16-bit file."""
    arrays = []
    rate = RATE
    for part in parts:
        samples, rate = read_wav(part)
        arrays.append(samples)
    return write_wav(Path(dst), np.concatenate(arrays), rate)


def wav_complete(path: str | Path) -> bool:
    """True once a WAV's header matches its size (the writer has closed it) and it has audio."""
    try:
        with wave.open(str(path), "rb") as wav:
            frames = wav.getnframes()
            frame_bytes = wav.getsampwidth() * wav.getnchannels()
        size = Path(path).stat().st_size
    except (OSError, EOFError, wave.Error):
        return False
    return frames > 0 and size - frames * frame_bytes <= 128


def read_wav(path: str | Path) -> tuple[FloatArray, int]:
    """Read a 16-bit PCM WAV as mono floats in [-1, 1]; returns (samples, rate)."""
    with wave.open(str(path), "rb") as src:
        channels = src.getnchannels()
        width = src.getsampwidth()
        rate = src.getframerate()
        frames = src.readframes(src.getnframes())
    if width != 2:
        raise ValueError(f"{path}: {8 * width}-bit samples; expected 16-bit PCM")
    data = np.frombuffer(frames, dtype="<i2").astype(np.float64) / 32768.0
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return data, rate


def load_8k(path: str | Path) -> FloatArray:
    """Read any WAV as 8 kHz mono floats, converting with sox when needed."""
    try:
        samples, rate = read_wav(path)
        if rate == RATE:
            return samples
    except (ValueError, wave.Error, EOFError):
        pass
    with tempfile.TemporaryDirectory(prefix="fd-conv-") as tmp:
        converted = convert_wav(path, Path(tmp) / "8k.wav")
        return read_wav(converted)[0]


def duration(path: str | Path) -> float:
    """Length of a WAV in seconds."""
    with wave.open(str(path), "rb") as src:
        return src.getnframes() / float(src.getframerate())


def rms(path: str | Path) -> float:
    """Root-mean-square level of a WAV (0 = digital silence, ~0.35 = full-scale sine)."""
    samples = load_8k(path)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def _prepare(samples: FloatArray) -> FloatArray:
    centred = samples - samples.mean() if samples.size else samples
    out = centred.copy()
    out[1:] -= PRE_EMPHASIS * centred[:-1]
    return out


def correlation_curve(recorded: FloatArray, reference: FloatArray) -> FloatArray:
    """Normalized cross-correlation c(k) for lags k = -(M-1) .. N-1 (see module docstring)."""
    r = _prepare(recorded)
    x = _prepare(reference)
    m, n = x.size, r.size
    if m == 0 or n == 0:
        return np.zeros(1)
    x_norm = float(np.sqrt(np.dot(x, x)))
    if x_norm == 0.0:
        return np.zeros(1)
    size = 1 << int(np.ceil(np.log2(n + m - 1)))
    spec = np.fft.rfft(r, size) * np.conj(np.fft.rfft(x, size))
    full = np.fft.irfft(spec, size)
    # full[k] = sum_j r[j + k] x[j] (circular); lags -(m-1)..-1 wrap to the end.
    numer = np.concatenate([full[size - (m - 1) :], full[:n]]) if m > 1 else full[:n]
    padded = np.concatenate([np.zeros(m - 1), r * r, np.zeros(m)])
    csum = np.concatenate([[0.0], np.cumsum(padded)])
    # window for lag k covers padded[k + m - 1 - (m - 1) : ...] = padded[i : i + m], i = k + m - 1
    starts = np.arange(n + m - 1)
    energy = csum[starts + m] - csum[starts]
    floor = 1e-9 * x_norm * x_norm
    denom = np.sqrt(np.maximum(energy, floor)) * x_norm
    curve = numer / denom
    curve[energy <= floor] = 0.0
    return np.asarray(curve, dtype=np.float64)


def best_correlation(recorded_wav: str | Path, reference_wav: str | Path) -> float:
    """Highest normalized cross-correlation of the reference anywhere in the recording.

    ~1.0: the reference was heard intact (G.711 gives ~0.99); ~0: it was not heard.
    """
    curve = correlation_curve(load_8k(recorded_wav), load_8k(reference_wav))
    return float(np.max(curve)) if curve.size else 0.0


def aligned_correlation(
    recorded_wav: str | Path,
    reference_wav: str | Path,
    segment: float = 0.25,
    max_slip: float = 0.06,
) -> float:
    """Like ``best_correlation``, but tolerant of small time slips (jitter buffers).

    A receiver's jitter buffer may drop or insert 10-30 ms now and then (linphonec does,
    several times per call); one slip splits the recording into pieces at different lags
    and caps the single-lag score well below 1. Here the reference is cut into
    ``segment``-second pieces; the first piece starts at the global best lag and every
    piece may shift by up to ``max_slip`` s relative to the previous one. The score is
    the normalized correlation of the whole reference with the recording pieces so
    aligned: sum<r_i, x_i> / sqrt(sum|r_i|^2 * sum|x_i|^2), so with no slips it equals
    ``best_correlation``, it never exceeds 1, and a different utterance still scores
    near 0 (the per-piece search window is small).
    """
    recorded, reference = load_8k(recorded_wav), load_8k(reference_wav)
    r, x = _prepare(recorded), _prepare(reference)
    if r.size == 0 or not np.any(x):
        return 0.0
    lag = int(np.argmax(correlation_curve(recorded, reference))) - (x.size - 1)
    piece, slip = max(1, int(segment * RATE)), int(max_slip * RATE)
    pad = x.size + r.size + slip
    r_pad = np.concatenate([np.zeros(pad), r, np.zeros(pad)])
    numer = r_energy = 0.0
    for start in range(0, x.size, piece):
        x_i = x[start : start + piece]
        lo = pad + start + lag - slip
        window = r_pad[lo : lo + x_i.size + 2 * slip]
        dots = np.correlate(window, x_i, mode="valid")
        csum = np.concatenate([[0.0], np.cumsum(window * window)])
        energies = csum[x_i.size :] - csum[: -x_i.size]
        scores = dots / np.sqrt(np.maximum(energies, 1e-12))
        best = int(np.argmax(scores))
        numer += float(dots[best])
        r_energy += float(energies[best])
        x_norm = float(np.sqrt(np.dot(x_i, x_i)))
        if x_norm > 0 and scores[best] / x_norm > 0.5:  # follow the slip only on a clear match
            lag += best - slip
    return float(numer / np.sqrt(max(r_energy, 1e-12) * float(np.dot(x, x))))


def best_lag(recorded_wav: str | Path, reference_wav: str | Path) -> float:
    """Where (seconds into the recording) the reference matches best; may be negative."""
    reference = load_8k(reference_wav)
    curve = correlation_curve(load_8k(recorded_wav), reference)
    return (int(np.argmax(curve)) - (reference.size - 1)) / RATE
