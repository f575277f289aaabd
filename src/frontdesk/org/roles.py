"""Roles, domains and the default permission matrix — as data that code, docs and tests read.

Theory of operation: a person holds roles in a tenant (optionally only at one site). A role
grants permissions, named ``<resource>.<action>`` (``extension.update``); the tenant may
adjust the defaults below with permission overrides. Every configurable resource belongs
to a *domain* — business or infrastructure — and each domain has owner roles. A change
by someone who does not own every domain it touches becomes a change request that an
owner of the missing domain approves (see ``service.py``). ``INFORMED`` lists, per resource
type, the roles told about every applied change (RACI "informed").

This module is pure data and tiny lookups: it must never touch the database, and nothing
else may hard-code which role may do what — read ``DEFAULT_PERMISSIONS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum


class Role(StrEnum):
    """Roles a person can hold in a tenant (owner roles first, then operational roles)."""

    ADMINISTRATOR = "administrator"
    DECISION_MAKER = "decision_maker"
    PHONE_MANAGER = "phone_manager"
    TECHNICAL_CONTACT = "technical_contact"
    EMERGENCY_CONTACT = "emergency_contact"
    VENDOR = "vendor"
    OFFICE_MANAGER = "office_manager"
    SERVICE_MANAGER = "service_manager"
    SERVICE_COORDINATOR = "service_coordinator"
    TECHNICIAN = "technician"
    CONTACT_CENTER_MANAGER = "contact_center_manager"
    AGENT = "agent"
    MARKETING = "marketing"

    @property
    def label(self) -> str:
        """The role as people write it: ``Technical Contact``."""
        return ROLE_TITLES[self]


ROLE_TITLES: Mapping[Role, str] = {
    Role.ADMINISTRATOR: "Administrator",
    Role.DECISION_MAKER: "Decision Maker",
    Role.PHONE_MANAGER: "Phone Manager",
    Role.TECHNICAL_CONTACT: "Technical Contact",
    Role.EMERGENCY_CONTACT: "Emergency Contact",
    Role.VENDOR: "Vendor",
    Role.OFFICE_MANAGER: "office manager",
    Role.SERVICE_MANAGER: "service manager",
    Role.SERVICE_COORDINATOR: "service coordinator",
    Role.TECHNICIAN: "technician",
    Role.CONTACT_CENTER_MANAGER: "contact-center manager",
    Role.AGENT: "agent",
    Role.MARKETING: "marketing",
}

#: The five owner roles of DESIGN.md; coverage reports each one nobody holds.
OWNER_ROLES: tuple[Role, ...] = (
    Role.DECISION_MAKER,
    Role.PHONE_MANAGER,
    Role.TECHNICAL_CONTACT,
    Role.EMERGENCY_CONTACT,
    Role.VENDOR,
)


class Domain(StrEnum):
    """Which side of the business/IT line a piece of configuration is on."""

    BUSINESS = "business"
    INFRASTRUCTURE = "infrastructure"


#: Who owns each domain: they change it directly and approve change requests touching it.
#: The administrator (one person doing it all, and the local administrator at the shell)
#: owns both.
DOMAIN_OWNERS: Mapping[Domain, tuple[Role, ...]] = {
    Domain.BUSINESS: (Role.CONTACT_CENTER_MANAGER, Role.PHONE_MANAGER, Role.ADMINISTRATOR),
    Domain.INFRASTRUCTURE: (Role.TECHNICAL_CONTACT, Role.ADMINISTRATOR),
}

#: The domain a role assignment touches: granting a role that owns infrastructure (or works
#: on it, like the Vendor) is an infrastructure change; every other role is business.
ROLE_DOMAIN: Mapping[Role, Domain] = {
    role: (
        Domain.INFRASTRUCTURE
        if role in (Role.TECHNICAL_CONTACT, Role.VENDOR, Role.ADMINISTRATOR)
        else Domain.BUSINESS
    )
    for role in Role
}

#: Every action on every resource type. Acting on one's own API tokens and password needs
#: no permission (any signed-in user may), so those are not listed.
RESOURCE_ACTIONS: Mapping[str, tuple[str, ...]] = {
    "tenant": ("read", "create", "update"),
    "site": ("read", "create", "update", "delete"),
    "user": ("read", "create", "update", "delete"),
    "extension": ("read", "create", "update", "delete"),
    "group": ("read", "create", "update", "delete"),
    "role_assignment": ("read", "create", "delete"),
    "permission": ("read", "update"),
    "vendor_grant": ("read", "create", "delete"),
    "change_request": ("read",),
    "audit": ("read", "verify"),
    "coverage": ("read",),
    "cdr": ("read",),
    # call flows (routing/): save or discard a draft, publish it, roll back to an earlier one
    "flow": ("read", "draft", "discard", "publish", "rollback"),
    # voicemail (media/kinds.py): greeting settings, mailboxes, recorded greetings
    "voicemail": ("read", "update"),
    "mailbox": ("read", "create", "update", "delete"),
    "greeting": ("read", "create", "update"),
    # self-service menus (media/kinds_menu.py)
    "menu": ("read", "create", "update", "delete"),
    # SIP trunks to carriers (pbx/trunk_kind.py): infrastructure
    "trunk": ("read", "create", "update", "delete"),
}

PERMISSIONS: frozenset[str] = frozenset(
    f"{resource}.{action}" for resource, actions in RESOURCE_ACTIONS.items() for action in actions
)

#: Permissions a vendor grant may never carry (they would let the vendor extend itself).
NOT_GRANTABLE: frozenset[str] = frozenset(
    {
        "tenant.create",
        "role_assignment.create",
        "role_assignment.delete",
        "permission.update",
        "vendor_grant.create",
        "vendor_grant.delete",
    }
)


def _all(resources: Iterable[str], *actions: str) -> frozenset[str]:
    """``resource.action`` for each resource and each of its actions among ``actions``."""
    return frozenset(
        f"{r}.{a}" for r in resources for a in actions if a in RESOURCE_ACTIONS[r]
    )


_CONFIG = ("tenant", "site", "user", "extension", "group", "role_assignment", "permission")
READ_CONFIG = _all(_CONFIG, "read")
READ_EVERYTHING = _all(RESOURCE_ACTIONS, "read")
_PEOPLE_DIRECTORY = frozenset({"user.read", "extension.read", "group.read"})
#: Greetings and messages (business domain): the greeting template and policy, mailboxes,
#: and deciding which recorded greeting plays (approving one recorded by phone); and the
#: self-service menus callers press their way through.
_VOICEMAIL_OWNER = _all(("voicemail", "mailbox", "greeting", "menu"), "read", "create", "update",
                        "delete")
_FLOWS = frozenset({"flow.read", "flow.draft", "flow.discard", "flow.publish", "flow.rollback"})
_BUSINESS_OWNER = (
    READ_CONFIG
    | {"tenant.update", "role_assignment.create", "role_assignment.delete", "permission.update"}
    | {"cdr.read", "audit.read", "coverage.read", "change_request.read"}
    | _FLOWS
    | {"trunk.read"}
)

#: THE default permission matrix: role -> permissions. Tenants adjust it with overrides.
DEFAULT_PERMISSIONS: Mapping[Role, frozenset[str]] = {
    Role.ADMINISTRATOR: PERMISSIONS,
    Role.DECISION_MAKER: READ_EVERYTHING
    | {"role_assignment.create", "role_assignment.delete", "audit.verify"},
    Role.PHONE_MANAGER: _BUSINESS_OWNER | _all(("user", "extension", "group"), "create", "update", "delete")
    | _VOICEMAIL_OWNER,
    Role.CONTACT_CENTER_MANAGER: _BUSINESS_OWNER
    | _all(("group",), "create", "update", "delete")
    | {"extension.update"}
    | _VOICEMAIL_OWNER,
    Role.TECHNICAL_CONTACT: READ_CONFIG
    | _all(("site", "vendor_grant"), "read", "create", "update", "delete")
    | {"tenant.update", "audit.read", "audit.verify", "coverage.read", "change_request.read"}
    | {"flow.read"}
    | _all(("trunk",), "read", "create", "update", "delete"),
    Role.EMERGENCY_CONTACT: READ_CONFIG | {"coverage.read", "cdr.read", "flow.read"},
    Role.VENDOR: frozenset({"tenant.read"}),
    Role.OFFICE_MANAGER: _PEOPLE_DIRECTORY | {"tenant.read", "cdr.read", "flow.read"},
    Role.SERVICE_MANAGER: _PEOPLE_DIRECTORY
    | {"tenant.read", "cdr.read", "coverage.read", "flow.read"}
    | {"mailbox.read"},
    Role.SERVICE_COORDINATOR: _PEOPLE_DIRECTORY | {"tenant.read", "cdr.read"},
    Role.TECHNICIAN: _PEOPLE_DIRECTORY,
    Role.AGENT: _PEOPLE_DIRECTORY,
    Role.MARKETING: frozenset({"tenant.read", "cdr.read"}),
}

#: RACI "informed": per resource type, the roles told (through the event bus) about every
#: applied change.
INFORMED: Mapping[str, tuple[Role, ...]] = {
    "tenant": (Role.DECISION_MAKER, Role.TECHNICAL_CONTACT),
    "site": (Role.TECHNICAL_CONTACT, Role.EMERGENCY_CONTACT),
    "user": (Role.PHONE_MANAGER,),
    "extension": (Role.PHONE_MANAGER, Role.OFFICE_MANAGER),
    "group": (Role.PHONE_MANAGER, Role.CONTACT_CENTER_MANAGER, Role.SERVICE_MANAGER),
    "role_assignment": (Role.DECISION_MAKER, Role.PHONE_MANAGER),
    "permission": (Role.DECISION_MAKER, Role.TECHNICAL_CONTACT),
    "vendor_grant": (Role.DECISION_MAKER, Role.TECHNICAL_CONTACT),
    "flow": (Role.CONTACT_CENTER_MANAGER, Role.PHONE_MANAGER, Role.OFFICE_MANAGER),
    "voicemail": (Role.PHONE_MANAGER, Role.CONTACT_CENTER_MANAGER),
    "mailbox": (Role.PHONE_MANAGER, Role.SERVICE_MANAGER),
    "greeting": (Role.PHONE_MANAGER,),
    "menu": (Role.PHONE_MANAGER, Role.CONTACT_CENTER_MANAGER),
    "trunk": (Role.TECHNICAL_CONTACT, Role.DECISION_MAKER),
}


def parse_role(value: str) -> Role:
    """The role named ``value`` (``technical_contact``, ``Technical Contact``, ``technical-contact``)."""
    name = value.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return Role(name)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise ValueError(f"unknown role {value!r}; roles: {known}") from None


def owner_roles_of(domain: Domain) -> tuple[Role, ...]:
    """The roles that own ``domain`` (and may approve change requests touching it)."""
    return DOMAIN_OWNERS[domain]


def holders_needed(permission: str) -> list[Role]:
    """The roles that hold ``permission`` by default (for "who can do this?" hints)."""
    return [
        role
        for role, granted in DEFAULT_PERMISSIONS.items()
        if permission in granted and role is not Role.ADMINISTRATOR
    ]


def matrix_markdown() -> str:
    """The default matrix as a Markdown table (docs/permissions.md is this, regenerated by
    ``frontdesk role matrix > docs/permissions.md``)."""
    roles = list(Role)
    lines = [
        "# Default permission matrix",
        "",
        "Generated from `frontdesk.org.roles.DEFAULT_PERMISSIONS` (`frontdesk role matrix`); a",
        "tenant adjusts it with permission overrides. \"x\": the role holds the permission.",
        "Holding a permission lets a change *start*; whether it applies at once or becomes a",
        "change request depends on the domain it touches:",
        "",
    ]
    for domain, owners in DOMAIN_OWNERS.items():
        lines.append(f"- {domain.value} is owned by {', '.join(r.label for r in owners)}")
    lines += ["", "| permission | " + " | ".join(r.label for r in roles) + " |",
              "|---|" + "---|" * len(roles)]
    for permission in sorted(PERMISSIONS):
        cells = ["x" if permission in DEFAULT_PERMISSIONS[r] else "" for r in roles]
        lines.append(f"| {permission} | " + " | ".join(cells) + " |")
    lines += ["", "Informed of every applied change (RACI):", ""]
    lines += [f"- {kind}: {', '.join(r.label for r in informed)}"
              for kind, informed in INFORMED.items()]
    return "\n".join(lines) + "\n"
