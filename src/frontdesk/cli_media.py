"""`frontdesk voicemail ...`: mailboxes, the standard greeting template and policy, greetings,
messages (list, export as WAV, mark heard), mailbox checks and the compliance report.

Registered on the `cli` group by one import line at the bottom of ``cli.py``. Every command
takes ``--data``/``--db`` like the rest of the CLI, acts as the local administrator, and
turns a person's mistake into one line naming the thing and the fix (exit status 2). The
rules live in `media.voicemail_store` and `media.compliance`; this module only parses and
prints. A running server picks changes up within seconds.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
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
from frontdesk.cli_org import actor_for, run_changes
from frontdesk.media import compliance, kinds  # noqa: F401  (kinds register)
from frontdesk.media import voicemail_store as store
from frontdesk.media.model import Greeting, Mailbox
from frontdesk.media.prompts import PromptError, PromptLibrary
from frontdesk.media.voicemail_store import import_new
from frontdesk.org.service import Change, ChangeOutcome

tenant_option = click.option(
    "--tenant", "slug", default=None, help="Tenant slug (default tenant if omitted)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@contextmanager
def voicemail_errors() -> Iterator[None]:
    """Show a voicemail request that cannot be done (its message says why and how) as a
    CLI error, exit code 2."""
    try:
        yield
    except store.VoicemailError as exc:
        raise UserError(str(exc)) from exc


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _hours(value: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise UserError(
            f"--check-hours {value!r} must be hours 0-23 separated by commas, e.g. 9,11,13,15,17"
        ) from None


def _days(value: str) -> list[int]:
    names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    out: list[int] = []
    for part in value.lower().split(","):
        first, _, last = part.strip().partition("-")
        try:
            lo = names.index(first[:3]) if first[:3] in names else int(first)
            hi = (names.index(last[:3]) if last[:3] in names else int(last)) if last else lo
        except ValueError:
            raise UserError(
                f"--check-days {value!r} must be days like mon-fri or 0-4 (0 = Monday)"
            ) from None
        out += list(range(lo, hi + 1))
    return out


@cli.group()
def voicemail() -> None:
    """Mailboxes, greetings, messages and the voicemail-check compliance report."""


# --- mailboxes ------------------------------------------------------------------------------
@voicemail.group()
def mailbox() -> None:
    """Create and change mailboxes."""


@mailbox.command("add")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("number")
@click.option("--pin", required=True, help="4-10 digits, typed on the keypad after *97.")
@click.option("--name", default=None, help="Name in the greeting (default: the extension's).")
@click.option(
    "--no-answer/--keep-ringing",
    default=True,
    show_default=True,
    help="Send callers here when the extension does not answer.",
)
@click.option(
    "--responsible",
    default=None,
    help="Who must check it, e.g. 102,103 (default: the mailbox's own extension).",
)
@click.option(
    "--escalate-to",
    default=None,
    help="Extension told about missed checks (default: service_manager_extension).",
)
def mailbox_add(
    data_dir: Path,
    db_url: str | None,
    slug: str | None,
    as_user: str | None,
    number: str,
    pin: str,
    name: str | None,
    no_answer: bool,
    responsible: str | None,
    escalate_to: str | None,
) -> None:
    """Create the mailbox of extension NUMBER."""
    fields: dict[str, Any] = {"pin": pin, "no_answer_to_voicemail": no_answer}
    if name is not None:
        fields["name"] = name
    if responsible is not None:
        fields["responsible"] = _split(responsible)
    if escalate_to is not None:
        fields["escalate_to"] = escalate_to
    outcome = _change(data_dir, db_url, slug, as_user, Change("mailbox", "create", number, fields))
    if outcome.status == "applied" and outcome.after is not None:
        reach = (
            f"reach it when {number} does not answer" if no_answer else f"reach it on *98{number}"
        )
        click.echo(f"mailbox {number} ({outcome.after['name']}) created; callers {reach}")


@mailbox.command("set")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("number")
@click.option("--pin", default=None)
@click.option("--name", default=None)
@click.option("--no-answer/--keep-ringing", default=None)
@click.option("--responsible", default=None)
@click.option("--escalate-to", default=None)
@click.option("--max-messages", type=click.IntRange(1, 10000), default=None)
@click.option("--check-hours", default=None, help="Local hours of the checks, e.g. 9,11,13,15,17.")
@click.option("--check-days", default=None, help="Days of the checks, e.g. mon-fri.")
@click.option("--timezone", default=None, help="IANA time zone of the check hours.")
@click.option(
    "--grace",
    type=click.IntRange(1, 120),
    default=None,
    help="Minutes before/after a check time that count as on time.",
)
def mailbox_set(
    data_dir: Path,
    db_url: str | None,
    slug: str | None,
    as_user: str | None,
    number: str,
    **changes: Any,
) -> None:
    """Change a mailbox (PIN, name, routing, who checks it and when)."""
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    with db.session() as s, voicemail_errors():
        current = dict(store.require_mailbox(s, tenant.id, number).check_schedule or {})
    fields = _mailbox_fields(changes, current)
    if not fields:
        raise UserError("nothing to change: give at least one option (see --help)")
    outcome = _change(data_dir, db_url, slug, as_user, Change("mailbox", "update", number, fields))
    after = outcome.after if outcome.status in ("applied", "unchanged") else None
    if after is not None:
        schedule = compliance.parse_schedule(after["check_schedule"]).describe()
        state = "updated" if outcome.status == "applied" else "unchanged"
        click.echo(
            f"mailbox {number} {state}; checks: {schedule}; responsible: "
            f"{', '.join(after['responsible'])}"
        )


@mailbox.command("delete")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("number")
def mailbox_delete(
    data_dir: Path, db_url: str | None, slug: str | None, as_user: str | None, number: str
) -> None:
    """Delete mailbox NUMBER (it must hold no messages)."""
    outcome = _change(data_dir, db_url, slug, as_user, Change("mailbox", "delete", number))
    if outcome.status == "applied":
        click.echo(f"mailbox {number} deleted")


def _mailbox_fields(changes: dict[str, Any], schedule: dict[str, Any]) -> dict[str, Any]:
    """The fields a `mailbox set` changes; the check schedule merged with the current one."""
    fields: dict[str, Any] = {}
    for option, name in (
        ("pin", "pin"),
        ("name", "name"),
        ("no_answer", "no_answer_to_voicemail"),
        ("max_messages", "max_messages"),
    ):
        if changes[option] is not None:
            fields[name] = changes[option]
    if changes["responsible"] is not None:
        fields["responsible"] = _split(changes["responsible"]) or []
    if changes["escalate_to"] is not None:
        fields["escalate_to"] = changes["escalate_to"] or None
    new = dict(schedule)
    for key, option, parse in (
        ("hours", "check_hours", _hours),
        ("days", "check_days", _days),
        ("timezone", "timezone", str),
        ("grace_minutes", "grace", int),
    ):
        if changes[option] is not None:
            new[key] = parse(changes[option])
    if new != schedule:
        fields["check_schedule"] = new
    return fields


def _change(
    data_dir: Path, db_url: str | None, slug: str | None, as_user: str | None, change: Change
) -> ChangeOutcome:
    """Run ``change`` through the one change path as ``--as USER`` or the local administrator
    (channel cli); a change request filed instead is reported by ``run_changes``."""
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    [outcome] = run_changes(db, actor_for(db, tenant.id, as_user), [change])
    return outcome


@mailbox.command("list")
@data_option
@db_option
@tenant_option
@json_option
def mailbox_list(data_dir: Path, db_url: str | None, slug: str | None, as_json: bool) -> None:
    """Mailboxes with their message counts and check schedule."""
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    with db.session() as s:
        rows: list[dict[str, Any]] = []
        for box in s.query(Mailbox).filter_by(tenant_id=tenant.id).order_by(Mailbox.number):
            new, saved = store.counts(s, box.id)
            rows.append(
                {
                    "number": box.number,
                    "name": box.name,
                    "new": new,
                    "saved": saved,
                    "no_answer_to_voicemail": box.no_answer_to_voicemail,
                    "responsible": list(box.responsible or []),
                    "escalate_to": box.escalate_to,
                    "checks": compliance.parse_schedule(box.check_schedule).describe(),
                }
            )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Mailboxes")
    for col in ("Mailbox", "Name", "New", "Saved", "No answer", "Responsible", "Checks"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["number"],
            r["name"],
            str(r["new"]),
            str(r["saved"]),
            "voicemail" if r["no_answer_to_voicemail"] else "keeps ringing",
            ", ".join(r["responsible"]),
            r["checks"],
        )
    console.print(table)


# --- template and greetings -------------------------------------------------------------------
@voicemail.command("template")
@data_option
@db_option
@tenant_option
@as_option
@click.option(
    "--text",
    default=None,
    help="The standard greeting, with {name}, {extension} and your own {variables}.",
)
@click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="NAME=VALUE",
    help="A template variable (repeatable), e.g. service_manager_extension=102.",
)
@click.option(
    "--policy",
    type=click.Choice(["forbidden", "allowed", "approval_required"]),
    default=None,
    help="May mailbox owners record a personal greeting by phone?",
)
@click.option("--max-seconds", type=int, default=None, help="Longest message, in seconds.")
def template(
    data_dir: Path,
    db_url: str | None,
    slug: str | None,
    as_user: str | None,
    text: str | None,
    variables: tuple[str, ...],
    policy: str | None,
    max_seconds: int | None,
) -> None:
    """Show or change the tenant's standard greeting template and greeting policy."""
    parsed: dict[str, str] = {}
    for item in variables:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UserError(
                f"--var {item!r} must be NAME=VALUE, e.g. service_manager_extension=102"
            )
        parsed[key.strip()] = value.strip()
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    with db.session() as s:
        conf = store.settings(s, tenant.id)
        shown = _settings_view(
            conf.greeting_template,
            dict(conf.variables or {}),
            conf.greeting_policy,
            conf.max_message_seconds,
        )
    fields: dict[str, Any] = {}
    if text is not None:
        fields["greeting_template"] = text
    if parsed:
        fields["variables"] = {**shown["variables"], **parsed}
    if policy is not None:
        fields["greeting_policy"] = policy
    if max_seconds is not None:
        fields["max_message_seconds"] = max_seconds
    if fields:
        outcome = _change(
            data_dir, db_url, slug, as_user, Change("voicemail", "update", "settings", fields)
        )
        if outcome.status != "applied" or outcome.after is None:
            return
        shown = outcome.after
    click.echo(
        f"template: {shown['greeting_template']}\nvariables: {json.dumps(shown['variables'])}"
        f"\npersonal greetings: {shown['greeting_policy']}\nlongest message: "
        f"{shown['max_message_seconds']} s"
    )


def _settings_view(
    template: str, variables: dict[str, Any], policy: str, max_seconds: int
) -> dict[str, Any]:
    return {
        "greeting_template": template,
        "variables": variables,
        "greeting_policy": policy,
        "max_message_seconds": max_seconds,
    }


@voicemail.group()
def greeting() -> None:
    """Render, upload, list and approve greetings."""


@greeting.command("render")
@data_option
@db_option
@tenant_option
@click.argument("number")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def greeting_render(
    data_dir: Path, db_url: str | None, slug: str | None, number: str, out: Path
) -> None:
    """Write the greeting callers of mailbox NUMBER hear (8 kHz WAV) to --out."""
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    with db.session() as s:
        with voicemail_errors():
            box = store.require_mailbox(s, tenant.id, number)
        choice = store.active_greeting(s, data_dir, box)
    try:
        source = choice.path or PromptLibrary(data_dir).render(choice.text or "")
    except PromptError as exc:
        raise UserError(str(exc)) from exc
    shutil.copyfile(source, out)
    click.echo(f"{out}: {'recorded greeting' if choice.path else repr(choice.text)}")


@greeting.command("upload")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("number")
@click.argument("wav", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--tenant-wide",
    is_flag=True,
    help="Replace the rendered standard greeting for every mailbox (NUMBER: any).",
)
def greeting_upload(
    data_dir: Path,
    db_url: str | None,
    slug: str | None,
    as_user: str | None,
    number: str,
    wav: Path,
    tenant_wide: bool,
) -> None:
    """Use a recorded WAV as mailbox NUMBER's greeting (checked and converted with sox)."""
    _open_db(data_dir, db_url)
    library = PromptLibrary(data_dir)
    try:
        stored, fresh = import_new(library, wav)
    except PromptError as exc:
        raise UserError(str(exc)) from exc
    fields = {
        "mailbox": None if tenant_wide else number,
        "source": "upload",
        "audio_path": stored.relative_to(data_dir).as_posix(),
    }
    try:
        outcome = _change(
            data_dir, db_url, slug, as_user, Change("greeting", "create", None, fields)
        )
    except UserError:
        if fresh:  # uploads are stored by content: keep a file another greeting uses
            stored.unlink(missing_ok=True)
        raise
    if outcome.status == "applied" and outcome.after is not None:
        click.echo(
            f"greeting {outcome.resource_key} ({outcome.after['status']}) for "
            f"{'every mailbox' if tenant_wide else 'mailbox ' + number}"
        )


@greeting.command("list")
@data_option
@db_option
@tenant_option
@json_option
def greeting_list(data_dir: Path, db_url: str | None, slug: str | None, as_json: bool) -> None:
    """Recorded greetings and their status (active, pending_approval, ...)."""
    db = _open_db(data_dir, db_url)
    tenant = _tenant(db, slug)
    with db.session() as s:
        numbers = dict(s.query(Mailbox.id, Mailbox.number).filter_by(tenant_id=tenant.id).all())
        rows = [
            {
                "id": g.id,
                "mailbox": numbers.get(g.mailbox_id or -1, "(tenant-wide)"),
                "kind": g.kind,
                "status": g.status,
                "created_by": g.created_by,
                "created_at": g.created_at.isoformat(),
            }
            for g in s.query(Greeting).filter_by(tenant_id=tenant.id).order_by(Greeting.id)
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(
            f"{r['id']:>4}  {r['mailbox']:<14} {r['kind']:<7} {r['status']:<17} "
            f"{r['created_by']}  {r['created_at']}"
        )


@greeting.command("approve")
@data_option
@db_option
@tenant_option
@as_option
@click.argument("greeting_id", type=int)
@click.option("--reject", is_flag=True, help="Reject it instead.")
def greeting_approve(
    data_dir: Path,
    db_url: str | None,
    slug: str | None,
    as_user: str | None,
    greeting_id: int,
    reject: bool,
) -> None:
    """Approve (or --reject) a personal greeting recorded by phone."""
    status = "rejected" if reject else "active"
    change = Change("greeting", "update", str(greeting_id), {"status": status})
    outcome = _change(data_dir, db_url, slug, as_user, change)
    if outcome.status == "unchanged":
        raise UserError(
            f"greeting {greeting_id} is already {status}; only a greeting pending approval "
            "can be decided (see `frontdesk voicemail greeting list`)"
        )
    if outcome.status == "applied" and outcome.after is not None:
        click.echo(f"greeting {greeting_id}: {outcome.after['status']}")


from frontdesk import cli_media_menus, cli_media_messages  # noqa: E402, F401  (they register)
