"""Flow versions: edit a draft, publish it, roll back — each published version immutable.

What it is for: the writes behind "a business owner changes routing without IT". A flow has
at most one draft (freely edited) and one published version (what calls run); publishing
archives the previous one. Rolling back publishes a *new* version with an older version's
document ("rollback to version 3"), so history only grows and every published version
records who published it and when. ``load_flow`` is what the call engine and the simulator
read: the tenant's published flow, or the front-desk template when there is none.

Every function takes an open ``Session`` and works inside the caller's transaction (none
commits), and takes the acting person explicitly (``actor``). These are the *apply* step of
org/'s one change path (permission check -> change request if it crosses domains -> apply
-> audit): API, CLI and jobs reach them only through org/, via the ``flow`` resource kind
in ``routing/kind.py``.

What it must never do: check permissions or write audit entries (org/ does), change a
published or archived version (the ``before_update`` guard in model.py refuses), or publish
a flow that does not pass validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from frontdesk.routing.directory import Directory
from frontdesk.routing.model import Flow, FlowDocument, FlowVersion
from frontdesk.routing.templates import FRONT_DESK, front_desk
from frontdesk.routing.validate import check_flow, parse_flow

#: The flow that answers the tenant's main number (and takes shielded calls).
MAIN_FLOW = FRONT_DESK


class VersionError(Exception):
    """A version operation cannot be done; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class LoadedFlow:
    """The flow calls run, and where it came from."""

    document: FlowDocument
    source: Literal["published", "template"]
    version: int | None = None
    published_by: str | None = None
    published_at: datetime | None = None

    @property
    def label(self) -> str:
        """``flow "front-desk" version 3, published by alice at 2026-...`` or the template."""
        if self.source == "template":
            return f'flow "{self.document.name}" (the built-in template; nothing published yet)'
        when = f"{self.published_at:%Y-%m-%d %H:%M} UTC" if self.published_at else "?"
        return (
            f'flow "{self.document.name}" version {self.version}, published by '
            f"{self.published_by} at {when}"
        )


def _actor(actor: str) -> str:
    if not actor or not actor.strip():
        raise VersionError("say who is making the change (actor)")
    return actor.strip()


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def get_flow(session: Session, tenant_id: int, name: str) -> Flow | None:
    """The tenant's flow called ``name``, or None."""
    return session.scalar(select(Flow).where(Flow.tenant_id == tenant_id, Flow.name == name))


def list_flows(session: Session, tenant_id: int) -> list[Flow]:
    """The tenant's flows by name."""
    return list(
        session.scalars(select(Flow).where(Flow.tenant_id == tenant_id).order_by(Flow.name))
    )


def _versions(session: Session, flow: Flow, state: str | None = None) -> list[FlowVersion]:
    query = select(FlowVersion).where(FlowVersion.flow_id == flow.id)
    if state is not None:
        query = query.where(FlowVersion.state == state)
    return list(session.scalars(query.order_by(FlowVersion.version.desc())))


def list_versions(session: Session, tenant_id: int, name: str) -> list[FlowVersion]:
    """Every version of the flow, newest first ([] when there is no such flow)."""
    flow = get_flow(session, tenant_id, name)
    return _versions(session, flow) if flow is not None else []


def _one(session: Session, tenant_id: int, name: str, state: str) -> FlowVersion | None:
    flow = get_flow(session, tenant_id, name)
    if flow is None:
        return None
    found = _versions(session, flow, state)
    return found[0] if found else None


def published_version(session: Session, tenant_id: int, name: str) -> FlowVersion | None:
    """The version calls run now, or None."""
    return _one(session, tenant_id, name, "published")


def draft_version(session: Session, tenant_id: int, name: str) -> FlowVersion | None:
    """The draft being edited, or None."""
    return _one(session, tenant_id, name, "draft")


def get_version(session: Session, tenant_id: int, name: str, version: int) -> FlowVersion | None:
    """Version ``version`` of the flow, or None."""
    flow = get_flow(session, tenant_id, name)
    if flow is None:
        return None
    return session.scalar(
        select(FlowVersion).where(FlowVersion.flow_id == flow.id, FlowVersion.version == version)
    )


def _next_number(session: Session, flow: Flow) -> int:
    highest = session.scalar(
        select(func.max(FlowVersion.version)).where(FlowVersion.flow_id == flow.id)
    )
    return int(highest or 0) + 1


def save_draft(
    session: Session,
    tenant_id: int,
    document: FlowDocument,
    *,
    actor: str,
    now: datetime | None = None,
) -> FlowVersion:
    """Store ``document`` as the draft of flow ``document.name`` (created if new; an existing
    draft is replaced). Drafts may be incomplete; publishing checks them."""
    who = _actor(actor)
    flow = get_flow(session, tenant_id, document.name)
    if flow is None:
        flow = Flow(tenant_id=tenant_id, name=document.name, created_by=who, created_at=_now(now))
        session.add(flow)
        session.flush()
    draft = draft_version(session, tenant_id, document.name)
    if draft is not None:
        draft.document = document.to_json()
        draft.created_by = who
        draft.created_at = _now(now)
    else:
        draft = FlowVersion(
            flow_id=flow.id,
            tenant_id=tenant_id,
            version=_next_number(session, flow),
            state="draft",
            document=document.to_json(),
            created_by=who,
            created_at=_now(now),
        )
        session.add(draft)
    session.flush()
    return draft


def discard_draft(session: Session, tenant_id: int, name: str, *, actor: str) -> int:
    """Delete the draft; returns its version number."""
    _actor(actor)
    draft = draft_version(session, tenant_id, name)
    if draft is None:
        raise VersionError(f'flow "{name}" has no draft to discard')
    number = draft.version
    session.delete(draft)
    session.flush()
    return number


def _archive_published(session: Session, flow: Flow) -> None:
    """Archive the published version first (flushed), so that at every moment a flow has at
    most one published version."""
    for current in _versions(session, flow, "published"):
        current.state = "archived"
    session.flush()


def publish(
    session: Session,
    tenant_id: int,
    name: str,
    *,
    actor: str,
    directory: Directory,
    now: datetime | None = None,
) -> FlowVersion:
    """Publish the draft of flow ``name`` after checking it against ``directory``
    (``FlowInvalid`` lists the problems); the previously published version is archived."""
    who = _actor(actor)
    flow = get_flow(session, tenant_id, name)
    draft = draft_version(session, tenant_id, name) if flow is not None else None
    if flow is None or draft is None:
        raise VersionError(f'flow "{name}" has no draft to publish; save a draft first')
    check_flow(parse_flow(draft.document), directory)
    _archive_published(session, flow)
    draft.state = "published"
    draft.published_by = who
    draft.published_at = _now(now)
    session.flush()
    return draft


def rollback(
    session: Session,
    tenant_id: int,
    name: str,
    *,
    actor: str,
    directory: Directory,
    to_version: int | None = None,
    now: datetime | None = None,
) -> FlowVersion:
    """Publish again what version ``to_version`` (default: the one published before the
    current one) contained, as a new version noted "rollback to version N"."""
    who = _actor(actor)
    target = rollback_target(session, tenant_id, name, to_version)
    flow = get_flow(session, tenant_id, name)
    assert flow is not None  # rollback_target found its published version
    check_flow(parse_flow(target.document), directory)
    return publish_document(
        session, flow, target.document, actor=who, note=f"rollback to version {target.version}",
        now=now,
    )


def rollback_target(
    session: Session, tenant_id: int, name: str, to_version: int | None
) -> FlowVersion:
    """The version a rollback restores: ``to_version``, or the one published before the
    current one (``VersionError`` saying why when there is none)."""
    flow = get_flow(session, tenant_id, name)
    current = published_version(session, tenant_id, name)
    if flow is None or current is None:
        raise VersionError(f'flow "{name}" has no published version to roll back')
    if to_version is None:
        earlier = [v for v in _versions(session, flow, "archived") if v.version < current.version]
        if not earlier:
            raise VersionError(f'flow "{name}" has no earlier published version to roll back to')
        return earlier[0]
    found = get_version(session, tenant_id, name, to_version)
    if found is None or found.state == "draft":
        raise VersionError(
            f'flow "{name}" has no published version {to_version}; see `frontdesk flow list`'
        )
    if found.id == current.id:
        raise VersionError(f'flow "{name}" version {to_version} is already the one calls run')
    return found


def next_version(session: Session, flow: Flow | None) -> int:
    """The number the flow's next new version gets (1 for a flow not saved yet)."""
    return 1 if flow is None else _next_number(session, flow)


def publish_document(
    session: Session,
    flow: Flow,
    document: dict[str, Any],
    *,
    actor: str,
    note: str | None,
    now: datetime | None = None,
) -> FlowVersion:
    """Publish ``document`` (already checked) as a new version of ``flow``, archiving the
    current one; the draft, if any, stays as it is. Rollbacks use this."""
    who = _actor(actor)
    _archive_published(session, flow)
    restored = FlowVersion(
        flow_id=flow.id,
        tenant_id=flow.tenant_id,
        version=_next_number(session, flow),
        state="published",
        document=dict(document),
        note=note,
        created_by=who,
        created_at=_now(now),
        published_by=who,
        published_at=_now(now),
    )
    session.add(restored)
    session.flush()
    return restored


def load_flow(session: Session, tenant_id: int, name: str = MAIN_FLOW) -> LoadedFlow:
    """What calls to the tenant run: the published version of ``name``; for the main flow
    with nothing published, the front-desk template."""
    current = published_version(session, tenant_id, name)
    if current is not None:
        return LoadedFlow(
            parse_flow(current.document),
            "published",
            current.version,
            current.published_by,
            current.published_at,
        )
    if name != MAIN_FLOW:
        raise VersionError(f'flow "{name}" has no published version')
    return LoadedFlow(front_desk(), "template")
