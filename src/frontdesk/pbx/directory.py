"""The call engine's read-only snapshot of configuration: tenants, extensions, credentials.

The SIP hot path must never wait on the database, so the engine reads this in-memory
snapshot, rebuilt from the database at start and whenever configuration changes
(`load_directory`). It never writes anything.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from frontdesk.store.models import TENANT_SETTING_DEFAULTS, Extension, SipCredential, Tenant


@dataclass(frozen=True, slots=True)
class TenantInfo:
    id: int
    slug: str
    name: str
    sip_domain: str
    is_default: bool
    ring_timeout: float
    allow_unauthenticated_loopback: bool
    digest_algorithms: tuple[str, ...] = ("MD5",)
    main_number: str = ""  # dialling it runs the tenant's call flow

    @property
    def realm(self) -> str:
        return self.sip_domain


@dataclass(frozen=True, slots=True)
class ExtensionInfo:
    tenant_id: int
    number: str
    display_name: str
    ring_timeout: float
    max_contacts: int


@dataclass(frozen=True, slots=True)
class Credential:
    tenant_id: int
    auth_username: str
    extension_number: str
    ha1_md5: str
    ha1_sha256: str

    def ha1(self, algorithm: str) -> str | None:
        alg = algorithm.upper()
        if alg in ("MD5", "MD5-SESS"):
            return self.ha1_md5
        if alg in ("SHA-256", "SHA-256-SESS"):
            return self.ha1_sha256
        return None


@dataclass(slots=True)
class Directory:
    tenants: dict[int, TenantInfo] = field(default_factory=dict)
    by_domain: dict[str, TenantInfo] = field(default_factory=dict)
    default: TenantInfo | None = None
    extensions: dict[tuple[int, str], ExtensionInfo] = field(default_factory=dict)
    credentials: dict[tuple[int, str], Credential] = field(default_factory=dict)
    #: per tenant with a main number or technicians: its flow and routing directory
    #: (pbx.flows.TenantRouting)
    routing: dict[int, Any] = field(default_factory=dict)
    #: SIP trunks of every tenant (pbx.trunk_model.TrunkInfo)
    trunks: tuple[Any, ...] = ()

    _host_cache: dict[str, TenantInfo | None] = field(default_factory=dict)

    def tenant_for_host(self, host: str) -> TenantInfo | None:
        """The tenant a request-URI/To host names: its SIP domain, or the default tenant
        when the host is an IP address (phones configured with the server's address)."""
        try:
            return self._host_cache[host]
        except KeyError:
            pass
        tenant = self._resolve_host(host)
        if len(self._host_cache) < 10_000:
            self._host_cache[host] = tenant
        return tenant

    def _resolve_host(self, host: str) -> TenantInfo | None:
        h = host.lower().strip("[]")
        tenant = self.by_domain.get(h)
        if tenant is not None:
            return tenant
        try:
            ipaddress.ip_address(h)
        except ValueError:
            return self.default if h in ("localhost",) else None
        return self.default

    def extension(self, tenant_id: int, number: str) -> ExtensionInfo | None:
        return self.extensions.get((tenant_id, number))

    def credential(self, tenant_id: int, username: str) -> Credential | None:
        return self.credentials.get((tenant_id, username))


def load_directory(session: Session) -> Directory:
    """Build a snapshot from the database."""
    d = Directory()
    for t in session.scalars(select(Tenant)):
        settings = {**TENANT_SETTING_DEFAULTS, **(t.settings or {})}
        info = TenantInfo(
            id=t.id,
            slug=t.slug,
            name=t.name,
            sip_domain=t.sip_domain.lower(),
            is_default=bool(t.default),
            ring_timeout=float(settings["ring_timeout"]),
            allow_unauthenticated_loopback=bool(settings["allow_unauthenticated_loopback"]),
            digest_algorithms=tuple(str(a).upper() for a in settings["digest_algorithms"]),
            main_number=str(settings.get("main_number") or ""),
        )
        d.tenants[t.id] = info
        d.by_domain[info.sip_domain] = info
        if info.is_default:
            d.default = info
    if d.default is None and len(d.tenants) == 1:
        d.default = next(iter(d.tenants.values()))
    ext_numbers: dict[int, str] = {}
    for e in session.scalars(select(Extension)):
        tenant = d.tenants[e.tenant_id]
        timeout = float(e.ring_timeout) if e.ring_timeout else tenant.ring_timeout
        d.extensions[(e.tenant_id, e.number)] = ExtensionInfo(
            e.tenant_id, e.number, e.display_name, timeout, e.max_contacts
        )
        ext_numbers[e.id] = e.number
    for c in session.scalars(select(SipCredential)):
        number = ext_numbers.get(c.extension_id)
        if number is None:
            continue
        d.credentials[(c.tenant_id, c.auth_username)] = Credential(
            c.tenant_id, c.auth_username, number, c.ha1_md5, c.ha1_sha256
        )
    for tenant in d.tenants.values():
        routing = load_routing(session, tenant.id, needed=bool(tenant.main_number))
        if routing is not None:
            d.routing[tenant.id] = routing
    from frontdesk.pbx.trunk_model import load_trunks

    d.trunks = load_trunks(session)
    return d


def load_routing(session: Session, tenant_id: int, needed: bool = True) -> Any:
    """The tenant's published flow (or the front-desk template) and routing directory.

    A tenant without a main number still needs them when it has technicians: the shield
    sends their shielded callers into the published flow. ``needed=False`` answers None for
    a tenant that has neither (nothing on it runs a flow)."""
    from datetime import UTC, datetime

    from frontdesk.pbx.flows import TenantRouting
    from frontdesk.routing import versions
    from frontdesk.routing.directory import load_directory as load_routing_directory
    from frontdesk.routing.evaluate import prepare

    people = load_routing_directory(session, tenant_id)
    if not needed and not people.technicians:
        return None
    loaded = versions.load_flow(session, tenant_id)
    prepare(loaded.document, datetime.now(UTC))
    return TenantRouting(loaded.document, people, loaded.label)
