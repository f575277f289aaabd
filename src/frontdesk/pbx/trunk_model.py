"""SIP trunks to a carrier (ITSP): the stored table, and the engine's read-only view of it.

``Trunk`` is the table (one row per trunk per tenant; written only by the ``trunk`` resource
kind in ``pbx/trunk_kind.py`` through ``org.service``). ``TrunkInfo`` is the frozen copy the
SIP hot path reads (loaded with the directory), with the pure decisions a call needs:
is this datagram from the carrier (``matches_source``), where does a dialled-in number go
(``destination``), does a dialled-out number leave through this trunk and as which E.164
number (``outbound_number``).

This module must never do I/O beyond the SQLAlchemy mapping, and the trunk password must
never leave it in a snapshot, a log line or a repr.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat
from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.ext.mutable import MutableDict, MutableList
from sqlalchemy.orm import Mapped, Session, mapped_column

from frontdesk.store.models import (
    TENANT_SETTING_DEFAULTS,
    Base,
    Tenant,
    UtcDateTime,
    json_type,
    utcnow,
)

TRANSPORTS = ("udp", "tcp")
#: A DID's destination: the main number's flow, or ``ext:<number>`` for an extension.
MAIN = "main"


class Trunk(Base):
    """A SIP trunk: the carrier's address, our credentials there, DIDs and dial rules."""

    __tablename__ = "trunks"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=5060)
    transport: Mapped[str] = mapped_column(String(8), default="udp")
    username: Mapped[str | None] = mapped_column(String(128), nullable=True)
    #: kept in clear: answering the carrier's digest challenge needs it (never in snapshots)
    password: Mapped[str | None] = mapped_column(String(255), nullable=True)
    registration: Mapped[bool] = mapped_column(Boolean, default=False)
    caller_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: addresses/networks the carrier sends from (``203.0.113.5``, ``198.51.100.0/24``)
    sources: Mapped[list[str]] = mapped_column(MutableList.as_mutable(json_type()), default=list)
    #: E.164 DID -> ``main`` or ``ext:<number>``
    dids: Mapped[dict[str, str]] = mapped_column(MutableDict.as_mutable(json_type()), default=dict)
    #: dialled prefixes that go out: ``+`` (E.164 as dialled), ``9`` (strip it, then national)
    dial_rules: Mapped[list[str]] = mapped_column(
        MutableList.as_mutable(json_type()), default=list
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


@functools.lru_cache(maxsize=4096)
def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an IP address (None for a name): parsed once per source address."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def e164_or_none(raw: str, region: str) -> str | None:
    """``raw`` as a valid E.164 number read with ``region`` for national forms, else None."""
    text = raw.strip()
    if not text or not any(c.isdigit() for c in text):
        return None
    try:
        parsed = phonenumbers.parse(text, region.upper())
    except NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


@dataclass(frozen=True, slots=True)
class TrunkInfo:
    """One trunk as the engine sees it (the password stays out of ``repr``)."""

    tenant_id: int
    name: str
    host: str
    port: int
    transport: str
    username: str | None
    password: str | None = field(repr=False)
    caller_id: str | None
    region: str
    sources: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    dids: dict[str, str]
    dial_rules: tuple[str, ...]
    register: bool = False

    def matches_source(self, host: str) -> bool:
        """True when a request from ``host`` comes from this carrier."""
        address = _address(host)
        return address is not None and any(address in network for network in self.sources)

    def destination(self, number: str) -> str | None:
        """Where a call to ``number`` (as the carrier sent it) goes, or None (not our DID)."""
        found = self.dids.get(number)
        if found is None:
            e164 = e164_or_none(number, self.region)
            found = self.dids.get(e164) if e164 else None
        return found

    def outbound_number(self, dialled: str) -> str | None:
        """The E.164 number ``dialled`` reaches through this trunk, or None (no rule matches)."""
        for rule in self.dial_rules:
            if rule == "+" and dialled.startswith("+"):
                return e164_or_none(dialled, self.region)
            if rule != "+" and dialled.startswith(rule) and len(dialled) > len(rule) + 2:
                rest = dialled[len(rule):]
                return e164_or_none(rest, self.region)
        return None


def load_trunks(session: Session) -> tuple[TrunkInfo, ...]:
    """Every trunk of every tenant, for the directory snapshot."""
    regions: dict[int, str] = {}
    trunks: list[TrunkInfo] = []
    for row in session.query(Trunk).order_by(Trunk.id):
        if row.tenant_id not in regions:
            tenant = session.get(Tenant, row.tenant_id)
            settings: dict[str, Any] = {**TENANT_SETTING_DEFAULTS, **((tenant.settings if tenant else None) or {})}
            regions[row.tenant_id] = str(settings.get("phone_region") or "US")
        trunks.append(
            TrunkInfo(
                tenant_id=row.tenant_id, name=row.name, host=row.host, port=row.port,
                transport=row.transport, username=row.username, password=row.password,
                caller_id=row.caller_id, region=regions[row.tenant_id],
                sources=tuple(ipaddress.ip_network(s, strict=False) for s in row.sources or ()),
                dids=dict(row.dids or {}), dial_rules=tuple(row.dial_rules or ()),
                register=bool(row.registration),
            )
        )
    return tuple(trunks)
