"""The events WebSocket keeps each connection's access current from change signals, not by
querying the database per connection (api/events_access.py): a token revoked, a role taken
away or a user removed through org's change path closes the socket at once; a token closes
at its expiry; a change made by another process (the CLI: a separate ``Database``, no event
bus) is noticed through the audit log; an edit that bypasses the change path through the
sweep; and with nothing changing, connections cost no queries of their own.

Each test turns off the signals it does not test (their intervals set to an hour), so a
close can only come from the one under test — no test waits for a polling period. A real
uvicorn serves the app on its own loop thread; a real WebSocket client reads with timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import event, select, update
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from frontdesk.api import events_access
from frontdesk.api.events_access import AccessWatch, check_tokens, watch_for
from frontdesk.api.http import create_app
from frontdesk.org.access import Actor, resolve_access
from frontdesk.org.credentials import new_token, token_hash
from frontdesk.org.model import ApiToken, VendorGrant
from frontdesk.org.roles import Role
from frontdesk.org.service import Change, apply_change
from frontdesk.store.db import Database
from frontdesk.store.models import User, utcnow
from orgkit import World, make_world

pytestmark = pytest.mark.timeout(120)
HOUR = 3600.0
WAIT = 15.0  # a generous bound for "promptly": only ever reached when the test fails


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # not the main thread: no signal handlers
        yield


@dataclass
class Served:
    """The app served by a real uvicorn on its own event-loop thread."""

    world: World
    port: int
    loop: asyncio.AbstractEventLoop
    state: Any

    def socket(self, who: str, token: str | None = None) -> ClientConnection:
        url = f"ws://127.0.0.1:{self.port}/api/v1/events/ws"
        headers = {"Authorization": f"Bearer {token or self.world.tokens[who]}"}
        return connect(url, additional_headers=headers, open_timeout=WAIT)

    @contextlib.contextmanager
    def ready(self, who: str, token: str | None = None) -> Iterator[ClientConnection]:
        """A connection signed in as ``who`` (with ``token``: that one), once it is ready."""
        with self.socket(who, token) as ws:
            ready = json.loads(ws.recv(timeout=WAIT))
            assert ready["event"] == "ready", ready
            yield ws

    def api(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"http://127.0.0.1:{self.port}{path}",
                             headers=self.world.headers(who), timeout=WAIT, **kwargs)

    @property
    def watch(self) -> AccessWatch:
        return watch_for(self.state, self.loop)

    def on_loop(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop (the watch's state belongs to it)."""
        async def call() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(WAIT)

    def until(self, what: str, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT
        while not self.on_loop(condition):
            if time.monotonic() > deadline:
                pytest.fail(f"never happened: {what}")
            time.sleep(0.02)


def _signals(monkeypatch: pytest.MonkeyPatch, *, org_watch: float = HOUR,
             sweep: float = HOUR) -> None:
    monkeypatch.setattr(events_access, "ORG_WATCH_SECONDS", org_watch)
    monkeypatch.setattr(events_access, "SWEEP_SECONDS", sweep)


@pytest.fixture
def served(db: Database) -> Iterator[Served]:
    world = make_world(db, roles=False)
    world.add_user("ada", Role.ADMINISTRATOR)
    world.add_user("rita", Role.OFFICE_MANAGER)
    world.add_user("sam", Role.SERVICE_MANAGER, Role.OFFICE_MANAGER)
    app = create_app(db=db)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = _Uvicorn(uvicorn.Config(app, log_level="warning", lifespan="off"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(server.serve(sockets=[sock]),), daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield Served(world, sock.getsockname()[1], loop, app.state)
    finally:
        server.should_exit = True
        thread.join(WAIT)
        loop.close()
        sock.close()


def _closed(ws: ClientConnection) -> tuple[int, str]:
    """Read until the server closes the socket: its close code and reason."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=WAIT)
    assert closed.value.rcvd is not None, "the connection ended without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


def _still_open(ws: ClientConnection) -> None:
    ws.send("ping")
    while (message := json.loads(ws.recv(timeout=WAIT)))["event"] != "pong":
        assert message["event"] != "ready", message


def _token_id(db: Database, token: str) -> int:
    with db.session() as session:
        found = session.scalar(select(ApiToken.id).where(ApiToken.token_hash == token_hash(token)))
        assert found is not None
        return found


# --- (a) changes through the change path: at once, and only whom they concern ------------------


def test_a_token_revoked_through_the_api_closes_its_socket_at_once(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    _signals(monkeypatch)  # no audit-log watch, no sweep: only the event bus can close it
    with served.ready("rita") as rita, served.ready("sam") as sam:
        token_id = _token_id(served.world.db, served.world.tokens["rita"])
        assert served.api("rita", "DELETE", f"/api/v1/tokens/{token_id}").status_code == 204
        code, reason = _closed(rita)
        assert code == 4401 and "revoked while connected" in reason, reason
        _still_open(sam)
        assert served.on_loop(lambda: served.watch.stats["checked"]) == 1  # rita's only


def test_the_last_role_taken_away_closes_the_socket_and_another_narrows_access(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    _signals(monkeypatch)
    with served.ready("rita") as rita, served.ready("sam") as sam:
        gone = served.api("ada", "DELETE", "/api/v1/role-assignments/rita:office_manager")
        assert gone.status_code == 204, gone.text
        code, reason = _closed(rita)
        assert code == 4401 and "rita holds no role" in reason, reason
        fewer = served.api("ada", "DELETE", "/api/v1/role-assignments/sam:office_manager")
        assert fewer.status_code == 204, fewer.text
        served.until("sam's access narrowed to service manager", lambda: all(
            s.standing.access.roles == {Role.SERVICE_MANAGER}
            for s in served.watch.seats[served.world.tenant_id]))
        _still_open(sam)


def test_a_removed_user_is_closed_and_a_permission_granted_applies_without_reconnect(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    _signals(monkeypatch)
    with served.ready("rita") as rita, served.ready("sam") as sam:
        granted = served.api("ada", "PUT", "/api/v1/permissions/office_manager/audit.read",
                             json={"allowed": True})
        assert granted.status_code == 200, granted.text
        served.until("audit.read reached rita's connection", lambda: all(
            s.standing.access.allows("audit.read")
            for s in served.watch.seats[served.world.tenant_id]))
        renamed = served.api("ada", "PATCH", "/api/v1/users/sam", json={"display_name": "S."})
        assert renamed.status_code == 200, renamed.text
        while (message := json.loads(rita.recv(timeout=WAIT)))["event"] != "org.user.updated":
            pass
        assert message["data"]["resource_key"] == "sam"
        assert served.api("ada", "DELETE", "/api/v1/users/sam").status_code == 204
        code, reason = _closed(sam)
        assert code == 4401 and "user was removed while connected" in reason, reason
        _still_open(rita)


def test_a_user_without_any_role_is_refused_at_connect(served: Served) -> None:
    served.world.add_user("nobody")
    with served.socket("nobody") as ws:
        code, reason = _closed(ws)
    assert code == 4401 and "nobody holds no role" in reason, reason


@contextlib.contextmanager
def _statements(db: Database) -> Iterator[list[str]]:
    """Every SQL statement run against ``db`` while the block runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


# --- (b) expiry: a timer, not a query -------------------------------------------------------------


def test_an_expiring_token_closes_at_its_expiry(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    _signals(monkeypatch)
    token, digest = new_token()
    expires = utcnow() + timedelta(seconds=1.5)
    with served.world.db.session() as session:  # a login session token, as POST /login makes
        session.add(ApiToken(tenant_id=served.world.tenant_id,
                             user_id=served.world.user_ids["rita"], name="login",
                             kind="session", token_hash=digest, expires_at=expires))
    with served.ready("rita", token) as rita, served.ready("rita") as other:
        with _statements(served.world.db) as seen:
            code, reason = _closed(rita)
        assert seen == [], "the expiry was looked up in the database, not timed"
        assert utcnow() >= expires, "closed before the token expired"
        assert code == 4401 and "expired while connected" in reason, reason
        _still_open(other)  # her other token has no expiry
        assert served.on_loop(lambda: served.watch.stats["rechecks"]) == 0  # no query needed


# --- (c) nothing changes: no queries per connection -----------------------------------------------


CONNECTIONS = 24


def _many(served: Served, stack: contextlib.ExitStack) -> None:
    for n in range(CONNECTIONS):
        stack.enter_context(served.ready(("rita", "sam", "ada")[n % 3]))
    served.until("all connections watched", lambda: sum(
        len(g) for g in served.watch.seats.values()) == CONNECTIONS)


def test_idle_connections_cost_one_audit_lookup_per_round_not_queries_each(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    _signals(monkeypatch, org_watch=0.05)
    with contextlib.ExitStack() as stack:
        _many(served, stack)
        start = served.on_loop(lambda: served.watch.stats["org_watches"])
        with _statements(served.world.db) as seen:
            served.until("ten audit-log rounds", lambda: (
                served.watch.stats["org_watches"] >= start + 10))
            rounds = served.on_loop(lambda: served.watch.stats["org_watches"]) - start
            statements = list(seen)
    assert statements, "the audit-log watch never read the database"
    assert all("audit_log" in s for s in statements), statements[:3]
    assert len(statements) <= rounds + 1  # one per round (one round may be in flight)
    assert served.on_loop(lambda: served.watch.stats["rechecks"]) == 0


def test_the_sweep_checks_all_connections_with_a_few_queries_per_tenant(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    _signals(monkeypatch, sweep=0.1)
    with contextlib.ExitStack() as stack:
        _many(served, stack)
        start = served.on_loop(lambda: served.watch.stats["rechecks"])
        with _statements(served.world.db) as seen:
            served.until("three sweeps", lambda: served.watch.stats["rechecks"] >= start + 3)
            rounds = served.on_loop(lambda: served.watch.stats["rechecks"]) - start
            statements = [s for s in seen if " FROM " in s.upper()]
    # tokens with their users, their roles, the tenant's permission matrix: 3 per sweep,
    # whatever the number of connections (one round may be in flight)
    assert len(statements) <= 3 * (rounds + 1), statements[:8]


# --- (d) another process: the audit log, then the sweep -------------------------------------------


def test_a_role_taken_away_by_another_process_is_noticed_through_the_audit_log(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    _signals(monkeypatch, org_watch=0.1)  # no sweep: only the audit-log watch can see it
    with served.ready("rita") as rita, served.ready("sam") as sam:
        cli = Database(served.world.db.url.render_as_string(hide_password=False))
        try:  # what `frontdesk role revoke` does: the change path, no event bus
            with cli.session() as session:
                apply_change(session, Actor.local_admin(served.world.tenant_id), "cli",
                             Change("role_assignment", "delete", "rita:office_manager"))
        finally:
            cli.close()
        code, reason = _closed(rita)
        assert code == 4401 and "rita holds no role" in reason, reason
        _still_open(sam)
        assert served.on_loop(lambda: served.watch.stats["checked"]) == 1  # rita's only


def test_an_edit_bypassing_the_change_path_is_caught_by_the_sweep(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    _signals(monkeypatch, sweep=0.2)  # no audit-log watch (and no audit row to see)
    with served.ready("rita") as rita, served.ready("sam") as sam:
        other = Database(served.world.db.url.render_as_string(hide_password=False))
        try:
            with other.session() as session:
                session.execute(update(ApiToken).where(
                    ApiToken.token_hash == token_hash(served.world.tokens["rita"]))
                    .values(revoked_at=utcnow()))
        finally:
            other.close()
        code, reason = _closed(rita)
        assert code == 4401 and "revoked while connected" in reason, reason
        _still_open(sam)


# --- the batched check resolves access exactly as the REST API does -------------------------------


def test_the_batched_check_agrees_with_resolve_access(db: Database) -> None:
    world = make_world(db, roles=False)
    world.add_user("ada", Role.ADMINISTRATOR)
    world.add_user("rita", Role.OFFICE_MANAGER, Role.TECHNICIAN)
    world.add_user("vic", Role.VENDOR)
    world.add_user("val", Role.VENDOR)
    world.setup(Change("site", "create", "north", {"name": "North"}))
    world.add_user("tess", Role.TECHNICIAN, site="north")  # a role at one site only
    world.setup(Change("permission", "update", "office_manager/audit.read", {"allowed": True}),
                Change("permission", "update", "technician/group.read", {"allowed": False}))
    now = utcnow()
    with db.session() as session:
        for who, start, end in (("vic", -1, 1), ("val", 1, 2), ("val", -3, -2)):
            session.add(VendorGrant(
                tenant_id=world.tenant_id, user_id=world.user_ids[who],
                permissions=["tenant.update"] if start < 0 else ["site.read"],
                starts_at=now + timedelta(hours=start), ends_at=now + timedelta(hours=end),
                granted_by="ada", reason="support"))
    with db.session() as session:
        digests = {token_hash(t): who for who, t in world.tokens.items()}
        verdicts = check_tokens(session, [*digests, token_hash("fdt_unknown")], now)
        standings: dict[str, events_access.Standing] = {}
        for digest, who in digests.items():
            user = session.get(User, world.user_ids[who])
            assert user is not None
            expected = resolve_access(session, Actor.for_user(user), world.tenant_id, None, now)
            standing = verdicts[digest]
            assert isinstance(standing, events_access.Standing), (who, standing)
            assert standing.access == expected, who
            standings[who] = standing
    assert standings["vic"].access.allows("tenant.update")
    assert not standings["val"].access.allows("site.read")
    assert standings["val"].next_change == now + timedelta(hours=1)  # her grant starts then
    assert standings["tess"].access.roles == frozenset()  # a site role: held, not tenant-wide
    assert verdicts[token_hash("fdt_unknown")] == events_access.Refusal("unknown")


def test_every_close_reason_fits_a_close_frame() -> None:
    for cause in ("unknown", "revoked", "expired", "no_role"):
        for connected in (False, True):
            reason = events_access.Refusal(cause, "u" * 128).message(connected)
            assert len(reason.encode()) <= 123, reason
