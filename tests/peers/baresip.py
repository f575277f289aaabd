"""baresip as a scripted, real SIP phone for tests (see ../shared/testing-real-phones.md).

What it is for: start one baresip per phone with its own config directory (plays a WAV,
records what it hears and sends, ctrl_tcp on a free port), then drive it over ctrl_tcp
(netstrings of JSON): dial, accept, hang up, send RFC 4733 DTMF, and wait for its events.

What it must never do: touch another process (it stops only the PID it started), bind
outside 127.0.0.1, or wait without a timeout. Failures carry baresip's log tail.

Quirks found on baresip 1.0.0 (Debian 12):
- ``sip_listen 127.0.0.1:P`` binds UDP P, TCP P *and* TLS on TCP P+1; P+1 must be free.
- The aufile source hangs the call up when its file ends ("end of file"): pad the WAV
  (audio.pad_silence) for at least as long as the call should last.
- sndfile names recordings ``dump-<YYYY-MM-DD-hh-mm-ss>-{dec,enc}.wav`` (second
  resolution): two calls of one phone in the same second share a file name.
- The WAV header is written when the call's audio stops, just after CALL_CLOSED.
- An account in the ``accounts`` file registers at start-up, before a ctrl_tcp client
  can connect, so its REGISTER_OK is lost; the account is created with ``uanew`` instead.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audio import silence_wav, wav_complete
from .ports import free_port, free_rtp_range, free_tcp_port, release
from .process import PeerProcess, require_binary, wait_until

MODULE_PATH = "/usr/lib/baresip/modules"
SND_PATH_MAX = 80  # 128 - len("/dump-2026-11-24-03-07-01-dec.wav") - a margin


class BaresipError(AssertionError):
    """A baresip phone did not do what the test expected (message includes its log tail)."""


@dataclass(frozen=True)
class BaresipEvent:
    """One ctrl_tcp event, e.g. type CALL_INCOMING, param the peer URI or DTMF digit."""

    type: str
    param: str
    raw: dict[str, Any] = field(repr=False)

    @property
    def peer_uri(self) -> str:
        return str(self.raw.get("peeruri", ""))

    @property
    def call_id(self) -> str:
        return str(self.raw.get("id", ""))

    @property
    def direction(self) -> str:
        return str(self.raw.get("direction", ""))


@dataclass(frozen=True)
class Recording:
    """One call's sndfile dump: ``heard`` (decoded from the network) and ``sent``."""

    heard: Path
    sent: Path


class BaresipPhone:
    """One baresip process driven over ctrl_tcp. Use as a context manager or call stop()."""

    def __init__(
        self,
        workdir: Path | str | None = None,
        user: str = "phone",
        *,
        password: str | None = None,
        domain: str = "127.0.0.1",
        outbound: str | None = None,
        register: bool | None = None,
        answermode: str = "manual",
        codecs: Iterable[str] = ("PCMU",),
        audio_file: Path | str | None = None,
        sip_port: int | None = None,
        ctrl_port: int | None = None,
        rtp_ports: tuple[int, int] | None = None,
        account_params: str = "",
        extra_config: Iterable[str] = (),
    ) -> None:
        self._own_tmp = None if workdir else tempfile.TemporaryDirectory(prefix=f"baresip-{user}-")
        self.workdir = Path(workdir or self._own_tmp.name)  # type: ignore[union-attr]
        self.config_dir = self.workdir / "config"
        self.record_dir = self.workdir / "recordings"
        self._snd_link: Path | None = None  # short path to record_dir, see _snd_path
        self.user, self.password, self.domain, self.outbound = user, password, domain, outbound
        self.register = register if register is not None else bool(outbound or password)
        self.answermode = answermode
        self.codecs = tuple(codecs)
        self.audio_file = Path(audio_file) if audio_file else None
        self.account_params, self.extra_config = account_params, tuple(extra_config)
        self._fixed_ports = (sip_port, ctrl_port, rtp_ports)
        self.sip_port, self.ctrl_port = sip_port or 0, ctrl_port or 0
        self.rtp_ports = rtp_ports or (0, 0)
        self.process: PeerProcess | None = None
        self._allocated: list[int] = []
        self.events: list[BaresipEvent] = []
        self._consumed: set[int] = set()
        self._responses: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._token = 0

    # ---- addresses -------------------------------------------------------------------

    @property
    def uri(self) -> str:
        """Where to reach this phone directly, without a server: sip:user@127.0.0.1:PORT."""
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    @property
    def aor(self) -> str:
        """Its address of record: sip:user@domain."""
        return f"sip:{self.user}@{self.domain}"

    # ---- lifecycle -------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> BaresipPhone:
        """Write the config, start baresip and connect to ctrl_tcp (retries on port clashes)."""
        binary = require_binary("baresip", "baresip-core")
        last_error = ""
        for _attempt in range(3):
            self._pick_ports()
            self._write_config()
            log = self.workdir / "baresip.log"
            log.write_bytes(b"")
            self.process = PeerProcess([binary, "-f", str(self.config_dir)], log)
            ready = wait_until(self._ready_or_dead, timeout)
            text = self.process.log_text()
            if ready and self.process.running() and "Address already in use" not in text:
                try:
                    self._connect(timeout)
                    self.command("uanew", self.account_line())
                except BaseException:
                    self.stop()
                    raise
                return self
            last_error = self.process.log_tail()
            self.process.stop(grace=0.5)
            if all(p is not None for p in self._fixed_ports):
                break
        raise BaresipError(f"baresip {self.user} did not start:\n{last_error}")

    def _ready_or_dead(self) -> bool:
        assert self.process is not None
        return not self.process.running() or "baresip is ready" in self.process.log_text()

    def _pick_ports(self) -> None:
        sip, ctrl, rtp = self._fixed_ports
        self.sip_port = sip or free_port(udp=True, tcp=True, following=1)
        self.ctrl_port = ctrl or free_tcp_port()
        self.rtp_ports = rtp or free_rtp_range(10)
        low, high = self.rtp_ports
        self._allocated += [
            *([] if sip else [self.sip_port, self.sip_port + 1]),
            *([] if ctrl else [self.ctrl_port]),
            *([] if rtp else range(low, high + 1)),
        ]

    def _write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.record_dir.mkdir(parents=True, exist_ok=True)
        source = self.audio_file or silence_wav(self.workdir / "silence.wav", 120.0)
        lines = [
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{self.sip_port}",
            "sip_trans_def udp",
            "net_interface 127.0.0.1",
            f"audio_source aufile,{source}",
            # a player nobody pulls from (aubridge without a bridged source): ALSA's "null"
            # device took audio in a busy loop, a whole core per phone in a call. What the
            # phone hears is still recorded (sndfile records in the decode path).
            "audio_player aubridge,nil",
            "audio_alert aubridge,nil",
            "ausrc_srate 8000",
            "auplay_srate 8000",
            "ausrc_channels 1",
            "auplay_channels 1",
            f"rtp_ports {self.rtp_ports[0]}-{self.rtp_ports[1]}",
            f"module_path {MODULE_PATH}",
            "module g711.so",
            "module aufile.so",
            "module aubridge.so",
            "module sndfile.so",
            "module_app account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
            f"snd_path {self._snd_path()}",
            *self.extra_config,
        ]
        (self.config_dir / "config").write_text("\n".join(lines) + "\n")
        # The account is added over ctrl_tcp after we connect (see start), so that its
        # REGISTER_OK / REGISTER_FAIL events are not sent before anyone listens.
        (self.config_dir / "accounts").write_text("# accounts are added with uanew\n")

    def account_line(self) -> str:
        """The ``accounts`` line: identity, auth, registration, answer mode, codecs."""
        line = f"<sip:{self.user}@{self.domain}>"
        if self.password is not None:
            line += f";auth_pass={self.password}"
        if self.outbound:
            line += f';outbound="{self.outbound}"'
        line += f";regint={300 if self.register else 0}"
        line += f";answermode={self.answermode};audio_codecs={','.join(self.codecs)}"
        return line + self.account_params

    def _connect(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise self._error("could not connect to ctrl_tcp") from None
                time.sleep(0.05)
        self._sock.settimeout(None)
        self._reader = threading.Thread(
            target=self._read_loop, daemon=True, name=f"baresip-{self.user}"
        )
        self._reader.start()

    def stop(self) -> None:
        """Quit baresip (ctrl ``quit``), then end its own PID if it lingers. Idempotent."""
        if self.process is not None:
            if self._sock is not None and self.process.running():
                with contextlib.suppress(OSError):
                    self._send("quit", "")
            self.process.stop(grace=3.0)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        release(*self._allocated)
        self._allocated = []
        if self._snd_link is not None:
            self._snd_link.unlink(missing_ok=True)
            self._snd_link = None

    def _snd_path(self) -> Path:
        """Where baresip's sndfile module writes: baresip 1.0 builds the file name in a
        128-byte buffer and silently records nothing when ``snd_path`` + "/dump-<time>-dec.wav"
        is longer (pytest-xdist's tmp paths are), so it gets a short symlink to record_dir."""
        if len(str(self.record_dir)) <= SND_PATH_MAX:
            return self.record_dir
        if self._snd_link is None:
            for _ in range(100):
                link = Path(tempfile.gettempdir()) / f"bs-{secrets.token_hex(4)}"
                with contextlib.suppress(FileExistsError):
                    link.symlink_to(self.record_dir, target_is_directory=True)
                    self._snd_link = link
                    break
            else:
                raise self._error(f"no short symlink for {self.record_dir}")
        return self._snd_link

    def __enter__(self) -> BaresipPhone:
        return self if self._alive() else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- control ---------------------------------------------------------------------

    def _send(self, command: str, params: str) -> str:
        if self._sock is None:
            raise self._error(f"not started (command {command!r})")
        with self._cond:
            self._token += 1
            token = f"t{self._token}"
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._sock.sendall(str(len(body)).encode() + b":" + body + b",")
        return token

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> dict[str, Any]:
        """Send a ctrl_tcp command and return its response ({"ok": bool, "data": str})."""
        token = self._send(command, params)
        with self._cond:
            if not self._cond.wait_for(lambda: token in self._responses, timeout):
                raise self._error(f"no response to {command} {params!r} within {timeout}s")
            response = self._responses.pop(token)
        if not response.get("ok", False):
            raise self._error(f"{command} {params!r} failed: {response.get('data')!r}")
        return response

    def dial(self, uri: str) -> None:
        """Call ``uri`` (e.g. another phone's ``.uri`` or sip:200@127.0.0.1)."""
        self.command("dial", uri)

    def accept(self) -> None:
        """Answer the ringing call."""
        self.command("accept")

    def hangup(self) -> None:
        """Hang up the current call."""
        self.command("hangup")

    def transfer(self, uri: str) -> None:
        """Blind-transfer the current call to ``uri`` (the phone's transfer key: REFER)."""
        self.command("transfer", uri)

    def send_dtmf(self, digits: str, gap: float = 0.3) -> None:
        """Send each digit as RFC 4733 telephone-events, ``gap`` seconds apart."""
        for digit in digits:
            self.command("sndcode", digit)
            time.sleep(gap)

    # ---- events ----------------------------------------------------------------------

    def _read_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        buffer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while True:
                head, sep, rest = buffer.partition(b":")
                if not sep or not head.isdigit() or len(rest) < int(head) + 1:
                    break
                size = int(head)
                self._dispatch(json.loads(rest[:size]))
                buffer = rest[size + 1 :]

    def _dispatch(self, message: dict[str, Any]) -> None:
        with self._cond:
            if message.get("response"):
                self._responses[str(message.get("token"))] = message
            elif message.get("event"):
                param = message.get("param", "")
                self.events.append(BaresipEvent(str(message.get("type")), str(param), message))
            self._cond.notify_all()

    def wait_event(
        self,
        event_type: str,
        timeout: float = 10.0,
        match: Callable[[BaresipEvent], bool] | None = None,
    ) -> BaresipEvent:
        """The oldest not-yet-returned event of ``event_type`` (optionally matching)."""

        def find() -> int | None:
            for index, event in enumerate(self.events):
                if index in self._consumed or event.type != event_type:
                    continue
                if match is None or match(event):
                    return index
            return None

        with self._cond:
            found = self._cond.wait_for(lambda: find() is not None or not self._alive(), timeout)
            index = find()
            if index is not None:
                self._consumed.add(index)
                return self.events[index]
        why = "baresip exited" if found else f"no {event_type} within {timeout}s"
        raise self._error(why)

    def _alive(self) -> bool:
        return self.process is not None and self.process.running()

    def event_types(self) -> list[str]:
        """Every event type seen so far, in order (useful in assertion messages)."""
        with self._cond:
            return [event.type for event in self.events]

    def dtmf_received(self) -> str:
        """Digits reported by CALL_DTMF_START so far, in order."""
        with self._cond:
            return "".join(e.param for e in self.events if e.type == "CALL_DTMF_START")

    # ---- recordings and diagnostics --------------------------------------------------

    def recordings(self, timeout: float = 3.0) -> list[Recording]:
        """Finished recordings, oldest first; waits up to ``timeout`` for headers to be final."""
        pairs = []
        for heard in sorted(self.record_dir.glob("dump-*-dec.wav")):
            sent = heard.with_name(heard.name.replace("-dec.wav", "-enc.wav"))
            pairs.append(Recording(heard, sent))
        wait_until(lambda: all(wav_complete(p) for r in pairs for p in (r.heard, r.sent)), timeout)
        return pairs

    def last_recording(self, timeout: float = 3.0) -> Recording:
        """The newest call's recording; fails with the log tail if there is none."""
        found = self.recordings(timeout)
        if not found:
            raise self._error(f"no recordings in {self.record_dir}")
        return found[-1]

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines) if self.process else ""

    def _error(self, what: str) -> BaresipError:
        return BaresipError(
            f"baresip {self.user} ({self.uri}): {what}\n"
            f"events seen: {self.event_types()}\n--- baresip log tail ---\n{self.log_tail()}"
        )
