"""SIP trunks as a resource kind of the one change path (``org.service``): ``trunk``.

A trunk is *infrastructure* (owned by the Technical Contact): the carrier's host, port and
transport, our credentials there, whether we register, the addresses the carrier sends
from, the DIDs it delivers (each to the main number's flow or an extension), the outbound
caller ID and the dial rules deciding which dialled numbers leave through it.

The password is a secret: it never appears in a snapshot, diff, version or audit row
(shown as "(secret)"). This kind must never check permissions, write audit rows or
versions, or commit — the service does that around it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from frontdesk.org.errors import Invalid
from frontdesk.org.resources import (
    SECRET,
    ApplyContext,
    ResourceKind,
    int_field,
    register,
    slug_key,
    text_field,
    unknown_fields,
)
from frontdesk.org.roles import Domain
from frontdesk.pbx.trunk_model import MAIN, TRANSPORTS, Trunk, e164_or_none
from frontdesk.store.models import TENANT_SETTING_DEFAULTS, Extension

_HOST_RE = re.compile(r"^[A-Za-z0-9.:\[\]-]{1,255}$")
_RULE_RE = re.compile(r"^(\+|[0-9*#]{1,4})$")
_FIELDS = frozenset({"host", "port", "transport", "username", "password", "registration",
                     "caller_id", "sources", "dids", "dial_rules"})


def _region(ctx: ApplyContext) -> str:
    settings = {**TENANT_SETTING_DEFAULTS, **(ctx.tenant.settings or {})}
    return str(settings.get("phone_region") or "US")


def _e164(ctx: ApplyContext, raw: Any, field: str) -> str:
    number = e164_or_none(raw, _region(ctx)) if isinstance(raw, str) else None
    if number is None:
        raise Invalid(f"{field} {raw!r} is not a phone number", field=field,
                      fix="write it in E.164 (+15551234567) or national form for the "
                      "tenant's phone_region")
    return number


def _sources(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise Invalid("sources must be a list of addresses or networks", field="sources",
                      fix='send e.g. ["203.0.113.5", "198.51.100.0/24"]')
    out: list[str] = []
    for text in raw:
        try:
            out.append(str(ipaddress.ip_network(text.strip(), strict=False)))
        except ValueError:
            raise Invalid(f"source {text!r} is not an IP address or network", field="sources",
                          fix="use an address (203.0.113.5) or a network (198.51.100.0/24)"
                          ) from None
    return out


def _destination(ctx: ApplyContext, did: str, raw: Any) -> str:
    if raw == MAIN:
        return MAIN
    number = raw[4:] if isinstance(raw, str) and raw.startswith("ext:") else None
    exists = number and ctx.session.scalar(select(Extension.id).where(
        Extension.tenant_id == ctx.tenant_id, Extension.number == number))
    if not exists:
        raise Invalid(f"DID {did}: destination {raw!r} is not the main number or an "
                      "existing extension", field="dids",
                      fix='use "main" (the main number\'s call flow) or "ext:<number>" of an '
                      "existing extension")
    return f"ext:{number}"


def _dids(ctx: ApplyContext, raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise Invalid("dids must map numbers to destinations", field="dids",
                      fix='send e.g. {"+15551230000": "main", "+15551230101": "ext:101"}')
    return {_e164(ctx, did, "dids"): _destination(ctx, str(did), dest)
            for did, dest in raw.items()}


def _rules(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(r, str) and _RULE_RE.match(r)
                                            for r in raw):
        raise Invalid(f"dial_rules {raw!r} are not valid", field="dial_rules",
                      fix='send a list of prefixes: "+" (E.164 as dialled) and/or a digit '
                      'such as "9" that is stripped before the national number')
    return list(raw)


class TrunkKind(ResourceKind):
    name = "trunk"
    title = "trunk"
    base_domain = Domain.INFRASTRUCTURE
    secret_fields = frozenset({"password"})
    read_only_fields = frozenset({"name", "password"})

    def load(self, ctx: ApplyContext, key: str) -> Trunk | None:
        return ctx.session.scalar(select(Trunk).where(Trunk.tenant_id == ctx.tenant_id,
                                                      Trunk.name == key))

    def key_of(self, row: Trunk) -> str:
        return row.name

    def snapshot(self, ctx: ApplyContext, row: Trunk) -> dict[str, Any]:
        return {"name": row.name, "host": row.host, "port": row.port,
                "transport": row.transport, "username": row.username,
                "password": SECRET if row.password else None, "registration": row.registration,
                "caller_id": row.caller_id, "sources": list(row.sources or []),
                "dids": dict(sorted((row.dids or {}).items())),
                "dial_rules": list(row.dial_rules or [])}

    def create_key(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> str:
        return slug_key(self, key)

    def normalise(self, ctx: ApplyContext, action: str, key: str | None,
                  fields: Mapping[str, Any], row: Any | None) -> dict[str, Any]:
        unknown_fields(self, fields, set(_FIELDS))
        creating = action == "create"
        out: dict[str, Any] = {}
        if creating or "host" in fields:
            host = text_field(fields, "host", required=True)
            if not host or not _HOST_RE.match(host):
                raise Invalid(f"host {host!r} is not a host name or address", field="host",
                              fix="give the carrier's SIP host, e.g. sip.carrier.example")
            out["host"] = host
        if "port" in fields:
            out["port"] = int_field(fields, "port", 1, 65535) or 5060
        elif creating:
            out["port"] = 5060
        if creating or "transport" in fields:
            transport = str(fields.get("transport") or "udp").lower()
            if transport not in TRANSPORTS:
                raise Invalid(f"transport {transport!r} is not supported", field="transport",
                              fix=f"use one of: {', '.join(TRANSPORTS)}")
            out["transport"] = transport
        for name in ("username", "password"):
            if name in fields:
                out[name] = text_field(fields, name, max_length=128, empty_ok=True) or None
        if "registration" in fields or creating:
            value = fields.get("registration", False)
            if not isinstance(value, bool):
                raise Invalid(f"registration must be true or false, not {value!r}",
                              field="registration", fix="send registration as a JSON boolean")
            out["registration"] = value
        if "caller_id" in fields:
            raw = fields["caller_id"]
            out["caller_id"] = _e164(ctx, raw, "caller_id") if raw else None
        if "sources" in fields or creating:
            out["sources"] = _sources(fields.get("sources", []))
        if "dids" in fields or creating:
            out["dids"] = _dids(ctx, fields.get("dids", {}))
        if "dial_rules" in fields or creating:
            out["dial_rules"] = _rules(fields.get("dial_rules", []))
        return out

    def create(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> Trunk:
        trunk = Trunk(tenant_id=ctx.tenant_id, name=key, **fields)
        ctx.session.add(trunk)
        return trunk

    def update(self, ctx: ApplyContext, row: Trunk, fields: Mapping[str, Any]) -> None:
        for name, value in fields.items():
            setattr(row, name, value)


register(TrunkKind())
