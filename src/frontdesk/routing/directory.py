"""Who exists in a tenant, as routing sees it: extensions, users, groups, roles, mailboxes.

What it is for: validation checks a flow's targets against a ``Directory`` ("target group
"service" does not exist") and evaluation turns targets into extension numbers to ring
(``resolve``). ``StaticDirectory`` is the immutable snapshot both use; ``load_directory``
builds it from the store, outside the call path (at start and when configuration changes).

Roles and groups belong to ``org/``, which has not landed: until it does, ``load_directory``
takes them as arguments and otherwise infers roles from extension display names
(``roles_from_display_names``, a clearly marked stopgap: "Office Manager" -> office-manager,
"Technician One" -> technician).

What it must never do: be consulted from evaluation through the database (evaluation only
sees the snapshot), or change anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from frontdesk.routing.model import Target
from frontdesk.store.models import Extension, User

#: Operational roles a flow may name (DESIGN.md "Ownership model").
KNOWN_ROLES: tuple[str, ...] = (
    "office-manager",
    "service-manager",
    "service-coordinator",
    "technician",
    "contact-center-manager",
    "agent",
    "marketing",
)


class Directory(Protocol):
    """What routing needs to know about a tenant's people; a snapshot, never the database."""

    def extension_name(self, number: str) -> str | None:
        """The display name of extension ``number``, or None if there is no such extension."""

    def is_technician(self, number: str) -> bool:
        """Whether extension ``number`` belongs to a technician (shielded from calls)."""

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
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    mailboxes: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls,
        extensions: Mapping[str, str],
        *,
        users: Mapping[str, Iterable[str]] | None = None,
        groups: Mapping[str, Iterable[str]] | None = None,
        roles: Mapping[str, Iterable[str]] | None = None,
        mailboxes: Iterable[str] = (),
        technicians: Iterable[str] | None = None,
    ) -> StaticDirectory:
        """A snapshot; ``technicians`` defaults to the holders of the technician role."""
        frozen_roles = _frozen(roles)
        techs = frozenset(
            technicians if technicians is not None else frozen_roles.get("technician", ())
        )
        return cls(
            extensions=MappingProxyType(dict(extensions)),
            technicians=techs,
            users=_frozen(users),
            groups=_frozen(groups),
            roles=frozen_roles,
            mailboxes=frozenset(mailboxes),
        )

    def extension_name(self, number: str) -> str | None:
        return self.extensions.get(number)

    def is_technician(self, number: str) -> bool:
        return number in self.technicians

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
    """STOPGAP until org/ role assignments exist: a role for every extension whose display
    name starts with the role's title ("Service Manager", "Technician Two")."""
    found: dict[str, list[str]] = {}
    for number, display in sorted(extensions.items()):
        lowered = display.strip().lower().replace("-", " ")
        for role in KNOWN_ROLES:
            if lowered.startswith(role.replace("-", " ")):
                found.setdefault(role, []).append(number)
    return found


def load_directory(
    session: Session,
    tenant_id: int,
    *,
    roles: Mapping[str, Iterable[str]] | None = None,
    groups: Mapping[str, Iterable[str]] | None = None,
    mailboxes: Iterable[str] = (),
) -> StaticDirectory:
    """The tenant's directory from the store: extensions and users; roles from ``roles`` or
    (stopgap) from display names; groups and shared mailboxes as given (org/ will own them)."""
    rows = session.execute(
        select(Extension.number, Extension.display_name, User.username)
        .outerjoin(User, User.id == Extension.user_id)
        .where(Extension.tenant_id == tenant_id)
        .order_by(Extension.number)
    ).all()
    extensions = {number: display for number, display, _ in rows}
    users: dict[str, list[str]] = {}
    for number, _, username in rows:
        if username:
            users.setdefault(username, []).append(number)
    return StaticDirectory.build(
        extensions,
        users=users,
        groups=groups,
        roles=roles if roles is not None else roles_from_display_names(extensions),
        mailboxes=mailboxes,
    )
