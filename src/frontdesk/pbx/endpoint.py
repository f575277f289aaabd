"""Frontdesk's own media endpoint: a UAS that answers calls itself and runs a call script.

Voicemail, the voicemail number (*97), self-service menus and the echo test are calls that
Frontdesk answers instead of ringing a phone. The SIP engine hands such INVITEs here
(`on_invite`, after authentication), and the B2BUA hands over a caller whose callee did
not answer (`on_no_answer`). The endpoint answers with SDP (`media.negotiate`: no common
codec -> 488 with a Warning naming the codecs), binds an RTP port pair from the configured
range (none free -> 503), sends 200 OK at once, and starts the script as an asyncio task
on a `MediaSession`. It owns those dialogs: ACK, BYE, CANCEL, re-INVITE, INFO (dtmf-relay),
our 2xx never acknowledged (Timer L) — the engine offers it every transaction event first
(`on_event`). When the script ends, the endpoint sends BYE.

The engine is synchronous and sans-I/O while scripts are asyncio tasks: whatever a task
queues through the transaction layer (BYE, NOTIFY) is followed by ``wakeup()``, which the
server wires to its flush, so the datagrams leave at once. Time for those sends comes from
``now()`` (the loop's monotonic clock, the engine's clock too).

Services (voicemail, menus) decide *which* script runs (`MediaService`); this module never
knows what a mailbox is, and never touches the database or files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from frontdesk.media.clock import MediaClock
from frontdesk.media.negotiate import (
    NoCommonCodec,
    SdpParseError,
    answer_offer,
    make_offer,
    params_from_answer,
)
from frontdesk.media.rtp import MediaPortsExhausted, PortRange, RtpStream, StreamParams
from frontdesk.media.session import CallEnded, MediaSession
from frontdesk.pbx.calls import ALLOW
from frontdesk.pbx.directory import TenantInfo
from frontdesk.pbx.media_call import (
    CallScript,
    MediaCall,
    MediaService,
    cdr_record,
    failed_cdr_record,
)
from frontdesk.sip.dialog import Dialog
from frontdesk.sip.message import Request, make_response
from frontdesk.sip.transaction import (
    AckReceived,
    CancelReceived,
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    TransactionTimedOut,
    new_branch,
    new_tag,
)

if TYPE_CHECKING:
    from frontdesk.pbx.calls import Call
    from frontdesk.pbx.engine import SipEngine
    from frontdesk.pbx.mwi import MwiNotifier

log = logging.getLogger("frontdesk.endpoint")


class MediaEndpoint:
    """See the module docstring. ``attach()`` plugs it into the engine."""

    def __init__(
        self,
        engine: SipEngine,
        *,
        media_host: str,
        ports: PortRange,
        clock: MediaClock | None = None,
        now: Callable[[], float] | None = None,
        no_media_seconds: float = 20.0,
    ) -> None:
        self.engine = engine
        self.tx = engine.tx
        self.media_host = media_host
        self.ports = ports
        self.clock = clock or MediaClock()
        self.now = now or (lambda: asyncio.get_running_loop().time())
        self.no_media_seconds = no_media_seconds
        self.wakeup: Callable[[], None] = lambda: None
        self.services: list[MediaService] = []
        self.mwi: MwiNotifier | None = None
        self.by_dialog: dict[tuple[str, str], MediaCall] = {}
        self.by_invite: dict[str, MediaCall] = {}
        self._byes: set[str] = set()
        self._refers: dict[str, MediaCall] = {}
        self.handed_over: set[str] = set()  # calls the B2BUA took (pbx.callcontrol_live)
        self.answered = 0

    def attach(self) -> MediaEndpoint:
        self.engine.endpoint = self
        self.engine.calls.no_answer = self.on_no_answer
        return self

    # --- the engine's hooks ----------------------------------------------------------------
    def on_event(self, event: object, now: float) -> bool:
        """Offer a transaction event; True when it was ours and is handled."""
        if isinstance(event, RequestReceived):
            req = event.request
            if req.to_tag is None:
                return False
            call = self.by_dialog.get((req.call_id, req.to_tag))
            if call is not None:
                self._in_dialog(call, event.transaction, req, now)
                return True
            return self.mwi is not None and self.mwi.on_in_dialog(event.transaction, req, now)
        if isinstance(event, AckReceived):
            call = self.by_dialog.get((event.request.call_id, event.request.to_tag or ""))
            if call is not None:
                self._on_ack(call, event.request)
                return True
            return False
        if isinstance(event, CancelReceived):
            if event.invite is not None and event.invite.id in self.by_invite:
                resp = make_response(event.request, 200)  # too late: we answered already
                self.tx.send_response(event.transaction, resp, now)
                return True
            return False
        if isinstance(event, ResponseReceived):
            return self._on_response(event.transaction, event.response.status, now)
        if isinstance(event, TransactionTimedOut):
            return self._on_timeout(event.transaction, event.timer, now)
        return False

    def on_invite(
        self, stx: ServerTransaction, req: Request, tenant: TenantInfo, caller: str, now: float
    ) -> bool:
        """A new, authenticated INVITE: answer it when a service owns the number."""
        dialled = req.ruri.user or ""
        caller_ext = self.engine.directory.extension(tenant.id, caller)
        caller_name = caller_ext.display_name if caller_ext else req.from_.display_text
        script = self._script_for(tenant, dialled, caller)
        if script is None:
            callee = self.engine.directory.extension(tenant.id, dialled)
            if (
                callee is None
                # a technician's extension meets the shield first (pbx/flows.py): a caller
                # it lets through reaches the voicemail there, the others enter the flow
                or self.engine.flows.wants(tenant, dialled)
                or any(b.reachable for b in self.engine.location.lookup(tenant.id, dialled, now))
            ):
                return False
            script = self._script_for_unanswered(tenant, dialled)
            if script is None:
                return False
            log.info(
                "extension %s has no registered phone: %s goes to its voicemail", dialled, caller
            )
        self.answer(stx, req, tenant, caller, caller_name, dialled, script, now)
        return True

    def on_no_answer(self, call: Call, now: float) -> bool:
        """The B2BUA's callee did not answer: take the caller when a service wants to."""
        script = self._script_for_unanswered(call.tenant, call.callee)
        if script is None:
            return False
        log.info(
            "call %s: %s did not answer; %s goes to voicemail", call.id, call.callee, call.caller
        )
        self.answer(
            call.a_tx,
            call.a_invite,
            call.tenant,
            call.caller,
            call.caller_name,
            call.callee,
            script,
            now,
            to_tag=call.a_tag,
            call_id=call.id,
            started=call.started,
        )
        return True

    def on_subscribe(self, stx: ServerTransaction, req: Request, source: Any, now: float) -> None:
        if self.mwi is None:
            self.tx.send_response(stx, make_response(req, 489, to_tag=new_tag()), now)
            return
        self.mwi.on_subscribe(stx, req, source, now)

    def _script_for(self, tenant: TenantInfo, dialled: str, caller: str) -> CallScript | None:
        for service in self.services:
            script = service.script_for(tenant, dialled, caller)
            if script is not None:
                return script
        return None

    def _script_for_unanswered(self, tenant: TenantInfo, callee: str) -> CallScript | None:
        for service in self.services:
            script = service.script_for_unanswered(tenant, callee)
            if script is not None:
                return script
        return None

    # --- answering -------------------------------------------------------------------------
    def answer(
        self,
        stx: ServerTransaction,
        invite: Request,
        tenant: TenantInfo,
        caller: str,
        caller_name: str,
        dialled: str,
        script: CallScript,
        now: float,
        *,
        to_tag: str | None = None,
        call_id: str | None = None,
        started: float | None = None,
    ) -> MediaCall | None:
        """Answer ``invite`` with SDP and start ``script``; None after a failure answer."""
        call_id = call_id or str(uuid.uuid4())
        tag = to_tag or new_tag()
        session_id = str(secrets.randbelow(10**9))
        try:
            sockets = self.ports.bind_pair()
            port = int(sockets[0].getsockname()[1])
            try:
                body, params = self._sdp(invite, port, session_id)
            except (SdpParseError, NoCommonCodec):
                for sock in sockets:
                    sock.close()
                raise
        except (MediaPortsExhausted, SdpParseError, NoCommonCodec) as exc:
            status = self._refuse(stx, invite, exc, now, tag, f"from {caller} to {dialled}")
            self._cdr_failed(call_id, tenant, invite, caller, caller_name, dialled, status, now)
            return None
        dialog = self._accept(stx, invite, tag, body, now)
        call = MediaCall(
            call_id,
            tenant,
            caller,
            caller_name,
            dialled,
            invite,
            stx,
            dialog,
            script,
            started if started is not None else now,
            now,
            sockets,
            params,
            sdp_session=session_id,
        )
        self.by_dialog[(invite.call_id, tag)] = call
        self.by_invite[stx.id] = call
        self.answered += 1
        self._cdr(call, now)
        call.task = asyncio.get_running_loop().create_task(self._run(call))
        return call

    def _accept(
        self, stx: ServerTransaction, invite: Request, tag: str, body: bytes, now: float
    ) -> Dialog:
        """Send 200 OK with our SDP; the dialog it creates."""
        resp = make_response(invite, 200, to_tag=tag, body=body)
        resp.headers.add("Content-Type", "application/sdp")
        contact = self.engine.calls.contact(stx.peer)
        resp.headers.add("Contact", contact)
        resp.headers.add("Allow", ALLOW)
        self.tx.send_response(stx, resp, now)
        return Dialog.from_uas(invite, resp, contact, self.engine.calls.via_host, stx.peer)

    def _sdp(
        self, invite: Request, port: int, session_id: str
    ) -> tuple[bytes, StreamParams | None]:
        """Our answer to the INVITE's offer, or our offer when it came without one."""
        if invite.body:
            return answer_offer(
                invite.body, local_ip=self.media_host, local_port=port, session_id=session_id
            )
        return make_offer(local_ip=self.media_host, local_port=port, session_id=session_id), None

    def _refuse(
        self,
        stx: ServerTransaction,
        invite: Request,
        exc: Exception,
        now: float,
        tag: str,
        what: str,
    ) -> int:
        """Answer 503 (no RTP ports), 488 + Warning (no common codec) or 400 (bad SDP)."""
        if isinstance(exc, MediaPortsExhausted):
            log.error("call %s refused with 503: %s", what, exc)
            self._reject(stx, invite, 503, now, tag, "Service Unavailable (no RTP ports)")
            return 503
        reason = getattr(exc, "reason", str(exc))
        status = 488 if isinstance(exc, NoCommonCodec) else 400
        log.warning("call %s refused with %d: %s", what, status, reason)
        warning = f'305 {self.media_host} "{_quoted(reason)}"' if status == 488 else None
        self._reject(stx, invite, status, now, tag, None, warning)
        return status

    def _reject(
        self,
        stx: ServerTransaction,
        invite: Request,
        status: int,
        now: float,
        tag: str,
        reason: str | None,
        warning: str | None = None,
    ) -> None:
        resp = make_response(invite, status, reason, to_tag=tag)
        if warning is not None:
            resp.headers.add("Warning", warning)
        self.tx.send_response(stx, resp, now)

    # --- running a script --------------------------------------------------------------------
    async def _run(self, call: MediaCall) -> None:
        try:
            if call.params is None:  # delayed offer: the answer comes in the ACK
                await self._wait_for_answer(call)
            assert call.params is not None
            stream = RtpStream(call.params, self.clock, call.label, call.sockets)
            call.stream = stream
            await stream.start()
            call.session = MediaSession(stream, call.label, no_media_seconds=self.no_media_seconds)
            if call.ending is not None:
                call.session.end(call.ending, by_remote=call.peer_ended)
            log.info(
                "call %s answered by Frontdesk: %s/%d to %s:%d",
                call.label,
                call.params.codec,
                call.params.payload_type,
                *call.params.remote,
            )
            await call.script(call)
        except CallEnded:
            pass
        except Exception:
            log.exception("call %s: the call script failed; hanging up", call.label)
        finally:
            await self._finish(call)

    async def _wait_for_answer(self, call: MediaCall) -> None:
        for _ in range(320):  # 32 s, as long as Timer L waits for the ACK
            if call.params is not None or call.ending is not None:
                break
            await asyncio.sleep(0.1)
        if call.params is None:
            raise CallEnded(call.ending or "no-ack")

    async def _finish(self, call: MediaCall) -> None:
        session = call.session
        by_remote = call.peer_ended
        if session is not None:
            ending = session.ended
            by_remote = by_remote or (ending is not None and ending.by_remote)
            session.end("script", by_remote=False)
        if call.stream is not None:
            await call.stream.close()
        else:
            for sock in call.sockets:
                sock.close()
        key = (call.dialog.call_id, call.dialog.local_tag)
        if self.by_dialog.pop(key, None) is not None and not by_remote:
            self._send_bye(call)
        self.by_invite.pop(call.stx.id, None)
        if call.id in self.handed_over:  # bridged to a phone now: the B2BUA has its CDR
            self.handed_over.discard(call.id)
            self.wakeup()
            return
        self._cdr(call, self.now(), ended=True, side="caller" if by_remote else "system")
        self.wakeup()

    def _send_bye(self, call: MediaCall) -> None:
        bye = call.dialog.request("BYE", new_branch())
        ctx = self.tx.send_request(bye, call.dialog.peer, self.now())
        self._byes.add(ctx.id)

    def _ended_by_peer(self, call: MediaCall, reason: str) -> None:
        call.ending = call.ending or reason
        call.peer_ended = True
        if call.session is not None:
            call.session.end(reason, by_remote=True)
        self.by_dialog.pop((call.dialog.call_id, call.dialog.local_tag), None)

    async def transfer(self, call: MediaCall, target: str, timeout: float = 20.0) -> int:
        """Blind-transfer the caller to ``target`` (RFC 3515 REFER): their phone calls it
        through the engine like any call. Returns the final status the transfer reached (the
        REFER's error, or the new call's status from the NOTIFYs), 0 when the caller left
        our call first (usually: the new call was answered), 408 without an outcome."""
        # the host (and port) the caller reached us at, so its phone can reach it again
        ruri = call.invite.ruri
        host = f"[{ruri.host}]" if ":" in ruri.host else ruri.host
        hostport = f"{host}:{ruri.port}" if ruri.port else host
        req = call.dialog.request("REFER", new_branch())
        req.headers.add("Refer-To", f"<sip:{target}@{hostport}>")
        req.headers.add("Referred-By", f"<sip:{call.dialled}@{hostport}>")
        outcome: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        call.refer_outcome = outcome
        ctx = self.tx.send_request(req, call.dialog.peer, self.now())
        self._refers[ctx.id] = call
        self.wakeup()
        log.info("call %s: transferring the caller to %s", call.label, target)
        waiting: set[asyncio.Future[Any]] = {outcome}
        if call.session is not None:
            waiting.add(call.session.ended_future)
        await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if outcome.done():
            return outcome.result()
        return 0 if call.session is not None and call.session.ended is not None else 408

    # --- in-dialog ---------------------------------------------------------------------------
    def _in_dialog(self, call: MediaCall, stx: ServerTransaction, req: Request, now: float) -> None:
        if not call.dialog.accepts(req):
            self.tx.send_response(stx, make_response(req, 500, "Out Of Order CSeq"), now)
            return
        method = req.method
        if method == "BYE":
            self.tx.send_response(stx, make_response(req, 200), now)
            log.info("call %s: the caller hung up", call.label)
            self._ended_by_peer(call, "hangup")
        elif method == "INVITE" and self.engine.calls.control.pending_reinvite(call.dialog):
            self.tx.send_response(stx, make_response(req, 491), now)  # glare: ours is out
        elif method == "INVITE":
            self._reinvite(call, stx, req, now)
        elif method == "INFO":
            self._info(call, stx, req, now)
        elif method in ("OPTIONS", "UPDATE", "NOTIFY"):
            self.tx.send_response(stx, make_response(req, 200), now)
            if method == "NOTIFY":
                _refer_progress(call, req)
        else:
            resp = make_response(req, 405)
            resp.headers.add("Allow", ALLOW)
            self.tx.send_response(stx, resp, now)

    def _reinvite(self, call: MediaCall, stx: ServerTransaction, req: Request, now: float) -> None:
        port = int(call.sockets[0].getsockname()[1])
        call.sdp_version += 1
        try:
            if not req.body:
                raise SdpParseError("a re-INVITE without SDP is not supported here", 488)
            body, params = answer_offer(
                req.body,
                local_ip=self.media_host,
                local_port=port,
                session_id=call.sdp_session,
                version=call.sdp_version,
            )
        except (SdpParseError, NoCommonCodec) as exc:
            log.warning("call %s: re-INVITE refused with 488: %s", call.label, exc.reason)
            self.tx.send_response(stx, make_response(req, 488), now)
            return
        call.dialog.update_target(req)
        if call.stream is not None and params.remote != call.stream.remote:
            call.stream.remote = params.remote
        resp = make_response(req, 200, body=body)
        resp.headers.add("Content-Type", "application/sdp")
        resp.headers.add("Contact", call.dialog.local_contact)
        self.tx.send_response(stx, resp, now)

    def _info(self, call: MediaCall, stx: ServerTransaction, req: Request, now: float) -> None:
        self.tx.send_response(stx, make_response(req, 200), now)
        if (req.content_type or "") != "application/dtmf-relay" or call.session is None:
            return
        for line in req.body.decode("utf-8", "replace").splitlines():
            name, _, value = line.partition("=")
            if name.strip().lower() == "signal" and value.strip()[:1] in "0123456789*#ABCD":
                call.session.digit_received(value.strip()[:1].upper())

    def _on_ack(self, call: MediaCall, ack: Request) -> None:
        if call.acked:
            return
        call.acked = True
        if call.params is None:
            try:
                call.params = params_from_answer(ack.body)
            except (SdpParseError, NoCommonCodec) as exc:
                log.warning(
                    "call %s: the answer in the ACK is unusable (%s); hanging up",
                    call.label,
                    exc.reason,
                )
                call.ending = "bad-answer"

    def _on_response(self, ctx: ClientTransaction, status: int, now: float) -> bool:
        refer = self._refers.get(ctx.id)
        if refer is not None:
            if status >= 200:
                del self._refers[ctx.id]
            outcome = refer.refer_outcome
            if status >= 300 and outcome is not None and not outcome.done():
                outcome.set_result(status)
            return True
        if ctx.id in self._byes:
            if status >= 200:
                self._byes.discard(ctx.id)
            return True
        return self.mwi is not None and self.mwi.on_response(ctx, status, now)

    def _on_timeout(
        self, txn: ClientTransaction | ServerTransaction, timer: str, now: float
    ) -> bool:
        if txn.id in self._byes:
            self._byes.discard(txn.id)
            return True
        refer = self._refers.pop(txn.id, None)
        if refer is not None:
            if refer.refer_outcome is not None and not refer.refer_outcome.done():
                refer.refer_outcome.set_result(408)
            return True
        call = self.by_invite.get(txn.id)
        if call is not None:
            if timer == "L" and not call.acked:
                log.warning(
                    "call %s: no ACK for our 200 OK within 32 s; ending the call", call.label
                )
                self._ended_by_peer(call, "no-ack")
            return True
        return (
            self.mwi is not None
            and isinstance(txn, ClientTransaction)
            and self.mwi.on_timeout(txn, now)
        )

    # --- call records ------------------------------------------------------------------------
    def _cdr(
        self, call: MediaCall, now: float, ended: bool = False, side: str | None = None
    ) -> None:
        self.engine.calls.cdr_sink(
            cdr_record(call, self.engine.calls.wall_offset, now, ended, side)
        )

    def _cdr_failed(
        self,
        call_id: str,
        tenant: TenantInfo,
        invite: Request,
        caller: str,
        caller_name: str,
        dialled: str,
        status: int,
        now: float,
    ) -> None:
        wall = now + self.engine.calls.wall_offset
        self.engine.calls.cdr_sink(
            failed_cdr_record(
                call_id, tenant.id, invite.call_id, caller, caller_name, dialled, status, wall
            )
        )

    async def close(self) -> None:
        """End every call (BYE) and stop the clock."""
        for call in list(self.by_invite.values()):
            if call.session is not None:
                call.session.end("shutdown", by_remote=False)
            elif call.task is not None:
                call.task.cancel()
        tasks = [c.task for c in self.by_invite.values() if c.task is not None]
        if tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait(tasks, timeout=2.0)
        self.clock.close()
        self.wakeup()


def _refer_progress(call: MediaCall, notify: Request) -> None:
    """A NOTIFY of our REFER carries the new call's status as message/sipfrag."""
    event = (notify.headers.get("Event") or "").split(";")[0].strip().lower()
    outcome = call.refer_outcome
    if event != "refer" or outcome is None or outcome.done():
        return
    first = notify.body.split(b"\r\n", 1)[0].split(b"\n", 1)[0].split()
    if len(first) >= 2 and first[1].isdigit() and int(first[1]) >= 200:
        outcome.set_result(int(first[1]))


def _quoted(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")[:200]


__all__ = ["CallScript", "MediaCall", "MediaEndpoint", "MediaService"]
