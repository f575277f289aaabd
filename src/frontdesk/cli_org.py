"""`frontdesk` commands for ownership: audit, coverage, roles, users' API passwords, tokens,
change requests, vendor grants, history and rollback — and the helpers through which the
older configuration commands (tenant add, ext add/set, init --demo) change things.

Every change goes through ``org.service`` with channel "cli" and an explicit actor: the
user named by ``--as USER`` (checked against their roles like anywhere else), or by default
the built-in local administrator (whoever has shell access to the server), recorded as
such in the audit log. This module must never write configuration rows itself.
Registered on the ``cli`` group by one import line at the bottom of ``cli.py``.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from sqlalchemy import func, select

from frontdesk.cli import (
    UserError,
    _open_db,
    _tenant,
    as_option,
    cli,
    console,
    data_option,
    db_option,
)
from frontdesk.org import audit, coverage, service
from frontdesk.org.access import Actor
from frontdesk.org.credentials import new_token
from frontdesk.org.errors import OrgError
from frontdesk.org.events import EventBus
from frontdesk.org.model import AuditEntry, RoleAssignment
from frontdesk.org.resources import site_slug_of, username_of
from frontdesk.org.roles import matrix_markdown, parse_role
from frontdesk.org.service import Change, ChangeOutcome
from frontdesk.routing.templates import front_desk
from frontdesk.store import repo
from frontdesk.store.db import Database
from frontdesk.store.models import Tenant, User, utcnow

tenant_option = click.option("--tenant", "slug", default=None,
                             help="Tenant slug (default tenant if omitted).")
#: The bus CLI changes are published on (in-process; nobody listens in a one-shot command
#: unless a plugin subscribes).
BUS = EventBus()


# --- the change path for CLI commands ------------------------------------------------------


def actor_for(db: Database, tenant_id: int | None, as_user: str | None) -> Actor:
    """``--as USER`` in the tenant, or the local administrator."""
    if as_user is None:
        return Actor.local_admin(tenant_id)
    with db.session() as s:
        query = select(User).where(User.username == as_user)
        if tenant_id is not None:
            query = query.where(User.tenant_id == tenant_id)
        else:
            hosting = repo.default_tenant(s)
            query = query.where(User.tenant_id == (hosting.id if hosting else -1))
        user = s.scalar(query)
        if user is None:
            raise UserError(f"--as {as_user!r}: no such user in this tenant; list users with "
                            "`frontdesk role list` or leave --as out to act as local administrator")
        return Actor.for_user(user)


def run_changes(db: Database, actor: Actor, changes: Sequence[Change]) -> list[ChangeOutcome]:
    """Apply ``changes`` in one transaction as ``actor`` (channel "cli"); then publish."""
    try:
        with db.session() as s:
            outcomes = [service.apply_change(s, actor, "cli", c) for c in changes]
            notes = [service.describe(o.change_request) for o in outcomes
                     if o.status == "requested" and o.change_request is not None]
    except OrgError as e:
        raise UserError(str(e)) from e
    for outcome in outcomes:
        BUS.publish(outcome.events)
    for note in notes:
        click.echo(f"change request filed (not applied yet): {note}")
    return outcomes


def add_tenant(db: Database, slug: str, name: str, domain: str, is_default: bool,
               as_user: str | None) -> bool:
    """``tenant add`` through the change path; True when applied (not a change request)."""
    fields: dict[str, Any] = {"name": name, "sip_domain": domain}
    if is_default:
        fields["default"] = True
    outcome = run_changes(db, actor_for(db, None, as_user),
                          [Change("tenant", "create", slug, fields)])[0]
    return outcome.status == "applied"


def add_extension(db: Database, tenant: Tenant, number: str, name: str, password: str,
                  as_user: str | None) -> bool:
    """``ext add``: a user named after the extension, the extension, its SIP login."""
    changes = [Change("user", "create", number, {"display_name": name}),
               Change("extension", "create", number, {"display_name": name, "user": number,
                                                      "sip_password": password})]
    outcomes = run_changes(db, actor_for(db, tenant.id, as_user), changes)
    return all(o.status == "applied" for o in outcomes)


def set_extension(db: Database, tenant: Tenant, number: str, fields: dict[str, Any],
                  as_user: str | None) -> bool:
    """``ext set``; True when applied (or nothing to change)."""
    outcome = run_changes(db, actor_for(db, tenant.id, as_user),
                          [Change("extension", "update", number, fields)])[0]
    return outcome.status != "requested"


def create_demo_tenant(db: Database, tenant: tuple[str, str, str],
                       extensions: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
    """The demo tenant, its people with their roles and voicemail, and an administrator with
    an API password — all through the change path as the local administrator."""
    slug, name, domain = tenant
    admin = Actor.local_admin(None)
    run_changes(db, admin, [Change("tenant", "create", slug, {"name": name, "sip_domain": domain,
                                                              "default": True})])
    with db.session() as s:
        found = repo.get_tenant_by_slug(s, slug)
        assert found is not None
        actor = Actor.local_admin(found.id)
    people, changes = [], []
    for number, display, role in extensions:
        password = secrets.token_urlsafe(9)
        changes += [Change("user", "create", number, {"display_name": display}),
                    Change("extension", "create", number, {"display_name": display,
                                                           "user": number,
                                                           "sip_password": password}),
                    Change("role_assignment", "create", None, {"user": number, "role": role})]
        people.append({"number": number, "name": display, "role": role, "username": number,
                       "password": password, "voicemail_pin": demo_pin()})
    admin_password = secrets.token_urlsafe(12)
    changes += [Change("user", "create", "admin", {"display_name": "Administrator",
                                                   "password": admin_password}),
                Change("role_assignment", "create", None, {"user": "admin",
                                                           "role": "administrator"})]
    run_changes(db, actor, changes + demo_voicemail(people))
    return {"tenant": slug, "sip_domain": domain, "realm": domain, "extensions": people,
            "admin": {"username": "admin", "password": admin_password}}


def demo_pin() -> str:
    """A random 6-digit voicemail PIN (the mailbox kind stores only its hash)."""
    return f"{secrets.randbelow(10**6):06d}"


def demo_voicemail(people: Sequence[dict[str, Any]]) -> list[Change]:
    """Everyone's mailbox, with the PIN in ``voicemail_pin``. The front desk's calls end in
    the service manager's mailbox (the ``front-desk`` flow's ``role:service_manager``): the
    service manager and the service coordinators are responsible for checking it; everyone
    else checks their own. Every mailbox is checked on the default schedule (every odd hour
    of business hours) in the time zone of the flow's business hours. Missed checks escalate
    to the service manager (the tenant's ``service_manager_extension``, which the standard
    greeting also names)."""
    def holders(role: str) -> list[str]:
        return [p["number"] for p in people if p["role"] == role]

    managers = holders("service_manager")
    schedule = {"timezone": front_desk().timezone}
    changes = []
    for person in people:
        fields: dict[str, Any] = {"pin": person["voicemail_pin"], "check_schedule": schedule}
        if person["role"] == "service_manager":
            fields["responsible"] = [person["number"], *holders("service_coordinator")]
        changes.append(Change("mailbox", "create", person["number"], fields))
    if managers:
        changes.append(Change("voicemail", "update", "settings",
                              {"variables": {"service_manager_extension": managers[0]}}))
    return changes


def _setup(data_dir: Path, db_url: str | None, slug: str | None) -> tuple[Database, Tenant]:
    db = _open_db(data_dir, db_url)
    return db, _tenant(db, slug)


# --- audit ----------------------------------------------------------------------------------


@cli.group("audit")
def audit_group() -> None:
    """The hash-chained audit log of every change."""


@audit_group.command("verify")
@data_option
@db_option
def audit_verify(data_dir: Path, db_url: str | None) -> None:
    """Recompute every tenant's hash chain; exit 1 and name the rows if it was tampered with."""
    db = _open_db(data_dir, db_url)
    with db.session() as s:
        report = audit.verify(s)
    if report.ok:
        click.echo(f"audit log intact: {report.checked} rows in {report.tenants} tenant chains")
        return
    for problem in report.problems:
        click.echo(f"TAMPERED: {problem}", err=True)
    click.echo(f"audit log NOT intact: {len(report.problems)} problems in {report.checked} rows",
               err=True)
    sys.exit(1)


@audit_group.command("list")
@data_option
@db_option
@tenant_option
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def audit_list(data_dir: Path, db_url: str | None, slug: str | None, limit: int,
               as_json: bool) -> None:
    """The tenant's latest audit entries."""
    db, tenant = _setup(data_dir, db_url, slug)
    with db.session() as s:
        last = s.scalar(select(func.max(AuditEntry.seq)).where(AuditEntry.tenant_id == tenant.id))
        start = max(0, (last or 0) - limit)
        rows = [audit.decoded(e) for e in audit.entries(s, tenant.id, after_seq=start, limit=limit)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("Seq", "At", "Actor", "Via", "Action", "Resource", "Reason", title=tenant.slug)
    for r in rows:
        table.add_row(str(r["seq"]), r["at"][:19], r["actor"], r["channel"], r["action"],
                      f"{r['resource_type']} {r['resource_key']}", r["reason"])
    console.print(table)


# --- coverage -------------------------------------------------------------------------------


@cli.command("coverage")
@data_option
@db_option
@tenant_option
@click.option("--json", "as_json", is_flag=True)
def coverage_command(data_dir: Path, db_url: str | None, slug: str | None,
                     as_json: bool) -> None:
    """Responsibilities nobody holds; exit 1 when any is a problem (like a health check)."""
    db, tenant = _setup(data_dir, db_url, slug)
    with db.session() as s:
        row = s.get(Tenant, tenant.id)
        assert row is not None
        report = coverage.report(s, row, utcnow())
    if as_json:
        click.echo(json.dumps({"tenant": report.tenant, "ok": report.ok,
                               "problems": [asdict(p) for p in report.problems]}, indent=2))
    elif report.problems:
        table = Table("Severity", "Subject", "Problem", "Fix", title=f"coverage of {tenant.slug}")
        for p in report.problems:
            table.add_row(p.severity, p.subject, p.message, p.fix)
        console.print(table)
    else:
        click.echo(f"coverage of {tenant.slug}: every responsibility has a holder")
    if not report.ok:
        sys.exit(1)


# --- roles ----------------------------------------------------------------------------------


@cli.group("role")
def role_group() -> None:
    """Who holds which role (owner roles and operational roles)."""


def _role_key(user: str, role: str, site: str | None) -> tuple[str, str]:
    try:
        name = parse_role(role).value
    except ValueError as e:
        raise UserError(str(e)) from e
    return name, f"{user}:{name}" + (f"@{site}" if site else "")


@role_group.command("grant")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("user")
@click.argument("role")
@click.option("--site", default=None, help="Hold the role only at this site.")
def role_grant(data_dir: Path, db_url: str | None, slug: str | None, as_user: str | None,
               user: str, role: str, site: str | None) -> None:
    """Give USER the ROLE (e.g. technical_contact, "Emergency Contact")."""
    db, tenant = _setup(data_dir, db_url, slug)
    name, key = _role_key(user, role, site)
    outcome = run_changes(db, actor_for(db, tenant.id, as_user), [Change(
        "role_assignment", "create", None, {"user": user, "role": name, "site": site})])[0]
    if outcome.status == "applied":
        click.echo(f"{key} granted in {tenant.slug}")


@role_group.command("revoke")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("user")
@click.argument("role")
@click.option("--site", default=None)
def role_revoke(data_dir: Path, db_url: str | None, slug: str | None, as_user: str | None,
                user: str, role: str, site: str | None) -> None:
    """Take ROLE away from USER."""
    db, tenant = _setup(data_dir, db_url, slug)
    _, key = _role_key(user, role, site)
    outcome = run_changes(db, actor_for(db, tenant.id, as_user),
                          [Change("role_assignment", "delete", key)])[0]
    if outcome.status == "applied":
        click.echo(f"{key} revoked in {tenant.slug}")


@role_group.command("list")
@data_option
@db_option
@tenant_option
def role_list(data_dir: Path, db_url: str | None, slug: str | None) -> None:
    """Every role assignment in the tenant."""
    db, tenant = _setup(data_dir, db_url, slug)
    table = Table("Role", "User", "Site", title=f"roles in {tenant.slug}")
    with db.session() as s:
        for row in s.scalars(select(RoleAssignment).where(RoleAssignment.tenant_id == tenant.id)
                             .order_by(RoleAssignment.role, RoleAssignment.id)):
            table.add_row(row.role, username_of(s, row.user_id) or "?",
                          site_slug_of(s, row.site_id) or "(tenant-wide)")
    console.print(table)


@role_group.command("matrix")
def role_matrix() -> None:
    """Print the default permission matrix as Markdown (docs/permissions.md)."""
    click.echo(matrix_markdown(), nl=False)


# --- users and tokens -----------------------------------------------------------------------


@cli.group("user")
def user_group() -> None:
    """People and their API passwords."""


@user_group.command("add")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("username")
@click.option("--name", required=True, help="Display name.")
@click.option("--email", default=None)
def user_add(data_dir: Path, db_url: str | None, slug: str | None, as_user: str | None,
             username: str, name: str, email: str | None) -> None:
    """Add a person without an extension (an administrator, a vendor, a manager)."""
    db, tenant = _setup(data_dir, db_url, slug)
    fields = {"display_name": name, **({"email": email} if email else {})}
    if run_changes(db, actor_for(db, tenant.id, as_user),
                   [Change("user", "create", username, fields)])[0].status == "applied":
        click.echo(f"user {username} added to {tenant.slug}")


@user_group.command("passwd")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="The new API password (asked for when omitted).")
def user_passwd(data_dir: Path, db_url: str | None, slug: str | None, as_user: str | None,
                username: str, password: str) -> None:
    """Set USERNAME's API password (argon2-hashed; for POST /api/v1/login)."""
    db, tenant = _setup(data_dir, db_url, slug)
    outcome = run_changes(db, actor_for(db, tenant.id, as_user),
                          [Change("user", "update", username, {"password": password})])[0]
    if outcome.status == "applied":
        click.echo(f"API password of {username} in {tenant.slug} set")


@cli.group("token")
def token_group() -> None:
    """API bearer tokens."""


@token_group.command("create")
@data_option
@db_option
@tenant_option
@click.argument("username")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
@click.option("--days", type=click.IntRange(1, 3650), default=None,
              help="Expire after this many days (default: never).")
def token_create(data_dir: Path, db_url: str | None, slug: str | None, username: str,
                 name: str, days: int | None) -> None:
    """Make an API token for USERNAME (as local administrator); print it once."""
    db, tenant = _setup(data_dir, db_url, slug)
    token, digest = new_token()
    run_changes(db, Actor.local_admin(tenant.id), [Change("api_token", "create", None, {
        "user": username, "name": name, "expires_days": days, "token_hash": digest})])
    click.echo(token)


from frontdesk import cli_org_changes  # noqa: E402, F401  (change, vendor, history, rollback)

