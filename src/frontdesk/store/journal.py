"""Durable write-behind: the SIP hot path records registrations and CDRs without waiting
for the database, and nothing is lost on ``kill -9``.

Theory of operation:

1. ``submit(op)`` appends one JSON line ``{"id", "kind", "payload"}`` to an append-only
   journal with a single ``os.write`` on an ``O_APPEND`` descriptor. Once that returns the
   bytes are in the OS page cache, so they survive the process being killed (not a power
   cut: there is no fsync on the hot path). The op is also queued in memory.
2. ``run()`` (an asyncio task) takes up to ``max_batch`` queued ops every
   ``flush_interval`` seconds and applies them in one transaction in a worker thread
   (``asyncio.to_thread``), so database I/O never blocks the event loop.
3. Ops are idempotent full-row writes: ``upsert_registration`` (key: tenant, AOR, contact),
   ``delete_registration`` and ``upsert_cdr`` (key: the CDR's uuid). Within a batch only the
   last op per key is applied; applying an op twice gives the same rows.
4. After a batch commits, the journal is compacted: truncated when nothing is queued,
   rewritten (temp file + atomic rename) with only the queued lines once the flushed lines
   outweigh them. A crash between commit and compaction only means ops are applied again.
5. ``replay()`` at startup applies lines left over from a crash before serving. A torn last
   line (a write cut short) or any unparsable line is skipped with a warning.
6. A batch failing on the data (constraint, bad value) is retried op by op; ops the database
   refuses are logged and moved to ``<journal>.rejected`` so one bad op never blocks the
   queue. Connection failures keep everything queued and retry with backoff.

``submit`` is for the event-loop thread only (not thread-safe). Use one WriteBehind per
journal file. This module must never block the event loop on the database and never
drop an op silently.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, cast, get_args

from sqlalchemy import Connection, Table, and_, bindparam, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

try:
    import orjson
except ImportError:  # optional speed-up
    orjson = None  # type: ignore[assignment]

from frontdesk.store.db import Database
from frontdesk.store.models import Cdr, Registration, UtcDateTime

log = logging.getLogger(__name__)

OpKind = Literal["upsert_registration", "delete_registration", "upsert_cdr"]
OP_KINDS: frozenset[str] = frozenset(get_args(OpKind))
MAX_BACKOFF_S = 5.0

REGISTRATIONS: Table = Registration.__table__  # type: ignore[assignment]
CDRS: Table = Cdr.__table__  # type: ignore[assignment]
REGISTRATION_KEY = ("tenant_id", "aor", "contact_uri")
CDR_KEY = ("id",)


def _columns(table: Table, *, skip: tuple[str, ...] = ()) -> frozenset[str]:
    return frozenset(c.name for c in table.columns if c.name not in skip)


def _required(table: Table, *, skip: tuple[str, ...] = ()) -> frozenset[str]:
    return frozenset(
        c.name
        for c in table.columns
        if not c.nullable and c.default is None and c.server_default is None and c.name not in skip
    )


#: kind -> (allowed payload keys, required payload keys)
_SCHEMA: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "upsert_registration": (
        _columns(REGISTRATIONS, skip=("id",)),
        _required(REGISTRATIONS, skip=("id",)),
    ),
    "delete_registration": (frozenset(REGISTRATION_KEY), frozenset(REGISTRATION_KEY)),
    "upsert_cdr": (_columns(CDRS), _required(CDRS)),
}


#: (kind, payload keys in order) already validated: a valid op with the same shape is valid
_VALID_SHAPES: set[tuple[str, ...]] = set()


class JournalOpError(ValueError):
    """An op that can never be applied (unknown kind, missing or unknown fields): a bug."""


@dataclass(frozen=True, slots=True)
class Op:
    """One idempotent write. ``payload`` is the whole row (upserts) or the key (delete);
    fields left out of an upsert are written as their column default (usually NULL)."""

    kind: OpKind
    payload: Mapping[str, Any]
    id: str = field(default_factory=lambda: _new_op_id())

    def __post_init__(self) -> None:
        shape = (self.kind, *self.payload)
        if shape in _VALID_SHAPES:  # the hot path submits the same few shapes
            return
        if self.kind not in _SCHEMA:
            raise JournalOpError(f"unknown journal op kind {self.kind!r}")
        allowed, required = _SCHEMA[self.kind]
        unknown = set(self.payload) - allowed
        missing = required - set(self.payload)
        if unknown or missing:
            raise JournalOpError(
                f"journal op {self.kind}: unknown fields {sorted(unknown)}, "
                f"missing fields {sorted(missing)}"
            )
        if len(_VALID_SHAPES) < 64:
            _VALID_SHAPES.add(shape)

    def key(self) -> tuple[Any, ...]:
        """The row this op writes: later ops with the same key supersede earlier ones."""
        if self.kind == "upsert_cdr":
            return ("cdr", self.payload["id"])
        return ("registration", *(self.payload[k] for k in REGISTRATION_KEY))

    def to_line(self) -> bytes:
        """The journal line for this op (JSON, newline-terminated; datetimes as ISO 8601)."""
        record = {"id": self.id, "kind": self.kind, "payload": dict(self.payload)}
        if orjson is not None:  # several times faster; same JSON (ISO 8601 datetimes)
            return bytes(orjson.dumps(record, default=_encode)) + b"\n"
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=_encode)
        return text.encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> Op:
        """Parse a journal line; raises ``ValueError`` (or ``JournalOpError``) if invalid."""
        record = json.loads(line)
        if not isinstance(record, dict) or not isinstance(record.get("payload"), dict):
            raise ValueError("journal line is not an op record")
        kind = cast(OpKind, record["kind"])
        return cls(kind=kind, payload=record["payload"], id=str(record["id"]))


_OP_PREFIX = uuid.uuid4().hex[:16]  # unique per process; a counter makes each id unique
_op_counter = itertools.count(1)


def _new_op_id() -> str:
    """A unique op id without a system call per op (the journal is on the SIP hot path)."""
    return f"{_OP_PREFIX}{next(_op_counter):x}"


def upsert_registration(**fields: Any) -> Op:
    """Op: insert or replace the binding (tenant_id, aor, contact_uri) with ``fields``."""
    return Op("upsert_registration", fields)


def delete_registration(tenant_id: int, aor: str, contact_uri: str) -> Op:
    """Op: remove one binding (no error if it is already gone)."""
    return Op(
        "delete_registration", {"tenant_id": tenant_id, "aor": aor, "contact_uri": contact_uri}
    )


def upsert_cdr(**fields: Any) -> Op:
    """Op: insert or replace the CDR whose uuid is ``fields["id"]``."""
    return Op("upsert_cdr", fields)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"journal payload value {value!r} is not JSON serialisable")


def read_journal(path: Path) -> Iterator[Op]:
    """The ops in a journal file, in order, skipping (with a warning) lines that do not parse."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    lines = data.split(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield Op.from_line(line)
        except (ValueError, KeyError, TypeError) as exc:
            torn = number == len(lines) or (number == len(lines) - 1 and lines[-1] == b"")
            what = "torn last line (write cut short by a crash?)" if torn else "corrupt line"
            log.warning(
                "journal %s line %d: %s skipped (%d bytes): %s", path, number, what, len(line), exc
            )


def latest_per_key(ops: Sequence[Op]) -> list[Op]:
    """Keep only the last op for each row key (earlier ones are superseded)."""
    latest: dict[tuple[Any, ...], Op] = {}
    for op in ops:
        latest.pop(op.key(), None)
        latest[op.key()] = op
    return list(latest.values())


@dataclass(frozen=True, slots=True)
class _Upsert:
    """One table's upsert, compiled once per dialect: the SQL text, the column order of a
    row, and what fills each column (the op's value through the column's bind processor,
    or the column's scalar default when the op leaves the column out)."""

    sql: str
    positional: bool
    names: tuple[str, ...]
    defaults: tuple[Any, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    datetimes: frozenset[str]

    def rows(self, ops: Sequence[Op]) -> list[Any]:
        """Driver parameters for ``ops``: tuples (positional styles) or dicts (named)."""
        columns = tuple(zip(self.names, self.defaults, self.processors, strict=True))
        datetimes = self.datetimes
        out: list[Any] = []
        for op in ops:
            payload = op.payload
            values = []
            for name, default, process in columns:
                value = payload.get(name, default)
                if name in datetimes and isinstance(value, str):
                    value = datetime.fromisoformat(value)  # from a replayed journal line
                values.append(process(value) if process is not None else value)
            out.append(tuple(values) if self.positional else dict(zip(self.names, values, strict=True)))
        return out


_UPSERTS: dict[tuple[str, str, str], _Upsert] = {}


def _compiled_upsert(
    conn: Connection, table: Table, key: tuple[str, ...], skip: tuple[str, ...]
) -> _Upsert:
    """The cached ``INSERT .. ON CONFLICT (key) DO UPDATE`` of ``table`` for this dialect.

    Run as driver SQL (one ``executemany``): the statement and the per-value bind
    processing SQLAlchemy would do, without its per-row overhead (the largest cost of the
    write-behind under SIPp load)."""
    dialect = conn.dialect
    cache_key = (dialect.name, str(dialect.paramstyle), table.name)
    done = _UPSERTS.get(cache_key)
    if done is not None:
        return done
    columns = {c.name: c for c in table.columns if c.name not in skip}
    module = postgresql if dialect.name == "postgresql" else sqlite
    insert = module.insert(table).values(
        {name: bindparam(name, type_=c.type) for name, c in columns.items()}
    )
    stmt = insert.on_conflict_do_update(
        index_elements=list(key),
        set_={name: insert.excluded[name] for name in columns if name not in key},
    )
    compiled = stmt.compile(dialect=dialect)
    order = list(compiled.positiontup or columns)
    done = _UPSERTS[cache_key] = _Upsert(
        sql=compiled.string,
        positional=bool(compiled.positional),
        names=tuple(order),
        defaults=tuple(_scalar_default(columns[n]) for n in order),
        processors=tuple(columns[n].type._cached_bind_processor(dialect) for n in order),
        datetimes=frozenset(n for n in order if isinstance(columns[n].type, UtcDateTime)),
    )
    return done


def _scalar_default(column: Any) -> Any:
    """What an op that leaves ``column`` out writes: its scalar default, else NULL."""
    default = column.default
    if default is not None and default.is_scalar:
        return getattr(default, "arg", None)
    return None


def _upsert(
    conn: Connection,
    table: Table,
    ops: Sequence[Op],
    key: tuple[str, ...],
    skip: tuple[str, ...] = (),
) -> None:
    if not ops:
        return
    upsert = _compiled_upsert(conn, table, key, skip)
    conn.exec_driver_sql(upsert.sql, upsert.rows(ops))


def _delete_registrations(conn: Connection, ops: Sequence[Op]) -> None:
    if not ops:
        return
    where = and_(*(REGISTRATIONS.c[k] == bindparam(f"k_{k}") for k in REGISTRATION_KEY))
    conn.execute(
        delete(REGISTRATIONS).where(where),
        [{f"k_{k}": op.payload[k] for k in REGISTRATION_KEY} for op in ops],
    )


def apply_ops(conn: Connection, ops: Sequence[Op]) -> None:
    """Apply ops in the caller's transaction (idempotent; last op per key wins)."""
    by_kind: dict[str, list[Op]] = {kind: [] for kind in OP_KINDS}
    for op in latest_per_key(ops):
        by_kind[op.kind].append(op)
    _delete_registrations(conn, by_kind["delete_registration"])
    _upsert(conn, REGISTRATIONS, by_kind["upsert_registration"], REGISTRATION_KEY, ("id",))
    _upsert(conn, CDRS, by_kind["upsert_cdr"], CDR_KEY)


def _refused_by_database(exc: BaseException) -> bool:
    """True if the error is about the op's data (retrying will not help), not the connection."""
    if isinstance(exc, IntegrityError | DataError):
        return True
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@dataclass(slots=True)
class _Pending:
    op: Op
    line: bytes


class WriteBehind:
    """Journal-backed write-behind queue in front of ``db`` (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        journal_path: str | Path,
        flush_interval: float = 0.05,
        max_batch: int = 2000,
    ) -> None:
        if max_batch < 1 or flush_interval < 0:
            raise ValueError("max_batch must be >= 1 and flush_interval >= 0")
        self.db = db
        self.journal_path = Path(journal_path)
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.rejected_path = self.journal_path.with_name(self.journal_path.name + ".rejected")
        self.flushed_ops = 0
        self.rejected_ops = 0
        self._queue: deque[_Pending] = deque()
        self._dead_bytes = 0  # flushed lines still in the journal file
        self._live_bytes = 0  # queued lines in the journal file
        self._fd = self._open_journal()
        self._leftover = os.fstat(self._fd).st_size > 0  # lines from a previous run
        self._wakeup = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._closed = False

    @property
    def pending(self) -> int:
        """Ops submitted but not yet committed to the database."""
        return len(self._queue)

    def _open_journal(self) -> int:
        self.journal_path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(self.journal_path, flags, 0o600)
        if os.fstat(fd).st_size > 0:
            with self.journal_path.open("rb") as journal:
                journal.seek(-1, os.SEEK_END)
                if journal.read(1) != b"\n":
                    # End the torn line so the next op starts on a line of its own.
                    _write_all(fd, b"\n")
        return fd

    def submit(self, op: Op) -> None:
        """Make ``op`` durable against a process crash and queue it (never touches the DB)."""
        if self._closed:
            raise RuntimeError(f"write-behind for {self.journal_path} is closed")
        line = op.to_line()
        _write_all(self._fd, line)
        self._queue.append(_Pending(op, line))
        self._live_bytes += len(line)
        self._wakeup.set()

    def replay(self) -> int:
        """Apply every op in the journal (left by a crash) and compact it; blocking.

        Call at startup before serving. Idempotent: running it twice changes nothing.
        Returns the number of ops read from the journal.
        """
        count = self._replay_apply()
        self._after_replay()
        return count

    def _replay_apply(self) -> int:
        """Read the journal file and apply it (touches no instance state: thread-safe)."""
        ops = list(read_journal(self.journal_path))
        refused: list[tuple[Op, str]] = []
        for start in range(0, len(ops), self.max_batch):
            refused += self._apply_batch(ops[start : start + self.max_batch])
        self._record_rejected(refused)
        if ops:
            log.info("journal %s: replayed %d ops", self.journal_path, len(ops))
        return len(ops)

    def _after_replay(self) -> None:
        """Everything in the file but the queued lines is now in the database."""
        self._leftover = False
        self._dead_bytes = os.fstat(self._fd).st_size - self._live_bytes
        self._compact()

    def _apply_batch(self, ops: Sequence[Op]) -> list[tuple[Op, str]]:
        """Apply ops in one transaction; on a data error, op by op. Returns refused ops."""
        try:
            with self.db.engine.begin() as conn:
                apply_ops(conn, ops)
            return []
        except Exception as exc:
            if not _refused_by_database(exc):
                raise
        refused = []
        for op in latest_per_key(ops):
            try:
                with self.db.engine.begin() as conn:
                    apply_ops(conn, [op])
            except Exception as exc:
                if not _refused_by_database(exc):
                    raise
                refused.append((op, str(getattr(exc, "orig", None) or exc).splitlines()[0]))
        return refused

    def _record_rejected(self, refused: list[tuple[Op, str]]) -> None:
        for op, reason in refused:
            log.error("journal op %s %s refused by the database: %s", op.kind, op.id, reason)
            line = json.dumps({"op": json.loads(op.to_line()), "error": reason}) + "\n"
            with self.rejected_path.open("a", encoding="utf-8") as rejected:
                rejected.write(line)
        self.rejected_ops += len(refused)

    def _compact(self) -> None:
        """Drop flushed lines from the journal: truncate if idle, else rewrite when worth it."""
        if not self._queue:
            os.ftruncate(self._fd, 0)
            self._dead_bytes = self._live_bytes = 0
            return
        if self._dead_bytes < self._live_bytes:
            return  # rewriting now would copy more than it frees
        tmp_path = self.journal_path.with_name(self.journal_path.name + ".tmp")
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        fd = os.open(tmp_path, flags, 0o600)
        _write_all(fd, b"".join(p.line for p in self._queue))
        os.replace(tmp_path, self.journal_path)
        os.close(self._fd)
        self._fd = fd
        self._dead_bytes = 0

    async def _flush_some(self) -> int:
        """Commit up to ``max_batch`` queued ops (after any leftover replay); returns count."""
        async with self._flush_lock:
            if self._fd < 0:
                return 0  # closed: whatever is queued stays in the journal for replay
            if self._leftover:
                await asyncio.to_thread(self._replay_apply)
                self._after_replay()
            batch = [self._queue[i] for i in range(min(self.max_batch, len(self._queue)))]
            if not batch:
                return 0
            refused = await asyncio.to_thread(self._apply_batch, [p.op for p in batch])
            for pending in batch:
                self._queue.popleft()
                self._live_bytes -= len(pending.line)
                self._dead_bytes += len(pending.line)
            self._record_rejected(refused)
            self.flushed_ops += len(batch) - len(refused)
            self._compact()
            return len(batch)

    async def flush_now(self) -> int:
        """Commit everything queued now (tests, shutdown); raises if the database fails."""
        total = 0
        while self._queue or self._leftover:
            total += await self._flush_some()
        return total

    async def run(self) -> None:
        """Flush queued ops until ``close()``; database errors are logged and retried."""
        backoff = self.flush_interval
        while not self._closed:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if len(self._queue) < self.max_batch:
                await asyncio.sleep(self.flush_interval)  # let a batch gather
            try:
                await self._flush_some()
                backoff = self.flush_interval
            except Exception:
                log.exception(
                    "journal %s: flushing %d ops failed; kept in the journal, retrying in %.2fs",
                    self.journal_path,
                    len(self._queue),
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(max(backoff * 2, 0.05), MAX_BACKOFF_S)

    def close_file(self) -> None:
        """Close the journal of a writer that only replayed it (nothing was submitted)."""
        if self._queue:
            raise RuntimeError(f"write-behind for {self.journal_path} has queued ops: "
                               "use close()")
        self._closed = True
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    async def close(self) -> None:
        """Stop ``run()``, flush what is queued and close the journal.

        If the final flush fails the ops stay in the journal and are replayed next start.
        """
        if self._closed:
            return
        self._closed = True
        self._wakeup.set()
        try:
            await self.flush_now()
        except Exception:
            log.exception(
                "journal %s: final flush failed; %d ops stay in the journal for replay",
                self.journal_path,
                len(self._queue),
            )
        finally:
            os.close(self._fd)
            self._fd = -1
