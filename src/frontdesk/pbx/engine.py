"""The SIP engine: every received message goes through here.

bytes -> parser -> transaction layer -> this dispatcher -> registrar / call manager / simple
answers (OPTIONS, 4xx/5xx). It owns authentication (digest, with the brute-force guard), the
checks RFC 3261 asks of a UAS before acting (URI scheme, Require, Content-Type, Max-Forwards),
and answering malformed requests with 400. It is synchronous and sans-I/O: outgoing bytes are
drained by the caller, time comes in as ``now``. A peer can never make it raise: errors are
answered or dropped and counted, and unexpected exceptions are logged and contained.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from frontdesk.pbx.calls import ALLOW, CallManager
from frontdesk.pbx.directory import Credential, Directory, TenantInfo
from frontdesk.pbx.flows import FlowRunner
from frontdesk.pbx.guard import AuthFailureGuard
from frontdesk.pbx.keepalive import Qualifier
from frontdesk.pbx.location import LocationService
from frontdesk.pbx.registrar import Registrar
from frontdesk.pbx.timers import Timers
from frontdesk.pbx.trunks import TrunkRouter
from frontdesk.sip.auth import DigestAuthenticator, parse_credentials
from frontdesk.sip.auth_params import AuthParseError
from frontdesk.sip.errors import SipParseError
from frontdesk.sip.message import Request, Response, make_response, parse_message
from frontdesk.sip.peer import Peer
from frontdesk.sip.transaction import (
    AckReceived,
    CancelReceived,
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    StrayResponse,
    TransactionLayer,
    TransactionTimedOut,
    new_tag,
)

if TYPE_CHECKING:  # media (issue #3)
    from frontdesk.pbx.endpoint import MediaEndpoint

log = logging.getLogger("frontdesk.engine")

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset()
KNOWN_METHODS = frozenset(
    (
        "INVITE",
        "ACK",
        "CANCEL",
        "BYE",
        "OPTIONS",
        "REGISTER",
        "INFO",
        "UPDATE",
        "NOTIFY",
        "MESSAGE",
        "SUBSCRIBE",
        "PUBLISH",
        "REFER",
        "PRACK",
    )
)
ACCEPTED_BODIES = ("application/sdp", "multipart/mixed", "multipart/alternative")


class SipEngine:
    """Registrar + B2BUA front door for all tenants."""

    def __init__(
        self,
        directory: Directory,
        location: LocationService,
        *,
        via_host: str,
        secret: bytes,
        cdr_sink: Callable[[dict[str, Any]], None],
        guard: AuthFailureGuard | None = None,
        wall_offset: float = 0.0,
    ) -> None:
        self.directory = directory
        self.location = location
        self.tx = TransactionLayer()
        self.timers = Timers()
        self._secret = secret
        self._authenticators: dict[tuple[str, ...], DigestAuthenticator] = {}
        self.guard = guard or AuthFailureGuard()
        self.registrar = Registrar(location)
        self.flows = FlowRunner(self)
        self.trunks = TrunkRouter(self)  # SIP trunks: carriers in and out

        def store_cdr(record: dict[str, Any]) -> None:
            self.flows.cdr_fields(record)  # the flow's path and shield decision
            self.trunks.cdr_fields(record)  # which trunk, which direction
            self.calls.transfers.cdr_fields(record)  # a call turned around by a transfer
            cdr_sink(record)

        self.calls = CallManager(
            self.tx, self.timers, via_host=via_host, cdr_sink=store_cdr, wall_offset=wall_offset
        )
        self.calls.on_challenge = self.trunks.on_challenge  # a carrier's 401/407
        self.calls.transfers.engine = self  # REFER targets: directory and location
        self.qualifier = Qualifier(self.tx, location, self.timers, via_host=via_host)
        self.stats: Counter[str] = Counter()
        self.endpoint: MediaEndpoint | None = None  # media (issue #3): MediaEndpoint.attach
        #: serve --sip-workers: given each parsed REGISTER (and its bytes and source), hands
        #: it to the process that owns its address-of-record and returns True, or returns
        #: False to handle it here (pbx/workers.py, pbx/sip_worker.py)
        self.affinity: Callable[[Request, bytes, Peer], bool] | None = None

    # --- the sans-I/O surface -------------------------------------------------------------
    def receive(self, data: bytes, source: Peer, now: float) -> None:
        """Handle one datagram or one framed stream message."""
        if self.guard.is_blocked(source.host, now):
            self.stats["dropped_blocked"] += 1
            return
        try:
            message = parse_message(data, stream=source.reliable)
        except SipParseError as e:
            self._malformed(e, source)
            return
        if (
            self.affinity is not None
            and isinstance(message, Request)
            and message.method == "REGISTER"
            and self.affinity(message, data, source)
        ):
            return
        try:
            events = self.tx.receive(message, source, now)
            for event in events:
                self._dispatch(event, now)
        except SipParseError as e:
            self._malformed(e, source, message if isinstance(message, Request) else None)
        except Exception:  # a bug of ours: contain it, never crash the server or hang a peer
            self.stats["internal_errors"] += 1
            log.exception(
                "internal error handling %r from %s:%s", message, source.host, source.port
            )

    def next_deadline(self) -> float | None:
        deadlines = [
            d for d in (self.tx.next_timer(), self.timers.next_deadline()) if d is not None
        ]
        return min(deadlines) if deadlines else None

    def on_timer(self, now: float) -> None:
        try:
            for event in self.tx.handle_timer(now):
                self._dispatch(event, now)
            self.timers.fire(now)
        except Exception:
            self.stats["internal_errors"] += 1
            log.exception("internal error in timers")

    def drain(self) -> list[tuple[bytes, Peer]]:
        return self.tx.drain()

    # --- dispatch -------------------------------------------------------------------------
    def _dispatch(self, event: object, now: float) -> None:
        if self.endpoint is not None and self.endpoint.on_event(event, now):  # media (issue #3)
            return
        if isinstance(event, RequestReceived):
            self._on_request(event.transaction, event.request, event.source, now)
        elif isinstance(event, ResponseReceived):
            tx, resp = event.transaction, event.response
            if (
                not self.qualifier.on_response(tx, resp.status)
                and not self.trunks.on_response(tx, resp, now)
                and not self.calls.on_relay_response(tx, resp, now)
            ):
                self.calls.on_leg_response(tx, resp, now)
        elif isinstance(event, AckReceived):
            self.calls.on_ack(event.request, now)
        elif isinstance(event, CancelReceived):
            self.calls.on_cancel(event.transaction, event.request, event.invite, now)
        elif isinstance(event, TransactionTimedOut):
            timed_out = event.transaction
            if not (
                isinstance(timed_out, ClientTransaction)
                and (
                    self.qualifier.on_timeout(timed_out)
                    or self.trunks.registrar.on_timeout(timed_out, now)
                )
            ):
                self.calls.on_timeout(timed_out, event.timer, now)
        elif isinstance(event, StrayResponse):
            self.stats["stray_responses"] += 1
            if self._sent_by_us(event.response):
                self.calls.on_stray_response(event.response, event.source, now)

    def _sent_by_us(self, response: Response) -> bool:
        """RFC 3261 §18.1.2: a response whose top Via is not one we write is discarded, never
        acted on (RFC 4475 §3.3.10; else any forged 2xx makes us send ACK and BYE)."""
        try:
            via = response.top_via
        except SipParseError:
            return False
        sent_by = via.host if via.port is None else f"{via.host}:{via.port}"
        return sent_by.lower() == self.calls.via_host.lower()

    def _malformed(self, e: SipParseError, source: Peer, partial: Request | None = None) -> None:
        self.stats["malformed"] += 1
        req = partial if partial is not None else e.partial
        if not isinstance(req, Request) or req.method == "ACK" or "Via" not in req.headers:
            self.stats["malformed_dropped"] += 1
            log.debug(
                "dropped malformed message from %s:%s: %s", source.host, source.port, e.reason
            )
            return
        reason = _phrase(e.reason)
        head = "Version Not Supported" if e.status == 505 else "Bad Request"
        try:
            resp = make_response(req, e.status, f"{head} ({reason})", to_tag=new_tag())
            resp.headers.add("Allow", ALLOW) if e.status == 405 else None
            self.tx.send_stateless(resp, source)
        except SipParseError:
            self.stats["malformed_dropped"] += 1

    def _answer(
        self,
        stx: ServerTransaction,
        req: Request,
        status: int,
        now: float,
        reason: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        resp = make_response(req, status, reason, to_tag=new_tag())
        for name, value in headers:
            resp.headers.add(name, value)
        self.tx.send_response(stx, resp, now)

    def _on_request(self, stx: ServerTransaction, req: Request, source: Peer, now: float) -> None:
        method = req.method
        if req.to_tag is not None:
            if not self.calls.on_in_dialog(stx, req, now):
                self._answer(stx, req, 481, now)
            return
        if method not in KNOWN_METHODS:
            self._answer(stx, req, 501, now, headers=(("Allow", ALLOW),))
            return
        if not self._checks_pass(stx, req, now):
            return
        if method == "REGISTER":
            self._on_register(stx, req, source, now)
        elif method == "OPTIONS":
            self._answer(
                stx,
                req,
                200,
                now,
                headers=(
                    ("Allow", ALLOW),
                    ("Accept", "application/sdp"),
                    ("Accept-Language", "en"),
                ),
            )
        elif method == "INVITE":
            self._on_invite(stx, req, source, now)
        elif method == "SUBSCRIBE" and self.endpoint is not None:  # media (issue #3): MWI
            self.endpoint.on_subscribe(stx, req, source, now)
        elif method == "BYE":
            self._answer(stx, req, 481, now)
        else:  # understood, but not outside a dialog: Allow must not offer it (§21.4.6)
            allow = ", ".join(m for m in ALLOW.split(", ") if m != method)
            self._answer(stx, req, 405, now, headers=(("Allow", allow),))

    def _checks_pass(self, stx: ServerTransaction, req: Request, now: float) -> bool:
        """RFC 3261 §8.2.2-8.2.3 checks before a UAS acts on a request."""
        scheme = req.uri.partition(":")[0].lower()
        if scheme not in ("sip", "sips"):
            self._answer(stx, req, 416, now)
            return False
        unsupported = [
            o for o in req.headers.values("Require") if o.lower() not in SUPPORTED_EXTENSIONS
        ]
        if unsupported:
            self._answer(stx, req, 420, now, headers=(("Unsupported", ", ".join(unsupported)),))
            return False
        if req.method == "INVITE" and req.body:
            ctype = req.content_type
            if ctype and ctype not in ACCEPTED_BODIES:
                self._answer(stx, req, 415, now, headers=(("Accept", "application/sdp"),))
                return False
            accept = req.headers.values("Accept")
            if accept and not any(
                a.split(";")[0].strip().lower() in ("application/sdp", "application/*", "*/*")
                for a in accept
            ):
                self._answer(stx, req, 406, now, headers=(("Accept", "application/sdp"),))
                return False
        return True

    # --- authentication -------------------------------------------------------------------
    def authenticator(self, tenant: TenantInfo) -> DigestAuthenticator:
        """The digest authenticator offering the tenant's algorithms (shared secret)."""
        algorithms = tenant.digest_algorithms
        auth = self._authenticators.get(algorithms)
        if auth is None:
            auth = DigestAuthenticator(self._secret, algorithms=algorithms)
            self._authenticators[algorithms] = auth
        return auth

    def _authenticate(
        self, stx: ServerTransaction, req: Request, tenant: TenantInfo, source: Peer, now: float
    ) -> Credential | None:
        """The credential that signed ``req``, or None after answering 401/407."""
        proxy = req.method != "REGISTER"
        header = "Proxy-Authorization" if proxy else "Authorization"
        for value in req.headers.get_all(header):
            try:
                creds = parse_credentials(value)
            except AuthParseError:
                self._answer(stx, req, 400, now, reason="Bad Request (malformed credentials)")
                return None
            if creds is None or creds.realm != tenant.realm:
                continue
            cred = self.directory.credential(tenant.id, creds.username)
            result = self.authenticator(tenant).verify(
                creds, req.method, tenant.realm, now, _ha1_lookup(cred)
            )
            if result.ok and cred is not None:
                self.guard.record_success(source.host, now)
                return cred
            if result.failed_attempt:
                self.stats["auth_failures"] += 1
                if self.guard.record_failure(source.host, now):
                    log.warning(
                        "blocking %s after repeated failed authentication (last user %r)",
                        source.host,
                        creds.username,
                    )
            self._challenge(stx, req, tenant, now, stale=result.stale)
            return None
        self._challenge(stx, req, tenant, now)
        return None

    def _challenge(
        self,
        stx: ServerTransaction,
        req: Request,
        tenant: TenantInfo,
        now: float,
        stale: bool = False,
    ) -> None:
        proxy = req.method != "REGISTER"
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        values = self.authenticator(tenant).challenge(tenant.realm, now, stale=stale)
        self._answer(stx, req, 407 if proxy else 401, now, headers=tuple((name, v) for v in values))

    def _trusted(self, tenant: TenantInfo, source: Peer) -> bool:
        return tenant.allow_unauthenticated_loopback and _is_loopback(source.host)

    # --- REGISTER and INVITE --------------------------------------------------------------
    def _on_register(self, stx: ServerTransaction, req: Request, source: Peer, now: float) -> None:
        user, host = req.to_user_host
        tenant = self.directory.tenant_for_host(host)
        if tenant is None:
            self._answer(stx, req, 404, now, reason="Not Found (unknown domain)")
            return
        aor = user or ""
        if self._trusted(tenant, source):
            extension = self.directory.extension(tenant.id, aor)
        else:
            cred = self._authenticate(stx, req, tenant, source, now)
            if cred is None:
                return
            if cred.extension_number != aor:
                self._answer(
                    stx,
                    req,
                    403,
                    now,
                    reason="Forbidden (credentials are for "
                    f"extension {cred.extension_number}, not {aor[:32]})",
                )
                return
            extension = self.directory.extension(tenant.id, aor)
        if extension is None:
            self._answer(stx, req, 404, now)
            return
        self.tx.send_response(stx, self.registrar.register(req, extension, source, now), now)
        self.stats["registers"] += 1

    def _on_invite(self, stx: ServerTransaction, req: Request, source: Peer, now: float) -> None:
        ruri = req.ruri
        tenant = self.directory.tenant_for_host(ruri.host)
        if self.trunks.inbound(stx, req, source, now):
            return  # from a carrier's address: routed by DID, never challenged
        if tenant is None:
            self._answer(stx, req, 404, now, reason="Not Found (unknown domain)")
            return
        if self._trusted(tenant, source):
            caller = req.from_.uri.user or "anonymous"
        else:
            cred = self._authenticate(stx, req, tenant, source, now)
            if cred is None:
                return
            caller = cred.extension_number
        mf = req.headers.get("Max-Forwards")
        if mf is not None and int(mf) == 0:
            self._answer(stx, req, 483, now)
            return
        if self.endpoint is not None and self.endpoint.on_invite(stx, req, tenant, caller, now):
            return  # media (issue #3): voicemail, *97, menus answer it themselves
        dialled = ruri.user or ""
        if self.flows.wants(tenant, dialled):  # the main number: the tenant's call flow
            caller_ext = self.directory.extension(tenant.id, caller)
            name = caller_ext.display_name if caller_ext else req.from_.display_text
            self.flows.start(stx, req, tenant, caller, name, dialled, now)
            return
        callee = self.directory.extension(tenant.id, dialled)
        caller_ext = self.directory.extension(tenant.id, caller)
        caller_name = caller_ext.display_name if caller_ext else req.from_.display_text
        if callee is None:
            if not self.trunks.outbound(stx, req, tenant, caller, caller_name, dialled, now):
                self._answer(stx, req, 404, now)
            return
        bindings = [b for b in self.location.lookup(tenant.id, callee.number, now) if b.reachable]
        if not bindings:
            self._answer(stx, req, 480, now, reason="Temporarily Unavailable (not registered)")
            self._record_unreachable(stx, req, tenant, caller, caller_name, callee.number, now)
            return
        self.calls.start(stx, req, tenant, caller, caller_name, callee, bindings, now)

    def _record_unreachable(
        self,
        stx: ServerTransaction,
        req: Request,
        tenant: TenantInfo,
        caller: str,
        caller_name: str,
        callee: str,
        now: float,
    ) -> None:
        wall = now + self.calls.wall_offset
        self.calls.cdr_sink(
            {
                "id": _uuid(),
                "tenant_id": tenant.id,
                "call_id": req.call_id,
                "caller": caller,
                "caller_name": caller_name or None,
                "callee": callee,
                "callee_answered_by": None,
                "started_at": wall,
                "answered_at": None,
                "ended_at": wall,
                "disposition": "failed",
                "hangup_side": "system",
                "duration": 0.0,
                "billsec": 0.0,
                "sip_code": 480,
            }
        )


def _ha1_lookup(cred: Credential | None) -> Callable[[str, str], str | None]:
    """The stored HA1 of ``cred`` per algorithm (None for an unknown user)."""

    def lookup(_username: str, algorithm: str) -> str | None:
        return cred.ha1(algorithm) if cred is not None else None

    return lookup


@functools.lru_cache(maxsize=4096)
def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())


def _phrase(text: str) -> str:
    """Make a parser's explanation safe for a reason phrase (one line, printable)."""
    clean = "".join(c if 32 <= ord(c) < 127 else " " for c in text)
    return clean[:100]


__all__ = ["Response", "SipEngine"]
