"""Resource kinds: how the one change path reads, validates, classifies and writes each
type of configuration (tenant, site, user, extension, group, role assignment, ...).

A ``ResourceKind`` knows, for its resource type: how to find a row by key, its snapshot
(JSON-safe, never secrets), how to validate and normalise requested fields, which domain
each field belongs to, and how to create/update/delete rows. ``service.apply_change``
drives them; nothing else calls their writers. A new feature plugs in by subclassing
``ResourceKind`` and calling ``register`` — routing's call flows do (``routing/kind.py``,
listed in ``PLUGIN_KINDS``): a ``flow`` kind whose ``field_domain`` says that pointing a
transfer at an outside number (a trunk) touches infrastructure.

Kinds must never check permissions, write audit rows or versions, or commit: the service
does that around them, in the caller's transaction.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from frontdesk.org.access import Actor
from frontdesk.org.errors import Invalid, NotFound
from frontdesk.org.model import Site
from frontdesk.org.roles import Domain
from frontdesk.store.models import Tenant, User

SECRET = "(secret)"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")

#: (old value, new value) per field that a change would alter.
Changed = Mapping[str, tuple[Any, Any]]


@dataclass(frozen=True, slots=True)
class ApplyContext:
    """What a kind's methods may use: the session, the target tenant, the actor, the clock."""

    session: Session
    tenant_id: int | None
    actor: Actor
    now: datetime

    @property
    def tenant(self) -> Tenant:
        """The target tenant (every tenant-scoped kind has one)."""
        tenant = self.session.get(Tenant, self.tenant_id) if self.tenant_id is not None else None
        if tenant is None:
            raise NotFound(f"tenant #{self.tenant_id} does not exist",
                           fix="choose an existing tenant (frontdesk tenant list)")
        return tenant


class ResourceKind:
    """Base class of every resource kind; see the module docstring."""

    name: ClassVar[str]
    #: What a person calls one of these, for messages ("extension", "role assignment").
    title: ClassVar[str]
    #: The domain the resource itself belongs to (None: personal, e.g. one's API tokens).
    base_domain: ClassVar[Domain | None] = Domain.BUSINESS
    #: Fields that belong to another domain than ``base_domain``.
    field_domains: ClassVar[Mapping[str, Domain]] = {}
    actions: ClassVar[tuple[str, ...]] = ("create", "update", "delete")
    #: Fields never shown in snapshots or diffs (password hashes, SIP HA1s, token hashes).
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    #: Snapshot fields a change cannot set (the key, derived values).
    read_only_fields: ClassVar[frozenset[str]] = frozenset()
    #: False only for tenants themselves.
    tenant_scoped: ClassVar[bool] = True

    # --- reading ---------------------------------------------------------------------
    def load(self, ctx: ApplyContext, key: str) -> Any | None:
        raise NotImplementedError

    def snapshot(self, ctx: ApplyContext, row: Any) -> dict[str, Any]:
        raise NotImplementedError

    def key_of(self, row: Any) -> str:
        raise NotImplementedError

    def site_id(self, ctx: ApplyContext, row: Any | None, fields: Mapping[str, Any]) -> int | None:
        """The site whose site-level roles also count for this change (None: tenant-wide)."""
        return None

    def is_personal(self, ctx: ApplyContext, action: str, key: str | None,
                    fields: Mapping[str, Any], row: Any | None) -> bool:
        """True when the actor acts on something of their own (no permission needed)."""
        return False

    # --- validating ------------------------------------------------------------------
    def create_key(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> str | None:
        """The key a new resource will have (None when the database assigns it)."""
        if not key:
            raise Invalid(f"a new {self.title} needs a key", field="key",
                          fix=f"name the {self.title}")
        return key

    def normalise(self, ctx: ApplyContext, action: str, key: str | None,
                  fields: Mapping[str, Any], row: Any | None) -> dict[str, Any]:
        """Check ``fields`` for ``action`` and return them JSON-safe and canonical."""
        raise NotImplementedError

    def writable_fields(self, snapshot: Mapping[str, Any]) -> dict[str, Any]:
        """The part of a snapshot that a rollback writes back."""
        return {k: v for k, v in snapshot.items() if k not in self.read_only_fields}

    # --- classifying -----------------------------------------------------------------
    def field_domain(self, field: str, old: Any, new: Any) -> set[Domain]:
        """The domains a change of ``field`` from ``old`` to ``new`` touches."""
        domain = self.field_domains.get(field, self.base_domain)
        return {domain} if domain is not None else set()

    def domains(self, action: str, key: str, changed: Changed) -> frozenset[Domain]:
        """Every domain a change touches: the resource's own for creates and deletes,
        plus each altered field's."""
        touched: set[Domain] = set()
        if action in ("create", "delete") and self.base_domain is not None:
            touched.add(self.base_domain)
        for field, (old, new) in changed.items():
            touched |= self.field_domain(field, old, new)
        return frozenset(touched)

    # --- writing ---------------------------------------------------------------------
    def create(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def update(self, ctx: ApplyContext, row: Any, fields: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def delete(self, ctx: ApplyContext, row: Any) -> dict[str, Any] | None:
        """Remove (or retire) ``row``; return its snapshot afterwards, None when gone."""
        ctx.session.delete(row)
        return None


_REGISTRY: dict[str, ResourceKind] = {}


def register(kind: ResourceKind) -> ResourceKind:
    """Make ``kind`` available to the change path under ``kind.name``."""
    _REGISTRY[kind.name] = kind
    return kind


def kind_of(name: str) -> ResourceKind:
    """The registered kind called ``name``."""
    _load_builtin_kinds()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise Invalid(f"unknown resource type {name!r}", field="resource_type",
                      fix=f"use one of: {', '.join(sorted(_REGISTRY))}") from None


def kinds() -> dict[str, ResourceKind]:
    """Every registered kind by name."""
    _load_builtin_kinds()
    return dict(_REGISTRY)


#: Kinds that features above org/ register (imported by name, so org/ never depends on
#: them): routing/'s call flows, media/'s voicemail configuration.
PLUGIN_KINDS = (
    "frontdesk.routing.kind",
    "frontdesk.media.kinds",
    "frontdesk.pbx.trunk_kind",
)


def _load_builtin_kinds() -> None:
    from frontdesk.org import kinds_access, kinds_people  # noqa: F401  (they register)

    for module in PLUGIN_KINDS:
        if module not in sys.modules:
            with contextlib.suppress(ImportError):
                importlib.import_module(module)


# --- validation helpers shared by the kinds ------------------------------------------------


def unknown_fields(kind: ResourceKind, fields: Mapping[str, Any], allowed: set[str]) -> None:
    """Refuse fields the kind does not have, naming the first and listing the known ones."""
    for name in fields:
        if name not in allowed:
            raise Invalid(f"{kind.title} has no field {name!r}", field=name,
                          fix=f"use only: {', '.join(sorted(allowed))}")


def text_field(fields: Mapping[str, Any], name: str, *, required: bool = False,
               max_length: int = 255, empty_ok: bool = False) -> str | None:
    """A one-line text field: no control characters, at most ``max_length`` characters."""
    value = fields.get(name)
    if value is None:
        if required:
            raise Invalid(f"{name} is required", field=name, fix=f"give a {name}")
        return None
    if not isinstance(value, str):
        raise Invalid(f"{name} must be text", field=name, fix=f"send {name} as a string")
    value = value.strip()
    if not value and not empty_ok:
        raise Invalid(f"{name} is empty", field=name, fix=f"give a non-empty {name}")
    if len(value) > max_length or _CONTROL.search(value):
        raise Invalid(f"{name} is too long or has control characters", field=name,
                      fix=f"use at most {max_length} printable characters")
    return value


def int_field(fields: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    """An integer field within [low, high], or None when absent/null."""
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Invalid(f"{name} must be a whole number from {low} to {high}, not {value!r}",
                      field=name, fix=f"use a value between {low} and {high}")
    return value


def slug_key(kind: ResourceKind, key: str | None) -> str:
    """Check a lowercase slug key (site, group)."""
    if key is None or not SLUG_RE.match(key):
        raise Invalid(f"{kind.title} name {key!r} is not a valid slug", field="key",
                      fix="use lowercase letters, digits and '-', at most 63 characters")
    return key


def user_by_name(ctx: ApplyContext, username: str, field: str) -> User:
    """The user ``username`` in the target tenant, or Invalid naming ``field``."""
    user = ctx.session.scalar(
        select(User).where(User.tenant_id == ctx.tenant_id, User.username == username)
    )
    if user is None:
        raise Invalid(f"user {username!r} does not exist in this tenant", field=field,
                      fix="create the user first, or name an existing one")
    return user


def site_by_slug(ctx: ApplyContext, slug: str, field: str) -> Site:
    """The site ``slug`` in the target tenant, or Invalid naming ``field``."""
    site = ctx.session.scalar(
        select(Site).where(Site.tenant_id == ctx.tenant_id, Site.slug == slug)
    )
    if site is None:
        raise Invalid(f"site {slug!r} does not exist in this tenant", field=field,
                      fix="create the site first, or name an existing one")
    return site


def username_of(session: Session, user_id: int | None) -> str | None:
    """The username for ``user_id`` (None for None)."""
    if user_id is None:
        return None
    user = session.get(User, user_id)
    return user.username if user else None


def site_slug_of(session: Session, site_id: int | None) -> str | None:
    """The slug for ``site_id`` (None for None)."""
    if site_id is None:
        return None
    site = session.get(Site, site_id)
    return site.slug if site else None
