"""``frontdesk flow ...``: simulate, show, validate, draft, discard, publish, roll back and
list call flows.

What it is for: the command-line face of routing/ — a business owner (or whoever helps them)
tries a change in the simulator, checks it, publishes it, and rolls it back. Every change
goes through org/'s one change path (``routing/kind.py``'s ``flow`` kind): permission check,
a change request when publishing sends calls to a new outside number (infrastructure), a
version, one audit row. The actor is explicit: ``--as USER`` (their roles apply) or
``--actor NAME`` (the local administrator at the shell, signing with a name).
``simulate`` reads exactly what the call engine reads: the tenant's extensions, roles and
groups, its published flow (or the front-desk template) and the caller lookup.

What it must never do: hold routing logic (it calls routing/), write flow rows itself
(org.service does), print a traceback for a mistake a person can make (errors are one
readable line, exit status 2), or change a flow without an actor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml
from rich.table import Table

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
from frontdesk.cli_org import BUS, actor_for
from frontdesk.org import service
from frontdesk.org.access import Actor, ActorKind
from frontdesk.org.errors import OrgError
from frontdesk.org.service import Change, ChangeOutcome
from frontdesk.routing import versions
from frontdesk.routing.directory import load_directory
from frontdesk.routing.kind import FlowChanges, FlowRejected
from frontdesk.routing.model import FlowDocument
from frontdesk.routing.simulate import (
    SimulationError,
    SimulationRequest,
    render,
    simulate_for_tenant,
)
from frontdesk.routing.templates import TEMPLATES, template
from frontdesk.routing.validate import FlowInvalid, check_flow, parse_flow
from frontdesk.store.db import Database

tenant_option = click.option(
    "--tenant", "slug", default=None, help="Tenant slug (the default tenant if omitted)."
)
flow_option = click.option(
    "--flow", "flow_name", default=versions.MAIN_FLOW, show_default=True, help="Flow name."
)
actor_option = click.option(
    "--actor",
    default=None,
    help="Your name, acting as the local administrator at the shell (recorded on the "
    "version and in the audit log). Or use --as USER.",
)
reason_option = click.option("--reason", default="", help="Why (kept in the audit log).")

_Command = TypeVar("_Command", bound=Callable[..., Any])


def change_options(command: _Command) -> _Command:
    """The options of a command that changes a flow: --data, --db, --tenant, --actor, --as,
    --reason (in that order in --help)."""
    options = (data_option, db_option, tenant_option, actor_option, as_option, reason_option)
    for option in reversed(options):
        command = option(command)
    return command


@cli.group()
def flow() -> None:
    """Call flows: simulate a call, show, validate, publish, roll back."""


def _invalid(exc: FlowInvalid) -> UserError:
    problems = "\n".join(f"  - {p}" for p in exc.problems)
    return UserError(f"the flow cannot be used:\n{problems}")


def _read_file(path: Path) -> FlowDocument:
    try:
        return parse_flow(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except FlowInvalid as exc:
        raise _invalid(exc) from exc


def _parse_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f"--at {value!r} must be a date and time like 2026-12-25T17:30") from None


def _parse_vars(values: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UserError(f"--var {item!r} must be NAME=VALUE")
        found[name] = value
    return found


@flow.command("simulate")
@data_option
@db_option
@tenant_option
@click.option("--from", "caller", required=True, help="Calling number, e.g. +15551234567 or 102.")
@click.option("--to", "to", default="main", show_default=True, help="main, or an extension.")
@click.option("--at", "at", default=None, help="When, e.g. 2026-12-25T17:30 (flow's time zone).")
@click.option(
    "--no-answer",
    "no_answer",
    multiple=True,
    help="Who does not answer: extension, role, group, user or 'everyone'.",
)
@click.option("--busy", multiple=True, help="Who is busy (same names as --no-answer).")
@click.option("--press", "keys", default="", help="Keys pressed at successive menus, e.g. 12.")
@click.option("--vip", is_flag=True, help="Treat the caller as a VIP.")
@click.option("--emergency", is_flag=True, help="Emergency mode is on.")
@click.option("--var", "variables", multiple=True, help="A call variable NAME=VALUE.")
@click.option("--json", "as_json", is_flag=True, help="Print the path as JSON.")
def flow_simulate(
    data_dir: Path,
    db_url: str | None,
    slug: str | None,
    caller: str,
    to: str,
    at: str | None,
    no_answer: tuple[str, ...],
    busy: tuple[str, ...],
    keys: str,
    vip: bool,
    emergency: bool,
    variables: tuple[str, ...],
    as_json: bool,
) -> None:
    """Show the path a call would take, node by node, with the reason for each branch."""
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    request = SimulationRequest(
        caller=caller,
        to=to,
        at=_parse_at(at),
        no_answer=no_answer,
        busy=busy,
        keys=keys,
        vip=vip,
        emergency=emergency,
        variables=_parse_vars(variables),
    )
    try:
        with db.session() as s:
            run = simulate_for_tenant(s, tenant.id, request, now=datetime.now(UTC))
    except (SimulationError, versions.VersionError, FlowInvalid) as exc:
        raise UserError(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"tenant": tenant.slug, **run.simulation.as_dict()}, indent=2))
        return
    for line in render(run):
        click.echo(line)


def _dump(document: FlowDocument, fmt: str) -> str:
    data = document.to_json()
    if fmt == "json":
        return json.dumps(data, indent=2)
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))


@flow.command("show")
@data_option
@db_option
@tenant_option
@flow_option
@click.option("--version", "number", type=int, default=None, help="A specific version.")
@click.option("--draft", is_flag=True, help="The draft being edited.")
@click.option(
    "--template",
    "template_name",
    type=click.Choice(sorted(TEMPLATES)),
    default=None,
    help="A built-in template instead of the tenant's flow.",
)
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml")
def flow_show(
    data_dir: Path,
    db_url: str | None,
    slug: str | None,
    flow_name: str,
    number: int | None,
    draft: bool,
    template_name: str | None,
    fmt: str,
) -> None:
    """Print a flow (default: what the main number runs now)."""
    if template_name is not None:
        click.echo(_dump(template(template_name), fmt))
        return
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    with db.session() as s:
        if draft or number is not None:
            row = (
                versions.draft_version(s, tenant.id, flow_name)
                if draft
                else versions.get_version(s, tenant.id, flow_name, number or 0)
            )
            if row is None:
                what = "draft" if draft else f"version {number}"
                raise UserError(f'flow "{flow_name}" has no {what}; see `frontdesk flow list`')
            document = parse_flow(row.document)
        else:
            try:
                loaded = versions.load_flow(s, tenant.id, flow_name)
            except versions.VersionError as exc:
                raise UserError(str(exc)) from exc
            click.echo(f"# {loaded.label}", err=True)
            document = loaded.document
    click.echo(_dump(document, fmt))


@flow.command("validate")
@data_option
@db_option
@tenant_option
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def flow_validate(data_dir: Path, db_url: str | None, slug: str | None, file: Path) -> None:
    """Check a flow file against the tenant's people, groups and mailboxes."""
    document = _read_file(file)
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    with db.session() as s:
        directory = load_directory(s, tenant.id)
    try:
        check_flow(document, directory)
    except FlowInvalid as exc:
        raise _invalid(exc) from exc
    click.echo(f'flow "{document.name}" is valid for tenant {tenant.slug}')


def _who(db: Database, tenant_id: int, as_user: str | None, actor: str | None) -> Actor:
    """``--as USER`` (their roles apply) or ``--actor NAME`` (the local administrator at the
    shell, signing with that name); exactly one."""
    if as_user is not None and actor is not None:
        raise UserError("give --as USER or --actor NAME, not both")
    if as_user is not None:
        return actor_for(db, tenant_id, as_user)
    if actor is None or not actor.strip():
        raise UserError(
            "say who is making the change: --as USER (a user of the tenant; their roles "
            "apply) or --actor NAME (you, as the local administrator at the shell)"
        )
    return Actor(tenant_id=tenant_id, name=actor.strip(), kind=ActorKind.LOCAL_ADMIN)


def _acting(
    data_dir: Path, db_url: str | None, slug: str | None, as_user: str | None, actor: str | None
) -> tuple[Database, Actor]:
    """The database and who is acting (see ``_who``) in the tenant ``slug``."""
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    return db, _who(db, tenant.id, as_user, actor)


def _apply(db: Database, actor: Actor, changes: list[Change]) -> ChangeOutcome:
    """Run ``changes`` in one transaction through org/'s change path; the last outcome.
    A change request (the change touches infrastructure) is reported, not an error."""
    try:
        with db.session() as s:
            outcomes = [service.apply_change(s, actor, "cli", c) for c in changes]
            note = (
                service.describe(outcomes[-1].change_request)
                if outcomes[-1].change_request is not None
                else None
            )
    except FlowRejected as exc:
        raise _invalid(FlowInvalid(exc.problems)) from exc
    except OrgError as exc:
        raise UserError(str(exc)) from exc
    for outcome in outcomes:
        BUS.publish(outcome.events)
    if outcomes[-1].status == "requested":
        click.echo(f"change request filed (not applied yet): {note}")
    return outcomes[-1]


def _document(file: Path, flow_name: str | None) -> FlowDocument:
    document = _read_file(file)
    if flow_name is not None and document.name != flow_name:
        raise UserError(f'{file} holds flow "{document.name}", not "{flow_name}"')
    return document


def _published(outcome: ChangeOutcome, name: str) -> None:
    if outcome.status != "applied" or outcome.after is None:
        return
    after = outcome.after
    note = f" ({after['published_note']})" if after.get("published_note") else ""
    click.echo(
        f'flow "{name}" version {after["published_version"]} published by '
        f"{after['published_by']}{note}"
    )


@flow.command("draft")
@change_options
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def flow_draft(
    data_dir: Path,
    db_url: str | None,
    slug: str | None,
    actor: str | None,
    as_user: str | None,
    reason: str,
    file: Path,
) -> None:
    """Save a flow file as the draft (not yet what calls run)."""
    document = _read_file(file)
    db, who = _acting(data_dir, db_url, slug, as_user, actor)
    outcome = _apply(db, who, [FlowChanges(document.name, reason).draft(document)])
    after = outcome.after or {}
    if outcome.status in ("applied", "unchanged"):
        click.echo(
            f'flow "{document.name}": draft version {after.get("draft_version")} saved by '
            f"{who.name}"
        )


@flow.command("discard")
@change_options
@flow_option
def flow_discard(
    data_dir: Path,
    db_url: str | None,
    slug: str | None,
    actor: str | None,
    as_user: str | None,
    reason: str,
    flow_name: str,
) -> None:
    """Throw the draft away (what calls run stays as it is)."""
    db, who = _acting(data_dir, db_url, slug, as_user, actor)
    outcome = _apply(db, who, [FlowChanges(flow_name, reason).discard()])
    if outcome.status == "applied":
        click.echo(f'flow "{flow_name}": draft discarded by {who.name}')


@flow.command("publish")
@change_options
@click.option("--flow", "flow_name", default=None, help="Flow name (default: the file's).")
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Save this file as the draft first.",
)
def flow_publish(
    data_dir: Path,
    db_url: str | None,
    slug: str | None,
    actor: str | None,
    as_user: str | None,
    reason: str,
    flow_name: str | None,
    file: Path | None,
) -> None:
    """Publish the draft (or --file): from now on calls run it. A publish that sends calls
    to a new outside number becomes a change request for the Technical Contact."""
    document = _document(file, flow_name) if file is not None else None
    name = document.name if document is not None else flow_name or versions.MAIN_FLOW
    db, who = _acting(data_dir, db_url, slug, as_user, actor)
    changes = FlowChanges(name, reason)
    steps = [changes.draft(document)] if document is not None else []
    _published(_apply(db, who, [*steps, changes.publish()]), name)


@flow.command("rollback")
@change_options
@flow_option
@click.option(
    "--to",
    "to_version",
    type=int,
    default=None,
    help="Version to restore (default: the one published before).",
)
def flow_rollback(
    data_dir: Path,
    db_url: str | None,
    slug: str | None,
    actor: str | None,
    as_user: str | None,
    reason: str,
    flow_name: str,
    to_version: int | None,
) -> None:
    """Publish an earlier version again (as a new version)."""
    db, who = _acting(data_dir, db_url, slug, as_user, actor)
    _published(_apply(db, who, [FlowChanges(flow_name, reason).rollback(to_version)]), flow_name)


@flow.command("list")
@data_option
@db_option
@tenant_option
def flow_list(data_dir: Path, db_url: str | None, slug: str | None) -> None:
    """List the tenant's flows and their versions."""
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    table = Table(
        "Flow",
        "Version",
        "State",
        "Saved by",
        "Published by",
        "Published at",
        "Note",
        title=f"Call flows of {tenant.slug}",
    )
    with db.session() as s:
        flows = versions.list_flows(s, tenant.id)
        for item in flows:
            for row in versions.list_versions(s, tenant.id, item.name):
                when = f"{row.published_at:%Y-%m-%d %H:%M}" if row.published_at else ""
                table.add_row(
                    item.name,
                    str(row.version),
                    row.state,
                    row.created_by,
                    row.published_by or "",
                    when,
                    row.note or "",
                )
    if not flows:
        click.echo(
            f"tenant {tenant.slug} has no flows yet; calls run the front-desk template "
            f"(`frontdesk flow show --template front-desk`)"
        )
        return
    console.print(table)
