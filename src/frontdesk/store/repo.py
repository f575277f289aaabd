"""Small query helpers for the call engine and the CLI.

Every function takes an open ``Session`` first and works inside the caller's transaction
(``with db.session() as s: ...``); none commits. Lookups of per-tenant rows always take the
tenant, so one tenant's data never leaks into another's answer.

This module must never enforce permissions or write audit entries (that is ``org/``'s one
path for changes), and never be called from the SIP hot path for writes: registrations and
CDRs are written through ``journal.WriteBehind``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from frontdesk.store.models import (
    TENANT_SETTING_DEFAULTS,
    Cdr,
    Extension,
    Registration,
    SipCredential,
    Tenant,
    User,
)


class Ha1(NamedTuple):
    """Digest HA1 values for one credential (hex strings)."""

    md5: str
    sha256: str


def compute_ha1(username: str, realm: str, password: str) -> Ha1:
    """HA1 = H(username:realm:password) with MD5 and SHA-256 (RFC 2617 / RFC 7616)."""
    secret = f"{username}:{realm}:{password}".encode()
    return Ha1(hashlib.md5(secret).hexdigest(), hashlib.sha256(secret).hexdigest())


# --- tenants -------------------------------------------------------------------------------


def create_tenant(
    session: Session,
    slug: str,
    name: str,
    sip_domain: str,
    *,
    default: bool = False,
    settings: dict[str, Any] | None = None,
) -> Tenant:
    """Add a tenant; ``settings`` override ``TENANT_SETTING_DEFAULTS`` (unknown keys refused)."""
    unknown = set(settings or {}) - set(TENANT_SETTING_DEFAULTS)
    if unknown:
        raise ValueError(
            f"tenant {slug!r}: unknown settings {sorted(unknown)}; "
            f"known: {sorted(TENANT_SETTING_DEFAULTS)}"
        )
    tenant = Tenant(
        slug=slug,
        name=name,
        sip_domain=sip_domain.lower(),
        default=default,
        settings={**TENANT_SETTING_DEFAULTS, **(settings or {})},
    )
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant_by_slug(session: Session, slug: str) -> Tenant | None:
    """The tenant with this slug, or None."""
    return session.scalar(select(Tenant).where(Tenant.slug == slug))


def get_tenant_by_domain(session: Session, sip_domain: str) -> Tenant | None:
    """The tenant whose SIP domain is ``sip_domain`` (case-insensitive), or None."""
    return session.scalar(select(Tenant).where(Tenant.sip_domain == sip_domain.lower()))


def default_tenant(session: Session) -> Tenant | None:
    """The tenant used for requests addressed to the server's IP, or None."""
    return session.scalar(select(Tenant).where(Tenant.default.is_(True)))


def resolve_tenant(session: Session, host: str) -> Tenant | None:
    """The tenant for a request's host (domain match first, else the default tenant)."""
    return get_tenant_by_domain(session, host) or default_tenant(session)


def set_default_tenant(session: Session, tenant: Tenant) -> None:
    """Make ``tenant`` the only default tenant."""
    session.execute(update(Tenant).where(Tenant.id != tenant.id).values(default=False))
    session.flush()
    tenant.default = True
    session.flush()


def list_tenants(session: Session) -> list[Tenant]:
    """All tenants by slug."""
    return list(session.scalars(select(Tenant).order_by(Tenant.slug)))


# --- users, extensions, credentials --------------------------------------------------------


def create_user_with_extension(
    session: Session,
    tenant: Tenant,
    number: str,
    display_name: str,
    password: str,
    realm: str | None = None,
    *,
    username: str | None = None,
    email: str | None = None,
) -> tuple[User, Extension, SipCredential]:
    """A user, their extension ``number`` and a device login ``number``/``password``.

    ``realm`` defaults to the tenant's SIP domain; ``username`` defaults to ``number``.
    Only the HA1 digests are stored, never the password.
    """
    realm = realm or tenant.sip_domain
    user = User(
        tenant_id=tenant.id, username=username or number, display_name=display_name, email=email
    )
    session.add(user)
    session.flush()
    extension = Extension(
        tenant_id=tenant.id, number=number, user_id=user.id, display_name=display_name
    )
    session.add(extension)
    session.flush()
    credential = add_sip_credential(session, extension, number, password, realm)
    return user, extension, credential


def add_sip_credential(
    session: Session, extension: Extension, auth_username: str, password: str, realm: str
) -> SipCredential:
    """Add a device login for ``extension`` (stores HA1s only)."""
    ha1 = compute_ha1(auth_username, realm, password)
    credential = SipCredential(
        tenant_id=extension.tenant_id,
        extension_id=extension.id,
        auth_username=auth_username,
        realm=realm,
        ha1_md5=ha1.md5,
        ha1_sha256=ha1.sha256,
    )
    session.add(credential)
    session.flush()
    return credential


def list_extensions(session: Session, tenant: Tenant) -> list[Extension]:
    """The tenant's extensions ordered by number."""
    query = select(Extension).where(Extension.tenant_id == tenant.id).order_by(Extension.number)
    return list(session.scalars(query))


def get_extension(session: Session, tenant_id: int, number: str) -> Extension | None:
    """The extension ``number`` in the tenant, or None."""
    query = select(Extension).where(Extension.tenant_id == tenant_id, Extension.number == number)
    return session.scalar(query)


def ring_timeout(tenant: Tenant, extension: Extension) -> int:
    """Seconds to ring ``extension``: its own setting, else the tenant's."""
    if extension.ring_timeout is not None:
        return extension.ring_timeout
    return int(tenant.setting("ring_timeout"))


def get_credential(session: Session, tenant_id: int, auth_username: str) -> SipCredential | None:
    """The device login ``auth_username`` in the tenant, or None."""
    query = select(SipCredential).where(
        SipCredential.tenant_id == tenant_id, SipCredential.auth_username == auth_username
    )
    return session.scalar(query)


def credential_ha1(session: Session, tenant_id: int, auth_username: str) -> Ha1 | None:
    """(ha1_md5, ha1_sha256) for a device login, or None if there is no such login."""
    query = select(SipCredential.ha1_md5, SipCredential.ha1_sha256).where(
        SipCredential.tenant_id == tenant_id, SipCredential.auth_username == auth_username
    )
    row = session.execute(query).first()
    return Ha1(row[0], row[1]) if row else None


# --- registrations -------------------------------------------------------------------------


def load_registrations(session: Session, now: float) -> list[Registration]:
    """Every binding not expired at ``now`` (UTC epoch seconds), to rebuild the location table."""
    query = select(Registration).where(Registration.expires_at > now).order_by(Registration.id)
    return list(session.scalars(query))


def registrations_for(session: Session, tenant_id: int, aor: str, now: float) -> list[Registration]:
    """The unexpired bindings of one AOR, newest first."""
    query = (
        select(Registration)
        .where(
            Registration.tenant_id == tenant_id,
            Registration.aor == aor,
            Registration.expires_at > now,
        )
        .order_by(Registration.updated_at.desc())
    )
    return list(session.scalars(query))


def purge_expired_registrations(session: Session, now: float) -> int:
    """Delete bindings expired at ``now``; returns how many were deleted."""
    result = session.execute(delete(Registration).where(Registration.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)


# --- CDRs ----------------------------------------------------------------------------------


def list_cdrs(
    session: Session,
    tenant: Tenant,
    limit: int = 100,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    number: str | None = None,
    disposition: str | None = None,
) -> Sequence[Cdr]:
    """The tenant's CDRs, newest first.

    ``since``/``until`` bound ``started_at`` (inclusive/exclusive); ``number`` matches the
    caller, the dialled number or the extension that answered.
    """
    query = select(Cdr).where(Cdr.tenant_id == tenant.id)
    if since is not None:
        query = query.where(Cdr.started_at >= since)
    if until is not None:
        query = query.where(Cdr.started_at < until)
    if number is not None:
        query = query.where(
            or_(Cdr.caller == number, Cdr.callee == number, Cdr.callee_answered_by == number)
        )
    if disposition is not None:
        query = query.where(Cdr.disposition == disposition)
    query = query.order_by(Cdr.started_at.desc(), Cdr.id).limit(limit)
    return list(session.scalars(query))


def get_cdr(session: Session, cdr_id: str) -> Cdr | None:
    """One CDR by its uuid, or None."""
    return session.get(Cdr, cdr_id)
