"""How many server-side media sessions (greeting playback + message recording) one core
sustains with zero packet loss, and the send-interval jitter p99 — beside aiortp's own
RTPSession (one clock task per session) measured in the same run.

    python bench/bench_media.py                      # ramp 100, 200, ... until a run fails
    python bench/bench_media.py --sessions 200 --seconds 20 --impl frontdesk

Two processes on two cores. The *server* (pinned to one core, uvloop when installed) runs N
sessions exactly as a voicemail deposit does: an RtpStream on the shared 20 ms MediaClock
playing a greeting (PCMU) while a DurableRecorder writes what arrives to disk. The *peer*
(pinned to the other core) is one UDP socket: a thread sends every session its 20 ms frames
on absolute deadlines, another receives everything the server sends with kernel receive
timestamps (SO_TIMESTAMPNS), so the peer's own scheduling does not colour the measurement.

Reported per run: packets lost server->peer (sequence gaps) and peer->server (frames the
server's sessions did not receive), the inter-arrival deviation from 20 ms (p50/p99/max over
all sessions, the first second skipped), and the server's CPU use (share of its core). A
run passes with 0 loss both ways and jitter p99 < 3 ms. Wall-clock figures depend on the
machine and on what else runs on it: compare implementations within one run, never across
machines. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import math
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FRAME = 0.020
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
RTP = struct.Struct("!BBHII")
WARMUP = 1.0
PASS_JITTER_MS = 3.0


def _pin(core: int) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {core % (os.cpu_count() or 1)})


def greeting_pcm(seconds: float = 6.0) -> bytes:
    """A sweep, so every frame differs (as speech does)."""
    n = int(8000 * seconds)
    return struct.pack(
        f"<{n}h",
        *(
            int(9000 * math.sin(2 * math.pi * (300 * t / 8000 + 0.1 * t * t / 64e6)))
            for t in range(n)
        ),
    )


# --- the server ------------------------------------------------------------------------------
async def _frontdesk_sessions(n: int, peer: tuple[str, int], folder: Path) -> tuple[Any, list[Any]]:
    from frontdesk.media.clock import MediaClock
    from frontdesk.media.rtp import PortRange, RtpStream, StreamParams, encode_frames
    from frontdesk.media.wav import DurableRecorder

    clock = MediaClock()
    frames = encode_frames(greeting_pcm(), "PCMU")
    ports = PortRange("127.0.0.1", 0, 0)
    sessions = []
    for i in range(n):
        stream = RtpStream(
            StreamParams("PCMU", 0, 101, peer), clock, f"bench{i}", ports.bind_pair()
        )
        recorder = DurableRecorder(folder / f"{i}.wav", max_seconds=3600)
        recorder.open()
        stream.on_audio = recorder.receive
        loop_frames = itertools.cycle(frames)
        stream.source = lambda it=loop_frames: next(it)  # greeting, over and over
        await stream.start()
        sessions.append((stream, recorder))
    return clock, sessions


async def _aiortp_sessions(
    n: int, peer: tuple[str, int], folder: Path, seconds: float
) -> tuple[Any, list[Any]]:
    from aiortp import RTPSession

    from frontdesk.media.rtp import encode_frames
    from frontdesk.media.wav import DurableRecorder

    frames = encode_frames(greeting_pcm(), "PCMU")
    sessions = []
    for i in range(n):
        session = await RTPSession.create(
            ("127.0.0.1", 0), peer, payload_type=0, paced=True, plc=False, jitter_prefetch=0
        )
        recorder = DurableRecorder(folder / f"{i}.wav", max_seconds=3600)
        recorder.open()
        session.on_audio = recorder.receive
        for frame in itertools.islice(itertools.cycle(frames), int((seconds + 5) / FRAME)):
            session.send_audio_auto(frame)
        sessions.append((session, recorder))
    return None, sessions


def _port_of(session: Any) -> int:
    if hasattr(session, "local_port"):
        return int(session.local_port)
    return int(session._rtp_transport._transport.get_extra_info("sockname")[1])


def _received(session: Any) -> int:
    if hasattr(session, "stats") and hasattr(session.stats, "audio"):
        return int(session.stats.audio)
    return int(session.stats.get("packets_received", 0))


async def serve(
    impl: str, n: int, peer_port: int, seconds: float, record_dir: str | None = None
) -> None:
    peer = ("127.0.0.1", peer_port)
    with tempfile.TemporaryDirectory(prefix="bench-media-", dir=record_dir) as tmp:
        folder = Path(tmp)
        if impl == "frontdesk":
            clock, sessions = await _frontdesk_sessions(n, peer, folder)
        else:
            clock, sessions = await _aiortp_sessions(n, peer, folder, seconds)
        gc.collect()  # as PbxServer.start does: long-lived objects frozen, rarer collections
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        print(json.dumps({"ports": [_port_of(s) for s, _ in sessions]}), flush=True)
        sys.stdin.readline()  # the peer starts sending: measure from here
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        for _, recorder in sessions:
            recorder.flush()
        late = clock.lateness.percentile(99) * 1000 if clock is not None else None
        print(
            json.dumps(
                {
                    "received": [_received(s) for s, _ in sessions],
                    "cpu": cpu / wall,
                    "clock_late_p99_ms": late,
                    "written": sum(r.samples for _, r in sessions),
                }
            ),
            flush=True,
        )
        sys.stdin.readline()


def server_main(args: argparse.Namespace) -> None:
    _pin(0)
    if args.realtime:  # like Asterisk's -p: the media process outranks batch work
        with contextlib.suppress(AttributeError, PermissionError, OSError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    if args.loop == "uvloop":
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
    asyncio.run(
        serve(args.impl, args.sessions, args.peer_port, args.seconds, args.record_dir or None)
    )


# --- the peer ----------------------------------------------------------------------------------
@dataclass
class Arrivals:
    times: dict[int, list[float]] = field(default_factory=dict)  # server port -> kernel times
    seqs: dict[int, list[int]] = field(default_factory=dict)


def _receive(sock: socket.socket, arrivals: Arrivals, stop: threading.Event) -> None:
    sock.settimeout(0.2)
    space = socket.CMSG_SPACE(16)
    while not stop.is_set():
        try:
            data, anc, _flags, addr = sock.recvmsg(2048, space)
        except (TimeoutError, OSError):
            continue
        stamp = next(
            (
                struct.unpack("@qq", d[:16])
                for lvl, typ, d in anc
                if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS
            ),
            None,
        )
        if stamp is None or len(data) < 12:
            continue
        port = addr[1]
        arrivals.times.setdefault(port, []).append(stamp[0] + stamp[1] / 1e9)
        arrivals.seqs.setdefault(port, []).append(RTP.unpack_from(data)[2])


def _send(
    sock: socket.socket, ports: list[int], seconds: float, sent: list[int], burst: bool = False
) -> None:
    """Every session's frame once per 20 ms. Real phones are not in step with each other,
    so by default the sessions' frames are spread over the 20 ms in ten groups; ``burst``
    sends them all at once (a worst case no real office produces)."""
    payload = b"\x7f\x70\x60\x50" * 40  # 20 ms of PCMU that is not silence
    groups = 1 if burst else 10
    size = max(1, math.ceil(len(ports) / groups))
    start = time.monotonic() + 0.05
    for tick in range(int(seconds / FRAME)):
        header = (tick & 0xFFFF, tick * 160)
        for group in range(groups):
            delay = start + tick * FRAME + group * FRAME / groups - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for i in range(group * size, min(len(ports), (group + 1) * size)):
                sock.sendto(RTP.pack(0x80, 0, *header, 1000 + i) + payload, ("127.0.0.1", ports[i]))
                sent[i] += 1


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def analyse(
    arrivals: Arrivals, ports: list[int], sent: list[int], server: dict[str, Any]
) -> dict[str, Any]:
    deviations: list[float] = []
    lost_down = 0
    for port in ports:
        times = arrivals.times.get(port, [])
        seqs = arrivals.seqs.get(port, [])
        if len(seqs) > 1:
            span = ((seqs[-1] - seqs[0]) & 0xFFFF) + 1
            lost_down += span - len(set(seqs))
        first = times[0] if times else 0.0
        deviations += [
            abs(b - a - FRAME) * 1000 for a, b in itertools.pairwise(times) if a - first >= WARMUP
        ]
    lost_up = sum(max(0, s - r) for s, r in zip(sent, server["received"], strict=True))
    return {
        "lost_server_to_peer": lost_down,
        "lost_peer_to_server": lost_up,
        "jitter_p50_ms": _percentile(deviations, 50),
        "jitter_p99_ms": _percentile(deviations, 99),
        "jitter_max_ms": max(deviations) if deviations else float("nan"),
        "server_cpu": server["cpu"],
        "clock_late_p99_ms": server["clock_late_p99_ms"],
        "packets": sum(len(v) for v in arrivals.times.values()),
    }


def run_once(
    impl: str,
    n: int,
    seconds: float,
    loop: str,
    realtime: bool,
    record_dir: str = "",
    burst: bool = False,
) -> dict[str, Any]:
    _pin(1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.bind(("127.0.0.1", 0))
    argv = [
        sys.executable,
        __file__,
        "--role",
        "server",
        "--impl",
        impl,
        "--sessions",
        str(n),
        "--loop",
        loop,
        *(["--realtime"] if realtime else []),
        "--record-dir",
        record_dir,
        "--seconds",
        str(seconds),
        "--peer-port",
        str(sock.getsockname()[1]),
    ]
    server = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdin is not None and server.stdout is not None
        ports = json.loads(server.stdout.readline())["ports"]
        arrivals, stop, sent = Arrivals(), threading.Event(), [0] * n
        receiver = threading.Thread(target=_receive, args=(sock, arrivals, stop), daemon=True)
        receiver.start()
        server.stdin.write("go\n")
        server.stdin.flush()
        _send(sock, ports, seconds - 0.5, sent, burst)
        report = json.loads(server.stdout.readline())
        stop.set()
        receiver.join(2)
        server.stdin.write("bye\n")
        server.stdin.flush()
        server.wait(30)
    finally:
        if server.poll() is None:
            server.kill()
        sock.close()
    result = analyse(arrivals, ports, sent, report)
    result.update(
        impl=impl,
        sessions=n,
        ok=result["lost_server_to_peer"] == 0
        and result["lost_peer_to_server"] == 0
        and result["jitter_p99_ms"] < PASS_JITTER_MS,
    )
    return result


def show(r: dict[str, Any]) -> None:
    late = r["clock_late_p99_ms"]
    print(
        f"{r['impl']:>9} {r['sessions']:>5} sessions: loss down {r['lost_server_to_peer']:>4} "
        f"up {r['lost_peer_to_server']:>4}  jitter p50 {r['jitter_p50_ms']:.2f} p99 "
        f"{r['jitter_p99_ms']:.2f} max {r['jitter_max_ms']:.1f} ms  server CPU "
        f"{100 * r['server_cpu']:.0f} %"
        + (f"  clock late p99 {late:.2f} ms" if late else "")
        + ("  PASS" if r["ok"] else "  FAIL"),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("peer", "server"), default="peer")
    parser.add_argument("--impl", choices=("frontdesk", "aiortp", "both"), default="both")
    parser.add_argument(
        "--sessions",
        default="ramp",
        help="N, a list like 100,200, or 'ramp' (100, 200, ... until a fail)",
    )
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--peer-port", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument(
        "--burst",
        action="store_true",
        help="the peer sends every session's frame at the same instant",
    )
    parser.add_argument(
        "--record-dir", default="", help="where the server records (default: the system temp dir)"
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="run the server with SCHED_FIFO priority 10 (needs root)",
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="asyncio",
        help="the server's event loop (uvloop's clock has 1 ms resolution)",
    )
    args = parser.parse_args()
    if args.role == "server":
        args.sessions = int(args.sessions)
        server_main(args)
        return
    impls = ("frontdesk", "aiortp") if args.impl == "both" else (args.impl,)
    results = []
    for impl in impls:
        counts = (
            itertools.count(100, 100)
            if args.sessions == "ramp"
            else (int(x) for x in args.sessions.split(","))
        )
        for n in counts:
            result = run_once(
                impl, n, args.seconds, args.loop, args.realtime, args.record_dir, args.burst
            )
            show(result)
            results.append(result)
            if args.sessions == "ramp" and (not result["ok"] or n >= 1500):
                break
    for impl in impls:
        passing = [r["sessions"] for r in results if r["impl"] == impl and r["ok"]]
        print(
            f"{impl}: most sessions with 0 loss and jitter p99 < {PASS_JITTER_MS} ms on one "
            f"core: {max(passing) if passing else 'none'}"
        )
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
