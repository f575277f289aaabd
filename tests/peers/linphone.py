"""linphonec as a second, independent real SIP phone for tests.

What it is for: run linphonec (liblinphone 5.1, Debian 12) with its own HOME and config,
drive it on stdin (soundcard use files, play, record, call, answer, DTMF digits,
terminate, quit) and wait for the state lines it prints on stdout.

What it must never do: touch another process (it stops only the PID it started), bind
SIP or RTP media outside 127.0.0.1, or wait without a timeout.

Quirks found on linphonec 5.1.65 (see also the docstrings below):
- Registration success prints nothing at ``-d 0`` (not even with -S): poll
  ``status register`` until it answers ``registered, identity=... duration=N``.
- On first start liblinphone "migrates" IPv6 settings and turns IPv6 on; on a host with
  a global IPv6 address the SDP then offers ``c=IN IP6 <that address>`` and baresip
  answers 488. The config sets ``ipv6_migration_done=1`` and ``use_ipv6=0``.
- Without ``[rtp] bind_address=127.0.0.1`` the SDP carries the default-route address
  (e.g. 192.0.2.2), not 127.0.0.1.
- Codec sections in the config are not enough (it prepends opus and speex); codecs are
  switched with ``codec disable N`` after ``codec list`` at start.
- Each DTMF digit typed on stdin blocks linphonec for about one second (it plays the
  tone locally), and the local DTMF tone is mixed into its ``record`` file; during the
  digits it sends telephone-events instead of audio.
- With no ``play`` file linphonec sends no RTP at all, and RFC 2833 digits are held back
  until the next digit is typed (so the last one never leaves). A phone here always
  plays something (silence by default).
- ``play FILE`` loops the file (about 0.1 s gap between loops); ``record FILE`` is
  rewritten by every call.
- When its stdin reaches end-of-file linphonec does not exit but spins at 100 % CPU;
  stop() sends ``quit`` and then ends the PID.
- "belle-sip-error-fast_header_address parser error for [sip:user@:-1]" and
  "Could not find a suitable soundcard" lines are harmless noise.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from .audio import silence_wav, wav_complete
from .ports import free_port, free_rtp_range, release
from .process import PeerProcess, require_binary, wait_until

_CODEC_LINE = re.compile(r"^\s*(\d+): (\S+) \((\d+)\) (enabled|disabled)")
_PROMPT = "linphonec> "

# State lines printed by linphonec 5.1 (format strings found in the binary and seen live).
# A peer may carry a quoted display name with spaces ("Office Manager" <sip:...>).
INCOMING = r"Receiving new incoming call from (?P<peer>.+), assigned id (?P<id>\d+)"
RINGING = r"Call (?P<id>\d+) to (?P<peer>.+?) ringing\."
CONNECTED = r"Call (?P<id>\d+) with (?P<peer>.+?) connected\."
MEDIA = r"Media streams established with (?P<peer>.+?) for call (?P<id>\d+)"
ENDED = r"Call (?P<id>\d+) with (?P<peer>.+?) ended \((?P<reason>[^)]*)\)\."
ERROR = r"Call (?P<id>\d+) with (?P<peer>.+?) error\."
DTMF = r"Receiving tone (?P<digit>\S) from (?P<peer>.+)"
REGISTERED = r"registered, identity=(?P<identity>\S+) duration=(?P<expires>\d+)"


class LinphoneError(AssertionError):
    """linphonec did not print what the test expected (message includes its output tail)."""


class LinphonePhone:
    """One linphonec process. Use as a context manager or call stop()."""

    def __init__(
        self,
        workdir: Path | str | None = None,
        user: str = "carol",
        *,
        password: str | None = None,
        domain: str = "127.0.0.1",
        proxy: str | None = None,
        sip_port: int | None = None,
        rtp_port: int | None = None,
        codecs: Iterable[str] = ("PCMU", "PCMA"),
        play_file: Path | str | None = None,
        record_file: Path | str | None = None,
        autoanswer: bool = False,
    ) -> None:
        self._own_tmp = None if workdir else tempfile.TemporaryDirectory(prefix=f"linphone-{user}-")
        self.workdir = Path(workdir or self._own_tmp.name)  # type: ignore[union-attr]
        self.user, self.password, self.domain, self.proxy = user, password, domain, proxy
        self.codecs = {c.upper() for c in codecs}
        self.play_file = Path(play_file) if play_file else None
        self.record_file = Path(record_file) if record_file else self.workdir / "heard.wav"
        self.autoanswer = autoanswer
        self._fixed = (sip_port, rtp_port)
        self.sip_port, self.rtp_port = sip_port or 0, rtp_port or 0
        self._allocated: list[int] = []
        self.process: PeerProcess | None = None
        self.lines: list[str] = []
        self._consumed: set[int] = set()
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None

    @property
    def uri(self) -> str:
        """Where to reach this phone directly, without a server."""
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    # ---- lifecycle -------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> LinphonePhone:
        """Write lc.rc, start linphonec, select codecs, files as soundcard, play/record.

        If anything fails the process is stopped before the error propagates.
        """
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> LinphonePhone:
        binary = require_binary("linphonec", "linphone-cli")
        self.sip_port = self._fixed[0] or free_port(udp=True)
        self.rtp_port = self._fixed[1] or free_rtp_range(2)[0]
        self._allocated = [
            *([] if self._fixed[0] else [self.sip_port]),
            *([] if self._fixed[1] else [self.rtp_port, self.rtp_port + 1]),
        ]
        (self.workdir / ".local/share/linphone").mkdir(parents=True, exist_ok=True)
        config = self.workdir / "lc.rc"
        config.write_text(self.config_text())
        argv = [binary, "-c", str(config), "-d", "0"] + (["-a"] if self.autoanswer else [])
        env = {**os.environ, "HOME": str(self.workdir)}
        self.process = PeerProcess(
            argv,
            self.workdir / "linphonec.log",
            env=env,
            cwd=self.workdir,
            stdin_pipe=True,
            stdout_pipe=True,
        )
        self._reader = threading.Thread(
            target=self._read_loop, daemon=True, name=f"linphonec-{self.user}"
        )
        self._reader.start()
        self._select_codecs(timeout)
        self.send("soundcard use files")
        self.wait_for(r"Using wav files instead of soundcard", timeout)
        # Always play something: with nothing to send, linphonec sends no RTP and holds
        # back RFC 2833 digits (the last digit typed never leaves).
        self.play(self.play_file or silence_wav(self.workdir / "silence.wav", 5.0))
        self.record(self.record_file)
        return self

    def config_text(self) -> str:
        """lc.rc: loopback only, IPv4 only, RFC 2833 DTMF, optional proxy registration."""
        lines = [
            "[sip]",
            f"sip_port={self.sip_port}",
            "sip_tcp_port=0",
            "sip_tls_port=0",
            "bind_address=127.0.0.1",
            "use_ipv6=0",
            "ipv6_migration_done=1",
            f"contact=sip:{self.user}@{self.domain}",
            "guess_hostname=0",
            "use_rfc2833=1",
            "use_info=0",
            "inc_timeout=60",
            f"default_proxy={0 if self.proxy else -1}",
            "[rtp]",
            "bind_address=127.0.0.1",
            f"audio_rtp_port={self.rtp_port}",
            "audio_adaptive_jitt_comp_enabled=0",
            "[sound]",
            "echocancellation=0",
        ]
        if self.proxy:
            lines += [
                "[proxy_0]",
                f"reg_proxy=<{self.proxy};transport=udp>",
                f"reg_identity=<{self.aor}>",
                "reg_sendregister=1",
                "reg_expires=300",
            ]
        if self.proxy and self.password is not None:
            lines += [
                "[auth_info_0]",
                f"username={self.user}",
                f"passwd={self.password}",
                f"domain={self.domain}",
            ]
        return "\n".join(lines) + "\n"

    def _select_codecs(self, timeout: float) -> None:
        start = self._mark()
        self.send("codec list")
        self.send("autoanswer")  # its answer marks the end of the codec list
        self.wait_for(r"Auto answer is (enabled|disabled)", timeout, start=start)
        with self._cond:
            listed = [m for line in self.lines[start:] if (m := _CODEC_LINE.match(line))]
        if not any(m.group(2).upper() in self.codecs for m in listed):
            raise self._error(f"none of {sorted(self.codecs)} in linphonec's codec list")
        for match in listed:
            index, name, state = match.group(1), match.group(2).upper(), match.group(4)
            want = name in self.codecs
            if want != (state == "enabled"):
                mark = self._mark()
                self.send(f"codec {'enable' if want else 'disable'} {index}")
                self.wait_for(
                    rf"^\s*{index}: \S+ \(\d+\) {'enabled' if want else 'disabled'}", timeout, mark
                )

    def stop(self) -> None:
        """``terminate`` and ``quit``, then end its own PID if it lingers. Idempotent."""
        if self.process is not None and self.process.running():
            for line in ("terminate", "quit"):
                try:
                    self.send(line)
                except (OSError, LinphoneError):
                    break
        if self.process is not None:
            self.process.stop(grace=5.0)
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        release(*self._allocated)
        self._allocated = []

    def __enter__(self) -> LinphonePhone:
        return self if self._alive() else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _alive(self) -> bool:
        return self.process is not None and self.process.running()

    # ---- stdin commands --------------------------------------------------------------

    def send(self, line: str) -> None:
        """Type one line on linphonec's stdin."""
        if self.process is None or self.process.popen.stdin is None or not self._alive():
            raise self._error(f"not running (command {line!r})")
        self.process.popen.stdin.write((line + "\n").encode())
        self.process.popen.stdin.flush()

    def play(self, path: Path | str) -> None:
        """Set the WAV this phone sends in calls (looped)."""
        self.send(f"play {path}")

    def record(self, path: Path | str) -> None:
        """Set the WAV this phone writes what it hears to (rewritten each call)."""
        self.record_file = Path(path)
        self.send(f"record {path}")

    def call(self, uri: str) -> None:
        self.send(f"call {uri}")

    def answer(self) -> None:
        self.send("answer")

    def terminate(self) -> None:
        self.send("terminate")

    def set_autoanswer(self, enabled: bool = True) -> None:
        self.send(f"autoanswer {'enable' if enabled else 'disable'}")
        self.wait_for(r"Auto answer (enabled|disabled)\.", 5.0)

    def send_dtmf(self, digits: str, timeout: float = 5.0) -> None:
        """Type each digit as its own line (RFC 2833/4733) and wait until linphonec took it.

        linphonec takes about one second per digit, so this returns after ~len(digits) s.
        """
        for digit in digits:
            if digit not in "0123456789*#ABCD":
                raise ValueError(f"not a DTMF digit: {digit!r}")
            mark = self._mark()
            self.send(digit)
            self.wait_for(rf"^{re.escape(digit)}$", timeout, mark)

    def heard(self, timeout: float = 3.0) -> Path:
        """The record file once linphonec has finished writing it (after the call ended)."""
        if not wait_until(lambda: wav_complete(self.record_file), timeout):
            raise self._error(f"recording {self.record_file} missing or unfinished")
        return self.record_file

    def wait_registered(self, timeout: float = 10.0) -> re.Match[str]:
        """Poll ``status register`` until registered (success is not printed by itself)."""
        deadline = time.monotonic() + timeout
        while True:
            mark = self._mark()
            self.send("status register")
            try:
                return self.wait_for(REGISTERED, 1.0, start=mark)
            except LinphoneError:
                if time.monotonic() > deadline:
                    raise self._error(f"not registered within {timeout}s") from None

    # ---- stdout ----------------------------------------------------------------------

    def _read_loop(self) -> None:
        assert self.process is not None and self.process.popen.stdout is not None
        with open(self.process.log_path, "ab") as log:
            for raw in self.process.popen.stdout:
                log.write(raw)
                log.flush()
                with self._cond:
                    self.lines.append(_strip(raw.decode("utf-8", "replace").rstrip("\n")))
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def wait_for(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match[str]:
        """The oldest output line (from index ``start``) matching ``pattern`` not returned before.

        Each line is returned once, so waiting twice for the same pattern needs two such
        lines, and lines of other kinds stay available in any order. Use the module's
        patterns: INCOMING, CONNECTED, ENDED, DTMF, ...
        """
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def scan() -> bool:
            for index in range(start, len(self.lines)):
                if index in self._consumed:
                    continue
                match = regex.search(self.lines[index])
                if match:
                    self._consumed.add(index)
                    found.append(match)
                    return True
            return False

        with self._cond:
            self._cond.wait_for(lambda: scan() or not self._alive(), timeout)
            if found or scan():
                return found[0]
        raise self._error(f"no line matching {pattern!r} within {timeout}s")

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def log_tail(self, lines: int = 40) -> str:
        with self._cond:
            return "\n".join(self.lines[-lines:])

    def _error(self, what: str) -> LinphoneError:
        return LinphoneError(
            f"linphonec {self.user} ({self.uri}): {what}\n--- linphonec output tail ---\n{self.log_tail()}"
        )


def _strip(line: str) -> str:
    while line.startswith(_PROMPT):
        line = line[len(_PROMPT) :]
    return line


def linphone_version() -> str:
    """``linphonec -v`` output, for reports."""
    out = subprocess.run(["linphonec", "-v"], capture_output=True, text=True, timeout=10)
    return (out.stdout or out.stderr).strip()
