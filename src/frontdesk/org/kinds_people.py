"""Resource kinds for the directory: tenants, sites, users, extensions and groups.

Each kind validates and normalises fields, classifies them by domain and writes rows; the
one change path (``service.py``) calls them. Secrets (API password hashes, SIP HA1s) pass
through as normalised fields but never appear in snapshots or diffs. These kinds must
never check permissions, audit or commit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from frontdesk.org.access import ActorKind
from frontdesk.org.credentials import hash_password, password_problem
from frontdesk.org.errors import Conflict, Invalid, NotAllowed
from frontdesk.org.model import GroupMember, RoleAssignment, Site, UserGroup
from frontdesk.org.resources import (
    USERNAME_RE,
    ApplyContext,
    ResourceKind,
    int_field,
    register,
    site_by_slug,
    site_slug_of,
    slug_key,
    text_field,
    unknown_fields,
    user_by_name,
    username_of,
)
from frontdesk.org.roles import Domain
from frontdesk.store import repo
from frontdesk.store.models import Extension, SipCredential, Tenant, User

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
DIGEST_ALGORITHMS = ("MD5", "SHA-256")
#: Group features and the domain each belongs to: calling abroad and forwarding outside
#: are toll-fraud exposure, so they are the Technical Contact's call.
GROUP_FEATURES: Mapping[str, Domain] = {
    "voicemail": Domain.BUSINESS,
    "call_pickup": Domain.BUSINESS,
    "queue_login": Domain.BUSINESS,
    "call_recording": Domain.BUSINESS,
    "intercom": Domain.BUSINESS,
    "international_calls": Domain.INFRASTRUCTURE,
    "external_forwarding": Domain.INFRASTRUCTURE,
}


def _bool_field(fields: Mapping[str, Any], name: str) -> bool | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, bool):
        raise Invalid(f"{name} must be true or false, not {value!r}", field=name,
                      fix=f"send {name} as a JSON boolean")
    return value


def _present(fields: Mapping[str, Any], out: dict[str, Any], name: str, value: Any) -> None:
    """Copy a normalised value when the field was sent (null included)."""
    if name in fields:
        out[name] = value


class TenantKind(ResourceKind):
    name = "tenant"
    title = "tenant"
    base_domain = Domain.INFRASTRUCTURE
    field_domains = {"name": Domain.BUSINESS, "ring_timeout": Domain.BUSINESS}
    actions = ("create", "update")
    read_only_fields = frozenset({"slug"})
    tenant_scoped = False
    _FIELDS = frozenset({"name", "sip_domain", "default", "ring_timeout", "digest_algorithms",
                         "allow_unauthenticated_loopback"})

    def load(self, ctx: ApplyContext, key: str) -> Tenant | None:
        return repo.get_tenant_by_slug(ctx.session, key)

    def key_of(self, row: Tenant) -> str:
        return row.slug

    def snapshot(self, ctx: ApplyContext, row: Tenant) -> dict[str, Any]:
        return {"slug": row.slug, "name": row.name, "sip_domain": row.sip_domain,
                "default": row.default, "ring_timeout": row.setting("ring_timeout"),
                "digest_algorithms": list(row.setting("digest_algorithms")),
                "allow_unauthenticated_loopback": row.setting("allow_unauthenticated_loopback")}

    def create_key(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> str:
        return slug_key(self, key)

    def normalise(self, ctx: ApplyContext, action: str, key: str | None,
                  fields: Mapping[str, Any], row: Any | None) -> dict[str, Any]:
        unknown_fields(self, fields, set(self._FIELDS))
        creating = action == "create"
        if creating:
            _check_may_host(ctx)
        out: dict[str, Any] = {}
        _present(fields, out, "name", text_field(fields, "name", required=creating))
        if creating or "sip_domain" in fields:
            domain = (text_field(fields, "sip_domain", required=True) or "").lower()
            if not _HOSTNAME.match(domain):
                raise Invalid(f"sip_domain {domain!r} is not a host name", field="sip_domain",
                              fix="use a DNS name such as acme.example.com")
            clash = repo.get_tenant_by_domain(ctx.session, domain)
            if clash is not None and clash is not row:
                raise Conflict(f"SIP domain {domain!r} already belongs to tenant {clash.slug!r}",
                               field="sip_domain", fix="choose another SIP domain")
            out["sip_domain"] = domain
        if fields.get("ring_timeout", 0) is None:
            raise Invalid("ring_timeout cannot be empty for a tenant", field="ring_timeout",
                          fix="give the seconds to ring, 1 to 600")
        _present(fields, out, "ring_timeout", int_field(fields, "ring_timeout", 1, 600))
        _present(fields, out, "default", bool(_bool_field(fields, "default")))
        _present(fields, out, "allow_unauthenticated_loopback",
                 bool(_bool_field(fields, "allow_unauthenticated_loopback")))
        if "digest_algorithms" in fields:
            out["digest_algorithms"] = _digest_algorithms(fields["digest_algorithms"])
        if creating and repo.get_tenant_by_slug(ctx.session, key or "") is not None:
            raise Conflict(f"tenant {key!r} already exists", field="key",
                           fix="choose another slug")
        return out

    def create(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> Tenant:
        settings = {k: fields[k] for k in ("ring_timeout", "digest_algorithms",
                                           "allow_unauthenticated_loopback") if k in fields}
        tenant = repo.create_tenant(ctx.session, key or "", fields["name"], fields["sip_domain"],
                                    settings=settings)
        if fields.get("default"):
            repo.set_default_tenant(ctx.session, tenant)
        return tenant

    def update(self, ctx: ApplyContext, row: Tenant, fields: Mapping[str, Any]) -> None:
        if "name" in fields:
            row.name = fields["name"]
        if "sip_domain" in fields:
            row.sip_domain = fields["sip_domain"]
        settings = dict(row.settings or {})
        for name in ("ring_timeout", "digest_algorithms", "allow_unauthenticated_loopback"):
            if name in fields:
                settings[name] = fields[name]
        row.settings = settings
        if fields.get("default") is True:
            repo.set_default_tenant(ctx.session, row)
        elif "default" in fields:
            row.default = False


def _check_may_host(ctx: ApplyContext) -> None:
    """New tenants are made by the hosting (default) tenant's people, or at the shell."""
    if ctx.actor.kind is ActorKind.LOCAL_ADMIN:
        return
    home = ctx.session.get(Tenant, ctx.actor.tenant_id) if ctx.actor.tenant_id else None
    if home is None or not home.default:
        raise NotAllowed("only the hosting (default) tenant's administrators create tenants",
                         fix="ask the operator of this Frontdesk, or use the CLI on the server")


def _digest_algorithms(value: Any) -> list[str]:
    if (not isinstance(value, list) or not value or len(set(value)) != len(value)
            or any(v not in DIGEST_ALGORITHMS for v in value)):
        raise Invalid(f"digest_algorithms {value!r} is not a list of distinct algorithms",
                      field="digest_algorithms",
                      fix='use ["MD5"], ["SHA-256", "MD5"] or ["SHA-256"]')
    return list(value)


class SiteKind(ResourceKind):
    name = "site"
    title = "site"
    base_domain = Domain.INFRASTRUCTURE
    read_only_fields = frozenset({"slug"})

    def load(self, ctx: ApplyContext, key: str) -> Site | None:
        return ctx.session.scalar(select(Site).where(Site.tenant_id == ctx.tenant_id,
                                                     Site.slug == key))

    def key_of(self, row: Site) -> str:
        return row.slug

    def snapshot(self, ctx: ApplyContext, row: Site) -> dict[str, Any]:
        return {"slug": row.slug, "name": row.name, "timezone": row.timezone,
                "address": row.address}

    def site_id(self, ctx: ApplyContext, row: Site | None, fields: Mapping[str, Any]) -> int | None:
        return row.id if row is not None else None

    def create_key(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> str:
        return slug_key(self, key)

    def normalise(self, ctx: ApplyContext, action: str, key: str | None,
                  fields: Mapping[str, Any], row: Any | None) -> dict[str, Any]:
        unknown_fields(self, fields, {"name", "timezone", "address"})
        out: dict[str, Any] = {}
        _present(fields, out, "name", text_field(fields, "name", required=action == "create"))
        if "timezone" in fields or action == "create":
            zone = text_field(fields, "timezone", max_length=64) or "UTC"
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise Invalid(f"timezone {zone!r} is not known", field="timezone",
                              fix="use an IANA zone name such as Europe/Berlin") from None
            out["timezone"] = zone
        _present(fields, out, "address",
                 text_field(fields, "address", max_length=1000, empty_ok=True) or None)
        return out

    def create(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> Site:
        site = Site(tenant_id=ctx.tenant_id, slug=key, name=fields["name"],
                    timezone=fields["timezone"], address=fields.get("address"))
        ctx.session.add(site)
        return site

    def update(self, ctx: ApplyContext, row: Site, fields: Mapping[str, Any]) -> None:
        for name, value in fields.items():
            setattr(row, name, value)

    def delete(self, ctx: ApplyContext, row: Site) -> dict[str, Any] | None:
        groups = ctx.session.scalars(select(UserGroup.name).where(UserGroup.site_id == row.id))
        roles = ctx.session.scalars(select(RoleAssignment.id).where(RoleAssignment.site_id == row.id))
        group_names, role_ids = list(groups), list(roles)
        if group_names or role_ids:
            raise Conflict(f"site {row.slug!r} still has groups {group_names} and "
                           f"{len(role_ids)} role assignments",
                           fix="move or delete those groups and revoke those roles first")
        ctx.session.delete(row)
        return None


class UserKind(ResourceKind):
    name = "user"
    title = "user"
    secret_fields = frozenset({"password_hash"})
    read_only_fields = frozenset({"username", "has_password", "extensions"})

    def load(self, ctx: ApplyContext, key: str) -> User | None:
        return ctx.session.scalar(select(User).where(User.tenant_id == ctx.tenant_id,
                                                     User.username == key))

    def key_of(self, row: User) -> str:
        return row.username

    def snapshot(self, ctx: ApplyContext, row: User) -> dict[str, Any]:
        numbers = ctx.session.scalars(select(Extension.number).where(Extension.user_id == row.id)
                                      .order_by(Extension.number))
        return {"username": row.username, "display_name": row.display_name, "email": row.email,
                "has_password": row.password_hash is not None, "extensions": list(numbers)}

    def is_personal(self, ctx: ApplyContext, action: str, key: str | None,
                    fields: Mapping[str, Any], row: Any | None) -> bool:
        return (action == "update" and row is not None and row.id == ctx.actor.user_id
                and set(fields) <= {"password", "password_hash"})

    def create_key(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> str:
        if key is None or not USERNAME_RE.match(key):
            raise Invalid(f"username {key!r} is not valid", field="username",
                          fix="use letters, digits and . _ @ -, at most 128 characters")
        return key

    def normalise(self, ctx: ApplyContext, action: str, key: str | None,
                  fields: Mapping[str, Any], row: Any | None) -> dict[str, Any]:
        unknown_fields(self, fields, {"display_name", "email", "password"})
        out: dict[str, Any] = {}
        _present(fields, out, "display_name",
                 text_field(fields, "display_name", required=action == "create"))
        email = text_field(fields, "email", empty_ok=True)
        if email and not re.match(r"^[^@\s]+@[^@\s]+$", email):
            raise Invalid(f"email {email!r} is not an e-mail address", field="email",
                          fix="use name@example.com, or null for none")
        _present(fields, out, "email", email or None)
        password = fields.get("password")
        if password is not None:
            problem = password_problem(password) if isinstance(password, str) else "send text"
            if problem:
                raise Invalid(f"password is not acceptable: {problem}", field="password",
                              fix=f"choose another password ({problem})")
            out["password_hash"] = hash_password(password)
        if action == "create" and self.load(ctx, key or "") is not None:
            raise Conflict(f"user {key!r} already exists", field="username",
                           fix="choose another username")
        return out

    def create(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> User:
        user = User(tenant_id=ctx.tenant_id, username=key, display_name=fields["display_name"],
                    email=fields.get("email"), password_hash=fields.get("password_hash"))
        ctx.session.add(user)
        return user

    def update(self, ctx: ApplyContext, row: User, fields: Mapping[str, Any]) -> None:
        for name, value in fields.items():
            setattr(row, name, value)

    def delete(self, ctx: ApplyContext, row: User) -> dict[str, Any] | None:
        if row.id == ctx.actor.user_id:
            raise Conflict(f"you cannot delete your own user {row.username!r}",
                           fix="ask another administrator or Phone Manager to do it")
        admins = set(ctx.session.scalars(select(RoleAssignment.user_id).where(
            RoleAssignment.tenant_id == row.tenant_id, RoleAssignment.role == "administrator",
            RoleAssignment.site_id.is_(None))))
        if admins == {row.id}:
            raise Conflict(f"{row.username!r} is the tenant's last administrator",
                           fix="assign another administrator first")
        ctx.session.delete(row)
        return None


class ExtensionKind(ResourceKind):
    name = "extension"
    title = "extension"
    secret_fields = frozenset({"sip_login"})
    read_only_fields = frozenset({"number", "sip_logins"})

    def load(self, ctx: ApplyContext, key: str) -> Extension | None:
        return repo.get_extension(ctx.session, ctx.tenant_id or 0, key)

    def key_of(self, row: Extension) -> str:
        return row.number

    def snapshot(self, ctx: ApplyContext, row: Extension) -> dict[str, Any]:
        logins = ctx.session.scalars(select(SipCredential.auth_username)
                                     .where(SipCredential.extension_id == row.id)
                                     .order_by(SipCredential.auth_username))
        return {"number": row.number, "display_name": row.display_name,
                "user": username_of(ctx.session, row.user_id), "ring_timeout": row.ring_timeout,
                "max_contacts": row.max_contacts, "sip_logins": list(logins)}

    def create_key(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> str:
        if key is None or not key.isalnum() or len(key) > 32:
            raise Invalid(f"extension {key!r} must be letters/digits, at most 32 characters",
                          field="number", fix="use a number such as 104")
        return key

    def normalise(self, ctx: ApplyContext, action: str, key: str | None,
                  fields: Mapping[str, Any], row: Any | None) -> dict[str, Any]:
        unknown_fields(self, fields, {"display_name", "user", "ring_timeout", "max_contacts",
                                      "sip_password"})
        out: dict[str, Any] = {}
        _present(fields, out, "display_name",
                 text_field(fields, "display_name", required=action == "create"))
        if fields.get("user") is not None:
            out["user"] = user_by_name(ctx, str(fields["user"]), "user").username
        elif "user" in fields:
            out["user"] = None
        _present(fields, out, "ring_timeout", int_field(fields, "ring_timeout", 1, 600))
        if fields.get("max_contacts", 0) is None:
            raise Invalid("max_contacts cannot be empty", field="max_contacts",
                          fix="give how many phones may register, 1 to 100")
        _present(fields, out, "max_contacts", int_field(fields, "max_contacts", 1, 100))
        password = text_field(fields, "sip_password", max_length=128)
        if password is not None:
            if len(password) < 6:
                raise Invalid("sip_password is shorter than 6 characters", field="sip_password",
                              fix="use at least 6 characters")
            realm = ctx.tenant.sip_domain
            ha1 = repo.compute_ha1(key or "", realm, password)
            out["sip_login"] = {"realm": realm, "ha1_md5": ha1.md5, "ha1_sha256": ha1.sha256}
        if action == "create" and self.load(ctx, key or "") is not None:
            raise Conflict(f"extension {key} already exists in tenant {ctx.tenant.slug}",
                           field="number", fix="choose another number")
        return out

    def create(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> Extension:
        extension = Extension(tenant_id=ctx.tenant_id, number=key,
                              display_name=fields["display_name"])
        ctx.session.add(extension)
        ctx.session.flush()
        self.update(ctx, extension, {k: v for k, v in fields.items() if k != "display_name"})
        return extension

    def update(self, ctx: ApplyContext, row: Extension, fields: Mapping[str, Any]) -> None:
        for name, value in fields.items():
            if name == "user":
                row.user_id = user_by_name(ctx, value, "user").id if value else None
            elif name == "sip_login":
                _set_sip_login(ctx.session, row, value)
            else:
                setattr(row, name, value)


def _set_sip_login(session: Session, extension: Extension, login: Mapping[str, str]) -> None:
    """Create or replace the device login named after the extension number."""
    credential = session.scalar(select(SipCredential).where(
        SipCredential.tenant_id == extension.tenant_id,
        SipCredential.auth_username == extension.number))
    if credential is None:
        credential = SipCredential(tenant_id=extension.tenant_id, extension_id=extension.id,
                                   auth_username=extension.number)
        session.add(credential)
    credential.realm = login["realm"]
    credential.ha1_md5 = login["ha1_md5"]
    credential.ha1_sha256 = login["ha1_sha256"]


class GroupKind(ResourceKind):
    name = "group"
    title = "group"
    read_only_fields = frozenset({"name"})
    _FIELDS = frozenset({"display_name", "site", "features", "members", "has_mailbox",
                         "mailbox_checker"})

    def load(self, ctx: ApplyContext, key: str) -> UserGroup | None:
        return ctx.session.scalar(select(UserGroup).where(UserGroup.tenant_id == ctx.tenant_id,
                                                          UserGroup.name == key))

    def key_of(self, row: UserGroup) -> str:
        return row.name

    def snapshot(self, ctx: ApplyContext, row: UserGroup) -> dict[str, Any]:
        members = ctx.session.scalars(select(User.username).join(
            GroupMember, GroupMember.user_id == User.id).where(GroupMember.group_id == row.id)
            .order_by(User.username))
        return {"name": row.name, "display_name": row.display_name,
                "site": site_slug_of(ctx.session, row.site_id),
                "features": sorted(row.features or []), "members": list(members),
                "has_mailbox": row.has_mailbox,
                "mailbox_checker": username_of(ctx.session, row.mailbox_checker_id)}

    def site_id(self, ctx: ApplyContext, row: UserGroup | None,
                fields: Mapping[str, Any]) -> int | None:
        current = row.site_id if row is not None else None
        if "site" not in fields:
            return current
        wanted = site_by_slug(ctx, fields["site"], "site").id if fields["site"] else None
        return wanted if row is None or wanted == current else None

    def field_domain(self, field: str, old: Any, new: Any) -> set[Domain]:
        if field != "features":
            return super().field_domain(field, old, new)
        toggled = set(old or []) ^ set(new or [])
        return {GROUP_FEATURES[f] for f in toggled if f in GROUP_FEATURES} or {Domain.BUSINESS}

    def create_key(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> str:
        return slug_key(self, key)

    def normalise(self, ctx: ApplyContext, action: str, key: str | None,
                  fields: Mapping[str, Any], row: Any | None) -> dict[str, Any]:
        unknown_fields(self, fields, set(self._FIELDS))
        out: dict[str, Any] = {}
        _present(fields, out, "display_name",
                 text_field(fields, "display_name", required=action == "create"))
        if "site" in fields:
            out["site"] = site_by_slug(ctx, fields["site"], "site").slug if fields["site"] else None
        if "features" in fields:
            out["features"] = _features(fields["features"])
        if "members" in fields:
            names = fields["members"] or []
            if not isinstance(names, list) or len(set(map(str, names))) != len(names):
                raise Invalid("members must be a list of distinct usernames", field="members",
                              fix='send e.g. ["alice", "bob"]')
            out["members"] = sorted(user_by_name(ctx, str(n), "members").username for n in names)
        _present(fields, out, "has_mailbox", bool(_bool_field(fields, "has_mailbox")))
        if fields.get("mailbox_checker") is not None:
            checker = user_by_name(ctx, str(fields["mailbox_checker"]), "mailbox_checker")
            out["mailbox_checker"] = checker.username
        elif "mailbox_checker" in fields:
            out["mailbox_checker"] = None
        if action == "create" and self.load(ctx, key or "") is not None:
            raise Conflict(f"group {key!r} already exists", field="name",
                           fix="choose another name")
        return out

    def create(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> UserGroup:
        group = UserGroup(tenant_id=ctx.tenant_id, name=key, display_name=fields["display_name"],
                          features=[], has_mailbox=False)
        ctx.session.add(group)
        ctx.session.flush()
        self.update(ctx, group, {k: v for k, v in fields.items() if k != "display_name"})
        return group

    def update(self, ctx: ApplyContext, row: UserGroup, fields: Mapping[str, Any]) -> None:
        for name, value in fields.items():
            if name == "site":
                row.site_id = site_by_slug(ctx, value, "site").id if value else None
            elif name == "members":
                ctx.session.execute(delete(GroupMember).where(GroupMember.group_id == row.id))
                for username in value:
                    user = user_by_name(ctx, username, "members")
                    ctx.session.add(GroupMember(group_id=row.id, user_id=user.id))
            elif name == "mailbox_checker":
                row.mailbox_checker_id = user_by_name(ctx, value, name).id if value else None
            elif name == "features":
                row.features = list(value)
            else:
                setattr(row, name, value)


def _features(value: Any) -> list[str]:
    if not isinstance(value, list) or any(f not in GROUP_FEATURES for f in value):
        raise Invalid(f"features {value!r} has unknown entries", field="features",
                      fix=f"use only: {', '.join(GROUP_FEATURES)}")
    return sorted(set(value))


for _kind in (TenantKind(), SiteKind(), UserKind(), ExtensionKind(), GroupKind()):
    register(_kind)
