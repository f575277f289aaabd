"""Versions of every resource: one snapshot per applied change, numbered from 1.

When a resource created before the ownership layer existed (or by the call engine) is
first changed, its state before that change is kept as version 1 ("baseline"), so it can be
rolled back too. A snapshot of None means "deleted in this version". Only
``service.py`` records versions; this module must never apply a snapshot itself — rolling
back goes through the one change path like any other change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from frontdesk.org.model import ResourceVersion

BASELINE_ACTOR = "(state before its first recorded change)"


def latest(session: Session, tenant_id: int, resource_type: str, key: str) -> ResourceVersion | None:
    """The newest version of a resource, or None when it has none yet."""
    return session.scalar(
        select(ResourceVersion)
        .where(ResourceVersion.tenant_id == tenant_id,
               ResourceVersion.resource_type == resource_type,
               ResourceVersion.resource_key == key)
        .order_by(ResourceVersion.version.desc())
        .limit(1)
    )


def record(
    session: Session,
    tenant_id: int,
    resource_type: str,
    key: str,
    *,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    actor: str,
    actor_user_id: int | None,
    change_request_id: int | None,
    now: datetime,
) -> int:
    """Store ``after`` as the next version (with a baseline first if needed); its number."""
    newest = latest(session, tenant_id, resource_type, key)
    number = newest.version if newest else 0
    if newest is None and before is not None:
        number = 1
        session.add(ResourceVersion(
            tenant_id=tenant_id, resource_type=resource_type, resource_key=key, version=1,
            snapshot=before, actor=BASELINE_ACTOR, actor_user_id=None, change_request_id=None,
            at=now))
    number += 1
    session.add(ResourceVersion(
        tenant_id=tenant_id, resource_type=resource_type, resource_key=key, version=number,
        snapshot=after, actor=actor, actor_user_id=actor_user_id,
        change_request_id=change_request_id, at=now))
    session.flush()
    return number


def history(session: Session, tenant_id: int, resource_type: str, key: str) -> list[ResourceVersion]:
    """Every version of a resource, oldest first."""
    return list(session.scalars(
        select(ResourceVersion)
        .where(ResourceVersion.tenant_id == tenant_id,
               ResourceVersion.resource_type == resource_type,
               ResourceVersion.resource_key == key)
        .order_by(ResourceVersion.version)
    ))


def get(session: Session, tenant_id: int, resource_type: str, key: str,
        version: int) -> ResourceVersion | None:
    """One version of a resource, or None."""
    return session.scalar(
        select(ResourceVersion).where(
            ResourceVersion.tenant_id == tenant_id, ResourceVersion.resource_type == resource_type,
            ResourceVersion.resource_key == key, ResourceVersion.version == version)
    )
