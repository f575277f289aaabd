"""The registrar (RFC 3261 §10): REGISTER -> location bindings.

Authentication happens before this is called (the engine passes the authenticated extension).
This module decides expiry, adds/refreshes/removes bindings and builds the 200 listing the
current contacts. Bindings remember where the REGISTER came from, so phones behind NAT are
reached at their public address and port. No I/O, no clock.
"""

from __future__ import annotations

from frontdesk.pbx.directory import ExtensionInfo
from frontdesk.pbx.location import Binding, LocationService
from frontdesk.sip.errors import SipParseError
from frontdesk.sip.message import Request, Response, make_response
from frontdesk.sip.peer import Peer
from frontdesk.sip.transaction import new_tag
from frontdesk.sip.uri import NameAddr


class Registrar:
    def __init__(
        self,
        location: LocationService,
        *,
        min_expires: int = 60,
        max_expires: int = 7200,
        default_expires: int = 3600,
    ) -> None:
        self.location = location
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires

    def register(
        self, req: Request, extension: ExtensionInfo, source: Peer, now: float
    ) -> Response:
        """Apply a REGISTER for ``extension`` and return the response to send."""
        tenant_id, aor = extension.tenant_id, extension.number
        header_expires = req.headers.get("Expires")
        if req.is_star_contact:
            if header_expires != "0":
                return _error(req, 400, "Bad Request: Contact * needs Expires: 0")
            self.location.remove_all(tenant_id, aor)
            return self._ok(req, tenant_id, aor, now)
        try:
            contacts = req.contacts
        except SipParseError as e:
            return _error(req, 400, f"Bad Request: bad Contact ({e.reason[:80]})")
        cseq = req.cseq.number
        for contact in contacts:
            expires = self._expires(contact, header_expires)
            if 0 < expires < self.min_expires:
                resp = _error(req, 423, "Interval Too Brief")
                resp.headers.add("Min-Expires", str(self.min_expires))
                return resp
        for contact in contacts:
            expires = self._expires(contact, header_expires)
            uri = str(contact.uri)
            existing = self.location.find(tenant_id, aor, uri)
            if existing is not None and existing.call_id == req.call_id and existing.cseq >= cseq:
                continue  # out-of-order or retransmitted REGISTER (RFC 3261 §10.3 step 7)
            binding = Binding(
                tenant_id=tenant_id,
                aor=aor,
                contact_uri=uri,
                peer=source,
                expires_at=now + expires,
                call_id=req.call_id,
                cseq=cseq,
                user_agent=req.headers.get("User-Agent"),
                instance_id=_unquote(contact.param("+sip.instance")),
                reg_id=_int(contact.param("reg-id")),
                path=req.headers.get("Path"),
            )
            if expires == 0:
                self.location.remove(binding)
            else:
                self.location.save(binding, extension.max_contacts)
        return self._ok(req, tenant_id, aor, now)

    def _expires(self, contact: NameAddr, header: str | None) -> int:
        raw = contact.param("expires")
        if raw is None:
            raw = header
        if raw is None or not raw.isdigit():
            return self.default_expires
        return min(int(raw), self.max_expires)

    def _ok(self, req: Request, tenant_id: int, aor: str, now: float) -> Response:
        resp = make_response(req, 200, to_tag=new_tag())
        for b in self.location.lookup(tenant_id, aor, now):
            resp.headers.add("Contact", f"<{b.contact_uri}>;expires={b.expires_in(now)}")
        return resp


def _error(req: Request, status: int, reason: str) -> Response:
    return make_response(req, status, reason, to_tag=new_tag())


def _unquote(value: str | None) -> str | None:
    if value is not None and len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None
