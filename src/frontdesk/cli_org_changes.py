"""`frontdesk change ...`, `frontdesk vendor ...`, `frontdesk history` and `frontdesk rollback`:
deciding change requests, time-boxed vendor access, and versions of any resource.

Like every CLI change, these go through ``org.service`` with channel "cli" as ``--as USER``
or the local administrator. This module must never write configuration rows itself.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import click
from rich.table import Table

from frontdesk.cli import UserError, as_option, cli, console, data_option, db_option
from frontdesk.cli_org import BUS, _setup, actor_for, run_changes, tenant_option
from frontdesk.org import service, versions
from frontdesk.org.audit import iso
from frontdesk.org.errors import OrgError
from frontdesk.org.resources import kind_of
from frontdesk.org.service import Change
from frontdesk.store.models import utcnow


@cli.group("change")
def change_group() -> None:
    """Change requests: changes that cross the business/IT line wait here for an owner."""


@change_group.command("list")
@data_option
@db_option
@tenant_option
@click.option("--status", type=click.Choice(["open", "applied", "rejected"]), default=None)
@click.option("--json", "as_json", is_flag=True)
def change_list(data_dir: Path, db_url: str | None, slug: str | None, status: str | None,
                as_json: bool) -> None:
    """List change requests, newest first."""
    db, tenant = _setup(data_dir, db_url, slug)
    with db.session() as s:
        requests = service.list_change_requests(s, tenant.id, status)
        if as_json:
            click.echo(json.dumps([service.summary(r) for r in requests], indent=2))
            return
        lines = [service.describe(r) for r in requests]
    for line in lines or ["no change requests"]:
        click.echo(line)


def _decide(data_dir: Path, db_url: str | None, slug: str | None, as_user: str | None,
            request_id: int, approve: bool, comment: str) -> None:
    db, tenant = _setup(data_dir, db_url, slug)
    actor = actor_for(db, tenant.id, as_user)
    try:
        with db.session() as s:
            outcome = service.decide(s, actor, "cli", request_id, approve=approve,
                                     comment=comment)
            assert outcome.change_request is not None
            line = service.describe(outcome.change_request)
    except OrgError as e:
        raise UserError(str(e)) from e
    BUS.publish(outcome.events)
    click.echo(line)


@change_group.command("approve")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("request_id", type=click.IntRange(1))
@click.option("--comment", default="", help="Shown to the requester and in the audit log.")
def change_approve(data_dir: Path, db_url: str | None, slug: str | None, as_user: str | None,
                   request_id: int, comment: str) -> None:
    """Approve change request REQUEST_ID (as owner of a domain it waits for)."""
    _decide(data_dir, db_url, slug, as_user, request_id, True, comment)


@change_group.command("reject")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("request_id", type=click.IntRange(1))
@click.option("--comment", required=True, help="Why (the requester sees it).")
def change_reject(data_dir: Path, db_url: str | None, slug: str | None, as_user: str | None,
                  request_id: int, comment: str) -> None:
    """Reject change request REQUEST_ID, saying why."""
    _decide(data_dir, db_url, slug, as_user, request_id, False, comment)


# --- vendor access --------------------------------------------------------------------------


@cli.group("vendor")
def vendor_group() -> None:
    """Time-boxed, scoped, audited access for a Vendor (granted by the Technical Contact)."""


@vendor_group.command("grant")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("user")
@click.option("--permission", "permissions", multiple=True, required=True,
              help="A permission the vendor gets, e.g. tenant.update (repeatable).")
@click.option("--hours", type=click.IntRange(1, 720), required=True, help="How long it lasts.")
@click.option("--reason", required=True, help="What the vendor is there to do.")
def vendor_grant(data_dir: Path, db_url: str | None, slug: str | None, as_user: str | None,
                 user: str, permissions: tuple[str, ...], hours: int, reason: str) -> None:
    """Grant USER (who holds the Vendor role) PERMISSIONS for HOURS."""
    db, tenant = _setup(data_dir, db_url, slug)
    ends = (utcnow() + timedelta(hours=hours)).isoformat()
    outcome = run_changes(db, actor_for(db, tenant.id, as_user), [Change(
        "vendor_grant", "create", None, {"user": user, "permissions": list(permissions),
                                         "ends": ends, "reason": reason}, reason)])[0]
    if outcome.status == "applied":
        click.echo(f"vendor grant {outcome.resource_key} for {user}: {', '.join(permissions)} "
                   f"until {ends[:19]} UTC")


@vendor_group.command("revoke")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("grant_id", type=click.IntRange(1))
def vendor_revoke(data_dir: Path, db_url: str | None, slug: str | None, as_user: str | None,
                  grant_id: int) -> None:
    """Revoke vendor grant GRANT_ID (its record stays)."""
    db, tenant = _setup(data_dir, db_url, slug)
    outcome = run_changes(db, actor_for(db, tenant.id, as_user),
                          [Change("vendor_grant", "delete", str(grant_id))])[0]
    if outcome.status == "applied":
        click.echo(f"vendor grant {grant_id} revoked")


# --- versions -------------------------------------------------------------------------------


@cli.command("history")
@data_option
@db_option
@tenant_option
@click.argument("resource_type")
@click.argument("key")
def history(data_dir: Path, db_url: str | None, slug: str | None, resource_type: str,
            key: str) -> None:
    """Versions of one resource, e.g. `frontdesk history extension 101`."""
    db, tenant = _setup(data_dir, db_url, slug)
    try:
        kind = kind_of(resource_type)
    except OrgError as e:
        raise UserError(str(e)) from e
    table = Table("Version", "At", "By", "Change request", "Snapshot",
                  title=f"{kind.title} {key}")
    with db.session() as s:
        for v in versions.history(s, tenant.id, kind.name, key):
            table.add_row(str(v.version), iso(v.at)[:19], v.actor,
                          str(v.change_request_id or ""), json.dumps(v.snapshot))
    console.print(table)


@cli.command("rollback")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("resource_type")
@click.argument("key")
@click.argument("version", type=click.IntRange(1))
@click.option("--reason", default="")
def rollback(data_dir: Path, db_url: str | None, slug: str | None, as_user: str | None,
             resource_type: str, key: str, version: int, reason: str) -> None:
    """Bring a resource back to VERSION (a new version; audited; may need approval)."""
    db, tenant = _setup(data_dir, db_url, slug)
    actor = actor_for(db, tenant.id, as_user)
    try:
        with db.session() as s:
            outcome = service.rollback(s, actor, "cli", resource_type, key, version,
                                       reason=reason)
            note = (service.describe(outcome.change_request)
                    if outcome.change_request is not None else "")
    except OrgError as e:
        raise UserError(str(e)) from e
    BUS.publish(outcome.events)
    if outcome.status == "requested":
        click.echo(f"change request filed (not applied yet): {note}")
    else:
        click.echo(f"{resource_type} {key} is back at version {version} "
                   f"(now version {outcome.version})")
