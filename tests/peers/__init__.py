"""Real-peer test harness: baresip, linphonec and SIPp as scripted SIP phones, plus audio checks.

What it is for: tests import ``peers`` (tests/ is on pytest's pythonpath) to start real
phones on 127.0.0.1, make calls through Frontdesk (or directly between phones), and
prove with cross-correlation that the right audio arrived.

What it must never do: depend on Frontdesk itself (the harness is proven without a
server), leave processes behind, or touch processes it did not start.
"""

from .audio import (
    aligned_correlation,
    best_correlation,
    best_lag,
    chirp_wav,
    pad_silence,
    silence_wav,
    speech_wav,
    tone_wav,
)
from .baresip import BaresipError, BaresipEvent, BaresipPhone, Recording
from .linphone import LinphoneError, LinphonePhone
from .ports import free_port, free_rtp_range, free_tcp_port, free_udp_port
from .sipp import SCENARIOS, SippProcess, SippResult, run_sipp, start_sipp

__all__ = [
    "SCENARIOS",
    "BaresipError",
    "BaresipEvent",
    "BaresipPhone",
    "LinphoneError",
    "LinphonePhone",
    "Recording",
    "SippProcess",
    "SippResult",
    "aligned_correlation",
    "best_correlation",
    "best_lag",
    "chirp_wav",
    "free_port",
    "free_rtp_range",
    "free_tcp_port",
    "free_udp_port",
    "pad_silence",
    "run_sipp",
    "silence_wav",
    "speech_wav",
    "start_sipp",
    "tone_wav",
]
