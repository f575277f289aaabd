"""The `frontdesk` command: init, serve, demo, and tenant/extension/registration/CDR tools.

Every command takes ``--data DIR`` (database, journal, recordings) and ``--db URL`` (default:
SQLite in DIR, or $FRONTDESK_DB). Errors are one readable line naming the problem and the
fix, with exit status 2 — never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from frontdesk.store import repo
from frontdesk.store.db import Database, DatabaseError, resolve_url
from frontdesk.store.models import Cdr, Extension, Registration, Tenant

console = Console()

DEMO_TENANT = ("demo", "Demo Services Ltd", "demo.frontdesk.test")
DEMO_EXTENSIONS = (
    ("101", "Office Manager", "office_manager"),
    ("102", "Service Manager", "service_manager"),
    ("103", "Service Coordinator", "service_coordinator"),
    ("201", "Technician One", "technician"),
    ("202", "Technician Two", "technician"),
    ("203", "Technician Three", "technician"),
)
DEFAULT_DATA = "./frontdesk-data"

data_option = click.option("--data", "data_dir", default=DEFAULT_DATA, show_default=True,
                           type=click.Path(file_okay=False, path_type=Path),
                           help="Directory for the database, journal and recordings.")
db_option = click.option("--db", "db_url", default=None,
                         help="Database URL (default: SQLite in --data, or $FRONTDESK_DB), "
                              "e.g. postgresql+psycopg://user@127.0.0.1:5432/frontdesk")
as_option = click.option("--as", "as_user", default=None, metavar="USER",
                         help="Act as this user (their roles apply); default: the local "
                              "administrator, recorded as such in the audit log.")


class UserError(click.ClickException):
    exit_code = 2


def _open_db(data_dir: Path, db_url: str | None) -> Database:
    try:
        db = Database(resolve_url(db_url, data_dir))
        db.migrate()
    except DatabaseError as e:
        raise UserError(str(e)) from e
    return db


def _parse_hostport(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UserError(f"{what} {value!r} must be HOST:PORT, e.g. 127.0.0.1:5060")
    return host.strip("[]") or "0.0.0.0", int(port)


def _tenant(db: Database, slug: str | None) -> Tenant:
    with db.session() as s:
        tenant = repo.get_tenant_by_slug(s, slug) if slug else repo.default_tenant(s)
        if tenant is None:
            known = ", ".join(t.slug for t in repo.list_tenants(s)) or "none yet"
            hint = f"tenant {slug!r} does not exist" if slug else "there is no default tenant"
            raise UserError(f"{hint} (tenants: {known}); create one with `frontdesk init --demo`"
                            " or `frontdesk tenant add`")
        return tenant


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
def cli(verbose: bool) -> None:
    """Frontdesk — a business phone system where every part has a named owner."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)


# --- init / demo / serve -------------------------------------------------------------------
def create_demo(db: Database) -> dict[str, Any]:
    """Create the demo tenant with generated passwords; return what to show the user."""
    with db.session() as s:
        if repo.get_tenant_by_slug(s, DEMO_TENANT[0]) is not None:
            raise UserError("the demo tenant already exists in this database; to start over "
                            "use a new --data directory")
    # through org's change path (audited), with roles and an API administrator
    return cli_org.create_demo_tenant(db, DEMO_TENANT, DEMO_EXTENSIONS)


def _print_demo(info: dict[str, Any], sip: str) -> None:
    table = Table(title=f"Demo tenant {info['tenant']!r} (SIP domain {info['sip_domain']})")
    for col in ("Ext.", "Name", "Role", "SIP user"):
        table.add_column(col)
    for col, key in (("Password", "password"), ("Voicemail PIN", "voicemail_pin")):
        # secrets are never shortened: the other columns wrap on a narrow terminal
        table.add_column(col, min_width=max(len(str(e.get(key, "-")))
                                            for e in info["extensions"]))
    for e in info["extensions"]:
        table.add_row(e["number"], e["name"], e["role"].replace("_", " "), e["username"],
                      e["password"], e.get("voicemail_pin", "-"))
    console.print(table)
    console.print(f"Point a phone at [bold]{sip}[/] (UDP or TCP), user = extension, "
                  f"realm/domain {info['sip_domain']} or the server address.")
    console.print("A call nobody answers goes to the extension's mailbox; dial [bold]*97[/] "
                  "from your phone and enter your voicemail PIN to listen.")


@cli.command()
@data_option
@db_option
@click.option("--demo", is_flag=True, help="Create the demo tenant with extensions 101-203.")
@click.option("--json", "as_json", is_flag=True, help="Print the demo tenant as JSON.")
def init(data_dir: Path, db_url: str | None, demo: bool, as_json: bool) -> None:
    """Create or upgrade the database (and optionally the demo tenant)."""
    db = _open_db(data_dir, db_url)
    if not demo:
        click.echo(f"database ready: {db.display_url}")
        return
    info = create_demo(db)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        _print_demo(info, "127.0.0.1:5060")


@cli.command()
@data_option
@db_option
@click.option("--sip", default="127.0.0.1:5060", show_default=True,
              help="SIP listen address (UDP and TCP).")
@click.option("--http", default="127.0.0.1:8080", show_default=True,
              help="HTTP API listen address.")
@click.option("--advertise", default=None, help="Host to put in Via/Contact if not the --sip host.")
@click.option("--auth-max-failures", default=10, show_default=True, type=click.IntRange(1),
              help="Failed authentications from one address that get it blocked...")
@click.option("--auth-window", default=60.0, show_default=True, type=click.FloatRange(1),
              help="...within this many seconds...")
@click.option("--auth-block", default=600.0, show_default=True, type=click.FloatRange(1),
              help="...for this many seconds (its requests are dropped silently).")
@click.option("--auth-exempt", multiple=True, metavar="ADDR/NET",
              help="Never block this address or network (repeatable), e.g. 10.0.0.0/8.")
@click.option("--sip-workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Processes in all: this one (network, calls, media, API) and N-1 workers "
                   "that handle the registrations; 3 measured best on 2 cores.")
def serve(data_dir: Path, db_url: str | None, sip: str, http: str, advertise: str | None,
          auth_max_failures: int, auth_window: float, auth_block: float,
          auth_exempt: tuple[str, ...], sip_workers: int) -> None:
    """Run the phone system."""
    _open_db(data_dir, db_url)
    _serve(data_dir, db_url, sip, http, advertise, auth_max_failures=auth_max_failures,
           auth_window=auth_window, auth_block=auth_block, auth_exempt=auth_exempt,
           sip_workers=sip_workers)


@cli.command()
@data_option
@click.option("--sip", default="127.0.0.1:5060", show_default=True)
@click.option("--http", default="127.0.0.1:8080", show_default=True)
def demo(data_dir: Path, sip: str, http: str) -> None:
    """Start Frontdesk with a demo tenant on SQLite (created on first run)."""
    db = _open_db(data_dir, None)
    with db.session() as s:
        exists = repo.get_tenant_by_slug(s, DEMO_TENANT[0]) is not None
    if not exists:
        info = create_demo(db)
        (data_dir / "demo-extensions.json").write_text(json.dumps(info, indent=2))
    saved = data_dir / "demo-extensions.json"
    if saved.exists():
        info = json.loads(saved.read_text())
        _print_demo(info, sip)
    _serve(data_dir, None, sip, http, None)


def _serve(data_dir: Path, db_url: str | None, sip: str, http: str, advertise: str | None,
           **security: Any) -> None:
    import ipaddress

    from frontdesk.app import run
    from frontdesk.pbx.server import ServerConfig

    sip_host, sip_port = _parse_hostport(sip, "--sip")
    http_host, http_port = _parse_hostport(http, "--http")
    for net in security.get("auth_exempt", ()):
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise UserError(f"--auth-exempt {net!r} is not an address or network "
                            "(e.g. 192.0.2.7 or 10.0.0.0/8)") from None
    config = ServerConfig(data_dir=data_dir, db_url=resolve_url(db_url, data_dir),
                          sip_host=sip_host, sip_port=sip_port, advertised_host=advertise,
                          **security)
    try:
        import uvloop  # a faster event loop where available (Linux, macOS)

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(run(config, http_host, http_port))
    except OSError as e:
        raise UserError(str(e.strerror or e)) from e
    except KeyboardInterrupt:
        pass


@cli.command("bench-setup")
@data_option
@db_option
@click.option("--users", default=10000, show_default=True, help="user00001 .. userNNNNN")
@click.option("--password", default="bench", show_default=True)
def bench_setup(data_dir: Path, db_url: str | None, users: int, password: str) -> None:
    """Create the benchmark tenant: extensions user00001.. and "bench", registrations and
    calls accepted without authentication from loopback only (like the Kamailio config)."""
    db = _open_db(data_dir, db_url)
    with db.session() as s:
        if repo.get_tenant_by_slug(s, "bench") is not None:
            raise UserError("the bench tenant already exists; use a new --data directory")
        t = repo.create_tenant(s, "bench", "Benchmark", "bench.frontdesk.test", default=True,
                               settings={"allow_unauthenticated_loopback": True})
        numbers = [f"user{i:05d}" for i in range(1, users + 1)] + ["bench", "sipp"]
        _bulk_extensions(s, t, numbers, password)
        # the same users in a tenant that requires digest authentication, for the
        # authenticated figure (requests name its domain auth.frontdesk.test)
        auth = repo.create_tenant(s, "bench-auth", "Benchmark (authenticated)",
                                  "auth.frontdesk.test")
        _bulk_extensions(s, auth, numbers, password)
        s.commit()
    click.echo(f"bench tenants ready: {users + 2} extensions each, password {password!r}")


def _bulk_extensions(s: Any, t: Tenant, numbers: list[str], password: str) -> None:
    """Insert many users/extensions/credentials with a few Core statements."""
    from sqlalchemy import insert, select

    from frontdesk.store.models import SipCredential, User

    s.execute(insert(User), [{"tenant_id": t.id, "username": n, "display_name": n}
                             for n in numbers])
    users = dict(s.execute(select(User.username, User.id).where(User.tenant_id == t.id)).all())
    s.execute(insert(Extension), [{"tenant_id": t.id, "number": n, "user_id": users[n],
                                   "display_name": n, "max_contacts": 5} for n in numbers])
    exts = dict(s.execute(select(Extension.number, Extension.id)
                          .where(Extension.tenant_id == t.id)).all())
    rows = []
    for n in numbers:
        ha1 = repo.compute_ha1(n, t.sip_domain, password)
        rows.append({"tenant_id": t.id, "extension_id": exts[n], "auth_username": n,
                     "realm": t.sip_domain, "ha1_md5": ha1.md5, "ha1_sha256": ha1.sha256})
    s.execute(insert(SipCredential), rows)


# --- tenants -----------------------------------------------------------------------------
@cli.group()
def tenant() -> None:
    """Tenants (customers, each with its own SIP domain)."""


@tenant.command("add")
@data_option
@db_option
@click.argument("slug")
@click.option("--name", required=True)
@click.option("--domain", required=True, help="SIP domain, e.g. acme.example.com")
@click.option("--default", "is_default", is_flag=True,
              help="Use for requests addressed to the server's IP.")
@as_option
def tenant_add(data_dir: Path, db_url: str | None, slug: str, name: str, domain: str,
               is_default: bool, as_user: str | None) -> None:
    """Add a tenant (--as: a user of the default tenant)."""
    db = _open_db(data_dir, db_url)
    with db.session() as s:
        if repo.get_tenant_by_slug(s, slug) or repo.get_tenant_by_domain(s, domain):
            raise UserError(f"tenant {slug!r} or domain {domain!r} already exists")
    if cli_org.add_tenant(db, slug, name, domain, is_default, as_user):
        click.echo(f"tenant {slug} added (SIP domain {domain})")


@tenant.command("list")
@data_option
@db_option
def tenant_list(data_dir: Path, db_url: str | None) -> None:
    """List tenants."""
    db = _open_db(data_dir, db_url)
    table = Table("Slug", "Name", "SIP domain", "Default")
    with db.session() as s:
        for t in repo.list_tenants(s):
            table.add_row(t.slug, t.name, t.sip_domain, "yes" if t.default else "")
    console.print(table)


# --- extensions --------------------------------------------------------------------------
@cli.group()
def ext() -> None:
    """Users and their extensions."""


@ext.command("add")
@data_option
@db_option
@click.option("--tenant", "slug", default=None, help="Tenant slug (default tenant if omitted).")
@click.argument("number")
@click.option("--name", required=True, help="Display name, e.g. 'Office Manager'.")
@click.option("--password", default=None, help="SIP password (generated if omitted).")
@as_option
def ext_add(data_dir: Path, db_url: str | None, slug: str | None, number: str, name: str,
            password: str | None, as_user: str | None) -> None:
    """Add a user with an extension and a SIP login."""
    if not number.isalnum() or len(number) > 32:
        raise UserError(f"extension {number!r} must be letters/digits, at most 32 characters")
    db = _open_db(data_dir, db_url)
    t = _tenant(db, slug)
    password = password or secrets.token_urlsafe(9)
    with db.session() as s:
        if repo.get_extension(s, t.id, number) is not None:
            raise UserError(f"extension {number} already exists in tenant {t.slug}")
    if not cli_org.add_extension(db, t, number, name, password, as_user):
        return
    click.echo(f"extension {number} ({name}) added to {t.slug}; SIP user {number}, "
               f"password {password}")


@ext.command("list")
@data_option
@db_option
@click.option("--tenant", "slug", default=None)
def ext_list(data_dir: Path, db_url: str | None, slug: str | None) -> None:
    """List extensions with how many phones are registered."""
    import time

    from sqlalchemy import func, select

    db = _open_db(data_dir, db_url)
    t = _tenant(db, slug)
    table = Table("Extension", "Name", "Ring timeout", "Registered phones", title=t.slug)
    with db.session() as s:
        counts = dict(s.execute(
            select(Registration.aor, func.count()).where(
                Registration.tenant_id == t.id, Registration.expires_at > time.time()
            ).group_by(Registration.aor)).all())
        for e in s.scalars(select(Extension).where(Extension.tenant_id == t.id)
                           .order_by(Extension.number)):
            table.add_row(e.number, e.display_name, str(e.ring_timeout or t.setting(
                "ring_timeout")), str(counts.get(e.number, 0)))
    console.print(table)


@ext.command("set")
@data_option
@db_option
@click.option("--tenant", "slug", default=None)
@click.argument("number")
@click.option("--ring-timeout", type=click.IntRange(1, 600), default=None,
              help="Seconds to ring before giving up (480 to the caller).")
@click.option("--name", default=None)
@as_option
def ext_set(data_dir: Path, db_url: str | None, slug: str | None, number: str,
            ring_timeout: int | None, name: str | None, as_user: str | None) -> None:
    """Change an extension's settings."""
    db = _open_db(data_dir, db_url)
    t = _tenant(db, slug)
    with db.session() as s:
        e = repo.get_extension(s, t.id, number)
        if e is None:
            raise UserError(f"extension {number} does not exist in tenant {t.slug}; "
                            f"see `frontdesk ext list`")
    fields: dict[str, Any] = {"ring_timeout": ring_timeout} if ring_timeout is not None else {}
    if name:
        fields["display_name"] = name
    if cli_org.set_extension(db, t, number, fields, as_user):
        click.echo(f"extension {number} updated")


# --- registrations and CDRs ---------------------------------------------------------------
@cli.command("registrations")
@data_option
@db_option
def registrations(data_dir: Path, db_url: str | None) -> None:
    """Show registered phones."""
    import time

    from sqlalchemy import select

    db = _open_db(data_dir, db_url)
    table = Table("Tenant", "Extension", "Contact", "From", "Expires in", "User agent")
    now = time.time()
    with db.session() as s:
        slugs = {t.id: t.slug for t in repo.list_tenants(s)}
        for r in s.scalars(select(Registration).where(Registration.expires_at > now)
                           .order_by(Registration.aor)):
            table.add_row(slugs.get(r.tenant_id, "?"), r.aor, r.contact_uri,
                          f"{r.transport}:{r.source_host}:{r.source_port}",
                          f"{int(r.expires_at - now)} s", r.user_agent or "")
    console.print(table)


@cli.command("cdr")
@data_option
@db_option
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def cdr(data_dir: Path, db_url: str | None, limit: int, as_json: bool) -> None:
    """Show the latest call detail records."""
    from sqlalchemy import select

    db = _open_db(data_dir, db_url)
    with db.session() as s:
        rows = s.scalars(select(Cdr).order_by(Cdr.started_at.desc()).limit(limit)).all()
        records = [_cdr_dict(r) for r in rows]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    table = Table("Started", "Caller", "Callee", "Answered by", "Disposition", "Hung up",
                  "Duration", "Talk", "SIP")
    for r in records:
        table.add_row(r["started_at"][:19], r["caller"], r["callee"],
                      r["callee_answered_by"] or "", r["disposition"] or "in progress",
                      r["hangup_side"] or "", f"{r['duration']:.1f}s", f"{r['billsec']:.1f}s",
                      str(r["sip_code"] or ""))
    console.print(table)


def _cdr_dict(r: Cdr) -> dict[str, Any]:
    def iso(v: Any) -> str | None:
        return v.isoformat() if v is not None else None

    return {"id": r.id, "tenant_id": r.tenant_id, "call_id": r.call_id, "caller": r.caller,
            "caller_name": r.caller_name, "callee": r.callee,
            "callee_answered_by": r.callee_answered_by, "started_at": iso(r.started_at),
            "answered_at": iso(r.answered_at), "ended_at": iso(r.ended_at),
            "disposition": r.disposition, "hangup_side": r.hangup_side,
            "duration": r.duration, "billsec": r.billsec, "sip_code": r.sip_code}


def main() -> None:
    try:
        cli(standalone_mode=True)
    except DatabaseError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)


_ = signal  # signal handling lives in app.run
# Sub-command groups register themselves on import: `frontdesk flow|voicemail|audit|...`
from frontdesk import cli_flow, cli_media, cli_org, cli_trunk  # noqa: E402, F401
