"""A SIP worker process (``frontdesk serve --sip-workers N``; started by pbx/workers.py).

The main process reads the network and hands it the REGISTERs of the addresses-of-record it
owns; it handles them with the same engine code as the main process (parser, transaction
layer, digest authentication and brute-force guard, registrar) and answers on the main
process's UDP socket (inherited descriptor; it never reads it: one reader keeps each
phone's messages in order). A REGISTER whose parsed To says another process owns it goes
back over the link. It persists each binding change through its
own write-behind journal (replayed at its start) and sends it to the main process, which
mirrors it for calls. It never answers a call.

It stops on SIGTERM/SIGINT, when its link closes, and when the main process is gone
(PR_SET_PDEATHSIG where Linux offers it, and a check of the parent pid every second).
Its specification comes as JSON in $FRONTDESK_SIP_WORKER (see WorkerPool._spawn).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from frontdesk.pbx.directory import load_directory
from frontdesk.pbx.engine import SipEngine
from frontdesk.pbx.engine_timer import EngineTimer
from frontdesk.pbx.guard import AuthFailureGuard
from frontdesk.pbx.location import Binding, LocationService
from frontdesk.pbx.server import EXPIRY_SWEEP, load_secret, registration_op
from frontdesk.pbx.worker_link import (
    Link,
    decode_binding,
    decode_block,
    decode_message,
    encode_binding,
    encode_message,
    encode_stats,
)
from frontdesk.pbx.workers import register_owner, worker_journal
from frontdesk.sip.message import Request
from frontdesk.sip.peer import Peer
from frontdesk.store import journal
from frontdesk.store.db import Database

log = logging.getLogger("frontdesk.sip_worker")

PARENT_CHECK = 1.0
STATS_REPORT = 0.1  # seconds after handling a message, the counters go to the main process


class SipWorker:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.index: int = spec["index"]
        self.processes: int = spec["processes"]
        self.engine: SipEngine | None = None
        self.link: Link | None = None
        self.sock: socket.socket | None = None
        self._hopped = False
        self._engine_timer: EngineTimer | None = None  # the engine's next deadline
        self._stats_report: asyncio.TimerHandle | None = None
        self._stop = asyncio.Event()
        self._db = Database(spec["db_url"])
        self._wall_offset = 0.0
        self.writer: journal.WriteBehind
        self._parent = os.getppid()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        spec = self.spec
        self._wall_offset = time.time() - loop.time()
        self.writer = journal.WriteBehind(
            self._db, worker_journal(Path(spec["data_dir"]), self.index))
        replayed = await asyncio.to_thread(self.writer.replay)
        if replayed:
            log.info("replayed %d journal entries left by an unclean stop", replayed)
        writer_task = loop.create_task(self.writer.run())
        directory = await asyncio.to_thread(self._load_directory)
        guard = AuthFailureGuard(spec["auth_max_failures"], spec["auth_window"],
                                 spec["auth_block"], exempt=frozenset(spec["auth_exempt"]))
        guard.on_failure = self._report_failure
        engine = self.engine = SipEngine(
            directory,
            LocationService(self._binding_changed),
            via_host=spec["via_host"],
            secret=load_secret(Path(spec["data_dir"])),
            cdr_sink=self._no_calls,
            guard=guard,
        )
        engine.affinity = self._affinity
        self._engine_timer = EngineTimer(engine, self._flush)
        engine.timers.add(loop.time() + EXPIRY_SWEEP, self._sweep, None)
        self.sock = socket.socket(fileno=spec["udp_fd"])
        self.sock.setblocking(False)
        self.link = Link(socket.socket(fileno=spec["link_fd"]), self._on_frame,
                         on_closed=self._stop.set)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        watch = loop.create_task(self._watch_parent())
        gc.collect()  # as in the main process (pbx/server.py): the snapshot is long-lived
        gc.freeze()
        gc.set_threshold(50_000, 4, 500)
        self.link.send(b"Y")
        self._rearm()
        await self._stop.wait()
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        self.link.close()
        self.sock.close()  # our copy of the descriptor; the main process keeps its own
        await self.writer.close()  # flushes what is queued (the journal keeps it otherwise)
        writer_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer_task
        self._db.engine.dispose()

    def _load_directory(self) -> Any:
        with self._db.session() as s:
            return load_directory(s)

    async def _watch_parent(self) -> None:
        while True:
            await asyncio.sleep(PARENT_CHECK)
            if os.getppid() != self._parent:
                log.warning("the main process is gone: stopping")
                self._stop.set()
                return

    # --- the network ------------------------------------------------------------------------
    def _flush(self) -> None:
        assert self.engine is not None and self.sock is not None and self.link is not None
        if self._stats_report is None:  # the counters, for the main process's /health
            self._stats_report = asyncio.get_running_loop().call_later(
                STATS_REPORT, self._report_stats)
        for data, peer in self.engine.drain():
            if peer.transport == "udp":
                try:
                    self.sock.sendto(data, (peer.host, peer.port))
                except OSError as e:  # a full buffer or an unreachable peer: it retransmits
                    log.debug("udp send to %s failed: %s", peer, e)
            else:  # a REGISTER that came over the main process's TCP connection
                self.link.send(encode_message(b"S", 0, peer, data))
        self._rearm()

    def _affinity(self, req: Request, data: bytes, source: Peer) -> bool:
        assert self.engine is not None and self.link is not None
        if self._hopped:
            return False
        k = register_owner(self.engine.directory, req, self.processes)
        if k == self.index:
            return False
        self.link.send(encode_message(b"M", k, source, data), droppable=True)
        return True

    # --- timers ---------------------------------------------------------------------------
    def _rearm(self) -> None:
        assert self._engine_timer is not None
        self._engine_timer.rearm()

    def _sweep(self, _subject: object, now: float) -> None:
        assert self.engine is not None
        self.engine.location.expire(now)  # each expiry goes to the main process
        self.engine.timers.add(now + EXPIRY_SWEEP, self._sweep, None)

    # --- the link -------------------------------------------------------------------------
    def _on_frame(self, frame: bytes) -> None:
        assert self.engine is not None
        kind = frame[:1]
        if kind == b"M":
            target, peer, data = decode_message(frame)
            self._hopped = target == self.index
            try:
                self.engine.receive(data, peer, asyncio.get_running_loop().time())
            finally:
                self._hopped = False
            self._flush()
        elif kind == b"B":  # the main process hands over the bindings we own
            _, binding = decode_binding(frame)
            self.engine.location.load([binding])
        elif kind == b"Z":  # every binding we own is here; REGISTERs follow
            log.info("registrations handed over: %d", len(self.engine.location))
        elif kind == b"K":
            source, seconds = decode_block(frame)
            self.engine.guard.impose(source, seconds, asyncio.get_running_loop().time())
        elif kind == b"R":
            asyncio.get_running_loop().create_task(self._reload())
        else:
            log.warning("unknown link message %r from the main process", kind)

    async def _reload(self) -> None:
        try:
            directory = await asyncio.to_thread(self._load_directory)
        except Exception:
            log.exception("could not reload the configuration from the database")
            return
        assert self.engine is not None
        self.engine.directory = directory

    def _report_stats(self) -> None:
        self._stats_report = None
        if self.engine is not None and self.link is not None:
            self.link.send(encode_stats(self.engine.stats))

    def _binding_changed(self, kind: str, binding: Binding) -> None:
        self.writer.submit(registration_op(kind, binding, self._wall_offset))
        if self.link is not None:
            self.link.send(encode_binding(kind, binding))

    def _report_failure(self, source: str, _now: float) -> None:
        if self.link is not None:
            self.link.send(b"F" + source.encode())

    def _no_calls(self, record: dict[str, Any]) -> None:
        log.error("a SIP worker produced a call record (calls belong to the main process): "
                  "%s", record.get("call_id"))


def _die_with_parent() -> None:
    """Linux: SIGTERM when the main process exits, even by kill -9."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def main() -> int:
    raw = os.environ.get("FRONTDESK_SIP_WORKER")
    if not raw:
        print("frontdesk.pbx.sip_worker is started by `frontdesk serve --sip-workers N`, "
              "not by hand", file=sys.stderr)
        return 2
    spec = json.loads(raw)
    _die_with_parent()
    logging.basicConfig(level=spec.get("log_level", logging.INFO),
                        format=f"%(asctime)s %(levelname)s %(name)s [sip worker "
                               f"{spec['index']}]: %(message)s")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(SipWorker(spec).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
