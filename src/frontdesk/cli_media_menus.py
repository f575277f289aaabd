"""`frontdesk menu add|list|remove`: self-service menus (IVR) a caller reaches by dialling
their number.

Part of `cli_media` (split for size). A menu is a prompt (rendered with espeak-ng), keypad
choices each leading to a branch (``extension:101``, ``voicemail:102``, ``menu:501``,
``hangup``), a timeout and a number of retries. Menus are business-domain configuration:
every change goes through the one change path (``org.service``, the ``menu`` kind in
`media.kinds_menu`) as ``--as USER`` (their roles apply) or the local administrator, channel
cli — so it is permission-checked, versioned, audited, and becomes a change request when
the actor does not own the business domain. Validation is the kind's (`media.ivr.MenuSpec`),
so the CLI refuses exactly what the server could not run; errors name the part and the fix.
This module never writes rows itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from frontdesk.cli import UserError, _open_db, _tenant, as_option, cli, data_option, db_option
from frontdesk.cli_media import _change, json_option, tenant_option
from frontdesk.media.kinds_menu import menu_snapshot
from frontdesk.media.model import Menu
from frontdesk.org.service import Change


@cli.group()
def menu() -> None:
    """Self-service menus: press 1 for ..., press 2 for ..."""


@menu.command("add")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("number")
@click.option("--name", required=True, help="What the business calls it, e.g. 'Main menu'.")
@click.option("--prompt", required=True, help="What callers hear (rendered to speech).")
@click.option(
    "--choice",
    "choices",
    multiple=True,
    metavar="KEYS=BRANCH",
    required=True,
    help="Repeatable: 1=extension:101, 2=voicemail:102, 9=menu:501, 0=hangup.",
)
@click.option(
    "--timeout",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds to wait for a key after the prompt.",
)
@click.option(
    "--retries",
    type=int,
    default=2,
    show_default=True,
    help="How often the prompt is repeated after a wrong key or silence.",
)
@click.option("--invalid-prompt", default="Sorry, that is not a valid choice.", show_default=True)
@click.option(
    "--default",
    "default_branch",
    default=None,
    help="Where callers go when they choose nothing valid (default: hang up).",
)
@click.option("--reason", default="", help="Why (kept in the version and the audit log).")
def menu_add(
    data_dir: Path,
    db_url: str | None,
    slug: str | None,
    as_user: str | None,
    number: str,
    reason: str,
    **options: Any,
) -> None:
    """Create menu NUMBER (replacing one with that number)."""
    fields = _menu_fields(options)
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    with db.session() as s:
        exists = s.scalar(select(Menu.id).where(Menu.tenant_id == tenant.id,
                                                Menu.number == number)) is not None
    action = "update" if exists else "create"
    outcome = _change(data_dir, db_url, slug, as_user,
                      Change("menu", action, number, fields, reason))
    if outcome.status in ("applied", "unchanged"):
        shown = ", ".join(f"{k} -> {v}" for k, v in fields["choices"].items())
        click.echo(f"menu {number} ({fields['name']}): {shown}")


def _menu_fields(options: dict[str, Any]) -> dict[str, Any]:
    """The whole menu as the ``menu`` kind's fields (``add`` replaces every part)."""
    parsed: dict[str, str] = {}
    for item in options["choices"]:
        keys, sep, branch = item.partition("=")
        if not sep:
            raise UserError(f"--choice {item!r} must be KEYS=BRANCH, e.g. 1=extension:101")
        parsed[keys.strip()] = branch.strip()
    return {"name": options["name"], "prompt": options["prompt"], "choices": parsed,
            "timeout": options["timeout"], "retries": options["retries"],
            "invalid_prompt": options["invalid_prompt"],
            "default_branch": options["default_branch"]}


@menu.command("list")
@data_option
@db_option
@tenant_option
@json_option
def menu_list(data_dir: Path, db_url: str | None, slug: str | None, as_json: bool) -> None:
    """The tenant's menus."""
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    with db.session() as s:
        rows = [menu_snapshot(m) for m in s.scalars(
            select(Menu).where(Menu.tenant_id == tenant.id).order_by(Menu.number))]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        choices = ", ".join(f"{k} -> {v}" for k, v in r["choices"].items())
        click.echo(f"{r['number']:<8} {r['name']}: {choices}")


@menu.command("remove")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("number")
def menu_remove(
    data_dir: Path, db_url: str | None, slug: str | None, as_user: str | None, number: str
) -> None:
    """Delete menu NUMBER."""
    outcome = _change(data_dir, db_url, slug, as_user, Change("menu", "delete", number))
    if outcome.status == "applied":
        click.echo(f"menu {number} removed")
