"""Run a real Frontdesk server process for integration tests.

`FrontdeskProcess` does what a user does: `frontdesk init --demo --json`, then
`frontdesk serve` on free ports; it waits until SIP answers OPTIONS, and can be stopped
gracefully, killed with SIGKILL and restarted on the same data directory.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from peers import ports as peer_ports


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (this xdist worker's share of the
    test port block, never an ephemeral port another process's connection could take)."""
    return peer_ports.free_port(udp=True, tcp=True)


def options_ping(port: int, timeout: float = 0.5) -> bytes | None:
    """Send one OPTIONS over UDP; return the response bytes or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        lport = s.getsockname()[1]
        msg = (
            f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{time.monotonic_ns()};rport\r\n"
            f"From: <sip:ping@127.0.0.1>;tag=p{lport}\r\nTo: <sip:127.0.0.1:{port}>\r\n"
            f"Call-ID: ping-{time.monotonic_ns()}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        s.sendto(msg, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except OSError:
            return None


class FrontdeskProcess:
    def __init__(self, data_dir: Path, db_url: str | None = None,
                 serve_args: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.db_url = db_url
        self.serve_args = serve_args  # more `frontdesk serve` options, e.g. --sip-workers 2
        self.sip_port = free_port()
        self.http_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "server.log"
        self.demo: dict[str, Any] = {}

    def _base(self) -> list[str]:
        return [sys.executable, "-m", "frontdesk"]

    def _db_args(self) -> list[str]:
        return ["--db", self.db_url] if self.db_url else []

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._base(), *args], capture_output=True, text=True,
                              timeout=120, check=check)

    def init_demo(self) -> dict[str, Any]:
        out = self.cli("init", "--demo", "--json", "--data", str(self.data_dir), *self._db_args())
        self.demo = json.loads(out.stdout)
        return self.demo

    def password(self, number: str) -> str:
        for e in self.demo["extensions"]:
            if e["number"] == number:
                return str(e["password"])
        raise KeyError(number)

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        env = {**os.environ, **(extra_env or {})}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*self._base(), "serve", "--data", str(self.data_dir), *self._db_args(),
             "--sip", f"127.0.0.1:{self.sip_port}", "--http", f"127.0.0.1:{self.http_port}",
             *self.serve_args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"frontdesk serve exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            if options_ping(self.sip_port, 0.3):
                return
        raise RuntimeError("frontdesk serve did not answer OPTIONS in 30 s:\n" + self.log_tail())

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def cdrs(self) -> list[dict[str, Any]]:
        out = self.cli("cdr", "--json", "--limit", "500", "--data", str(self.data_dir),
                       *self._db_args())
        return list(json.loads(out.stdout))
