"""Registering with a carrier: REGISTER for every trunk whose ``registration`` is on.

The carrier then knows where to send the DIDs' calls. Each trunk gets one registration
(fixed Call-ID, CSeq counting up): REGISTER → 401/407 answered once per attempt with digest
(``sip.auth.build_authorization``) → 2xx, refreshed before the granted expiry (half of it
for short ones, 30 s early for long ones). A refusal or a timeout is retried later
(``RETRY``). Every ``CHECK`` seconds the engine's snapshot is compared with what is
registered, so trunks added, changed or removed through the change path are followed
without a restart.

Sans-I/O like the rest of the engine: requests go through the transaction layer, time comes
in as ``now``. It must never log the password, and never raise into the engine.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from frontdesk.pbx.trunk_model import TrunkInfo
from frontdesk.sip.auth import build_authorization
from frontdesk.sip.auth_params import AuthParseError
from frontdesk.sip.dialog import new_call_id
from frontdesk.sip.headers import Headers
from frontdesk.sip.message import Request, Response
from frontdesk.sip.peer import Peer
from frontdesk.sip.transaction import ClientTransaction, new_branch, new_tag

if TYPE_CHECKING:
    from frontdesk.pbx.engine import SipEngine

log = logging.getLogger("frontdesk.trunks")

EXPIRES = 300  # what we ask for
RETRY = 60.0  # after a refusal or a timeout
CHECK = 5.0  # how often the snapshot is compared with what is registered


@dataclass(slots=True)
class Registration:
    """One trunk's registration at its carrier."""

    trunk: TrunkInfo
    call_id: str
    from_tag: str
    cseq: int = 0
    state: str = "new"  # new, registering, registered, failed
    expires_at: float = 0.0
    challenged: bool = False
    timer: int | None = None
    last_status: int | None = None


class TrunkRegistrar:
    """Keeps each registering trunk registered at its carrier."""

    def __init__(self, engine: SipEngine) -> None:
        self.engine = engine
        self.registrations: dict[tuple[int, str], Registration] = {}
        self._pending: dict[str, Registration] = {}  # by REGISTER client transaction id
        self._started = False

    def start(self, now: float) -> None:
        """Register every trunk that asks for it, and follow configuration changes."""
        if not self._started:
            self._started = True
            self._check(None, now)

    def _check(self, _subject: object, now: float) -> None:
        wanted = {(t.tenant_id, t.name): t for t in getattr(self.engine.directory, "trunks", ())
                  if t.register and t.username and t.password is not None}
        for key, reg in list(self.registrations.items()):
            if wanted.get(key) != reg.trunk:  # removed or changed: forget it
                self.engine.timers.cancel(reg.timer)
                del self.registrations[key]
        for key, trunk in wanted.items():
            if key not in self.registrations:
                reg = Registration(trunk, new_call_id(), new_tag())
                self.registrations[key] = reg
                self._send(reg, None, now)
        self.engine.timers.add(now + CHECK, self._check, None)

    def _send(self, reg: Registration, authorization: tuple[str, str] | None,
              now: float) -> None:
        trunk = reg.trunk
        via_host = self.engine.calls.via_host
        peer = Peer(trunk.transport, trunk.host, trunk.port)
        reg.cseq += 1
        uri = f"sip:{trunk.host}:{trunk.port}"
        h = Headers()
        h.add("Via", f"SIP/2.0/{peer.transport.upper()} {via_host};branch={new_branch()};rport")
        h.add("Max-Forwards", "70")
        h.add("From", f"<sip:{trunk.username}@{trunk.host}>;tag={reg.from_tag}")
        h.add("To", f"<sip:{trunk.username}@{trunk.host}>")
        h.add("Call-ID", reg.call_id)
        h.add("CSeq", f"{reg.cseq} REGISTER")
        h.add("Contact", f"<sip:{trunk.username}@{via_host}>")
        h.add("Expires", str(EXPIRES))
        if authorization is not None:
            h.add(*authorization)
        request = Request("REGISTER", uri, h)
        ctx = self.engine.tx.send_request(request, peer, now)
        self._pending[ctx.id] = reg
        if authorization is None:
            reg.challenged = False
        if reg.state != "registered":
            reg.state = "registering"

    # --- the engine's hooks ----------------------------------------------------------------
    def on_response(self, ctx: ClientTransaction, resp: Response, now: float) -> bool:
        """A response to one of our REGISTERs; False when the transaction is not ours."""
        reg = self._pending.get(ctx.id)
        if reg is None:
            return False
        if resp.status < 200:
            return True
        del self._pending[ctx.id]
        reg.last_status = resp.status
        if reg.trunk is not self._current(reg):
            return True  # the trunk changed meanwhile: _check registers the new one
        if resp.status < 300:
            self._registered(reg, resp, now)
        elif resp.status in (401, 407) and not reg.challenged and self._answer(reg, ctx, resp,
                                                                               now):
            reg.challenged = True
        else:
            self._retry(reg, f"the carrier answered {resp.status} {resp.reason}", now)
        return True

    def on_timeout(self, ctx: ClientTransaction, now: float) -> bool:
        reg = self._pending.pop(ctx.id, None)
        if reg is None:
            return False
        self._retry(reg, "the carrier did not answer", now)
        return True

    # --- steps -----------------------------------------------------------------------------
    def _current(self, reg: Registration) -> TrunkInfo | None:
        found = self.registrations.get((reg.trunk.tenant_id, reg.trunk.name))
        return found.trunk if found is reg else None

    def _answer(self, reg: Registration, ctx: ClientTransaction, resp: Response,
                now: float) -> bool:
        trunk = reg.trunk
        proxy = resp.status == 407
        challenge = resp.headers.get("Proxy-Authenticate" if proxy else "WWW-Authenticate")
        if not challenge or trunk.username is None or trunk.password is None:
            return False
        try:
            value = build_authorization(challenge, "REGISTER", ctx.request.uri, trunk.username,
                                        trunk.password, secrets.token_hex(8))
        except (AuthParseError, ValueError) as e:
            log.warning("trunk %s: cannot answer the carrier's REGISTER challenge: %s",
                        trunk.name, e)
            return False
        self._send(reg, ("Proxy-Authorization" if proxy else "Authorization", value), now)
        return True

    def _registered(self, reg: Registration, resp: Response, now: float) -> None:
        granted = _granted(resp) or EXPIRES
        reg.state = "registered"
        reg.expires_at = now + granted
        refresh = granted / 2 if granted <= 60 else granted - 30
        self.engine.timers.cancel(reg.timer)
        reg.timer = self.engine.timers.add(now + refresh, self._refresh, reg)
        log.info("trunk %s: registered at %s for %d s", reg.trunk.name, reg.trunk.host, granted)

    def _refresh(self, reg: Registration, now: float) -> None:
        reg.timer = None
        if self._current(reg) is reg.trunk:
            self._send(reg, None, now)

    def _retry(self, reg: Registration, why: str, now: float) -> None:
        reg.state = "failed"
        log.warning("trunk %s: registration failed (%s); retrying in %d s", reg.trunk.name, why,
                    int(RETRY))
        self.engine.timers.cancel(reg.timer)
        reg.timer = self.engine.timers.add(now + RETRY, self._refresh, reg)


def _granted(resp: Response) -> int | None:
    """The expiry the registrar granted: the Contact's expires parameter, else Expires."""
    for contact in resp.headers.get_all("Contact"):
        for part in contact.split(";")[1:]:
            name, _, value = part.partition("=")
            if name.strip().lower() == "expires" and value.strip().isdigit():
                return int(value.strip())
    expires = resp.headers.get("Expires")
    return int(expires) if expires and expires.strip().isdigit() else None
