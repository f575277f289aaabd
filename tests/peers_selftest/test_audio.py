"""Tests of the audio scoring in tests/peers/audio.py (no phones, no network).

What it is for: show that best_correlation / aligned_correlation say "heard" (~1) for
the reference after G.711, delay and leading silence, and "not heard" (~0) for another
utterance, silence or a tone, so the real-phone tests' thresholds mean something.

What it must never do: depend on SIP peers; it needs only numpy and sox (G.711 round trip).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from peers.audio import (
    RATE,
    aligned_correlation,
    best_correlation,
    best_lag,
    chirp_wav,
    concat_wavs,
    correlation_curve,
    load_8k,
    pad_silence,
    read_wav,
    silence_wav,
    tone_wav,
    write_wav,
)
from peers.process import require_binary


def noise_speech(path: Path, seed: int, seconds: float = 3.0) -> Path:
    """Speech-like test signal without espeak: band-limited noise in syllable-like bursts."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    noise = np.convolve(rng.standard_normal(n), np.ones(4) / 4, mode="same")
    envelope = np.repeat(rng.uniform(0.0, 1.0, n // 1600 + 1), 1600)[:n]
    return write_wav(path, 0.3 * noise * envelope)


def g711_round_trip(src: Path, dst: Path) -> Path:
    """Encode to mu-law and back with sox, as a phone call does."""
    sox = require_binary("sox", "sox")
    ulaw = dst.with_suffix(".ul")
    subprocess.run([sox, str(src), "-e", "u-law", "-t", "raw", str(ulaw)], check=True)
    subprocess.run(
        [
            sox,
            "-t",
            "raw",
            "-r",
            "8000",
            "-e",
            "u-law",
            "-c",
            "1",
            str(ulaw),
            "-e",
            "signed-integer",
            "-b",
            "16",
            str(dst),
        ],
        check=True,
    )
    return dst


def test_reference_after_g711_delay_and_leading_silence_scores_near_one(tmp_path: Path) -> None:
    ref = noise_speech(tmp_path / "ref.wav", seed=1)
    delayed = pad_silence(ref, tmp_path / "delayed.wav", before=0.737, after=1.0)
    heard = g711_round_trip(delayed, tmp_path / "heard.wav")

    assert best_correlation(heard, ref) > 0.98
    assert aligned_correlation(heard, ref) > 0.98
    assert best_lag(heard, ref) == pytest.approx(0.737, abs=1 / RATE)


def test_other_utterance_silence_and_tone_score_near_zero(tmp_path: Path) -> None:
    ref = noise_speech(tmp_path / "ref.wav", seed=1)
    other = g711_round_trip(
        noise_speech(tmp_path / "other.wav", seed=2), tmp_path / "other_heard.wav"
    )
    quiet = silence_wav(tmp_path / "quiet.wav", 4.0)
    tone = tone_wav(tmp_path / "tone.wav", 440.0, 4.0)

    for recording in (other, quiet, tone):
        assert best_correlation(recording, ref) < 0.3, recording.name
        assert aligned_correlation(recording, ref) < 0.3, recording.name


def test_a_chirp_matches_at_one_lag_only_and_partly_heard_scores_low(tmp_path: Path) -> None:
    chirp = chirp_wav(tmp_path / "chirp.wav", 2.0)
    shifted = pad_silence(chirp, tmp_path / "shifted.wav", before=0.5)

    curve = correlation_curve(load_8k(shifted), load_8k(chirp))
    peak = int(np.argmax(curve))
    assert curve[peak] > 0.99
    away = np.abs(np.arange(curve.size) - peak) > int(0.01 * RATE)
    assert np.max(curve[away]) < 0.3  # 10 ms off the true lag it no longer matches

    samples, _ = read_wav(shifted)
    half = write_wav(tmp_path / "half.wav", samples[: int(1.5 * RATE)])  # first half heard
    assert 0.3 < best_correlation(half, chirp) < 0.8  # ~ sqrt(share of its energy heard)


def test_small_time_slips_break_one_lag_but_not_the_aligned_score(tmp_path: Path) -> None:
    ref = noise_speech(tmp_path / "ref.wav", seed=3, seconds=4.0)
    samples, _ = read_wav(ref)
    slip = int(0.02 * RATE)  # a jitter buffer drops 20 ms twice and inserts 10 ms once
    cut = np.concatenate(
        [
            samples[:8000],
            samples[8000 + slip : 16000],
            np.zeros(80),
            samples[16000:24000],
            samples[24000 + slip :],
        ]
    )
    slipped = write_wav(tmp_path / "slipped.wav", cut)

    assert best_correlation(slipped, ref) < 0.8
    assert aligned_correlation(slipped, ref) > 0.9


def test_a_looping_player_still_scores_one(tmp_path: Path) -> None:
    ref = noise_speech(tmp_path / "ref.wav", seed=4, seconds=2.0)
    gap = silence_wav(tmp_path / "gap.wav", 0.1)
    tail = noise_speech(tmp_path / "tail.wav", seed=5, seconds=1.0)
    looped = concat_wavs(tmp_path / "looped.wav", tail, gap, ref, gap, ref)  # starts mid-loop

    assert best_correlation(looped, ref) > 0.99
