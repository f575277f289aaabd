"""Server CPU per SIP operation under real SIPp load (a profiling aid, not a test).

Starts ``frontdesk serve`` on a fresh benchmark tenant (``frontdesk bench-setup``), drives
it with SIPp at one fixed rate per workload -- ``reg`` (the shared ``reg.xml``, 10,000
distinct users, no auth), ``auth`` (``reg_auth_bench.xml``: 401 + MD5 digest) or ``calls``
(``uac_proxy.xml`` -> Frontdesk -> ``uas_proxy.xml``) -- and prints the server process's CPU
time (user + system, all threads: event loop and database writer) per operation. CPU time
per operation moves much less than a wall-clock rate when other work shares the cores, so
it is the figure to compare before/after a change. ``--pyspy FILE`` also samples the server
with py-spy (collapsed stacks) and prints the functions holding the most samples.

Loopback only, every SIPp run bounded (``-m``, ``-timeout``, an outer timeout); the server
and the SIPp processes it starts are stopped by pid. Never asserts on speed.

``--build compiled`` runs the server on the mypyc build of the SIP hot path
(``scripts/build_compiled.py``, built first when missing or stale); the run prints which
build the server process has loaded.

Run: ``python bench/serve_cpu.py reg calls auth --rate 1500 --dur 6 [--pyspy /tmp/p]
[--build pure|compiled]``
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED", ROOT.parent / "shared" / "bench"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def wait_ready(port: int, limit: float = 90.0) -> None:
    msg = (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKready\r\n"
        "From: <sip:bench@127.0.0.1>;tag=r\r\nTo: <sip:127.0.0.1>\r\nCall-ID: ready\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.5)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            s.sendto(msg, ("127.0.0.1", port))
            try:
                s.recv(65535)
                return
            except OSError:
                pass
    raise SystemExit(f"frontdesk did not answer OPTIONS on 127.0.0.1:{port} in {limit:.0f} s")


def sipp(args: list[str], cwd: Path, dur: int) -> subprocess.Popen[bytes]:
    cmd = ["timeout", str(dur * 3 + 60), "sipp", *args, "-i", "127.0.0.1", "-buff_size",
           "1048576", "-timeout", f"{dur * 3 + 40}s", "-nostdin", "-trace_screen"]
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def workload(kind: str, target: str, rate: int, dur: int, work: Path) -> list[list[str]]:
    """SIPp argument lists: [the load generator] (+ a UAS started first for calls)."""
    m = str(rate * dur)
    load = ["-r", str(rate), "-m", m, "-timeout_error"]
    if kind == "reg":
        return [[target, "-sf", str(SHARED / "reg.xml"), "-inf", str(SHARED / "users.csv"),
                 "-p", str(free_port()), *load]]
    if kind == "auth":
        return [[target, "-sf", str(ROOT / "bench" / "reg_auth_bench.xml"), "-s", "bench",
                 "-au", "bench", "-ap", "bench", "-p", str(free_port()), *load]]
    uas_port = free_port()
    reg = subprocess.run(
        ["timeout", "30", "sipp", target, "-sf", str(SHARED / "reg.xml"), "-inf",
         str(SHARED / "uas_user.csv"), "-i", "127.0.0.1", "-p", str(uas_port), "-m", "1",
         "-r", "1", "-timeout", "20s", "-timeout_error", "-nostdin"],
        cwd=work, capture_output=True, check=False)
    if reg.returncode != 0:
        raise SystemExit(f"registering the callee failed: {reg.stdout[-500:]!r}")
    uas = [target, "-sf", str(SHARED / "uas_proxy.xml"), "-p", str(uas_port), "-m", m,
           "-default_behaviors", "all,-abortunexp"]
    uac = [target, "-sf", str(SHARED / "uac_proxy.xml"), "-s", "bench", "-p", str(free_port()),
           "-default_behaviors", "all,-abortunexp", "-recv_timeout", "20s", *load]
    return [uac, uas]


def top_frames(raw: Path, limit: int = 25) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = [f.split(" (")[0] + " (" + f.split("/")[-1] if "/" in f else f
                  for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    out = [f"{total} samples; self:"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(limit)]
    out.append("inclusive:")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in incl.most_common(limit)]
    return "\n".join(out)


def build_env(build: str) -> dict[str, str]:
    """The environment that runs ``build`` (pure: as given; compiled: build/compiled first
    on the path, built when missing or stale)."""
    env = dict(os.environ)
    if build == "compiled":
        script = ROOT / "scripts" / "build_compiled.py"
        if subprocess.run([sys.executable, str(script), "--if-stale"], check=False).returncode:
            raise SystemExit("no compiled build (see above)")
        path = [str(ROOT / "build" / "compiled"), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
    return env


def loaded_build(pid: int) -> str:
    """Which build a running server process has loaded: its memory map holds mypyc's
    library of the compiled modules (frontdesk__mypyc...so) or not."""
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        if "/frontdesk__mypyc." in line:
            return f"compiled (maps {line.split()[-1]})"
    return "pure Python (no frontdesk__mypyc library in its memory map)"


def measure(kind: str, pid: int, target: str, rate: int, dur: int, work: Path,
            pyspy: Path | None) -> None:
    cmds = workload(kind, target, rate, dur, work)
    uas = sipp(cmds[1], work, dur) if len(cmds) > 1 else None
    time.sleep(0.5 if uas else 0)
    spy = None
    if pyspy is not None:
        raw = pyspy.with_name(f"{pyspy.name}-{kind}.txt")
        spy = subprocess.Popen(
            [str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(pid), "-d", str(dur), "-r", "250", "-f", "raw",
             "-o", str(raw), "--nonblocking", *os.environ.get("PYSPY_EXTRA", "").split()], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    c0, t0 = cpu_seconds(pid), time.monotonic()
    rc = sipp(cmds[0], work, dur).wait()
    c1, t1 = cpu_seconds(pid), time.monotonic()
    if uas is not None:
        try:
            uas.wait(timeout=20)
        except subprocess.TimeoutExpired:
            uas.terminate()
            uas.wait()
    ops = rate * dur
    user, system = c1[0] - c0[0], c1[1] - c0[1]
    print(f"{kind:5s} @ {rate}/s x {dur}s: sipp rc={rc}, wall {t1 - t0:.1f}s, server CPU "
          f"{user + system:.2f}s = {(user + system) / ops * 1e6:.0f} us/op (user "
          f"{user / ops * 1e6:.0f}, system {system / ops * 1e6:.0f}; "
          f"{100 * (user + system) / (t1 - t0):.0f}% of a core)", flush=True)
    if spy is not None:
        spy.wait(timeout=dur + 30)
        print(top_frames(raw))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kinds", nargs="+", choices=["reg", "auth", "calls"])
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--dur", type=int, default=6)
    ap.add_argument("--pyspy", type=Path, help="sample the server with py-spy into FILE-*.txt")
    ap.add_argument("--build", choices=["pure", "compiled"], default="pure",
                    help="pure Python, or the mypyc build (scripts/build_compiled.py)")
    args = ap.parse_args()
    env = build_env(args.build)
    work = Path(tempfile.mkdtemp(prefix="fd-servecpu-"))
    data = work / "data"
    py = sys.executable
    subprocess.run([py, "-m", "frontdesk", "bench-setup", "--data", str(data)], check=True,
                   stdout=subprocess.DEVNULL, env=env)
    port = free_port()
    with (work / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [py, "-m", "frontdesk", "serve", "--data", str(data), "--sip", f"127.0.0.1:{port}",
             "--http", "127.0.0.1:0"], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_ready(port)
        time.sleep(1.0)
        print(f"server build: {loaded_build(server.pid)}", flush=True)
        if (args.build == "compiled") != loaded_build(server.pid).startswith("compiled"):
            raise SystemExit(f"asked for the {args.build} build")
        for kind in args.kinds:
            measure(kind, server.pid, f"127.0.0.1:{port}", args.rate, args.dur, work,
                    args.pyspy)
            time.sleep(1.0)
    finally:
        server.terminate()
        server.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
