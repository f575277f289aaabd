"""Start and stop one peer process (baresip, linphonec, sipp) and read its log.

What it is for: the shared mechanics of the peer wrappers: find the binary, start it in
its own process group with its output going to a log file, read the log's tail for error
messages, and stop exactly that process.

What it must never do: signal any process it did not start (no pkill, no killall, no
process-group kill beyond the group it created), or leave its process running after
``stop()``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import pytest

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_BARESIP_STATUS = re.compile(r"\[\d+:\d\d:\d\d\] audio=\S+ \(bit/s\)\s*")


def require_binary(name: str, package: str) -> str:
    """Path of ``name``; skip the test if missing, or fail when FRONTDESK_REQUIRE_PEERS=1."""
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} not found: apt-get install {package} (scripts/test.sh does this)"
    if os.environ.get("FRONTDESK_REQUIRE_PEERS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def clean_log_text(text: str) -> str:
    """Drop colour codes and baresip's carriage-return status line ("[0:00:03] audio=...")."""
    text = _BARESIP_STATUS.sub("", _ANSI.sub("", text))
    lines = (part.rstrip() for part in re.split(r"[\r\n]", text))
    return "\n".join(line for line in lines if line)


class PeerProcess:
    """One child process with stdout+stderr in ``log_path``."""

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdin_pipe: bool = False,
        stdout_pipe: bool = False,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else self._log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return clean_log_text(self.log_path.read_bytes().decode("utf-8", "replace"))
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 5.0) -> int | None:
        """Wait up to ``grace`` s for a clean exit, then SIGTERM, then SIGKILL this PID only."""
        code = self.wait(grace) if self.running() else self.popen.returncode
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if code is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, sig)
            code = self.wait(3.0)
        for stream in (self.popen.stdin, self.popen.stdout):
            if stream is not None:
                stream.close()
        self._log.close()
        return code


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds pass; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
