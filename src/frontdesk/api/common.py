"""What every REST resource shares: the signed-in caller, read checks, and running a change
through ``org.service`` with the caller as the explicit actor.

A mutating endpoint builds an ``org.service.Change`` and hands it to ``Caller.change``:
the change is applied (200/201/204 with the resource) or becomes a change request (202
with the request); either way the transaction commits first and the events are published
afterwards. Endpoints must never write configuration rows themselves, and never read the
actor from anywhere but the ``Caller`` they were given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Select
from sqlalchemy.orm import Session

from frontdesk.api.problems import NotSignedIn
from frontdesk.org import service
from frontdesk.org.access import Actor, resolve_access
from frontdesk.org.credentials import user_for_token
from frontdesk.org.errors import NotAllowed, NotFound
from frontdesk.org.events import EventBus
from frontdesk.org.resources import ApplyContext, kind_of
from frontdesk.org.roles import holders_needed
from frontdesk.store.db import Database
from frontdesk.store.models import Tenant, utcnow

PREFIX = "/api/v1"
INT32 = 2**31 - 1

bearer = HTTPBearer(
    auto_error=False,
    description="A token from POST /api/v1/login or `frontdesk token create`.",
)


@dataclass(frozen=True, slots=True)
class Caller:
    """The signed-in person making this request, and what the request may use."""

    actor: Actor
    tenant_id: int
    tenant_slug: str
    db: Database
    bus: EventBus

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction (committed when the block ends without an error)."""
        with self.db.session() as session:
            yield session

    def require(self, session: Session, permission: str, site_id: int | None = None) -> None:
        """Raise NotAllowed unless the caller holds ``permission`` (for reads)."""
        access = resolve_access(session, self.actor, self.tenant_id, site_id, utcnow())
        if not access.allows(permission):
            roles = ", ".join(r.label for r in holders_needed(permission)) or "an administrator"
            raise NotAllowed(f"{self.actor.name} may not see this (needs permission {permission})",
                             fix=f"ask someone holding {roles}")

    def change(self, change: service.Change,
               render: Callable[[Session, str, dict[str, Any]], Any] | None = None,
               *, created: bool = False) -> Response:
        """Run ``change`` through the one change path; respond with the resource, 202 with the
        change request, or 204 when deleted."""
        with self.session() as session:
            outcome = service.apply_change(session, self.actor, "api", change)
            body = outcome_body(session, outcome, render or plain)
        self.bus.publish(outcome.events)
        return outcome_response(outcome, body, created=created)


def outcome_body(session: Session, outcome: service.ChangeOutcome,
                 render: Callable[[Session, str, dict[str, Any]], Any]) -> Any:
    """The JSON body for an outcome: the change request, or the resource as ``render`` shows it."""
    if outcome.status in ("requested", "approved", "rejected") and outcome.change_request:
        return service.summary(outcome.change_request)
    if outcome.after is None:
        return None
    return render(session, outcome.resource_key or "", outcome.after)


def outcome_response(outcome: service.ChangeOutcome, body: Any, *,
                     created: bool = False) -> Response:
    if outcome.status == "requested":
        return JSONResponse(body, status_code=202)
    if body is None:
        return Response(status_code=204)
    return JSONResponse(body, status_code=201 if created and outcome.status == "applied" else 200)


def plain(session: Session, key: str, snapshot: dict[str, Any]) -> dict[str, Any]:
    """Render a resource as its snapshot (most resources)."""
    return snapshot


def get_caller(request: Request,
               credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
               ) -> Caller:
    """The caller for a request with ``Authorization: Bearer TOKEN``, or 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotSignedIn("no bearer token was sent",
                          fix="sign in with POST /api/v1/login and send "
                              "'Authorization: Bearer TOKEN'")
    db: Database = request.app.state.db
    with db.session() as session:
        owner = user_for_token(session, credentials.credentials, utcnow())
        if owner is None:
            raise NotSignedIn("the bearer token is unknown, expired or revoked",
                              fix="sign in again with POST /api/v1/login")
        tenant = session.get(Tenant, owner.user.tenant_id)
        assert tenant is not None
        actor = Actor.for_user(owner.user)
        return Caller(actor, tenant.id, tenant.slug, db, request.app.state.bus)


CallerDep = Annotated[Caller, Depends(get_caller)]


def context(session: Session, caller: Caller) -> ApplyContext:
    """A read context in the caller's tenant (for snapshots)."""
    return ApplyContext(session, caller.tenant_id, caller.actor, utcnow())


def read_one(caller: Caller, kind_name: str, key: str) -> dict[str, Any]:
    """The snapshot of one resource the caller may read, or 403/404."""
    kind = kind_of(kind_name)
    with caller.session() as session:
        ctx = context(session, caller)
        row = kind.load(ctx, key)
        caller.require(session, f"{kind_name}.read",
                       kind.site_id(ctx, row, {}) if row is not None else None)
        if row is None:
            raise NotFound(f"{kind.title} {key!r} does not exist in tenant {caller.tenant_slug}",
                           fix=f"list the {kind.title}s to see which exist")
        return kind.snapshot(ctx, row)


def read_all(caller: Caller, kind_name: str, query: Select[Any]) -> list[dict[str, Any]]:
    """Snapshots of every row ``query`` selects, if the caller may read the kind."""
    kind = kind_of(kind_name)
    with caller.session() as session:
        caller.require(session, f"{kind_name}.read")
        ctx = context(session, caller)
        return [kind.snapshot(ctx, row) for row in session.scalars(query)]
