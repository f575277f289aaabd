"""SIPp (Debian ``sip-tester``) scenarios as a bounded test step.

What it is for: run one SIPp scenario (our XML or a built-in ``-sn``) against a target on
127.0.0.1, in the foreground (``run_sipp``) or background (``start_sipp`` -> SippProcess),
and return what a test asserts on: exit code, successful/failed call counts, the final
statistics screen and the error log.

What it must never do: run unbounded (always -m, -timeout and an outer wall-clock limit),
bind outside 127.0.0.1, or stop any process but its own.

SIPp exit codes: 0 all calls succeeded, 1 at least one failed, 97 stopped by internal
command, 99 ended without processing a call, 255/254 fatal (e.g. could not bind).
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .ports import free_udp_port, release
from .process import PeerProcess, require_binary

SCENARIOS = Path(__file__).parent / "scenarios"  # e.g. register_auth_uas.xml


@dataclass(frozen=True)
class SippResult:
    """Outcome of one SIPp run."""

    returncode: int | None  # None: killed by the outer timeout
    successful: int
    failed: int
    stats: dict[str, str]  # last row of the -trace_stat CSV (counter name -> value)
    screen: str  # the final statistics screen (-trace_screen)
    errors: str  # unexpected messages and errors (-trace_err)
    log: str  # SIPp's own stdout/stderr tail
    workdir: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.failed == 0 and self.successful > 0

    def describe(self) -> str:
        """Everything useful for an assertion message."""
        return (
            f"sipp exit={self.returncode} successful={self.successful} failed={self.failed}\n"
            f"--- screen ---\n{self.screen}\n--- errors ---\n{self.errors[-3000:]}\n"
            f"--- log ---\n{self.log}"
        )


class SippProcess:
    """A SIPp run in the background: ``wait()`` for its result, ``stop()`` to end it."""

    def __init__(
        self,
        scenario: Path | str | None,
        target: str | None = None,
        *,
        builtin: str | None = None,
        local_port: int | None = None,
        calls: int = 1,
        rate: float | None = None,
        limit: int | None = None,
        timeout: float = 30.0,
        transport: str = "u1",
        service: str | None = None,
        keys: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        workdir: Path | str | None = None,
    ) -> None:
        if (scenario is None) == (builtin is None):
            raise ValueError("give exactly one of scenario (XML path) or builtin (e.g. 'uac')")
        self._own_tmp = None if workdir else tempfile.TemporaryDirectory(prefix="sipp-")
        self.workdir = Path(workdir or self._own_tmp.name)  # type: ignore[union-attr]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self._allocated: list[int] = []
        self.local_port = local_port or self._alloc()
        control_port = self._alloc()
        argv = [require_binary("sipp", "sip-tester")]
        argv += ["-sf", str(scenario)] if scenario is not None else ["-sn", str(builtin)]
        argv += ["-i", "127.0.0.1", "-p", str(self.local_port), "-cp", str(control_port)]
        argv += [
            "-t",
            transport,
            "-m",
            str(calls),
            "-timeout",
            f"{int(timeout)}s",
            "-timeout_error",
        ]
        argv += ["-nostdin", "-trace_err", "-error_file", str(self.workdir / "errors.log")]
        argv += ["-trace_screen", "-screen_file", str(self.workdir / "screen.log")]
        argv += ["-trace_stat", "-stf", str(self.workdir / "stats.csv"), "-fd", "1"]
        if rate is not None:
            argv += ["-r", str(rate)]
        if limit is not None:
            argv += ["-l", str(limit)]
        if service is not None:
            argv += ["-s", service]
        for key, value in (keys or {}).items():
            argv += ["-key", key, value]
        argv += list(extra_args)
        if target:
            argv.append(target)
        self.argv = argv
        self.process = PeerProcess(argv, self.workdir / "sipp.log", cwd=self.workdir)

    def _alloc(self) -> int:
        port = free_udp_port()
        self._allocated.append(port)
        return port

    def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for SIPp to finish (default: its own -timeout plus 10 s), then collect."""
        limit = self.timeout + 10.0 if timeout is None else timeout
        code = self.process.wait(limit)
        if code is None:
            self.process.stop(grace=0.0)
        return self._result(code)

    def stop(self) -> SippResult:
        """End SIPp now (SIGTERM, then SIGKILL, this PID only) and collect what it wrote."""
        code = (
            self.process.stop(grace=0.0)
            if self.process.running()
            else self.process.popen.returncode
        )
        return self._result(code)

    def _result(self, code: int | None) -> SippResult:
        self.process.stop(grace=0.0)
        release(*self._allocated)
        self._allocated = []
        stats = _last_stats_row(self.workdir / "stats.csv")
        return SippResult(
            returncode=code,
            successful=_int(stats.get("SuccessfulCall(C)")),
            failed=_int(stats.get("FailedCall(C)")),
            stats=stats,
            screen=_read(self.workdir / "screen.log"),
            errors=_read(self.workdir / "errors.log"),
            log=self.process.log_tail(30),
            workdir=self.workdir,
        )

    def __enter__(self) -> SippProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.running():
            self.stop()


def start_sipp(
    scenario: Path | str | None, target: str | None = None, **options: object
) -> SippProcess:
    """Start SIPp in the background (same options as run_sipp); use ``.wait()``/``.stop()``."""
    return SippProcess(scenario, target, **options)  # type: ignore[arg-type]


def run_sipp(
    scenario: Path | str | None, target: str | None = None, **options: object
) -> SippResult:
    """Run SIPp to completion. Options: builtin, local_port, calls (-m), rate, limit,
    timeout (-timeout; the outer limit is timeout + 10 s), transport, service, keys,
    extra_args, workdir. Example::

        result = run_sipp(None, "127.0.0.1:5060", builtin="uac", calls=10, timeout=20)
        assert result.ok, result.describe()
    """
    with start_sipp(scenario, target, **options) as sipp:
        return sipp.wait()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _last_stats_row(path: Path) -> dict[str, str]:
    """SIPp's stat CSV uses ';' separators; the last row holds the final counters."""
    text = _read(path)
    rows = list(csv.reader(text.splitlines(), delimiter=";"))
    if len(rows) < 2:
        return {}
    header, last = rows[0], rows[-1]
    return {name: value for name, value in zip(header, last, strict=False) if name}
