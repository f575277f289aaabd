"""Who may stay on the events WebSocket (api/events_ws.py), kept current from change signals
instead of a database query per connection on a timer.

What a token gives — its user, the user's access, when it expires — is read once at connect
(``sign_in``) and read again only when something says it may have changed; then all the
connections concerned are checked together, in one worker-thread call with a fixed number
of queries per tenant (``check_tokens``), never one query per connection. The signals:

- **token expiry**: a loop timer at the token's ``expires_at`` closes the connection (4401);
  a timer at the next start or end of the user's vendor grants re-checks it;
- **the in-process event bus**: the org change path (``org/service.py``: API, web UI, the
  call engine's own changes) publishes ``ChangeApplied`` after its commit; one of an
  ``ACCESS_RESOURCES`` type re-checks at once the connections it can touch (``api_token``
  N: that token; ``user``/``role_assignment``: that user's; ``permission``,
  ``vendor_grant``, ``tenant``: the whole tenant's);
- **the audit log** for changes made by another process (the ``frontdesk`` CLI on the same
  database): every change through org writes an audit row with the tenant's next ``seq``.
  Every ``ORG_WATCH_SECONDS`` one statement reads the newest ``seq`` of every tenant with a
  connection (an index lookup each); when one moved, the new rows of access types say
  which connections to re-check;
- **a safety net** for edits that bypass the change path (raw SQL, a restored backup):
  every ``SWEEP_SECONDS`` all connections are checked, batched per tenant as above (a few
  queries per tenant whatever the number of connections, so 10 s costs little).

``check_tokens`` resolves access for many users at once the way ``org.access.
resolve_access`` does for one (tenant-wide roles, the tenant's matrix, active vendor
grants); tests/api/test_api_events_access.py holds the two together.

Worst case until a connection whose access is gone is closed (or its access narrowed):
in-process change — at once (one worker-thread round trip); token expiry or a vendor grant
starting/ending — at that moment; ``frontdesk`` CLI or another server process —
``ORG_WATCH_SECONDS`` (2 s); anything bypassing the change path — ``SWEEP_SECONDS`` (10 s).

A user must hold a role in the tenant (tenant-wide or at a site) to be on the socket: a
connection whose user loses the last one is closed like one whose token was revoked.

This module must never query the database per connection on a timer, block the event
loop (database work runs in worker threads), nor do a connection's work on the thread
that published an event (it hands over with ``call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from frontdesk.org.access import Access, owned_domains, permission_matrix
from frontdesk.org.credentials import TOKEN_PREFIX, token_hash
from frontdesk.org.events import ChangeApplied, EventBus, OrgEvent
from frontdesk.org.model import ApiToken, AuditEntry, RoleAssignment, VendorGrant
from frontdesk.org.roles import Role
from frontdesk.store.db import Database
from frontdesk.store.models import User, utcnow

log = logging.getLogger("frontdesk.api.events")

#: how often the newest audit ``seq`` of tenants with connections is read (one statement)
ORG_WATCH_SECONDS = 2.0
#: how often every connection is checked anyway, batched per tenant (the safety net)
SWEEP_SECONDS = 10.0
#: ownership changes of these resource types may change who sees what
ACCESS_RESOURCES = frozenset(
    {"api_token", "user", "role_assignment", "permission", "vendor_grant", "tenant"}
)
_CHUNK = 400  # hashes, ids or tenants per IN list / statement
_MAX_ROWS = 200  # more new audit rows of access types than this: re-check the whole tenant
SIGN_IN_AGAIN = "sign in again with POST /api/v1/login and reconnect"


@dataclass(frozen=True, slots=True)
class Standing:
    """What a valid token gives now: its user, their access, and when that changes by itself
    (``expires_at``: the token's end; ``next_change``: a vendor grant starting or ending)."""

    token_id: int
    user_id: int
    username: str
    tenant_id: int
    access: Access
    expires_at: datetime | None = None
    next_change: datetime | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a token signs nobody in (``cause``: unknown, revoked, expired, no_role)."""

    cause: str
    username: str = ""

    def message(self, connected: bool) -> str:
        """The close reason: what happened and what to do (at most 123 bytes, as a
        WebSocket close frame allows)."""
        if self.cause == "no_role":
            name = self.username if len(self.username) <= 32 else self.username[:31] + "…"
            return (f"user {name} holds no role in this tenant: ask a Phone Manager to assign "
                    "one, then reconnect")
        if not connected:
            return "the token is unknown, expired or revoked: sign in again with POST /api/v1/login"
        what = {"revoked": "token was revoked", "expired": "token expired"}.get(
            self.cause, "token or its user was removed")
        return f"the {what} while connected: {SIGN_IN_AGAIN}"


Verdict = Standing | Refusal


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def _refusal(token: ApiToken | None, user: User | None, now: datetime) -> Refusal | None:
    if token is None or user is None:
        return Refusal("unknown")
    if token.revoked_at is not None:
        return Refusal("revoked")
    if token.expires_at is not None and token.expires_at <= now:
        return Refusal("expired")
    return None


def check_tokens(session: Session, hashes: Collection[str], now: datetime) -> dict[str, Verdict]:
    """Each token (by hash) checked the way ``credentials.user_for_token`` and
    ``access.resolve_access`` (tenant-wide) would, for all of them together: one query for
    the tokens and their users, one for their roles, one per tenant for its permission
    matrix, one for the vendors' grants."""
    found: dict[str, tuple[ApiToken | None, User | None]] = {}
    for chunk in _chunks(sorted(hashes)):
        query = (select(ApiToken, User).outerjoin(User, User.id == ApiToken.user_id)
                 .where(ApiToken.token_hash.in_(chunk)))
        for row, owner in session.execute(query):
            found[row.token_hash] = (row, owner)
    verdicts: dict[str, Verdict] = {}
    live: dict[str, tuple[ApiToken, User]] = {}
    for digest in hashes:
        token, user = found.get(digest, (None, None))
        refused = _refusal(token, user, now)
        if refused is not None:
            verdicts[digest] = refused
        elif token is not None and user is not None:
            live[digest] = (token, user)
    users = {user.id: user for _, user in live.values()}
    held, everywhere = _roles(session, users.values())
    matrices = {t: permission_matrix(session, t) for t in {u.tenant_id for u in users.values()}}
    vendors = [uid for uid, roles in held.items() if Role.VENDOR in roles]
    grants = _grants(session, vendors, now)
    for digest, (token, user) in live.items():
        if user.id not in everywhere:
            verdicts[digest] = Refusal("no_role", user.username)
            continue
        roles = held.get(user.id, frozenset())
        mine = [g for g in grants.get(user.id, ()) if g.tenant_id == user.tenant_id]
        access, next_change = _access(roles, matrices[user.tenant_id], mine, now)
        verdicts[digest] = Standing(token.id, user.id, user.username, user.tenant_id, access,
                                    token.expires_at, next_change)
    return verdicts


def _roles(session: Session,
           users: Iterable[User]) -> tuple[dict[int, frozenset[Role]], set[int]]:
    """Tenant-wide roles per user (what access is resolved from, as ``roles_of`` with no
    site), and the users holding any role in their tenant, at a site or tenant-wide."""
    tenant_of = {u.id: u.tenant_id for u in users}
    tenant_wide: dict[int, set[Role]] = {}
    anywhere: set[int] = set()
    for chunk in _chunks(sorted(tenant_of)):
        query = select(RoleAssignment.user_id, RoleAssignment.tenant_id, RoleAssignment.role,
                       RoleAssignment.site_id).where(RoleAssignment.user_id.in_(chunk))
        for user_id, tenant_id, role, site_id in session.execute(query):
            if tenant_id != tenant_of[user_id] or role not in Role.__members__.values():
                continue
            anywhere.add(user_id)
            if site_id is None:
                tenant_wide.setdefault(user_id, set()).add(Role(role))
    return {uid: frozenset(roles) for uid, roles in tenant_wide.items()}, anywhere


def _grants(session: Session, vendors: Sequence[int],
            now: datetime) -> dict[int, list[VendorGrant]]:
    """The vendors' grants that are in force now or start later (not revoked, not ended)."""
    out: dict[int, list[VendorGrant]] = {}
    for chunk in _chunks(sorted(vendors)):
        query = select(VendorGrant).where(
            VendorGrant.user_id.in_(chunk), VendorGrant.revoked_at.is_(None),
            VendorGrant.ends_at > now).order_by(VendorGrant.id)
        for grant in session.scalars(query):
            out.setdefault(grant.user_id, []).append(grant)
    return out


def _access(roles: frozenset[Role], matrix: dict[Role, frozenset[str]],
            grants: list[VendorGrant], now: datetime) -> tuple[Access, datetime | None]:
    """The user's access now (as ``resolve_access`` builds it), and the next moment one of
    their vendor grants starts or ends."""
    permissions = frozenset().union(*(matrix[r] for r in roles)) if roles else frozenset()
    granted: dict[str, int] = {}
    moments: list[datetime] = []
    for grant in grants if Role.VENDOR in roles else ():
        if grant.starts_at > now:
            moments.append(grant.starts_at)
            continue
        moments.append(grant.ends_at)
        for permission in grant.permissions:
            granted.setdefault(permission, grant.id)
    access = Access(roles=roles, permissions=permissions, owned_domains=owned_domains(roles),
                    granted=granted)
    return access, min(moments, default=None)


def sign_in(db: Database, token: str, now: datetime) -> tuple[Verdict, int]:
    """The token's verdict at connect, and the audit ``seq`` of its tenant read *before* it
    (so a change committed meanwhile is still seen by the watch)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return Refusal("unknown"), 0
    digest = token_hash(token)
    with db.session() as session:
        tenant_id = session.scalar(select(User.tenant_id).join(ApiToken, ApiToken.user_id == User.id)
                                   .where(ApiToken.token_hash == digest))
        if tenant_id is None:
            return Refusal("unknown"), 0
        mark = audit_marks(session, [tenant_id]).get(tenant_id, 0)
        return check_tokens(session, [digest], now)[digest], mark


def audit_marks(session: Session, tenant_ids: Collection[int]) -> dict[int, int]:
    """The newest audit ``seq`` of each tenant (0: none yet), one statement per chunk of
    tenants; each is an index lookup on (tenant_id, seq)."""
    marks: dict[int, int] = {}
    for chunk in _chunks(sorted(tenant_ids)):
        newest = [select(func.max(AuditEntry.seq)).where(AuditEntry.tenant_id == t)
                  .scalar_subquery().label(f"t{t}") for t in chunk]
        row = session.execute(select(*newest)).one()
        marks.update({t: int(seq or 0) for t, seq in zip(chunk, row, strict=True)})
    return marks


def access_touches(session: Session, tenant_id: int, after: int,
                   upto: int) -> list[tuple[str, str]] | None:
    """(resource_type, resource_key) of the tenant's audit rows ``after < seq <= upto`` that
    may change access; None when there are too many to tell apart (re-check everyone)."""
    query = (select(AuditEntry.resource_type, AuditEntry.resource_key)
             .where(AuditEntry.tenant_id == tenant_id, AuditEntry.seq > after,
                    AuditEntry.seq <= upto, AuditEntry.resource_type.in_(ACCESS_RESOURCES))
             .limit(_MAX_ROWS + 1))
    rows = [(kind, key) for kind, key in session.execute(query)]
    return None if len(rows) > _MAX_ROWS else rows


@dataclass(eq=False)
class Seat:
    """One connection: its token (hash) and standing, the timers that end or re-check it,
    and ``closing``, which gets the close reason when its access is gone."""

    digest: str
    standing: Standing
    closing: asyncio.Future[str]
    timers: list[asyncio.TimerHandle] = field(default_factory=list)

    def close(self, reason: str) -> None:
        if not self.closing.done():
            self.closing.set_result(reason)


class AccessWatch:
    """The events connections of one app on one event loop, and the one task that re-checks
    them on the signals listed in the module docstring. Runs (and listens to the bus) only
    while someone is connected."""

    def __init__(self, db: Database, bus: EventBus, loop: asyncio.AbstractEventLoop,
                 forget: Callable[[], None] = lambda: None) -> None:
        self.db, self.bus, self.loop = db, bus, loop
        self._forget = forget  # called when the last connection leaves
        self.seats: dict[int, set[Seat]] = {}  # by tenant
        self.marks: dict[int, int] = {}  # tenant -> the audit seq examined up to
        self.dirty: set[Seat] = set()  # to check again at the next turn
        #: what the watch did: org_watches, sweeps, rechecks (batches), checked (connections)
        self.stats: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # --- connections come and go (on the loop) -----------------------------------------------
    def join(self, seat: Seat, mark: int) -> None:
        """Watch ``seat``; ``mark`` is its tenant's audit seq read before its standing."""
        tenant = seat.standing.tenant_id
        self.seats.setdefault(tenant, set()).add(seat)
        self.marks[tenant] = min(self.marks.get(tenant, mark), mark)
        self._arm(seat)
        if self._task is None:
            self._unsubscribe = self.bus.subscribe(self._on_event, "org.")
            self._task = self.loop.create_task(self._run())

    def leave(self, seat: Seat) -> None:
        """Stop watching ``seat`` (again is harmless); the last one out stops the task."""
        for timer in seat.timers:
            timer.cancel()
        seat.timers.clear()
        self.dirty.discard(seat)
        tenant = seat.standing.tenant_id
        group = self.seats.get(tenant)
        if group is not None:
            group.discard(seat)
            if not group:
                del self.seats[tenant]
                self.marks.pop(tenant, None)
        if not self.seats and self._task is not None:
            self._task.cancel()
            self._task = None
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            self._forget()

    def _drop(self, seat: Seat, reason: str) -> None:
        self.leave(seat)
        seat.close(reason)

    def _watching(self, seat: Seat) -> bool:
        return seat in self.seats.get(seat.standing.tenant_id, ())

    # --- timers: the token's expiry, a vendor grant starting or ending -----------------------
    def _arm(self, seat: Seat) -> None:
        for timer in seat.timers:
            timer.cancel()
        seat.timers.clear()
        standing = seat.standing
        if standing.expires_at is not None:
            seat.timers.append(self._at(standing.expires_at, self._expire, seat))
        if standing.next_change is not None:
            seat.timers.append(self._at(standing.next_change, self.touch_seats, [seat]))

    def _at(self, moment: datetime, callback: Callable[..., None],
            *args: Any) -> asyncio.TimerHandle:
        delay = max((moment - utcnow()).total_seconds(), 0.0)
        return self.loop.call_at(self.loop.time() + delay, callback, *args)

    def _expire(self, seat: Seat) -> None:
        expires = seat.standing.expires_at
        if expires is None or not self._watching(seat):
            return
        if utcnow() < expires:  # the loop's clock ran ahead of the wall clock: not yet
            seat.timers.append(self._at(expires, self._expire, seat))
            return
        self._drop(seat, Refusal("expired").message(connected=True))

    # --- signals: the bus, the audit log, the sweep ------------------------------------------
    def _on_event(self, event: OrgEvent) -> None:
        """On the publisher's thread: hand a change of access over to the loop."""
        if isinstance(event, ChangeApplied) and event.resource_type in ACCESS_RESOURCES:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
                self.loop.call_soon_threadsafe(
                    self.touch, event.tenant_id, event.resource_type, event.resource_key)

    def touch(self, tenant_id: int, resource_type: str, key: str) -> None:
        """``resource_type`` ``key`` changed in the tenant: re-check whom it can concern."""
        seats = self.seats.get(tenant_id, set())
        if resource_type == "api_token":
            self.touch_seats([s for s in seats if str(s.standing.token_id) == key])
        elif resource_type in ("user", "role_assignment"):  # key: user, user:role[@site]
            username = key.partition(":")[0]
            self.touch_seats([s for s in seats if s.standing.username == username])
        else:  # the tenant's permission matrix, a vendor grant, the tenant itself
            self.touch_seats(list(seats))

    def touch_seats(self, seats: Iterable[Seat]) -> None:
        """Check ``seats`` again at the loop's next turn (together with any others)."""
        live = [s for s in seats if self._watching(s)]
        if live:
            self.dirty.update(live)
            self._wake.set()

    async def _run(self) -> None:
        now = self.loop.time()
        next_watch, next_sweep = now + ORG_WATCH_SECONDS, now + SWEEP_SECONDS
        failed = False
        while True:
            if failed or not self.dirty:
                delay = max(min(next_watch, next_sweep) - self.loop.time(), 0.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            now = self.loop.time()
            try:
                if now >= next_sweep:
                    next_sweep = now + SWEEP_SECONDS
                    self.stats["sweeps"] += 1
                    self.touch_seats([s for group in self.seats.values() for s in group])
                if now >= next_watch:
                    next_watch = now + ORG_WATCH_SECONDS
                    await self._watch_org()
                failed = bool(self.dirty) and not await self._recheck()
            except Exception:  # a bug: say so, and keep watching from the next round on
                log.exception("events: the access watch failed; retrying at its next round")
                failed = True

    async def _watch_org(self) -> None:
        """Changes another process made through org: the audit seq of a tenant moved."""
        marks = dict(self.marks)
        self.stats["org_watches"] += 1
        try:
            moved = await asyncio.to_thread(self._org_changes, marks)
        except Exception:
            log.exception("events: could not read the audit log's newest entries")
            return
        for tenant_id, (newest, touched) in moved.items():
            if self.marks.get(tenant_id) != marks[tenant_id]:
                continue  # a connection joined meanwhile from an older mark: look again
            self.marks[tenant_id] = newest
            if touched is None:
                self.touch_seats(list(self.seats.get(tenant_id, ())))
            for resource_type, key in touched or ():
                self.touch(tenant_id, resource_type, key)

    def _org_changes(self, marks: dict[int, int]) -> dict[int, tuple[int, list[Any] | None]]:
        with self.db.session() as session:
            newest = audit_marks(session, marks)
            return {t: (seq, access_touches(session, t, marks[t], seq) if seq > marks[t] else None)
                    for t, seq in newest.items() if seq != marks[t]}

    async def _recheck(self) -> bool:
        """Check the dirty connections together; False when the database did not answer."""
        seats = [s for s in self.dirty if not s.closing.done()]
        self.dirty.clear()
        self.stats["rechecks"] += 1
        self.stats["checked"] += len(seats)
        try:
            verdicts = await asyncio.to_thread(self._check, {s.digest for s in seats})
        except Exception:  # the database is away for a moment: keep what we had, retry
            log.exception("events: could not check %d connections' access again", len(seats))
            self.dirty.update(s for s in seats if self._watching(s))
            return False
        for seat in seats:
            if self._watching(seat):
                self._settle(seat, verdicts[seat.digest])
        return True

    def _check(self, digests: set[str]) -> dict[str, Verdict]:
        with self.db.session() as session:
            return check_tokens(session, digests, utcnow())

    def _settle(self, seat: Seat, verdict: Verdict) -> None:
        if isinstance(verdict, Refusal):
            self._drop(seat, verdict.message(connected=True))
        elif (verdict.user_id, verdict.tenant_id) != (seat.standing.user_id,
                                                       seat.standing.tenant_id):
            self._drop(seat, Refusal("unknown").message(connected=True))
        else:
            seat.standing = verdict
            self._arm(seat)


_WATCHES = "events_access_watches"


def watch_for(state: Any, loop: asyncio.AbstractEventLoop) -> AccessWatch:
    """The app's watch on ``loop`` (``state``: the app's ``state``, with ``db`` and ``bus``);
    it is forgotten when its last connection leaves."""
    watches: dict[asyncio.AbstractEventLoop, AccessWatch] | None = getattr(state, _WATCHES, None)
    if watches is None:
        watches = {}
        setattr(state, _WATCHES, watches)
    watch = watches.get(loop)
    if watch is None:
        known = watches

        def forget() -> None:
            if known.get(loop) is watch:
                del known[loop]

        watch = watches[loop] = AccessWatch(state.db, state.bus, loop, forget)
    return watch
