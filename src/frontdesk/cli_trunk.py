"""`frontdesk trunk add|set|list|remove`: SIP trunks to carriers (ITSPs).

A trunk is infrastructure (owned by the Technical Contact). Every change goes through the one
change path (``org.service``, the ``trunk`` kind in `pbx.trunk_kind`) as ``--as USER`` (their
roles apply) or the local administrator, channel cli — permission-checked, versioned, audited,
and a change request when the actor does not own infrastructure. Validation is the kind's, so
the CLI refuses exactly what the server could not use. This module never writes rows itself
and never prints the trunk's password.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from frontdesk.cli import UserError, _open_db, _tenant, as_option, cli, data_option, db_option
from frontdesk.cli_media import _change, json_option, tenant_option
from frontdesk.org.resources import SECRET
from frontdesk.org.service import Change
from frontdesk.pbx.trunk_model import Trunk


@cli.group()
def trunk() -> None:
    """SIP trunks: carrier address, credentials, DIDs and dial rules."""


def _trunk_options(fn: Any) -> Any:
    options = [
        click.option("--host", default=None, help="Carrier SIP host or address."),
        click.option("--port", type=int, default=None, help="Carrier SIP port (5060)."),
        click.option("--transport", type=click.Choice(["udp", "tcp"]), default=None),
        click.option("--username", default=None, help="Our user name at the carrier."),
        click.option("--password", default=None, help="Our password at the carrier."),
        click.option("--register/--no-register", "registration", default=None,
                     help="Register with the carrier."),
        click.option("--caller-id", default=None, help="Outbound caller ID (E.164)."),
        click.option("--source", "sources", multiple=True,
                     help="Repeatable: address or network the carrier sends from."),
        click.option("--did", "dids", multiple=True, metavar="NUMBER=DEST",
                     help="Repeatable: +15551230000=main or +15551230101=ext:101."),
        click.option("--dial-rule", "dial_rules", multiple=True,
                     help='Repeatable: "+" (E.164 as dialled) or a prefix like "9".'),
        click.option("--reason", default="", help="Why (kept in the version and audit log)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _fields(options: dict[str, Any]) -> dict[str, Any]:
    """The options given, as the ``trunk`` kind's fields."""
    fields: dict[str, Any] = {}
    for name in ("host", "port", "transport", "username", "password", "registration", "caller_id"):
        if options.get(name) is not None:
            fields[name] = options[name]
    if options.get("sources"):
        fields["sources"] = list(options["sources"])
    if options.get("dial_rules"):
        fields["dial_rules"] = list(options["dial_rules"])
    if options.get("dids"):
        dids: dict[str, str] = {}
        for item in options["dids"]:
            number, sep, dest = item.partition("=")
            if not sep:
                raise UserError(f"--did {item!r} must be NUMBER=DEST, e.g. +15551230000=main")
            dids[number.strip()] = dest.strip()
        fields["dids"] = dids
    return fields


@trunk.command("add")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("name")
@_trunk_options
def trunk_add(data_dir: Path, db_url: str | None, slug: str | None, as_user: str | None,
              name: str, reason: str, **options: Any) -> None:
    """Create trunk NAME."""
    fields = _fields(options)
    outcome = _change(data_dir, db_url, slug, as_user,
                      Change("trunk", "create", name, fields, reason))
    if outcome.status == "applied":
        click.echo(f"trunk {name} added ({fields.get('host')})")


@trunk.command("set")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("name")
@_trunk_options
def trunk_set(data_dir: Path, db_url: str | None, slug: str | None, as_user: str | None,
              name: str, reason: str, **options: Any) -> None:
    """Change trunk NAME (only the options given; --did/--source/--dial-rule replace)."""
    fields = _fields(options)
    if not fields:
        raise UserError("nothing to change: give at least one option (see --help)")
    outcome = _change(data_dir, db_url, slug, as_user,
                      Change("trunk", "update", name, fields, reason))
    if outcome.status == "applied":
        click.echo(f"trunk {name} changed: {', '.join(sorted(fields))}")


@trunk.command("list")
@data_option
@db_option
@tenant_option
@json_option
def trunk_list(data_dir: Path, db_url: str | None, slug: str | None, as_json: bool) -> None:
    """The tenant's trunks (passwords are never shown)."""
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    with db.session() as s:
        rows: list[dict[str, Any]] = [
            {"name": t.name, "host": t.host, "port": t.port, "transport": t.transport,
             "username": t.username, "password": SECRET if t.password else None,
             "registration": t.registration, "caller_id": t.caller_id, "sources": list(t.sources),
             "dids": dict(t.dids), "dial_rules": list(t.dial_rules)}
            for t in s.scalars(select(Trunk).where(Trunk.tenant_id == tenant.id)
                               .order_by(Trunk.name))
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        dids = ", ".join(f"{k}->{v}" for k, v in r["dids"].items())
        click.echo(f"{r['name']:<12} {r['transport']}:{r['host']}:{r['port']} "
                   f"rules={','.join(r['dial_rules'])} dids={dids}")


@trunk.command("remove")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("name")
def trunk_remove(data_dir: Path, db_url: str | None, slug: str | None, as_user: str | None,
                 name: str) -> None:
    """Delete trunk NAME."""
    outcome = _change(data_dir, db_url, slug, as_user, Change("trunk", "delete", name))
    if outcome.status == "applied":
        click.echo(f"trunk {name} removed")
