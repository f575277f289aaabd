"""The one path for every configuration change: permission check -> change request if the
change touches a domain the actor does not own -> apply atomically -> version -> audit entry.

The API, the CLI, the web UI and background jobs all call ``apply_change`` (and
``decide``/``rollback``), passing the acting ``Actor`` and the channel explicitly. Every
call works inside the caller's transaction and never commits: the caller commits, then
publishes ``outcome.events`` on the event bus. A denied call raises before anything is
written; an allowed call writes exactly one audit row.

This module must never read a request context, talk HTTP, or let anything but
``audit.append`` write the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from frontdesk.org import audit, versions
from frontdesk.org.access import Access, Actor, ActorKind, resolve_access
from frontdesk.org.errors import Conflict, Invalid, NotAllowed, NotFound
from frontdesk.org.events import (
    ChangeApplied,
    ChangeRequestDecided,
    ChangeRequested,
    OrgEvent,
    StakeholderInformed,
)
from frontdesk.org.model import CHANNELS, ChangeRequest, RoleAssignment
from frontdesk.org.resources import SECRET, ApplyContext, ResourceKind, kind_of
from frontdesk.org.roles import DOMAIN_OWNERS, INFORMED, Domain, Role, holders_needed
from frontdesk.store.models import utcnow

Status = Literal["applied", "requested", "unchanged", "approved", "rejected"]


@dataclass(frozen=True, slots=True)
class Change:
    """One requested change: ``action`` (create/update/delete) on ``resource_type`` ``key``."""

    resource_type: str
    action: str
    key: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ChangeOutcome:
    """What happened: applied (with version), requested (with change request), unchanged,
    approved (waiting for another domain) or rejected."""

    status: Status
    resource_type: str
    resource_key: str | None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    diff: tuple[dict[str, Any], ...] = ()
    version: int | None = None
    change_request: ChangeRequest | None = None
    audit_seq: int | None = None
    events: tuple[OrgEvent, ...] = ()


@dataclass(slots=True)
class _Plan:
    """A change checked and classified, ready to apply or to turn into a change request."""

    kind: ResourceKind
    ctx: ApplyContext
    change: Change
    key: str | None
    row: Any
    fields: dict[str, Any]
    before: dict[str, Any] | None
    diff: list[dict[str, Any]]
    access: Access
    permission: str
    missing: frozenset[Domain]


def apply_change(session: Session, actor: Actor, channel: str, change: Change, *,
                 now: datetime | None = None) -> ChangeOutcome:
    """Check, then apply ``change`` (or file a change request); see the module docstring."""
    now = now or utcnow()
    if channel not in CHANNELS:
        raise Invalid(f"unknown channel {channel!r}", field="channel",
                      fix=f"use one of {', '.join(CHANNELS)}")
    plan = _plan(session, actor, change, now)
    if plan.change.action not in ("create", "delete") and not plan.diff:
        return ChangeOutcome("unchanged", plan.kind.name, plan.key, plan.before, plan.before)
    if plan.missing:
        return _request(plan, channel)
    return _apply(plan, channel, change_request=None)


def _target_tenant(session: Session, actor: Actor, kind: ResourceKind, change: Change) -> int | None:
    if kind.tenant_scoped:
        if actor.tenant_id is None:
            raise Invalid(f"changing a {kind.title} needs a tenant", field="tenant",
                          fix="name the tenant (--tenant SLUG)")
        return actor.tenant_id
    ctx = ApplyContext(session, None, actor, utcnow())
    row = kind.load(ctx, change.key) if change.key else None
    return getattr(row, "id", None)


def _plan(session: Session, actor: Actor, change: Change, now: datetime) -> _Plan:
    kind = kind_of(change.resource_type)
    if change.action not in kind.actions:
        raise Invalid(f"a {kind.title} cannot be {change.action}d", field="action",
                      fix=f"use one of: {', '.join(kind.actions)}")
    tenant_id = _target_tenant(session, actor, kind, change)
    ctx = ApplyContext(session, tenant_id, actor, now)
    row = kind.load(ctx, change.key) if change.key else None
    permission = f"{kind.name}.{change.action}"
    personal = kind.is_personal(ctx, change.action, change.key, change.fields, row)
    access = _access(ctx, kind, row, change, personal)
    if not personal and not access.allows(permission):
        raise _denied(actor, kind, change, permission)
    _check_existence(ctx, kind, change, row)
    key = kind.create_key(ctx, change.key, change.fields) if change.action == "create" else change.key
    fields = kind.normalise(ctx, change.action, key, change.fields, row)
    before = kind.snapshot(ctx, row) if row is not None else None
    changed = _changed(kind, change.action, fields, before)
    touched = frozenset() if personal else kind.domains(change.action, key or "", changed)
    missing = touched - access.domains_for(permission)
    if missing and tenant_id is None:
        raise NotAllowed(f"creating a {kind.title} needs the owners of both domains",
                         fix="ask an administrator")
    diff = [_diff_entry(kind, f, old, new) for f, (old, new) in changed.items()]
    return _Plan(kind, ctx, change, key, row, fields, before, diff, access, permission, missing)


def _diff_entry(kind: ResourceKind, field: str, old: Any, new: Any) -> dict[str, Any]:
    """``{"field", "before", "after"}``, plus ``changes`` (readable lines) when the kind
    explains the field, e.g. a flow document's steps added/removed/changed."""
    entry = {"field": field, "before": old, "after": new}
    explain = getattr(kind, "explain_change", None)
    changes = explain(field, old, new) if explain is not None else None
    if changes:
        entry["changes"] = list(changes)
    return entry


def _access(ctx: ApplyContext, kind: ResourceKind, row: Any, change: Change,
            personal: bool) -> Access:
    """The actor's access in the tenant acted on (at the resource's site, if any)."""
    try:
        site_id = kind.site_id(ctx, row, change.fields)
    except Invalid:
        site_id = None  # a bad site name is reported by normalise, after the permission check
    tenant_id = ctx.tenant_id if ctx.tenant_id is not None else ctx.actor.tenant_id
    if tenant_id is None:
        return resolve_access(ctx.session, ctx.actor, -1, None, ctx.now)
    return resolve_access(ctx.session, ctx.actor, tenant_id, site_id, ctx.now)


def _denied(actor: Actor, kind: ResourceKind, change: Change, permission: str) -> NotAllowed:
    roles = ", ".join(r.label for r in holders_needed(permission)) or "the administrator"
    target = f"{kind.title} {change.key}" if change.key else f"a {kind.title}"
    return NotAllowed(f"{actor.describe()} may not {change.action} {target} "
                      f"(needs permission {permission})",
                      fix=f"ask someone holding {roles}, or have the permission granted")


def _check_existence(ctx: ApplyContext, kind: ResourceKind, change: Change, row: Any) -> None:
    if change.action in ("update", "delete") and row is None:
        raise NotFound(f"{kind.title} {change.key!r} does not exist",
                       fix=f"check the name; list the existing {kind.title}s first")
    if change.action == "create" and row is not None:
        raise Conflict(f"{kind.title} {change.key!r} already exists", field="key",
                       fix="choose another name, or update the existing one")


def _changed(kind: ResourceKind, action: str, fields: Mapping[str, Any],
             before: Mapping[str, Any] | None) -> dict[str, tuple[Any, Any]]:
    """Per field, (old, new) for what the change alters; secrets show as "(secret)"."""
    if action == "delete":
        return {f: (v, None) for f, v in (before or {}).items()}
    changed: dict[str, tuple[Any, Any]] = {}
    for name, new in fields.items():
        if name in kind.secret_fields:
            changed[name] = (None if action == "create" else SECRET, SECRET)
            continue
        old = (before or {}).get(name)
        if action == "create" or old != new:
            changed[name] = (old, new)
    return changed


def _actor_roles(plan: _Plan) -> list[str]:
    return sorted(r.value for r in plan.access.roles)


def _request(plan: _Plan, channel: str) -> ChangeOutcome:
    """File a change request for the owners of ``plan.missing`` instead of applying."""
    ctx, actor = plan.ctx, plan.ctx.actor
    assert ctx.tenant_id is not None
    latest = versions.latest(ctx.session, ctx.tenant_id, plan.kind.name, plan.key or "")
    request = ChangeRequest(
        tenant_id=ctx.tenant_id, status="open", resource_type=plan.kind.name,
        resource_key=plan.key, action=plan.change.action, fields=plan.fields, diff=plan.diff,
        domains=sorted(d.value for d in plan.missing), approvals={}, reason=plan.change.reason,
        base_version=latest.version if latest else 0, requested_by_id=actor.user_id,
        requested_by=actor.name, channel=channel, created_at=ctx.now)
    ctx.session.add(request)
    ctx.session.flush()
    entry = audit.append(ctx.session, audit.AuditRecord(
        tenant_id=ctx.tenant_id, actor=actor.name, actor_kind=actor.kind.value,
        actor_user_id=actor.user_id, actor_roles=_actor_roles(plan), channel=channel,
        action="request", resource_type="change_request", resource_key=str(request.id),
        after=summary(request), change_request_id=request.id, reason=plan.change.reason),
        ctx.now)
    approvers = holders(ctx.session, ctx.tenant_id, _owner_roles(plan.missing))
    event = ChangeRequested(
        tenant_id=ctx.tenant_id, change_request_id=request.id, resource_type=plan.kind.name,
        resource_key=plan.key, action=plan.change.action, requested_by=actor.name,
        domains=tuple(request.domains), approver_user_ids=tuple(sorted(approvers)),
        summary=describe(request))
    return ChangeOutcome("requested", plan.kind.name, plan.key, plan.before, None,
                         tuple(plan.diff), None, request, entry.seq, (event,))


def _owner_roles(domains: frozenset[Domain] | list[str]) -> set[Role]:
    return {r for d in domains for r in DOMAIN_OWNERS[Domain(d)]}


def _write(plan: _Plan) -> tuple[str, Any, dict[str, Any] | None]:
    """Perform the change on the rows; return (key, row, snapshot after)."""
    kind, ctx, action = plan.kind, plan.ctx, plan.change.action
    try:
        if action == "create":
            row = kind.create(ctx, plan.key, plan.fields)
            ctx.session.flush()
            return kind.key_of(row), row, kind.snapshot(_for_row(ctx, kind, row), row)
        if action == "delete":
            after = kind.delete(ctx, plan.row)
            ctx.session.flush()
            return plan.key or "", plan.row, after
        # "update", or a kind's own named update (a flow's "publish"): same write, own permission
        kind.update(ctx, plan.row, plan.fields)
        ctx.session.flush()
        return plan.key or "", plan.row, kind.snapshot(ctx, plan.row)
    except IntegrityError as exc:
        raise Conflict(f"{kind.title} {plan.key or ''} clashes with existing data: "
                       f"{str(exc.orig).splitlines()[0] if exc.orig else exc}",
                       fix="reload, check the names it refers to, and try again") from exc


def _for_row(ctx: ApplyContext, kind: ResourceKind, row: Any) -> ApplyContext:
    """For a new tenant the context's tenant is the tenant just made."""
    if kind.tenant_scoped:
        return ctx
    return ApplyContext(ctx.session, row.id, ctx.actor, ctx.now)


def _apply(plan: _Plan, channel: str, change_request: ChangeRequest | None,
           reason: str | None = None) -> ChangeOutcome:
    """Write the change, its version and its audit row; return the outcome with events."""
    ctx, actor, kind = plan.ctx, plan.ctx.actor, plan.kind
    key, row, after = _write(plan)
    tenant_id: int = ctx.tenant_id if ctx.tenant_id is not None else row.id
    request_id = change_request.id if change_request is not None else None
    version = versions.record(
        ctx.session, tenant_id, kind.name, key, before=plan.before, after=after,
        actor=actor.name, actor_user_id=actor.user_id, change_request_id=request_id, now=ctx.now)
    entry = audit.append(ctx.session, audit.AuditRecord(
        tenant_id=tenant_id, actor=actor.name, actor_kind=actor.kind.value,
        actor_user_id=actor.user_id, actor_roles=_actor_roles(plan), channel=channel,
        action=plan.change.action, resource_type=kind.name, resource_key=key,
        before=plan.before, after=after, change_request_id=request_id,
        vendor_grant_id=plan.access.grant_for(plan.permission),
        reason=plan.change.reason if reason is None else reason), ctx.now)
    applied = ChangeApplied(
        tenant_id=tenant_id, resource_type=kind.name, resource_key=key,
        action=plan.change.action, version=version, actor=actor.name, channel=channel,
        audit_seq=entry.seq, change_request_id=request_id)
    summary_text = f"{kind.title} {key} {_past(plan.change.action)} by {actor.name}: " + diff_text(
        plan.diff)
    informed = _inform(ctx.session, tenant_id, kind.name, key, summary_text, actor, request_id)
    return ChangeOutcome("applied", kind.name, key, plan.before, after, tuple(plan.diff),
                         version, change_request, entry.seq, (applied, *informed))


def _past(action: str) -> str:
    """``created``, ``published``, ``rolled back``."""
    return "rolled back" if action == "rollback" else action + ("d" if action.endswith("e") else "ed")


def _inform(session: Session, tenant_id: int, resource_type: str, key: str, summary_text: str,
            actor: Actor, request_id: int | None) -> list[OrgEvent]:
    """One ``StakeholderInformed`` per person holding an "informed" role (not the actor)."""
    roles = INFORMED.get(resource_type, ())
    told: dict[int, Role] = {}
    for role in roles:
        for user_id in holders(session, tenant_id, {role}):
            if user_id != actor.user_id:
                told.setdefault(user_id, role)
    return [StakeholderInformed(tenant_id=tenant_id, user_id=uid, role=role.value,
                                resource_type=resource_type, resource_key=key,
                                summary=summary_text, change_request_id=request_id)
            for uid, role in sorted(told.items())]


def holders(session: Session, tenant_id: int, roles: set[Role]) -> set[int]:
    """Ids of the users holding any of ``roles`` in the tenant (at any site)."""
    if not roles:
        return set()
    return set(session.scalars(select(RoleAssignment.user_id).where(
        RoleAssignment.tenant_id == tenant_id,
        RoleAssignment.role.in_([r.value for r in roles]))))


def diff_text(diff: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> str:
    """``ring_timeout: 30 -> 15; digest_algorithms: ['MD5'] -> ['SHA-256']``."""
    return "; ".join(f"{d['field']}: " + (", ".join(d["changes"]) if d.get("changes")
                                          else f"{_show(d['before'])} -> {_show(d['after'])}")
                     for d in diff) or "no change"


def _show(value: Any) -> str:
    return "(none)" if value is None else str(value)


def describe(request: ChangeRequest) -> str:
    """One readable line for a change request."""
    target = f"{request.resource_type} {request.resource_key or '(new)'}"
    waiting = ", ".join(f"{d} owner" for d in request.domains if d not in request.approvals)
    return (f"#{request.id} {request.action} {target} by {request.requested_by} "
            f"[{request.status}{'; waits for ' + waiting if request.status == 'open' else ''}]: "
            f"{diff_text(request.diff)}")


def summary(request: ChangeRequest) -> dict[str, Any]:
    """A change request as a JSON-safe dict (API responses, audit snapshots)."""
    return {"id": request.id, "status": request.status, "resource_type": request.resource_type,
            "resource_key": request.resource_key, "action": request.action,
            "diff": request.diff, "domains": request.domains, "approvals": request.approvals,
            "reason": request.reason, "requested_by": request.requested_by,
            "channel": request.channel,
            "created_at": audit.iso(request.created_at) if request.created_at else None,
            "decided_at": audit.iso(request.decided_at) if request.decided_at else None,
            "decided_by": request.decided_by, "decision_comment": request.decision_comment}


def is_local_admin(actor: Actor) -> bool:
    """True for the built-in local administrator."""
    return actor.kind is ActorKind.LOCAL_ADMIN


# --- change requests: approve or reject ---------------------------------------------------


def get_change_request(session: Session, actor: Actor, request_id: int) -> ChangeRequest:
    """The change request ``request_id`` in the actor's tenant, or NotFound."""
    request = session.get(ChangeRequest, request_id) if 0 < request_id < 2**31 else None
    if request is None or (request.tenant_id != actor.tenant_id and not is_local_admin(actor)):
        raise NotFound(f"change request #{request_id} does not exist",
                       fix="list the open change requests to find its number")
    return request


def list_change_requests(session: Session, tenant_id: int,
                         status: str | None = None) -> list[ChangeRequest]:
    """A tenant's change requests, newest first, optionally only with ``status``."""
    query = select(ChangeRequest).where(ChangeRequest.tenant_id == tenant_id)
    if status is not None:
        query = query.where(ChangeRequest.status == status)
    return list(session.scalars(query.order_by(ChangeRequest.id.desc())))


def decide(session: Session, actor: Actor, channel: str, request_id: int, *, approve: bool,
           comment: str = "", now: datetime | None = None) -> ChangeOutcome:
    """Approve or reject an open change request as an owner of a domain it waits for.

    Approval by the last missing owner applies the change (one audit row for the applied
    change); otherwise one audit row records the decision.
    """
    now = now or utcnow()
    request = get_change_request(session, actor, request_id)
    if request.status != "open":
        raise Conflict(f"change request #{request.id} is already {request.status}",
                       fix="only open change requests can be decided")
    kind = kind_of(request.resource_type)
    ctx = ApplyContext(session, request.tenant_id, actor, now)
    row = kind.load(ctx, request.resource_key) if request.resource_key else None
    pending = [Domain(d) for d in request.domains if d not in request.approvals]
    access = _access(ctx, kind, row, Change(kind.name, request.action, request.resource_key,
                                            request.fields), personal=False)
    mine = [d for d in pending if d in access.owned_domains]
    _check_decider(session, actor, request, pending, mine)
    comment = comment.strip()
    if not approve:
        if not comment:
            raise Invalid("a rejection needs a comment", field="comment",
                          fix="say why, so the requester can adjust the change")
        return _close(ctx, request, access, channel, "rejected", comment)
    approvals = dict(request.approvals)
    for domain in mine:
        approvals[domain.value] = {"by": actor.name, "at": audit.iso(now), "comment": comment}
    request.approvals = approvals
    if len(approvals) < len(request.domains):
        return _close(ctx, request, access, channel, "approved", comment)
    return _apply_request(ctx, kind, row, request, access, channel, comment)


def _check_decider(session: Session, actor: Actor, request: ChangeRequest,
                   pending: list[Domain], mine: list[Domain]) -> None:
    if actor.user_id is not None and actor.user_id == request.requested_by_id:
        raise NotAllowed(f"you asked for change request #{request.id}, so you cannot decide it",
                         fix="another owner of the domain must approve or reject it")
    if mine:
        return
    owners = ", ".join(sorted({r.label for r in _owner_roles([d.value for d in pending])}))
    names = sorted(holders(session, request.tenant_id, _owner_roles([d.value for d in pending])))
    raise NotAllowed(
        f"change request #{request.id} waits for the owner of the "
        f"{' and '.join(d.value for d in pending)} domain ({owners}); {actor.name} is not one",
        fix=("ask one of them to decide it" if names else
             f"nobody holds {owners} yet: assign the role first"))


def _close(ctx: ApplyContext, request: ChangeRequest, access: Access, channel: str,
           decision: Literal["approved", "rejected"], comment: str) -> ChangeOutcome:
    """Record a rejection, or an approval that still waits for another domain."""
    before = summary(request)
    if decision == "rejected":
        request.status = "rejected"
        request.decided_at, request.decided_by = ctx.now, ctx.actor.name
        request.decided_by_id, request.decision_comment = ctx.actor.user_id, comment
    ctx.session.flush()
    entry = audit.append(ctx.session, audit.AuditRecord(
        tenant_id=request.tenant_id, actor=ctx.actor.name, actor_kind=ctx.actor.kind.value,
        actor_user_id=ctx.actor.user_id, actor_roles=sorted(r.value for r in access.roles),
        channel=channel, action="reject" if decision == "rejected" else "approve",
        resource_type="change_request", resource_key=str(request.id), before=before,
        after=summary(request), change_request_id=request.id, reason=comment), ctx.now)
    event = ChangeRequestDecided(tenant_id=request.tenant_id, change_request_id=request.id,
                                 decision=decision, decided_by=ctx.actor.name, comment=comment,
                                 applied=False)
    return ChangeOutcome(decision, request.resource_type, request.resource_key,
                         change_request=request, audit_seq=entry.seq, events=(event,),
                         diff=tuple(request.diff))


def _apply_request(ctx: ApplyContext, kind: ResourceKind, row: Any, request: ChangeRequest,
                   access: Access, channel: str, comment: str) -> ChangeOutcome:
    """Every owner approved: apply the requested change as the last approver."""
    before = kind.snapshot(ctx, row) if row is not None else None
    _check_still_current(kind, request, row, before)
    change = Change(kind.name, request.action, request.resource_key, request.fields,
                    request.reason)
    plan = _Plan(kind, ctx, change, request.resource_key, row, dict(request.fields), before,
                 list(request.diff), access, f"{kind.name}.{request.action}", frozenset())
    reason = (f"approved change request #{request.id} from {request.requested_by}"
              + (f": {comment}" if comment else ""))
    request.status = "applied"
    request.decided_at, request.decided_by = ctx.now, ctx.actor.name
    request.decided_by_id, request.decision_comment = ctx.actor.user_id, comment
    outcome = _apply(plan, channel, change_request=request, reason=reason)
    if request.resource_key is None:
        request.resource_key = outcome.resource_key
    decided = ChangeRequestDecided(tenant_id=request.tenant_id, change_request_id=request.id,
                                   decision="approved", decided_by=ctx.actor.name,
                                   comment=comment, applied=True)
    return ChangeOutcome("applied", outcome.resource_type, outcome.resource_key, outcome.before,
                         outcome.after, outcome.diff, outcome.version, request,
                         outcome.audit_seq, (*outcome.events, decided))


def _check_still_current(kind: ResourceKind, request: ChangeRequest, row: Any,
                         before: dict[str, Any] | None) -> None:
    """Refuse to apply a request whose resource changed since it was filed."""
    what = f"{kind.title} {request.resource_key}"
    stale = f"reject change request #{request.id} and file the change again"
    if request.action == "create":
        if row is not None:
            raise Conflict(f"{what} was created meanwhile", fix=stale)
        return
    if row is None:
        raise Conflict(f"{what} was deleted after change request #{request.id} was filed",
                       fix=stale)
    for entry in request.diff:
        old = entry["before"]
        if old != SECRET and (before or {}).get(entry["field"]) != old:
            raise Conflict(f"{what} changed after change request #{request.id} was filed "
                           f"({entry['field']} is now {(before or {}).get(entry['field'])!r}, "
                           f"was {old!r})", fix=stale)


# --- versions and rollback -----------------------------------------------------------------


def rollback(session: Session, actor: Actor, channel: str, resource_type: str, key: str,
             version: int, *, reason: str = "", now: datetime | None = None) -> ChangeOutcome:
    """Bring a resource back to ``version`` through the one change path (permission, change
    request when it crosses domains, new version, audit row)."""
    kind = kind_of(resource_type)
    if actor.tenant_id is None:
        raise Invalid("rolling back needs a tenant", field="tenant", fix="name the tenant")
    tenant_id = actor.tenant_id
    if not kind.tenant_scoped:
        tenant_row = kind.load(ApplyContext(session, None, actor, now or utcnow()), key)
        tenant_id = getattr(tenant_row, "id", tenant_id)
    target = versions.get(session, tenant_id, kind.name, key, version)
    if target is None:
        raise NotFound(f"{kind.title} {key!r} has no version {version}",
                       fix="list its versions first")
    row = kind.load(ApplyContext(session, tenant_id, actor, now or utcnow()), key)
    note = f"rollback to version {version}" + (f": {reason}" if reason else "")
    if target.snapshot is None:
        action, fields = "delete", {}
    else:
        action, fields = ("create" if row is None else "update",
                          kind.writable_fields(target.snapshot))
    if row is None and action == "delete":
        raise Conflict(f"{kind.title} {key!r} is already deleted", fix="nothing to roll back")
    if action not in kind.actions:
        raise Invalid(f"a {kind.title} cannot be rolled back to version {version} "
                      f"(it cannot be {action}d)", field="version",
                      fix=f"make a new {kind.title} instead")
    return apply_change(session, actor, channel, Change(kind.name, action, key, fields, note),
                        now=now)
