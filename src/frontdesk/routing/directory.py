"""Who exists in a tenant, as routing sees it: extensions, users, groups, roles, mailboxes.

What it is for: validation checks a flow's targets against a ``Directory`` ("target group
"service" does not exist") and evaluation turns targets into extension numbers to ring
(``resolve``). ``StaticDirectory`` is the immutable snapshot both use; ``load_directory``
builds it from the store, outside the call path (at start and when configuration changes).

Roles and groups belong to ``org/``: ``load_directory`` reads its role assignments and user
groups when those tables exist. A tenant with no role assignments at all (or a database
without org's tables) gets roles inferred from extension display names
(``roles_from_display_names``, a clearly marked stopgap: "Office Manager" -> office_manager,
"Technician One" -> technician).

What it must never do: be consulted from evaluation through the database (evaluation only
sees the snapshot), or change anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from frontdesk.routing.model import Target
from frontdesk.store.models import Extension, User

#: Roles a flow may name, spelt as org/ spells them (``org.roles.Role``).
KNOWN_ROLES: tuple[str, ...] = (
    "office_manager",
    "service_manager",
    "service_coordinator",
    "technician",
    "contact_center_manager",
    "agent",
    "marketing",
    "administrator",
    "decision_maker",
    "phone_manager",
    "technical_contact",
    "emergency_contact",
    "vendor",
)


class Directory(Protocol):
    """What routing needs to know about a tenant's people; a snapshot, never the database."""

    def extension_name(self, number: str) -> str | None:
        """The display name of extension ``number``, or None if there is no such extension."""

    def is_technician(self, number: str) -> bool:
        """Whether extension ``number`` belongs to a technician (shielded from calls)."""

    def extension_user(self, number: str) -> int | None:
        """The user id owning extension ``number`` (None: nobody, or no such extension)."""

    def user_extensions(self, username: str) -> tuple[str, ...] | None:
        """The extensions of user ``username`` (None: no such user)."""

    def group_members(self, name: str) -> tuple[str, ...] | None:
        """Member extensions of group ``name`` in ring order (None: no such group)."""

    def role_holders(self, role: str) -> tuple[str, ...] | None:
        """Extensions of the people holding ``role`` (None: not a role; (): nobody holds it)."""

    def has_mailbox(self, name: str) -> bool:
        """Whether mailbox ``name`` exists (every extension has one named after its number)."""


def _frozen(mapping: Mapping[str, Iterable[str]] | None) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({k: tuple(v) for k, v in (mapping or {}).items()})


@dataclass(frozen=True, slots=True)
class StaticDirectory:
    """An immutable ``Directory``: build it once per configuration change, share it."""

    extensions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    technicians: frozenset[str] = frozenset()
    users: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    owners: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    mailboxes: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls,
        extensions: Mapping[str, str],
        *,
        users: Mapping[str, Iterable[str]] | None = None,
        owners: Mapping[str, int] | None = None,
        groups: Mapping[str, Iterable[str]] | None = None,
        roles: Mapping[str, Iterable[str]] | None = None,
        mailboxes: Iterable[str] = (),
        technicians: Iterable[str] | None = None,
    ) -> StaticDirectory:
        """A snapshot. ``extensions``: number -> display name; ``users``: username -> their
        extensions; ``owners``: extension -> user id; ``technicians`` defaults to the holders
        of the technician role."""
        frozen_roles = _frozen(roles)
        techs = frozenset(
            technicians if technicians is not None else frozen_roles.get("technician", ())
        )
        return cls(
            extensions=MappingProxyType(dict(extensions)),
            technicians=techs,
            users=_frozen(users),
            owners=MappingProxyType(dict(owners or {})),
            groups=_frozen(groups),
            roles=frozen_roles,
            mailboxes=frozenset(mailboxes),
        )

    def extension_name(self, number: str) -> str | None:
        return self.extensions.get(number)

    def is_technician(self, number: str) -> bool:
        return number in self.technicians

    def extension_user(self, number: str) -> int | None:
        return self.owners.get(number)

    def user_extensions(self, username: str) -> tuple[str, ...] | None:
        return self.users.get(username)

    def group_members(self, name: str) -> tuple[str, ...] | None:
        return self.groups.get(name)

    def role_holders(self, role: str) -> tuple[str, ...] | None:
        found = self.roles.get(role)
        if found is not None:
            return found
        return () if role in KNOWN_ROLES else None

    def has_mailbox(self, name: str) -> bool:
        return name in self.mailboxes or name in self.extensions


EMPTY_DIRECTORY = StaticDirectory()


def resolve(directory: Directory, target: Target) -> tuple[str, ...] | None:
    """The extension numbers ``target`` stands for, in ring order (None: the name is unknown;
    (): it exists but has nobody). A mailbox target resolves to the mailbox's own name."""
    if target.kind == "extension":
        return (target.name,) if directory.extension_name(target.name) is not None else None
    if target.kind == "user":
        return directory.user_extensions(target.name)
    if target.kind == "group":
        return directory.group_members(target.name)
    if target.kind == "role":
        return directory.role_holders(target.name)
    return (target.name,) if directory.has_mailbox(target.name) else None


def describe(directory: Directory, number: str) -> str:
    """``101 (Office Manager)`` — an extension as people read it."""
    name = directory.extension_name(number)
    return f"{number} ({name})" if name else number


# --- from the store ----------------------------------------------------------------------------


def roles_from_display_names(extensions: Mapping[str, str]) -> dict[str, list[str]]:
    """STOPGAP for tenants without org/ role assignments: a role for every extension whose
    display name starts with the role's title ("Service Manager", "Technician Two")."""
    found: dict[str, list[str]] = {}
    for number, display in sorted(extensions.items()):
        lowered = display.strip().lower().replace("-", " ").replace("_", " ")
        for role in KNOWN_ROLES:
            if lowered.startswith(role.replace("_", " ")):
                found.setdefault(role, []).append(number)
    return found


_OrgData = tuple[dict[str, list[str]], dict[str, list[str]], list[str]]


def _org_data(
    session: Session, tenant_id: int, extensions_of: Mapping[int, list[str]]
) -> _OrgData | None:
    """From org/'s tables: roles and groups as extension numbers, and the groups that have a
    shared mailbox; None when org/ is not installed or not migrated in this database."""
    try:
        from frontdesk.org.model import GroupMember, RoleAssignment, UserGroup
    except ImportError:
        return None
    if not inspect(session.connection()).has_table(RoleAssignment.__tablename__):
        return None
    assignments = session.execute(
        select(RoleAssignment.role, RoleAssignment.user_id)
        .where(RoleAssignment.tenant_id == tenant_id)
        .order_by(RoleAssignment.id)
    ).all()
    members = session.execute(
        select(UserGroup.name, GroupMember.user_id)
        .join(GroupMember, GroupMember.group_id == UserGroup.id)
        .where(UserGroup.tenant_id == tenant_id)
        .order_by(UserGroup.name, GroupMember.user_id)
    ).all()
    groups_rows = session.execute(
        select(UserGroup.name, UserGroup.has_mailbox).where(UserGroup.tenant_id == tenant_id)
    ).all()
    roles: dict[str, list[str]] = {}
    for role, user_id in assignments:
        for number in extensions_of.get(user_id, []):
            if number not in roles.setdefault(str(role), []):
                roles[str(role)].append(number)
    groups: dict[str, list[str]] = {name: [] for name, _ in groups_rows}
    for name, user_id in members:
        groups[name].extend(extensions_of.get(user_id, []))
    return roles, groups, [name for name, shared in groups_rows if shared]


def load_directory(session: Session, tenant_id: int) -> StaticDirectory:
    """The tenant's directory from the store: extensions, users, org/'s roles, groups and
    group mailboxes (roles inferred from display names when the tenant has no role
    assignments)."""
    rows = session.execute(
        select(Extension.number, Extension.display_name, User.id, User.username)
        .outerjoin(User, User.id == Extension.user_id)
        .where(Extension.tenant_id == tenant_id)
        .order_by(Extension.number)
    ).all()
    extensions = {number: display for number, display, _, _ in rows}
    owners = {number: user_id for number, _, user_id, _ in rows if user_id is not None}
    users: dict[str, list[str]] = {}
    extensions_of: dict[int, list[str]] = {}
    for number, _, user_id, username in rows:
        if user_id is not None:
            users.setdefault(username, []).append(number)
            extensions_of.setdefault(user_id, []).append(number)
    org = _org_data(session, tenant_id, extensions_of)
    roles, groups, shared = org if org is not None else ({}, {}, [])
    if not roles:
        roles = roles_from_display_names(extensions)
    return StaticDirectory.build(
        extensions, users=users, owners=owners, groups=groups, roles=roles, mailboxes=shared
    )
