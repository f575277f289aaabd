"""``frontdesk flow ...``: simulate, show, validate, draft, publish, roll back and list call flows.

What it is for: the command-line face of routing/ — a business owner (or whoever helps them)
tries a change in the simulator, checks it, publishes it, and rolls it back, naming
themselves with ``--actor``. ``simulate`` reads exactly what the call engine reads: the
tenant's extensions, roles and groups, its published flow (or the front-desk template) and
the caller lookup.

What it must never do: hold routing logic (it calls routing/), print a traceback for a
mistake a person can make (errors are one readable line, exit status 2), or change a flow
without an actor.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
import yaml
from rich.table import Table

from frontdesk.cli import UserError, _open_db, _tenant, cli, console, data_option, db_option
from frontdesk.routing import versions
from frontdesk.routing.directory import load_directory
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
    "--actor", required=True, help="Who makes the change (recorded on the version)."
)


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


def _save_file(
    db: Database, tenant_id: int, file: Path, flow_name: str | None, actor: str
) -> tuple[str, int]:
    document = _read_file(file)
    if flow_name is not None and document.name != flow_name:
        raise UserError(f'{file} holds flow "{document.name}", not "{flow_name}"')
    with db.session() as s:
        row = versions.save_draft(s, tenant_id, document, actor=actor)
        return document.name, row.version


@flow.command("draft")
@data_option
@db_option
@tenant_option
@actor_option
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def flow_draft(
    data_dir: Path, db_url: str | None, slug: str | None, actor: str, file: Path
) -> None:
    """Save a flow file as the draft (not yet what calls run)."""
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    try:
        name, number = _save_file(db, tenant.id, file, None, actor)
    except versions.VersionError as exc:
        raise UserError(str(exc)) from exc
    click.echo(f'flow "{name}": draft version {number} saved by {actor}')


@flow.command("publish")
@data_option
@db_option
@tenant_option
@actor_option
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
    actor: str,
    flow_name: str | None,
    file: Path | None,
) -> None:
    """Publish the draft (or --file): from now on calls run it."""
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    try:
        with db.session() as s:
            if file is not None:
                document = _read_file(file)
                if flow_name is not None and document.name != flow_name:
                    raise UserError(f'{file} holds flow "{document.name}", not "{flow_name}"')
                flow_name = document.name
                versions.save_draft(s, tenant.id, document, actor=actor)
            name = flow_name or versions.MAIN_FLOW
            row = versions.publish(
                s, tenant.id, name, actor=actor, directory=load_directory(s, tenant.id)
            )
            number = row.version
    except FlowInvalid as exc:
        raise _invalid(exc) from exc
    except versions.VersionError as exc:
        raise UserError(str(exc)) from exc
    click.echo(f'flow "{name}" version {number} published by {actor}')


@flow.command("rollback")
@data_option
@db_option
@tenant_option
@actor_option
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
    actor: str,
    flow_name: str,
    to_version: int | None,
) -> None:
    """Publish an earlier version again (as a new version)."""
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    try:
        with db.session() as s:
            row = versions.rollback(
                s,
                tenant.id,
                flow_name,
                actor=actor,
                to_version=to_version,
                directory=load_directory(s, tenant.id),
            )
            number, note = row.version, row.note
    except FlowInvalid as exc:
        raise _invalid(exc) from exc
    except versions.VersionError as exc:
        raise UserError(str(exc)) from exc
    click.echo(f'flow "{flow_name}" version {number} published by {actor} ({note})')


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
