"""SIP trunks in the call engine: calls coming in from a carrier, and calls going out to it.

- **Inbound**: an INVITE whose source address belongs to a trunk is not challenged (carriers
  are matched by address); its Request-URI (or To) number is looked up in the trunk's DIDs:
  ``main`` runs the tenant's published call flow (the caller is an outside caller: caller
  lookup and the technician shield apply), ``ext:N`` rings extension N (a technician's
  extension meets the shield). An unknown DID is answered 404 with the reason. The caller ID
  is normalised to E.164 with the tenant's phone_region.
- **Outbound**: a number an extension dials that matches a trunk's dial rule, or a flow's
  transfer to an outside number, forks one B2BUA leg to the carrier with the E.164 number
  and the trunk's caller ID. A 401/407 from the carrier is answered once with digest
  credentials (``sip.auth.build_authorization``: qop=auth, nc, cnonce; MD5 or SHA-256) and
  the INVITE re-sent with CSeq+1; a second challenge fails the leg.
- The CDR says which trunk and direction (``extra.trunk``).

Like the rest of the engine this is sans-I/O: it sends through the transaction layer, time
comes in as ``now``. It must never log or expose a trunk's password, and never let a
carrier's address bypass authentication for anything but a call to one of its DIDs.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from frontdesk.pbx.calls import ALLOW, BLeg, Call
from frontdesk.pbx.directory import ExtensionInfo, TenantInfo
from frontdesk.pbx.location import Binding
from frontdesk.pbx.trunk_model import MAIN, TrunkInfo, e164_or_none
from frontdesk.pbx.trunk_register import TrunkRegistrar
from frontdesk.sip.auth import build_authorization
from frontdesk.sip.auth_params import AuthParseError
from frontdesk.sip.headers import Headers
from frontdesk.sip.message import Request, Response, make_response
from frontdesk.sip.peer import Peer
from frontdesk.sip.transaction import (
    ClientTransaction,
    ServerTransaction,
    new_branch,
    new_tag,
)

if TYPE_CHECKING:
    from frontdesk.pbx.engine import SipEngine

log = logging.getLogger("frontdesk.trunks")

#: How long an outside number rings before the call (or the flow step) gives up.
OUTSIDE_RING_TIMEOUT = 60.0


@dataclass(slots=True)
class _TrunkLeg:
    trunk: TrunkInfo
    number: str
    challenged: bool = False


class TrunkRouter:
    """The engine's trunk calls: matching inbound INVITEs, forking outbound legs."""

    def __init__(self, engine: SipEngine) -> None:
        self.engine = engine
        self._legs: dict[str, _TrunkLeg] = {}  # by B-leg INVITE transaction id
        self._cdr: dict[str, dict[str, Any]] = {}  # by A-leg Call-ID: extra.trunk
        self.registrar = TrunkRegistrar(engine)  # REGISTER at carriers that want it
        #: B-leg Call-ID -> trunk, for requests the carrier challenges inside the dialog
        self._dialogs: dict[str, TrunkInfo] = {}

    def _trunks(self) -> tuple[TrunkInfo, ...]:
        return getattr(self.engine.directory, "trunks", ())

    def from_carrier(self, host: str) -> TrunkInfo | None:
        """The trunk whose carrier sends from ``host``, if any."""
        for trunk in self._trunks():
            if trunk.matches_source(host):
                return trunk
        return None

    # --- inbound ---------------------------------------------------------------------------
    def inbound(self, stx: ServerTransaction, req: Request, source: Peer, now: float) -> bool:
        """Route an INVITE from a carrier by DID; False when ``source`` is no carrier."""
        trunk = self.from_carrier(source.host)
        if trunk is None:
            return False
        if (req.headers.get("Max-Forwards") or "").strip() == "0":
            self._answer(stx, req, 483, now, "Too Many Hops")
            return True
        engine = self.engine
        tenant = engine.directory.tenants.get(trunk.tenant_id)
        dialled = req.ruri.user or ""
        destination = trunk.destination(dialled) if dialled else None
        if destination is None and req.to.uri.user:
            dialled = req.to.uri.user
            destination = trunk.destination(dialled)
        if tenant is None or destination is None:
            shown = "".join(c for c in dialled[:32] if c.isalnum() or c in "+*#")
            self._answer(stx, req, 404, now,
                         f"Not Found (number {shown or '(none)'} is not a DID of trunk "
                         f"{trunk.name})")
            return True
        raw = req.from_.uri.user or ""
        caller = e164_or_none(raw, trunk.region) or raw or "anonymous"
        name = req.from_.display_text
        did = e164_or_none(dialled, trunk.region) or dialled
        self._cdr[req.call_id] = {"name": trunk.name, "direction": "in", "number": did}
        target = tenant.main_number if destination == MAIN else destination.removeprefix("ext:")
        if destination == MAIN and not engine.flows.wants(tenant, target):
            self._answer(stx, req, 480, now,
                         "Temporarily Unavailable (the main number has no call flow)")
            return True
        if engine.flows.wants(tenant, target):  # the main number, or a shielded technician
            engine.flows.start(stx, req, tenant, caller, name, target, now)
            return True
        self._ring_extension(stx, req, tenant, caller, name, target, now)
        return True

    def _ring_extension(self, stx: ServerTransaction, req: Request, tenant: TenantInfo,
                        caller: str, name: str, number: str, now: float) -> None:
        engine = self.engine
        callee = engine.directory.extension(tenant.id, number)
        if callee is None:
            self._answer(stx, req, 404, now, f"Not Found (extension {number[:32]} is gone)")
            return
        bindings = [b for b in engine.location.lookup(tenant.id, number, now) if b.reachable]
        if not bindings:
            self._answer(stx, req, 480, now, "Temporarily Unavailable (not registered)")
            return
        engine.calls.start(stx, req, tenant, caller, name, callee, bindings, now)

    def _answer(self, stx: ServerTransaction, req: Request, status: int, now: float,
                reason: str) -> None:
        self.engine.tx.send_response(stx, make_response(req, status, reason, to_tag=new_tag()),
                                     now)

    # --- outbound --------------------------------------------------------------------------
    def outbound(self, stx: ServerTransaction, req: Request, tenant: TenantInfo, caller: str,
                 caller_name: str, dialled: str, now: float) -> bool:
        """Send a number an extension dialled out through the first trunk whose dial rules
        match it; False when none does."""
        for trunk in self._trunks():
            if trunk.tenant_id != tenant.id:
                continue
            number = trunk.outbound_number(dialled)
            if number is None:
                continue
            callee = ExtensionInfo(tenant.id, number, number, OUTSIDE_RING_TIMEOUT, 0)
            self._cdr[req.call_id] = {"name": trunk.name, "direction": "out", "number": number}
            call = self.engine.calls.start(stx, req, tenant, caller, caller_name, callee, [], now)
            self.fork(call, trunk, number, now)
            return True
        return False

    def transfer(self, walk: Any, number: str, now: float) -> bool:
        """A flow's transfer to an outside number: ring it through the tenant's first trunk
        (the number as the flow names it, normalised with the trunk's region). False when
        the tenant has no trunk or the number is not a phone number."""
        tenant: TenantInfo = walk.tenant
        trunk = next((t for t in self._trunks() if t.tenant_id == tenant.id), None)
        e164 = e164_or_none(number, trunk.region) if trunk is not None else None
        if trunk is None or e164 is None:
            return False
        calls = self.engine.calls
        came_in = self._cdr.get(walk.invite.call_id)
        if came_in is not None:  # a carrier's call the flow forwards: still an inbound call
            came_in["forwarded_to"] = e164
        else:
            self._cdr[walk.invite.call_id] = {"name": trunk.name, "direction": "out",
                                              "number": e164}
        if walk.call is None:
            target = ExtensionInfo(tenant.id, walk.dialled, tenant.name, OUTSIDE_RING_TIMEOUT, 0)
            walk.call = calls.start(walk.stx, walk.invite, tenant, walk.caller, walk.caller_name,
                                    target, [], now, walk=walk)
        else:
            calls.ring_more(walk.call, [], OUTSIDE_RING_TIMEOUT, now)
        self.fork(walk.call, trunk, e164, now)
        if walk.step is not None and walk.step.done:
            walk.finished = True  # a transfer out ends the flow: its answer is not an outcome
        return True

    def fork(self, call: Call, trunk: TrunkInfo, number: str, now: float) -> None:
        """One B leg to the carrier: R-URI sip:NUMBER@carrier, From the trunk's caller ID."""
        calls = self.engine.calls
        peer = Peer(trunk.transport, trunk.host, trunk.port)
        uri = f"sip:{number}@{trunk.host}:{trunk.port}"
        if trunk.transport == "tcp":
            uri += ";transport=tcp"
        binding = Binding(call.tenant.id, number, uri, peer, float("inf"), call.b_call_id, 1)
        a = call.a_invite
        mf = a.headers.get("Max-Forwards")
        h = Headers()
        h.add("Via", f"SIP/2.0/{peer.transport.upper()} {calls.via_host};branch={new_branch()};rport")
        h.add("Max-Forwards", str(int(mf) - 1 if mf and mf.isdigit() else 69))
        caller_id = trunk.caller_id or trunk.username or call.caller
        h.add("From", f"<sip:{caller_id}@{calls.via_host}>;tag={call.b_from_tag}")
        h.add("To", f"<sip:{number}@{trunk.host}>")
        h.add("Call-ID", call.b_call_id)
        h.add("CSeq", "1 INVITE")
        h.add("Contact", calls.contact(peer))
        h.add("Allow", ALLOW)
        if a.body:
            h.add("Content-Type", a.headers.get("Content-Type") or "application/sdp")
        invite = Request("INVITE", uri, h, a.body)
        ctx = calls.tx.send_request(invite, peer, now)
        leg = BLeg(binding, invite, ctx)
        call.legs.append(leg)
        calls.legs[ctx.id] = (call, leg)
        self._legs[ctx.id] = _TrunkLeg(trunk, number)
        self._dialogs[call.b_call_id] = trunk
        _trim(self._legs)  # legs answered without a challenge are never popped
        _trim(self._dialogs)  # nor dialogs that ended without our BYE

    def on_challenge(self, call: Call, leg: BLeg, resp: Response, now: float) -> bool:
        """Answer a carrier's 401/407 on a trunk leg once; False to let the leg fail."""
        info = self._legs.pop(leg.tx.id, None)
        if info is None or info.challenged or call.state != "ringing":
            return False
        invite = self._signed(info.trunk, leg.invite, resp, leg.binding.peer)
        if invite is None:
            log.warning("trunk %s: the carrier's %d cannot be answered (no challenge or no "
                        "credentials)", info.trunk.name, resp.status)
            return False
        calls = self.engine.calls
        calls.legs.pop(leg.tx.id, None)
        leg.invite = invite
        leg.tx = calls.tx.send_request(invite, leg.binding.peer, now)
        leg.state = "calling"
        calls.legs[leg.tx.id] = (call, leg)
        info.challenged = True
        self._legs[leg.tx.id] = info
        return True

    def on_response(self, ctx: ClientTransaction, resp: Response, now: float) -> bool:
        """Responses to our REGISTERs, and a carrier's 401/407 to a BYE we sent it (answered
        once with credentials); False when neither."""
        if self.registrar.on_response(ctx, resp, now):
            return True
        request = ctx.request
        if request.method != "BYE" or resp.status < 200:
            return False
        trunk = self._dialogs.pop(request.call_id, None)
        if trunk is None or resp.status not in (401, 407):
            return False
        retry = self._signed(trunk, request, resp, ctx.peer)
        if retry is not None:
            self.engine.tx.send_request(retry, ctx.peer, now)
        return True

    def _signed(self, trunk: TrunkInfo, request: Request, resp: Response,
                peer: Peer) -> Request | None:
        """``request`` again with CSeq+1, a new branch and the answer to ``resp``."""
        proxy = resp.status == 407
        challenge = resp.headers.get("Proxy-Authenticate" if proxy else "WWW-Authenticate")
        if not challenge or not trunk.username or trunk.password is None:
            return None
        try:
            authorization = build_authorization(challenge, request.method, request.uri,
                                                trunk.username, trunk.password,
                                                secrets.token_hex(8))
        except (AuthParseError, ValueError) as e:
            log.warning("trunk %s: cannot answer the carrier's challenge: %s", trunk.name, e)
            return None
        h = Headers()
        for name, value in request.headers:
            if name.lower() not in ("via", "cseq", "authorization", "proxy-authorization"):
                h.add(name, value)
        h.add("Via", f"SIP/2.0/{peer.transport.upper()} {self.engine.calls.via_host};"
              f"branch={new_branch()};rport")
        h.add("CSeq", f"{request.cseq.number + 1} {request.method}")
        h.add("Proxy-Authorization" if proxy else "Authorization", authorization)
        return Request(request.method, request.uri, h, request.body)

    # --- CDR -------------------------------------------------------------------------------
    def cdr_fields(self, record: dict[str, Any]) -> None:
        """Add ``extra.trunk`` (name, direction, number) to a trunk call's CDR."""
        trunk = self._cdr.get(record.get("call_id") or "")
        if trunk is None:
            return
        record["extra"] = {**(record.get("extra") or {}), "trunk": dict(trunk)}
        if record.get("ended_at") is not None:
            self._cdr.pop(record["call_id"], None)


#: How many trunk legs / dialogs are remembered (the oldest are forgotten first).
REMEMBERED = 4096


def _trim(table: dict[str, Any]) -> None:
    while len(table) > REMEMBERED:
        del table[next(iter(table))]
