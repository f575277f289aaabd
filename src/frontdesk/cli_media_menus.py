"""`frontdesk menu add|list|remove`: self-service menus (IVR) a caller reaches by dialling
their number.

Part of `cli_media` (split for size). A menu is a prompt (rendered with espeak-ng), keypad
choices each leading to a branch (``extension:101``, ``voicemail:102``, ``menu:501``,
``hangup``), a timeout and a number of retries. Validation is `media.ivr.MenuSpec`'s, so the
CLI refuses exactly what the server could not run; errors name the part and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from frontdesk.cli import UserError, _open_db, _tenant, cli, data_option, db_option
from frontdesk.cli_media import json_option, tenant_option
from frontdesk.media.ivr import MenuError, MenuSpec
from frontdesk.media.model import Menu


@cli.group()
def menu() -> None:
    """Self-service menus: press 1 for ..., press 2 for ..."""


@menu.command("add")
@data_option
@db_option
@tenant_option
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
def menu_add(
    data_dir: Path,
    db_url: str | None,
    slug: str | None,
    number: str,
    name: str,
    prompt: str,
    choices: tuple[str, ...],
    timeout: float,
    retries: int,
    invalid_prompt: str,
    default_branch: str | None,
) -> None:
    """Create menu NUMBER (replacing one with that number)."""
    parsed: dict[str, str] = {}
    for item in choices:
        keys, sep, branch = item.partition("=")
        if not sep:
            raise UserError(f"--choice {item!r} must be KEYS=BRANCH, e.g. 1=extension:101")
        parsed[keys.strip()] = branch.strip()
    try:
        MenuSpec(
            name, prompt, parsed, timeout, retries, invalid_prompt, default_branch=default_branch
        )
    except MenuError as exc:
        raise UserError(str(exc)) from exc
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    with db.session() as s:
        row = s.query(Menu).filter_by(tenant_id=tenant.id, number=number).one_or_none()
        if row is None:
            row = Menu(tenant_id=tenant.id, number=number)
            s.add(row)
        row.name, row.prompt, row.choices = name, prompt, parsed
        row.timeout_seconds, row.retries, row.invalid_prompt = timeout, retries, invalid_prompt
        row.default_branch = default_branch
    click.echo(f"menu {number} ({name}): " + ", ".join(f"{k} -> {v}" for k, v in parsed.items()))


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
        rows: list[dict[str, Any]] = [
            {
                "number": m.number,
                "name": m.name,
                "prompt": m.prompt,
                "choices": dict(m.choices),
                "timeout": m.timeout_seconds,
                "retries": m.retries,
                "default": m.default_branch,
            }
            for m in s.query(Menu).filter_by(tenant_id=tenant.id).order_by(Menu.number)
        ]
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
@click.argument("number")
def menu_remove(data_dir: Path, db_url: str | None, slug: str | None, number: str) -> None:
    """Delete menu NUMBER."""
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    with db.session() as s:
        row = s.query(Menu).filter_by(tenant_id=tenant.id, number=number).one_or_none()
        if row is None:
            raise UserError(f"menu {number!r} does not exist (see `frontdesk menu list`)")
        s.delete(row)
    click.echo(f"menu {number} removed")
