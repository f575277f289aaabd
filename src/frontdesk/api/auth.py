"""Signing in and API tokens: POST /login (tenant + username + argon2 password -> session
token), GET /me, and the caller's own long-lived tokens (/tokens).

A token is shown once, when made; only its SHA-256 is stored. Making and revoking one's
own tokens goes through ``org.service`` (audited, channel "api") like every other change;
a password login only opens a session and changes no configuration. This module must
never log a password or a token.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import Field, StringConstraints
from sqlalchemy import select

from frontdesk.api.common import INT32, CallerDep, plain
from frontdesk.api.problems import NotSignedIn
from frontdesk.api.schemas import Input, MeOut, Password, Slug, TokenCreated, TokenOut, Username
from frontdesk.org import service
from frontdesk.org.access import resolve_access
from frontdesk.org.audit import iso
from frontdesk.org.credentials import check_password, new_token
from frontdesk.org.errors import NotFound
from frontdesk.org.model import ApiToken, RoleAssignment
from frontdesk.org.resources import ApplyContext, kind_of, site_slug_of
from frontdesk.store import repo
from frontdesk.store.db import Database
from frontdesk.store.models import User, utcnow

SESSION_HOURS = 12
router = APIRouter(prefix="/api/v1", tags=["auth"])


class LoginIn(Input):
    tenant: Slug
    username: Username
    password: Password


class LoginOut(TokenCreated):
    token_type: str = "bearer"


class TokenIn(Input):
    name: Annotated[str, StringConstraints(min_length=1, max_length=128,
                                           pattern=r"^[^\x00-\x1f\x7f]+$")] = "api"
    expires_days: Annotated[int, Field(ge=1, le=3650)] | None = None


@router.post("/login", response_model=LoginOut, summary="Sign in with a password")
def login(body: LoginIn, request: Request) -> Any:
    """Exchange tenant + username + password for a session token (12 hours)."""
    db: Database = request.app.state.db
    now = utcnow()
    with db.session() as session:
        tenant = repo.get_tenant_by_slug(session, body.tenant)
        user = session.scalar(select(User).where(User.tenant_id == tenant.id,
                                                 User.username == body.username)) if tenant else None
        if not check_password(user.password_hash if user else None, body.password) or user is None:
            raise NotSignedIn("tenant, username or password is wrong",
                              fix="check them; an administrator can set a password with "
                                  "`frontdesk user passwd`")
        token, digest = new_token()
        row = ApiToken(tenant_id=user.tenant_id, user_id=user.id, name="login", kind="session",
                       token_hash=digest, expires_at=now + timedelta(hours=SESSION_HOURS))
        session.add(row)
        session.flush()
        return {"id": row.id, "user": user.username, "name": row.name, "kind": row.kind,
                "expires_at": iso(now + timedelta(hours=SESSION_HOURS)), "revoked_at": None,
                "token": token, "token_type": "bearer"}


@router.get("/me", response_model=MeOut, summary="Who am I, and what may I do")
def me(caller: CallerDep) -> Any:
    with caller.session() as session:
        user = session.get(User, caller.actor.user_id)
        assert user is not None
        held = session.execute(select(RoleAssignment.role, RoleAssignment.site_id).where(
            RoleAssignment.user_id == user.id).order_by(RoleAssignment.role)).all()
        access = resolve_access(session, caller.actor, caller.tenant_id, None, utcnow())
        return {"username": user.username, "display_name": user.display_name,
                "tenant": caller.tenant_slug,
                "roles": [{"role": r, "site": site_slug_of(session, s)} for r, s in held],
                "permissions": sorted(access.permissions | set(access.granted)),
                "owned_domains": sorted(d.value for d in access.owned_domains)}


@router.get("/tokens", response_model=list[TokenOut], summary="My API tokens")
def list_tokens(caller: CallerDep) -> Any:
    with caller.session() as session:
        kind = kind_of("api_token")
        ctx = ApplyContext(session, caller.tenant_id, caller.actor, utcnow())
        rows = session.scalars(select(ApiToken).where(ApiToken.user_id == caller.actor.user_id,
                                                      ApiToken.kind == "api")
                               .order_by(ApiToken.id))
        return [kind.snapshot(ctx, row) for row in rows]


@router.post("/tokens", response_model=TokenCreated, status_code=201,
             summary="Make an API token for myself")
def create_token(body: TokenIn, caller: CallerDep) -> Any:
    """The token is in the response once; store it somewhere safe."""
    token, digest = new_token()
    fields = {"name": body.name, "expires_days": body.expires_days, "token_hash": digest}
    with caller.session() as session:
        outcome = service.apply_change(session, caller.actor, "api",
                                       service.Change("api_token", "create", None, fields))
    caller.bus.publish(outcome.events)
    return {**(outcome.after or {}), "token": token}


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke one of my API tokens")
def revoke_token(token_id: Annotated[int, Path(ge=1, le=INT32)], caller: CallerDep) -> Response:
    with caller.session() as session:
        row = session.get(ApiToken, token_id)
        if row is None or row.user_id != caller.actor.user_id:
            raise NotFound(f"you have no API token {token_id}", fix="list yours with GET /api/v1/tokens")
    caller.change(service.Change("api_token", "delete", str(token_id)), plain)
    return Response(status_code=204)

