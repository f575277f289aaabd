"""Runs the SIP engine on the one asyncio event loop: transports, timers, persistence.

Glue only (aioquic-style): feed received bytes to the engine, send what it drains, re-arm one
loop timer for its next deadline, persist bindings and CDRs through the write-behind journal,
and refresh the configuration snapshot when the database changes. Protocol logic lives in
`frontdesk.sip` and `frontdesk.pbx.engine`, never here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from frontdesk.net.transport import SipTransport
from frontdesk.org.model import GroupMember, RoleAssignment, UserGroup
from frontdesk.pbx.directory import load_directory
from frontdesk.pbx.engine import SipEngine
from frontdesk.pbx.engine_timer import EngineTimer
from frontdesk.pbx.guard import AuthFailureGuard
from frontdesk.pbx.location import Binding, LocationService
from frontdesk.pbx.trunk_model import Trunk
from frontdesk.pbx.workers import WorkerPool, replay_worker_journals
from frontdesk.routing.context import UNKNOWN_CALLER, CallerFacts
from frontdesk.routing.model import FlowVersion
from frontdesk.sip.peer import Peer
from frontdesk.store import journal
from frontdesk.store.db import Database
from frontdesk.store.models import Cdr, Extension, Registration, SipCredential, Tenant

log = logging.getLogger("frontdesk.server")

DIRECTORY_REFRESH = 2.0
EXPIRY_SWEEP = 5.0


@dataclass(slots=True)
class ServerConfig:
    data_dir: Path
    db_url: str
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    advertised_host: str | None = None  # what goes in Via/Contact (defaults to sip_host)
    auth_max_failures: int = 10  # failed authentications from one address ...
    auth_window: float = 60.0  # ... within this many seconds ...
    auth_block: float = 600.0  # ... block it (silently drop its requests) this long
    auth_exempt: tuple[str, ...] = ()  # addresses/networks never blocked
    sip_workers: int = 1  # processes handling REGISTERs (pbx/workers.py); 1 = this one only


def load_secret(data_dir: Path) -> bytes:
    """The digest nonce secret, kept in the data directory so nonces survive a restart."""
    path = data_dir / "nonce.secret"
    if path.exists():
        return path.read_bytes()
    secret = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
    return secret


#: the tables the engine's configuration snapshot reads (pbx/directory.py): migration 0007's
#: triggers count every change to them in config_version, and a new count reloads the snapshot
SNAPSHOT_TABLES: tuple[str, ...] = tuple(
    model.__tablename__
    for model in (Tenant, Extension, FlowVersion, RoleAssignment, UserGroup, GroupMember,
                  SipCredential, Trunk)
)


def registration_op(kind: str, b: Binding, wall_offset: float) -> journal.Op:
    """The journal op persisting a binding change (``upsert``/``delete``); ``wall_offset``
    turns the event loop's clock into wall-clock time."""
    if kind == "delete":
        return journal.delete_registration(b.tenant_id, b.aor, b.contact_uri)
    return journal.upsert_registration(
        tenant_id=b.tenant_id,
        aor=b.aor,
        contact_uri=b.contact_uri,
        transport=b.peer.transport,
        source_host=b.peer.host,
        source_port=b.peer.port,
        expires_at=b.expires_at + wall_offset,
        call_id=b.call_id,
        cseq=b.cseq,
        user_agent=b.user_agent,
        instance_id=b.instance_id,
        reg_id=b.reg_id,
        path=b.path,
        updated_at=time.time(),
    )


_CONFIG_VERSION_SQL = "SELECT version FROM config_version WHERE id = 1"


def _dt(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


class PbxServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.db = Database(config.db_url)
        self.transport: SipTransport | None = None
        self.engine: SipEngine | None = None
        self.writer: journal.WriteBehind | None = None
        self._engine_timer: EngineTimer | None = None  # the engine's next deadline
        self._flush_soon = False  # a _flush is scheduled for the end of this loop iteration
        self._tasks: list[asyncio.Task[Any]] = []
        self._fingerprint = -1  # the configuration version the snapshot was loaded at
        self.wall_offset = 0.0
        self.media: Any = None  # media (issue #3): pbx.media_setup.MediaRuntime
        #: answer-time actions on live calls: transfer / to_voicemail (pbx.callcontrol_live,
        #: set by media_setup.start_media)
        self.call_control: Any = None
        self.tickets: Any = None  # tickets (issue #6): pbx.tickets_bridge.TicketsBridge
        self.bus: Any = None  # the API's live event bus (set by the tickets bridge)
        self.workers: WorkerPool | None = None  # serve --sip-workers N > 1

    # --- start / stop -----------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.wall_offset = time.time() - loop.time()
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.db.migrate)
        self.writer = journal.WriteBehind(self.db, cfg.data_dir / "journal.jsonl")
        replayed = await asyncio.to_thread(self.writer.replay)
        if replayed:
            log.info("replayed %d journal entries left by an unclean stop", replayed)
        # SIP workers' journals (serve --sip-workers) left by an unclean stop
        replayed = await asyncio.to_thread(replay_worker_journals, self.db, cfg.data_dir)
        if replayed:
            log.info("replayed %d SIP worker journal entries left by an unclean stop", replayed)
        interrupted = await asyncio.to_thread(self._close_interrupted_cdrs)
        if interrupted:
            log.info(
                "marked %d calls that were in progress at the last stop as interrupted", interrupted
            )
        directory = await asyncio.to_thread(self._load_directory)
        location = LocationService(self._persist_binding)
        location.load(await asyncio.to_thread(self._load_bindings))
        self.transport = SipTransport(cfg.sip_host, cfg.sip_port, self.on_message)
        await self.transport.start()
        via_host = f"{cfg.advertised_host or cfg.sip_host}:{self.transport.port}"
        if ":" in (cfg.advertised_host or cfg.sip_host):
            via_host = f"[{cfg.advertised_host or cfg.sip_host}]:{self.transport.port}"
        guard = AuthFailureGuard(
            cfg.auth_max_failures,
            cfg.auth_window,
            cfg.auth_block,
            exempt=frozenset(cfg.auth_exempt),
        )
        self.engine = SipEngine(
            directory,
            location,
            via_host=via_host,
            secret=load_secret(cfg.data_dir),
            cdr_sink=self._persist_cdr,
            guard=guard,
            wall_offset=self.wall_offset,
        )
        self._engine_timer = EngineTimer(self.engine, self._flush)
        self.engine.timers.add(loop.time() + EXPIRY_SWEEP, self._sweep, None)
        self.engine.qualifier.start(loop.time())
        self.engine.trunks.registrar.start(loop.time())  # trunks that register at the carrier
        self.engine.flows.clock = loop.time
        self.engine.flows.lookup = self._lookup_caller
        from frontdesk.pbx.media_setup import start_media  # media (issue #3)

        self.media = await start_media(self)
        from frontdesk.pbx.tickets_bridge import start_tickets  # tickets (issue #6)

        self.tickets = await start_tickets(self)
        self._rearm()
        self._tasks = [
            loop.create_task(self.writer.run()),
            loop.create_task(self._refresh_directory()),
        ]
        # Long-lived start-up objects (directory, bindings) need no cycle collection, and
        # the hot path allocates many short-lived objects: collect less often. Transactions
        # linger 32 s, so young collections promote many live objects; a generation-1 pass
        # every 4 (not 20) keeps its pause short (~0.2 s, not ~0.8 s with 120k REGISTERs in
        # flight: SIPp retransmits after 0.5 s) at the same total cost; 4 * 500 = 20 * 100
        # keeps full collections as rare as before.
        if cfg.sip_workers > 1:  # the registrar on more cores (pbx/workers.py)
            self.workers = WorkerPool(self, cfg.sip_workers)
            self.engine.affinity = self.workers.affinity
            self.engine.guard.on_block = self.workers.on_block
            await self.workers.start()
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 4, 500)
        log.info("SIP listening on udp+tcp %s:%d", cfg.sip_host, self.transport.port)

    async def stop(self) -> None:
        if self.workers is not None:
            await self.workers.stop()
        if self.media is not None:  # media (issue #3): BYE to media calls, stop the clock
            await self.media.close()
        if self.tickets is not None:  # tickets (issue #6): queued work, webhook dispatcher
            await self.tickets.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.transport is not None:
            await self.transport.close()
        if self.writer is not None:
            await self.writer.flush_now()
            await self.writer.close()

    def sip_stats(self) -> dict[str, int]:
        """The SIP counters of this process and of its SIP workers."""
        total: Counter[str] = Counter(self.engine.stats if self.engine is not None else {})
        if self.workers is not None:
            self.workers.add_stats(total)
        return dict(total)

    # --- the hot path ----------------------------------------------------------------------
    def on_message(self, data: bytes, peer: Peer) -> None:
        """A message from the network (or one a SIP worker read and handed over)."""
        workers = self.workers
        if workers is not None and workers.route(data, peer):
            return  # a REGISTER a worker process owns
        self.receive(data, peer)

    def receive(self, data: bytes, peer: Peer) -> None:
        """Handle a message in this process."""
        engine = self.engine
        if engine is None:
            return
        loop = asyncio.get_running_loop()
        engine.receive(data, peer, loop.time())
        if not self._flush_soon:  # once per loop iteration: a burst of datagrams is
            self._flush_soon = True  # answered in one pass (one timer re-arm)
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        assert self.engine is not None and self.transport is not None
        self._flush_soon = False
        send = self.transport.send
        for data, peer in self.engine.drain():
            send(data, peer)
        self._rearm()

    def _rearm(self) -> None:
        assert self._engine_timer is not None
        self._engine_timer.rearm()

    def _sweep(self, _subject: object, now: float) -> None:
        assert self.engine is not None
        self.engine.location.expire(now)
        self.engine.timers.add(now + EXPIRY_SWEEP, self._sweep, None)

    # --- caller lookup for call flows (tickets: contact, company, open requests) ----------
    def _lookup_caller(
        self, tenant_id: int, caller: str, reply: Callable[[CallerFacts], None]
    ) -> None:
        async def look_up() -> None:
            try:
                facts = await asyncio.to_thread(self._caller_facts, tenant_id, caller)
            except Exception:
                log.exception("caller lookup for %s failed; routing it as unknown", caller)
                facts = UNKNOWN_CALLER
            try:
                reply(facts)
            except Exception:
                log.exception("internal error routing a call from %s", caller)
            self._flush()

        asyncio.get_running_loop().create_task(look_up())

    def _caller_facts(self, tenant_id: int, caller: str) -> CallerFacts:
        from frontdesk.routing.context import facts_from_lookup
        from frontdesk.tickets.lookup import caller_lookup

        with self.db.session() as s:
            return facts_from_lookup(caller_lookup(s, tenant_id, caller))

    # --- persistence --------------------------------------------------------------------
    def _persist_binding(self, kind: str, b: Binding) -> None:
        assert self.writer is not None
        self.writer.submit(registration_op(kind, b, self.wall_offset))

    def _persist_cdr(self, record: dict[str, Any]) -> None:
        assert self.writer is not None
        if self.tickets is not None:  # tickets (issue #6): call events, actions on the CDR
            self.tickets.on_cdr(record)
        row = dict(record)
        for key in ("started_at", "answered_at", "ended_at"):
            row[key] = _dt(row[key])
        self.writer.submit(journal.upsert_cdr(**row))

    def _load_bindings(self) -> list[Binding]:
        now = time.time()
        with self.db.session() as s:
            rows = s.scalars(select(Registration).where(Registration.expires_at > now)).all()
            return [
                Binding(
                    tenant_id=r.tenant_id,
                    aor=r.aor,
                    contact_uri=r.contact_uri,
                    peer=Peer(r.transport, r.source_host, r.source_port),
                    expires_at=r.expires_at - self.wall_offset,
                    call_id=r.call_id,
                    cseq=r.cseq,
                    user_agent=r.user_agent,
                    instance_id=r.instance_id,
                    reg_id=r.reg_id,
                    path=r.path,
                )
                for r in rows
            ]

    def _close_interrupted_cdrs(self) -> int:
        now = datetime.now(UTC)
        with self.db.session() as s:
            result = s.execute(
                update(Cdr)
                .where(Cdr.ended_at.is_(None))
                .values(ended_at=now, disposition="interrupted", hangup_side="system")
            )
            s.commit()
            return int(getattr(result, "rowcount", 0) or 0)

    # --- configuration snapshot ---------------------------------------------------------
    def _fingerprint_now(self) -> int:
        """The database's configuration version (migration 0007; `serve` migrates before it
        starts): triggers on SNAPSHOT_TABLES count every insert, update and delete, whoever
        makes it, so one number tells whether the snapshot must be reloaded."""
        with self.db.engine.connect() as conn:
            return int(conn.exec_driver_sql(_CONFIG_VERSION_SQL).scalar() or 0)

    def _load_directory(self) -> Any:
        fingerprint = self._fingerprint_now()
        with self.db.session() as s:
            directory = load_directory(s)
        self._fingerprint = fingerprint
        return directory

    async def _refresh_directory(self) -> None:
        while True:
            await asyncio.sleep(DIRECTORY_REFRESH)
            try:
                fingerprint = await asyncio.to_thread(self._fingerprint_now)
                if fingerprint != self._fingerprint and self.engine is not None:
                    self.engine.directory = await asyncio.to_thread(self._load_directory)
                    if self.workers is not None:
                        self.workers.reload()
                    log.info("configuration changed: reloaded tenants and extensions")
            except Exception:
                log.exception("could not refresh configuration from the database")
