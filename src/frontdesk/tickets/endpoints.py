"""Webhook endpoints (where call and request events go) and their delivery log.

An endpoint has a name unique in its tenant, a URL (http or https), a secret used to sign
every body, a kind (``generic``: signed JSON; ``zammad``: Zammad's generic CTI form
posts) and the routing-key patterns it subscribes to (``request.*``, ``call.answered``;
none means every event). The delivery log (``webhook_deliveries``) is read here and can be
told to try a failed delivery again.

Functions take the ``Session`` and tenant id first and flush, never commit. This module
must never send anything (``webhooks.WebhookDispatcher`` does) nor show a secret in an
error message.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from frontdesk.store.models import utcnow
from frontdesk.tickets.directory import tenant_label
from frontdesk.tickets.errors import Conflict, InvalidValue, NotFound, UnknownEndpoint
from frontdesk.tickets.model import (
    DELIVERY_STATUSES,
    WEBHOOK_KINDS,
    WebhookDelivery,
    WebhookEndpoint,
)

SECRET_BYTES = 32
MIN_SECRET_LENGTH = 16


def _check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidValue(
            f"webhook URL {url!r} is not an http(s) URL: write it as https://host/path",
            field="url",
        )
    return url.strip()


def _check_patterns(patterns: Sequence[str]) -> list[str]:
    cleaned = [p.strip() for p in patterns]
    if any(not p for p in cleaned):
        raise InvalidValue(
            "event patterns must not be empty: use e.g. 'request.*' or 'call.answered'",
            field="events",
        )
    return cleaned


def create_endpoint(
    session: Session,
    tenant_id: int,
    name: str,
    url: str,
    *,
    kind: str = "generic",
    secret: str | None = None,
    events: Sequence[str] = (),
    enabled: bool = True,
) -> WebhookEndpoint:
    """A new endpoint; without ``secret`` a random one is made (read it from the row)."""
    if kind not in WEBHOOK_KINDS:
        raise InvalidValue(
            f"webhook kind {kind!r} is not one of {', '.join(WEBHOOK_KINDS)}", field="kind"
        )
    if secret is not None and len(secret) < MIN_SECRET_LENGTH:
        raise InvalidValue(
            f"webhook secret is shorter than {MIN_SECRET_LENGTH} characters: use a longer "
            "random string, or leave it out to have one made",
            field="secret",
        )
    name = name.strip()
    if not name:
        raise InvalidValue("webhook endpoint name must not be empty", field="name")
    taken = session.scalar(
        select(WebhookEndpoint.id).where(
            WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.name == name
        )
    )
    if taken is not None:
        raise Conflict(
            f"webhook endpoint {name!r} already exists in tenant "
            f"{tenant_label(session, tenant_id)}: pick another name or change that one",
            field="name",
        )
    endpoint = WebhookEndpoint(
        tenant_id=tenant_id,
        name=name,
        kind=kind,
        url=_check_url(url),
        secret=secret or secrets.token_hex(SECRET_BYTES),
        events=_check_patterns(events),
        enabled=enabled,
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def get_endpoint(session: Session, tenant_id: int, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.tenant_id != tenant_id:
        raise UnknownEndpoint(
            f"webhook endpoint #{endpoint_id} does not exist in tenant "
            f"{tenant_label(session, tenant_id)}",
            field="endpoint_id",
        )
    return endpoint


def list_endpoints(session: Session, tenant_id: int) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)
    return list(session.scalars(query.order_by(WebhookEndpoint.name)))


def update_endpoint(
    session: Session,
    tenant_id: int,
    endpoint_id: int,
    *,
    url: str | None = None,
    events: Sequence[str] | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    """Change URL, subscriptions or enabled; pending deliveries keep their bodies."""
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    if url is not None:
        endpoint.url = _check_url(url)
    if events is not None:
        endpoint.events = _check_patterns(events)
    if enabled is not None:
        endpoint.enabled = enabled
    session.flush()
    return endpoint


def delete_endpoint(session: Session, tenant_id: int, endpoint_id: int) -> None:
    """Delete an endpoint and its delivery log."""
    session.delete(get_endpoint(session, tenant_id, endpoint_id))
    session.flush()


def list_deliveries(
    session: Session,
    tenant_id: int,
    *,
    endpoint_id: int | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[WebhookDelivery]:
    """The delivery log, newest first."""
    query = select(WebhookDelivery).where(WebhookDelivery.tenant_id == tenant_id)
    if endpoint_id is not None:
        get_endpoint(session, tenant_id, endpoint_id)
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        if status not in DELIVERY_STATUSES:
            raise InvalidValue(
                f"delivery status {status!r} is not one of {', '.join(DELIVERY_STATUSES)}",
                field="status",
            )
        query = query.where(WebhookDelivery.status == status)
    query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    return list(session.scalars(query.limit(limit)))


def redeliver(session: Session, tenant_id: int, delivery_id: int) -> WebhookDelivery:
    """Queue a failed (or delivered) delivery again, with a fresh set of attempts."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.tenant_id != tenant_id:
        raise NotFound(
            f"webhook delivery #{delivery_id} does not exist in tenant "
            f"{tenant_label(session, tenant_id)}",
            field="delivery_id",
        )
    delivery.status = "pending"
    delivery.attempts = 0
    delivery.next_attempt_at = utcnow()
    delivery.error = None
    session.flush()
    return delivery
