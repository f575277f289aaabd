"""The audit log: append entries to a per-tenant hash chain, and verify the chains.

Each row's ``hash`` is ``sha256(prev_hash + canonical JSON of the row's other columns)``;
the first row of a tenant's chain has ``prev_hash`` of 64 zeros. Changing, removing or
reordering any row breaks the chain from there on, and ``verify`` names the row. (Cutting
rows off the *end* of a chain is not detectable from the chain alone; export the latest
hash elsewhere to cover that.)

Appending is serialised per tenant: on PostgreSQL by a transaction-scoped advisory lock,
on SQLite by its single writer; the unique (tenant_id, seq) constraint makes a fork
impossible either way. This module must never decide permissions, and nothing may write
``audit_log`` except ``append`` — there is no update or delete here on purpose.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from frontdesk.org.model import AuditEntry

GENESIS_HASH = "0" * 64
_LOCK_BASE = 0x4644_0000  # "FD" << 16: advisory lock ids for audit chains


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 kept, datetimes as ISO UTC."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable in an audit entry")


def iso(moment: datetime) -> str:
    """``moment`` as ISO 8601 UTC with microseconds (the audit log's one time format)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


_HASHED_COLUMNS = (
    "tenant_id", "seq", "at", "actor", "actor_kind", "actor_user_id", "actor_roles", "channel",
    "action", "resource_type", "resource_key", "before", "after", "change_request_id",
    "vendor_grant_id", "reason",
)  # fmt: skip


def row_hash(entry: AuditEntry) -> str:
    """The hash ``entry`` must carry, given its ``prev_hash`` and contents."""
    content = {name: getattr(entry, name) for name in _HASHED_COLUMNS}
    content["at"] = iso(entry.at)
    payload = entry.prev_hash + canonical_json(content)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What to write: everything but the chain fields, which ``append`` fills in."""

    tenant_id: int
    actor: str
    actor_kind: str
    actor_user_id: int | None
    actor_roles: Sequence[str]
    channel: str
    action: str
    resource_type: str
    resource_key: str
    before: Any = None
    after: Any = None
    change_request_id: int | None = None
    vendor_grant_id: int | None = None
    reason: str = ""


def _lock_chain(session: Session, tenant_id: int) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_BASE + tenant_id})


def append(session: Session, record: AuditRecord, now: datetime) -> AuditEntry:
    """Add ``record`` to its tenant's chain inside the caller's transaction."""
    _lock_chain(session, record.tenant_id)
    last = session.execute(
        select(AuditEntry.seq, AuditEntry.hash)
        .where(AuditEntry.tenant_id == record.tenant_id)
        .order_by(AuditEntry.seq.desc())
        .limit(1)
    ).first()
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    entry = AuditEntry(
        tenant_id=record.tenant_id,
        seq=seq,
        at=now,
        actor=record.actor,
        actor_kind=record.actor_kind,
        actor_user_id=record.actor_user_id,
        actor_roles=canonical_json(sorted(record.actor_roles)),
        channel=record.channel,
        action=record.action,
        resource_type=record.resource_type,
        resource_key=record.resource_key,
        before=None if record.before is None else canonical_json(record.before),
        after=None if record.after is None else canonical_json(record.after),
        change_request_id=record.change_request_id,
        vendor_grant_id=record.vendor_grant_id,
        reason=record.reason,
        prev_hash=prev_hash,
        hash="",
    )
    entry.hash = row_hash(entry)
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """One place where a chain does not hold, named so a person can find the row."""

    tenant_id: int
    seq: int
    row_id: int
    problem: str

    def __str__(self) -> str:
        return f"tenant {self.tenant_id}, audit row seq {self.seq} (id {self.row_id}): {self.problem}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The result of ``verify``: how many rows were checked and every problem found."""

    checked: int
    tenants: int
    problems: tuple[ChainProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_chain(rows: Iterable[AuditEntry]) -> tuple[int, list[ChainProblem]]:
    problems: list[ChainProblem] = []
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    for row in rows:
        count += 1
        where = (row.tenant_id, row.seq, row.id)
        if row.seq != expected_seq:
            problems.append(ChainProblem(*where, f"expected seq {expected_seq}: rows are missing"))
        if row.prev_hash != prev_hash:
            problems.append(
                ChainProblem(*where, "prev_hash does not match the row before it "
                             "(a row before it was changed, removed or inserted)")
            )
        if row_hash(row) != row.hash:
            problems.append(
                ChainProblem(*where, "contents changed after it was written (hash mismatch)")
            )
        expected_seq, prev_hash = row.seq + 1, row.hash
    return count, problems


def verify(session: Session, tenant_id: int | None = None) -> VerifyReport:
    """Recompute every chain (or only ``tenant_id``'s) and report where it breaks."""
    query = select(AuditEntry.tenant_id).distinct()
    if tenant_id is not None:
        query = query.where(AuditEntry.tenant_id == tenant_id)
    tenant_ids = sorted(session.scalars(query))
    checked, problems = 0, []
    for tid in tenant_ids:
        rows = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.tenant_id == tid)
            .order_by(AuditEntry.seq)
            .execution_options(yield_per=500)
        )
        count, found = _check_chain(rows)
        checked += count
        problems.extend(found)
    return VerifyReport(checked=checked, tenants=len(tenant_ids), problems=tuple(problems))


def entries(
    session: Session,
    tenant_id: int,
    *,
    resource_type: str | None = None,
    resource_key: str | None = None,
    after_seq: int = 0,
    limit: int = 100,
) -> list[AuditEntry]:
    """A tenant's audit rows in chain order, optionally for one resource, after ``after_seq``."""
    query = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id, AuditEntry.seq > after_seq)
    if resource_type is not None:
        query = query.where(AuditEntry.resource_type == resource_type)
    if resource_key is not None:
        query = query.where(AuditEntry.resource_key == resource_key)
    return list(session.scalars(query.order_by(AuditEntry.seq).limit(limit)))


def decoded(entry: AuditEntry) -> dict[str, Any]:
    """``entry`` as a plain dict with before/after/actor_roles parsed back from JSON."""
    return {
        "seq": entry.seq,
        "at": iso(entry.at),
        "actor": entry.actor,
        "actor_kind": entry.actor_kind,
        "actor_user_id": entry.actor_user_id,
        "actor_roles": json.loads(entry.actor_roles),
        "channel": entry.channel,
        "action": entry.action,
        "resource_type": entry.resource_type,
        "resource_key": entry.resource_key,
        "before": None if entry.before is None else json.loads(entry.before),
        "after": None if entry.after is None else json.loads(entry.after),
        "change_request_id": entry.change_request_id,
        "vendor_grant_id": entry.vendor_grant_id,
        "reason": entry.reason,
        "hash": entry.hash,
    }
