"""SIP worker processes: the registrar on several cores (``frontdesk serve --sip-workers N``).

One Python process holds one core (the GIL). With N > 1 the main process starts N - 1 worker
processes (pbx/sip_worker.py) that share its UDP socket. Each address-of-record (tenant,
extension) is owned by one worker (sip/affinity.py): its REGISTERs are handled there, so its
bindings, CSeq order, contact limit and digest nonce counts are in one place. The main process
is the only reader of the network: it hands each REGISTER to its worker over the link
(pbx/worker_link.py; a few microseconds, read from the raw bytes) and handles everything else
itself -- calls, responses, OPTIONS, SUBSCRIBE, media, call flows and the
HTTP API -- exactly as with one process. One reader keeps each peer's messages in order
(with several readers of one socket, a caller's ACK and BYE could be handled in the wrong
order); the worker answers on the shared socket itself.

The main process keeps the complete location service: a worker persists each binding change
of the addresses it owns (its own write-behind journal, ``journal-sip-worker-K.jsonl``, replayed
by the worker when it starts and by the main process at start-up) and sends it to the main
process, which mirrors it in memory. When a worker starts, the main process first sends it the bindings it owns; until
then, and whenever a worker is down, the main process serves that worker's addresses itself.
A worker that exits is started again (with a growing pause if it keeps failing). Failed
authentications seen by workers are counted by the main process's guard, which tells every
worker about each block. A configuration change reloads the workers' snapshot too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from frontdesk.pbx.directory import Directory
from frontdesk.pbx.guard import SourceBlocked
from frontdesk.pbx.worker_link import (
    ROUTE,
    Link,
    decode_binding,
    decode_message,
    decode_stats,
    encode_binding,
    encode_block,
    encode_message,
    socket_pair,
)
from frontdesk.sip.affinity import owner, register_target
from frontdesk.sip.message import Request
from frontdesk.sip.peer import Peer
from frontdesk.store import journal
from frontdesk.store.db import Database

if TYPE_CHECKING:
    from frontdesk.pbx.server import PbxServer

log = logging.getLogger("frontdesk.workers")

MAX_SIP_WORKERS = 64
RESTART_PAUSE = 1.0  # first pause before restarting a worker that exited ...
RESTART_PAUSE_MAX = 30.0  # ... doubling up to this while it keeps exiting within ...
STABLE_AFTER = 60.0  # ... this many seconds of running
STOP_GRACE = 3.0


def worker_journal(data_dir: Path, k: int) -> Path:
    """Where SIP worker ``k`` journals its binding changes."""
    return data_dir / f"journal-sip-worker-{k}.jsonl"


def replay_worker_journals(db: Database, data_dir: Path) -> int:
    """Apply what SIP workers journaled but had not written when they (or the main process)
    stopped uncleanly; blocking, for start-up before workers run. Returns the op count."""
    total = 0
    for path in sorted(data_dir.glob("journal-sip-worker-*.jsonl")):
        writer = journal.WriteBehind(db, path)
        try:
            total += writer.replay()
        finally:
            writer.close_file()
    return total


def quick_owner(directory: Directory, data: bytes, processes: int) -> int | None:
    """The process that owns a REGISTER datagram, read without the parser; None when
    ``data`` is not a REGISTER or its To URI needs the parser."""
    target = register_target(data)
    if target is None:
        return None
    tenant = directory.tenant_for_host(target[1])
    return 0 if tenant is None else owner(tenant.id, target[0], processes)


def register_owner(directory: Directory, req: Request, processes: int) -> int:
    """The process that owns a parsed REGISTER (the main process for an unknown domain: it
    answers 404)."""
    user, host = req.to_user_host
    tenant = directory.tenant_for_host(host)
    return 0 if tenant is None else owner(tenant.id, user or "", processes)


class WorkerPool:
    """The main process's side: starts, feeds and restarts the SIP worker processes."""

    def __init__(self, server: PbxServer, processes: int) -> None:
        if not 2 <= processes <= MAX_SIP_WORKERS:
            raise ValueError(f"--sip-workers {processes}: use 1 (no workers) up to "
                             f"{MAX_SIP_WORKERS}")
        self.server = server
        self.processes = processes
        self.ready = [False] * processes
        self.links: list[Link | None] = [None] * processes
        self.procs: list[asyncio.subprocess.Process | None] = [None] * processes
        self.restarts = [0] * processes
        self.stats: list[dict[str, int]] = [{} for _ in range(processes)]  # last reported
        self._hopped = False  # the message being handled was already routed to us
        self._stopping = False
        self._tasks: list[asyncio.Task[Any]] = []

    # --- start / stop -----------------------------------------------------------------------
    async def start(self) -> None:
        for k in range(1, self.processes):
            await self._spawn(k)

    async def _spawn(self, k: int) -> None:
        server = self.server
        assert server.transport is not None and server.engine is not None
        udp_fd = server.transport.udp_fileno()
        main_end, worker_end = socket_pair()
        cfg = server.config
        spec = {
            "index": k,
            "processes": self.processes,
            "udp_fd": udp_fd,
            "link_fd": worker_end.fileno(),
            "data_dir": str(cfg.data_dir),
            "db_url": cfg.db_url,
            "via_host": server.engine.calls.via_host,
            "auth_max_failures": cfg.auth_max_failures,
            "auth_window": cfg.auth_window,
            "auth_block": cfg.auth_block,
            "auth_exempt": list(cfg.auth_exempt),
            "max_message": server.transport.max_message,
            "log_level": logging.getLogger().getEffectiveLevel(),
        }
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "frontdesk.pbx.sip_worker",
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(udp_fd, worker_end.fileno()),
                env={**os.environ, "FRONTDESK_SIP_WORKER": json.dumps(spec)},
            )
        finally:
            worker_end.close()
        self.procs[k] = proc
        self.links[k] = Link(main_end, lambda frame: self._on_frame(k, frame))
        self._tasks.append(asyncio.get_running_loop().create_task(self._watch(k, proc)))
        log.info("SIP worker %d started (pid %d)", k, proc.pid)

    async def _watch(self, k: int, proc: asyncio.subprocess.Process) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        rc = await proc.wait()
        self.ready[k] = False
        link = self.links[k]
        if link is not None:
            link.close()
        self.links[k] = None
        if self._stopping:
            return
        pause = RESTART_PAUSE
        if loop.time() - started < STABLE_AFTER:
            pause = min(RESTART_PAUSE * 2 ** self.restarts[k], RESTART_PAUSE_MAX)
            self.restarts[k] += 1
        else:
            self.restarts[k] = 0
        log.warning("SIP worker %d (pid %d) exited with status %s; the main process serves its "
                    "registrations until it is back (restart in %g s)", k, proc.pid, rc, pause)
        await asyncio.sleep(pause)
        if not self._stopping:
            await self._spawn(k)

    async def stop(self) -> None:
        self._stopping = True
        for k, proc in enumerate(self.procs):
            self.ready[k] = False
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        for proc in self.procs:
            if proc is None or proc.returncode is not None:
                continue
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for link in self.links:
            if link is not None:
                link.close()

    def add_stats(self, total: Counter[str]) -> Counter[str]:
        """``total`` plus every worker's last reported counters (workers restarted since
        count from zero again)."""
        for stats in self.stats:
            total.update(stats)
        return total

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None and p.returncode is None]

    # --- routing ------------------------------------------------------------------------
    def route(self, data: bytes, peer: Peer) -> bool:
        """Hand a message the main process read to the worker owning it (True), or leave
        it to the main process (False)."""
        engine = self.server.engine
        if engine is None:
            return False
        k = quick_owner(engine.directory, data, self.processes)
        if not k or not self.ready[k]:
            return False
        link = self.links[k]
        assert link is not None
        link.send(encode_message(b"M", ROUTE, peer, data), droppable=True)
        return True

    def affinity(self, req: Request, data: bytes, source: Peer) -> bool:
        """SipEngine.affinity for the main process: a parsed REGISTER another process owns
        goes there (once: a message routed to us is handled here)."""
        engine = self.server.engine
        if self._hopped or engine is None:
            return False
        k = register_owner(engine.directory, req, self.processes)
        if k == 0 or not self.ready[k]:
            return False
        link = self.links[k]
        assert link is not None
        link.send(encode_message(b"M", k, source, data), droppable=True)
        return True

    def receive_routed(self, data: bytes, peer: Peer) -> None:
        """Handle a message another process says the main process owns."""
        self._hopped = True
        try:
            self.server.receive(data, peer)
        finally:
            self._hopped = False

    # --- messages from workers ------------------------------------------------------------
    def _on_frame(self, k: int, frame: bytes) -> None:
        kind = frame[:1]
        server = self.server
        if kind == b"M":  # a REGISTER whose parsed To names another owner than the raw bytes
            target, peer, data = decode_message(frame)
            if target == 0 or target >= self.processes or not self.ready[target]:
                self.receive_routed(data, peer)
            else:
                link = self.links[target]
                assert link is not None
                link.send(frame, droppable=True)
        elif kind == b"B":
            change, binding = decode_binding(frame)
            assert server.engine is not None
            server.engine.location.apply(change, binding)  # the worker persisted it
        elif kind == b"S":
            _, peer, data = decode_message(frame)
            if server.transport is not None:
                server.transport.send(data, peer)
        elif kind == b"F":
            assert server.engine is not None
            host = frame[1:].decode()
            now = asyncio.get_running_loop().time()
            if server.engine.guard.record_failure(host, now):
                log.warning("blocking %s after repeated failed authentication (seen by SIP "
                            "worker %d)", host, k)
        elif kind == b"T":
            self.stats[k] = decode_stats(frame)
        elif kind == b"Y":
            self._worker_ready(k)
        else:
            log.warning("SIP worker %d sent an unknown link message %r", k, kind)

    def _worker_ready(self, k: int) -> None:
        """Send the worker the bindings it owns, then route its addresses to it."""
        engine = self.server.engine
        link = self.links[k]
        if engine is None or link is None:
            return
        sent = 0
        for binding in engine.location.all():
            if owner(binding.tenant_id, binding.aor, self.processes) == k:
                link.send(encode_binding("upsert", binding))
                sent += 1
        link.send(b"Z")
        self.ready[k] = True
        log.info("SIP worker %d ready (%d registrations handed over)", k, sent)

    def on_block(self, block: SourceBlocked) -> None:
        """AuthFailureGuard.on_block of the main process: every worker blocks it too."""
        frame = encode_block(block.source, block.blocked_until - block.blocked_at)
        for link in self.links:
            if link is not None:
                link.send(frame)

    def reload(self) -> None:
        """The configuration changed: workers reload their snapshot from the database."""
        for link in self.links:
            if link is not None:
                link.send(b"R")
