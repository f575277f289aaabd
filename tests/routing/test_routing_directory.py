"""The routing directory from the store (SQLite and PostgreSQL): extensions, users, org/'s
roles, groups and group mailboxes, and the display-name stopgap for tenants without roles."""

from __future__ import annotations

from datetime import UTC, datetime

from frontdesk.org.model import GroupMember, RoleAssignment, UserGroup
from frontdesk.routing.directory import load_directory, roles_from_display_names
from frontdesk.routing.evaluate import prepare
from frontdesk.routing.hours import _calendar
from frontdesk.routing.templates import front_desk
from frontdesk.routing.validate import find_problems
from frontdesk.store import repo
from frontdesk.store.db import Database

PEOPLE = [("101", "Office Manager"), ("102", "Service Manager"), ("103", "Service Coordinator"),
          ("201", "Technician One"), ("301", "Dana Smith"), ("302", "Erin Jones")]  # fmt: skip


def _tenant(db: Database) -> tuple[int, dict[str, int]]:
    with db.session() as s:
        tenant = repo.create_tenant(s, "acme", "Acme", "acme.example")
        users = {}
        for number, name in PEOPLE:
            user, _, _ = repo.create_user_with_extension(s, tenant, number, name, "pw",
                                                         username=f"u{number}")  # fmt: skip
            users[number] = user.id
        return tenant.id, users


def test_roles_from_display_names_until_org_assigns_them(db: Database) -> None:
    tenant, users = _tenant(db)
    with db.session() as s:
        directory = load_directory(s, tenant)
    assert directory.extension_name("301") == "Dana Smith"
    assert directory.user_extensions("u102") == ("102",)
    assert directory.extension_user("201") == users["201"]
    assert directory.role_holders("office_manager") == ("101",)
    assert directory.role_holders("service_coordinator") == ("103",)
    assert directory.is_technician("201") and not directory.is_technician("101")
    assert directory.role_holders("agent") == () and directory.role_holders("janitor") is None
    assert directory.has_mailbox("102") and not directory.has_mailbox("sales")
    assert find_problems(front_desk(), directory) == []


def test_org_roles_groups_and_group_mailboxes_win(db: Database) -> None:
    tenant, users = _tenant(db)
    with db.session() as s:
        for number, role in (("301", "office_manager"), ("302", "technician"),
                             ("102", "service_manager"), ("103", "service_coordinator")):  # fmt: skip
            s.add(RoleAssignment(tenant_id=tenant, user_id=users[number], role=role))
        team = UserGroup(tenant_id=tenant, name="service-team", display_name="Service team",
                         has_mailbox=True)  # fmt: skip
        empty = UserGroup(tenant_id=tenant, name="night", display_name="Night shift")
        s.add_all([team, empty])
        s.flush()
        s.add_all([GroupMember(group_id=team.id, user_id=users[n]) for n in ("102", "103")])
    with db.session() as s:
        directory = load_directory(s, tenant)
    assert directory.role_holders("office_manager") == ("301",)  # not "Office Manager" 101
    assert directory.is_technician("302") and not directory.is_technician("201")
    assert directory.group_members("service-team") == ("102", "103")
    assert directory.group_members("night") == ()
    assert directory.has_mailbox("service-team") and not directory.has_mailbox("night")


def test_display_name_stopgap() -> None:
    assert roles_from_display_names({"1": "Service-Manager", "2": "technician two", "3": "Bob"}) == {
        "service_manager": ["1"], "technician": ["2"]}  # fmt: skip


def test_prepare_builds_the_holiday_calendars_ahead() -> None:
    _calendar.cache_clear()
    prepare(front_desk(), datetime(2031, 6, 1, tzinfo=UTC))
    info = _calendar.cache_info()
    assert info.currsize == 2 and info.misses == 2
    prepare(front_desk(), datetime(2031, 6, 1, tzinfo=UTC))
    assert _calendar.cache_info().hits == 2


def test_the_engine_snapshot_routes_tenants_with_technicians_but_no_main_number(
    db: Database,
) -> None:
    """The shield needs the flow even without a main number: a tenant with a technician gets
    its routing in the engine's snapshot; one with neither technicians nor a main number
    does not (nothing there runs a flow); a main number always does."""
    from frontdesk.pbx.directory import load_directory as load_engine_directory
    from frontdesk.store.models import Tenant

    shielded, _ = _tenant(db)  # 201 "Technician One"
    with db.session() as s:
        plain = repo.create_tenant(s, "plain", "Plain", "plain.example")
        repo.create_user_with_extension(s, plain, "101", "Front Desk", "pw", username="p101")
        main = repo.create_tenant(s, "main", "Main", "main.example")  # the default "100"
        for tenant in (s.get(Tenant, shielded), plain):
            assert tenant is not None
            tenant.settings = {**(tenant.settings or {}), "main_number": ""}  # switched off
        plain_id, main_id = plain.id, main.id
    with db.session() as s:
        snapshot = load_engine_directory(s)
    assert snapshot.tenants[shielded].main_number == ""
    routing = snapshot.routing[shielded]
    assert routing.directory.is_technician("201") and routing.flow.name == "front-desk"
    assert "built-in template" in routing.label
    assert plain_id not in snapshot.routing
    assert main_id in snapshot.routing and snapshot.tenants[main_id].main_number == "100"
