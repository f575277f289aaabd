"""The roles, domains and default permission matrix are data that the docs and tests read:
they are consistent, and docs/permissions.md is generated from them."""

from __future__ import annotations

from pathlib import Path

from frontdesk.org.roles import (
    DEFAULT_PERMISSIONS,
    DOMAIN_OWNERS,
    INFORMED,
    NOT_GRANTABLE,
    OWNER_ROLES,
    PERMISSIONS,
    ROLE_DOMAIN,
    Domain,
    Role,
    matrix_markdown,
    parse_role,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"


def test_every_role_has_a_row_and_only_known_permissions() -> None:
    assert set(DEFAULT_PERMISSIONS) == set(Role)
    for role, granted in DEFAULT_PERMISSIONS.items():
        assert granted <= PERMISSIONS, (role, granted - PERMISSIONS)
    assert DEFAULT_PERMISSIONS[Role.ADMINISTRATOR] == PERMISSIONS


def test_owners_and_domains() -> None:
    assert set(DOMAIN_OWNERS) == set(Domain)
    assert Role.TECHNICAL_CONTACT in DOMAIN_OWNERS[Domain.INFRASTRUCTURE]
    assert {Role.PHONE_MANAGER, Role.CONTACT_CENTER_MANAGER} <= set(DOMAIN_OWNERS[Domain.BUSINESS])
    assert ROLE_DOMAIN[Role.TECHNICAL_CONTACT] is Domain.INFRASTRUCTURE
    assert ROLE_DOMAIN[Role.AGENT] is Domain.BUSINESS
    assert len(OWNER_ROLES) == 5


def test_only_the_technical_contact_and_administrator_grant_vendor_access() -> None:
    granting = {r for r, p in DEFAULT_PERMISSIONS.items() if "vendor_grant.create" in p}
    assert granting == {Role.TECHNICAL_CONTACT, Role.ADMINISTRATOR}
    assert NOT_GRANTABLE <= PERMISSIONS


def test_a_vendor_holds_almost_nothing_without_a_grant() -> None:
    assert DEFAULT_PERMISSIONS[Role.VENDOR] == {"tenant.read"}


def test_informed_lists_name_real_roles() -> None:
    assert all(isinstance(r, Role) for roles in INFORMED.values() for r in roles)


def test_role_names_are_forgiving() -> None:
    assert parse_role("Technical Contact") is Role.TECHNICAL_CONTACT
    assert parse_role("contact-center-manager") is Role.CONTACT_CENTER_MANAGER


def test_docs_show_the_current_matrix() -> None:
    assert DOCS.read_text() == matrix_markdown(), (
        "docs/permissions.md is stale: run `frontdesk role matrix > docs/permissions.md`")
