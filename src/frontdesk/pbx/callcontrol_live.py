"""Answer-time call actions on live calls, for the tickets layer and the API:
``server.call_control.transfer(call_ref, extension, actor)`` and
``server.call_control.to_voicemail(call_ref, mailbox, actor)``; and the re-bridge of a caller
whom the media endpoint answered (flows: a prompt or menu, then a ring step).

`LiveCallControl` joins the sans-I/O `CallControl` (SIP: delayed-offer INVITE, re-INVITE,
ACK with the answer) to the media endpoint's asyncio side: it waits for the outcome, stops our
prompt when the caller is connected elsewhere, and starts a mailbox on a caller taken from a
phone (re-INVITE with our own offer, then the voicemail script on that dialog). Every action
is recorded on the call's CDR (``extra.call_control``: who, what, when, outcome).

A call is named by its CDR id or its SIP Call-ID. An unknown or ended call, an unknown
extension or mailbox, or a target with no registered phone raises `CallControlError` with a
message naming the call or target and what to do; nothing here raises anything else at a
caller of the API. It never touches the database; the time comes from the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from frontdesk.media.negotiate import NoCommonCodec, SdpParseError, make_offer, params_from_answer
from frontdesk.media.prompts import silence, tone
from frontdesk.media.rtp import MediaPortsExhausted
from frontdesk.media.session import CallEnded
from frontdesk.pbx.callcontrol import CallerSeat, Rebridge, RebridgeResult, seat_of
from frontdesk.pbx.calls import Call
from frontdesk.pbx.directory import TenantInfo
from frontdesk.pbx.location import Binding
from frontdesk.pbx.media_call import CallScript, MediaCall
from frontdesk.sip.message import Response

if TYPE_CHECKING:
    from frontdesk.pbx.endpoint import MediaEndpoint
    from frontdesk.pbx.engine import SipEngine

log = logging.getLogger("frontdesk.callcontrol")

#: how long a re-INVITE may take on top of the ring time (Timer B is 32 s)
SIGNALLING_MARGIN = 40.0


class CallControlError(ValueError):
    """An answer-time action that cannot be done; the message says why and what to do.
    ``status`` is the HTTP status an API should answer with."""

    status = 409


class UnknownCall(CallControlError):
    status = 404


class UnknownTarget(CallControlError):
    status = 422


def mailbox_script(endpoint: MediaEndpoint, tenant: TenantInfo, mailbox: str) -> CallScript | None:
    """The script that takes a message for ``mailbox`` (whatever its no-answer setting),
    None when the tenant has no such mailbox."""
    from frontdesk.pbx.voicemail import VoicemailService
    from frontdesk.pbx.voicemail_calls import deposit

    for service in endpoint.services:
        if isinstance(service, VoicemailService):
            view = service.mailbox(tenant.id, mailbox)
            if view is not None:
                return service._bind(deposit, view)
    return endpoint._script_for_unanswered(tenant, mailbox)


def media_seat(call: MediaCall) -> CallerSeat:
    return CallerSeat(
        call.id,
        call.tenant,
        call.caller,
        call.caller_name,
        call.dialled,
        call.stx,
        call.invite,
        call.dialog,
        call.started,
        call.answered_at,
    )


class LiveCallControl:
    """See the module docstring. ``wakeup`` flushes what the engine queued (the server's
    ``_flush``); ``now`` is the event loop's clock, the engine's clock too."""

    def __init__(
        self,
        engine: SipEngine,
        endpoint: MediaEndpoint,
        wakeup: Callable[[], None],
        now: Callable[[], float] | None = None,
    ) -> None:
        self.engine = engine
        self.endpoint = endpoint
        self.control = engine.calls.control
        self.wakeup = wakeup
        self.now = now or (lambda: asyncio.get_running_loop().time())

    # --- finding calls and targets --------------------------------------------------------
    def find(self, call_ref: str) -> Call | MediaCall:
        """The live call whose CDR id or SIP Call-ID is ``call_ref``."""
        ref = call_ref.strip()
        for call, _side in list(self.engine.calls.dialogs.values()):
            if call.state == "answered" and ref in (call.id, call.a_invite.call_id):
                return call
        for media in list(self.endpoint.by_dialog.values()):
            if ref in (media.id, media.invite.call_id):
                return media
        for ringing in list(self.engine.calls.calls.values()):
            if ref in (ringing.id, ringing.a_invite.call_id):
                raise CallControlError(
                    f"call {ref} is still ringing; answer-time actions need an answered call "
                    "(answer it first, or let the call flow route it)"
                )
        raise UnknownCall(
            f"call {ref} is not a live call (it ended, or the id is wrong); use the CDR id "
            "or SIP Call-ID of a call in progress"
        )

    def _bindings(self, tenant_id: int, extension: str) -> list[Binding]:
        now = self.now()
        return [b for b in self.engine.location.lookup(tenant_id, extension, now) if b.reachable]

    def _extension(self, call: Call | MediaCall, extension: str) -> list[Binding]:
        tenant = call.tenant
        if self.engine.directory.extension(tenant.id, extension) is None:
            raise UnknownTarget(
                f"extension {extension} does not exist in tenant {tenant.name!r}; "
                "pick one of the tenant's extensions"
            )
        bindings = self._bindings(tenant.id, extension)
        if not bindings:
            raise CallControlError(
                f"extension {extension} has no registered phone right now; the call stays "
                "where it is (send it to voicemail instead)"
            )
        return bindings

    # --- answer-time actions ----------------------------------------------------------------
    async def transfer(self, call_ref: str, extension: str, actor: str) -> dict[str, Any]:
        """Move the caller of a live call to ``extension`` (all its phones ring); the phone
        the caller was talking to gets BYE once the new one answered."""
        call = self.find(call_ref)
        self._not_moving(call.id, call_ref)
        bindings = self._extension(call, extension)
        entry = self._note(call.id, "transfer", extension, actor)
        timeout = call.tenant.ring_timeout
        if isinstance(call, MediaCall):
            result = await self.connect_media(call, extension, bindings, timeout)
        else:
            result = await self._connect_bridged(call, extension, bindings, timeout)
        entry.update(status=_status_word(result), sip_code=result.status)
        if result.answered_by:
            entry["answered_by"] = result.answered_by
        return {**entry, "call": call.id, "reason": result.reason}

    async def to_voicemail(self, call_ref: str, mailbox: str, actor: str) -> dict[str, Any]:
        """Take the caller of a bridged call into ``mailbox`` (our media answers the caller's
        phone by re-INVITE; the phone it was talking to gets BYE)."""
        call = self.find(call_ref)
        if isinstance(call, MediaCall):
            raise CallControlError(
                f"call {call_ref} is with Frontdesk's own media already (a menu, a prompt or "
                "a mailbox); transfer it to an extension instead"
            )
        script = mailbox_script(self.endpoint, call.tenant, mailbox)
        if script is None:
            raise UnknownTarget(
                f"mailbox {mailbox} does not exist in tenant {call.tenant.name!r}; "
                "create it with `frontdesk voicemail` or pick another"
            )
        self._not_moving(call.id, call_ref)
        entry = self._note(call.id, "to_voicemail", mailbox, actor)
        status, reason = await self._into_media(call, script)
        entry.update(status="voicemail" if status == 200 else "failed", sip_code=status)
        return {**entry, "call": call.id, "reason": reason}

    def _not_moving(self, cdr_id: str, call_ref: str) -> None:
        if any(rb.seat.id == cdr_id for rb in self.control.rebridges.values()) or any(
            ri.owner_id == cdr_id for ri in self.control.active
        ):
            raise CallControlError(
                f"call {call_ref} is being moved already; wait for that to finish"
            )

    def _note(self, cdr_id: str, action: str, target: str, actor: str) -> dict[str, Any]:
        at = datetime.fromtimestamp(self.now() + self.engine.calls.wall_offset, UTC)
        entry: dict[str, Any] = {
            "action": action,
            "target": target,
            "actor": actor,
            "at": at.isoformat(),
            "status": "requested",
        }
        self.control.note(cdr_id, entry)
        log.info("call %s: %s to %s requested by %s", cdr_id[:8], action, target, actor)
        return entry

    # --- re-bridging ---------------------------------------------------------------------------
    async def _connect_bridged(
        self, call: Call, target: str, bindings: list[Binding], timeout: float
    ) -> RebridgeResult:
        future: asyncio.Future[RebridgeResult] = asyncio.get_running_loop().create_future()

        def done(_rb: Rebridge, result: RebridgeResult, _now: float) -> None:
            if not future.done():
                future.set_result(result)

        rb = self.control.connect(seat_of(call), target, bindings, timeout, self.now(), done, call)
        self.wakeup()
        try:
            return await asyncio.wait_for(future, timeout + SIGNALLING_MARGIN)
        except TimeoutError:
            self.control.abort(rb, self.now(), "no outcome in time")
            self.wakeup()
            return future.result() if future.done() else RebridgeResult(408, None, "no outcome")

    async def connect_media(
        self, call: MediaCall, target: str, bindings: list[Binding], timeout: float
    ) -> RebridgeResult:
        """Connect a caller our media endpoint answered to ``target``: the caller hears
        ringing meanwhile; when the target answers our prompt stops and the endpoint lets
        the call go (no BYE; the B2BUA carries it on under the same CDR id)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RebridgeResult] = loop.create_future()

        def answered(_rb: Rebridge, _now: float) -> None:
            if call.stream is not None:  # our ringing stops before the caller is switched
                call.stream.stop_playback()
                call.stream.paused = True

        def done(_rb: Rebridge, result: RebridgeResult, _now: float) -> None:
            if result.connected:
                self._hand_over(call)
            elif call.stream is not None:
                call.stream.paused = False  # the flow goes on in our media
            if not future.done():
                future.set_result(result)

        rb = self.control.connect(
            media_seat(call), target, bindings, timeout, self.now(), done, on_answered=answered
        )
        self.wakeup()
        ringing = loop.create_task(self._ringback(call))
        waiting: set[asyncio.Future[Any]] = {future}
        if call.session is not None:
            waiting.add(call.session.ended_future)
        try:
            await asyncio.wait(
                waiting, timeout=timeout + SIGNALLING_MARGIN, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ringing.cancel()
            if call.stream is not None and not future.done():
                call.stream.stop_playback()
        if not future.done():
            self.control.abort(rb, self.now())
            self.wakeup()
        return future.result() if future.done() else RebridgeResult(487, None, "abandoned")

    async def _ringback(self, call: MediaCall) -> None:
        """Ringing tone (425 Hz, 1 s on, 4 s off) while the new target rings."""
        session = call.session
        if session is None:
            return
        ring = [tone(425.0, 1000, 0.15), silence(4000)]
        with contextlib.suppress(CallEnded):
            while session.ended is None:
                await session.play(ring)

    def _hand_over(self, call: MediaCall) -> None:
        endpoint = self.endpoint
        endpoint.handed_over.add(call.id)
        endpoint.by_dialog.pop((call.dialog.call_id, call.dialog.local_tag), None)
        if call.stream is not None:
            call.stream.stop_playback()
        if call.session is not None:  # whatever ran on the call (menu, mailbox) stops
            call.session.end("transferred", by_remote=False)

    # --- a bridged caller into our media ---------------------------------------------------
    async def _into_media(self, call: Call, script: CallScript) -> tuple[int, str]:
        """Re-INVITE the caller with our offer; on its answer BYE the callee and run
        ``script`` on the caller's dialog. (status, reason): 200 when the script started."""
        endpoint = self.endpoint
        dialog = call.a_dialog
        assert dialog is not None
        try:
            sockets = endpoint.ports.bind_pair()
        except MediaPortsExhausted as exc:
            return 503, f"no RTP port free for the mailbox ({exc})"
        session_id = str(secrets.randbelow(10**9))
        port = int(sockets[0].getsockname()[1])
        offer = make_offer(local_ip=endpoint.media_host, local_port=port, session_id=session_id)
        future: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

        def answered(resp: Response | None, status: int, now: float) -> None:
            outcome = self._start_media(call, resp, status, sockets, session_id, script, now)
            if not future.done():
                future.set_result(outcome)

        self.control.reinvite(dialog, offer, self.now(), answered, owner_id=call.id)
        self.wakeup()
        try:
            return await asyncio.wait_for(future, SIGNALLING_MARGIN)
        except TimeoutError:
            for sock in sockets:
                sock.close()
            return 408, "the caller's phone did not answer the re-INVITE"

    def _start_media(
        self,
        call: Call,
        resp: Response | None,
        status: int,
        sockets: Any,
        session_id: str,
        script: CallScript,
        now: float,
    ) -> tuple[int, str]:
        endpoint = self.endpoint
        reason = ""
        if call.state != "answered":
            status, reason = 487, "the call ended meanwhile"
        elif resp is None or not 200 <= status < 300:
            reason = f"the caller's phone refused our media ({status})"
        if reason:
            for sock in sockets:
                sock.close()
            return status, reason
        assert resp is not None and call.a_dialog is not None
        try:
            params = params_from_answer(resp.body)
        except (SdpParseError, NoCommonCodec) as exc:
            for sock in sockets:
                sock.close()
            return 488, f"the caller's answer is unusable: {exc.reason}"
        self.control.detach(call, now)
        media = MediaCall(
            call.id,
            call.tenant,
            call.caller,
            call.caller_name,
            call.callee,
            call.a_invite,
            call.a_tx,
            call.a_dialog,
            script,
            call.started,
            call.answered_at if call.answered_at is not None else now,
            sockets,
            params,
            acked=True,
            sdp_session=session_id,
        )
        endpoint.by_dialog[(call.a_dialog.call_id, call.a_dialog.local_tag)] = media
        endpoint.by_invite[call.a_tx.id] = media
        endpoint._cdr(media, now)
        media.task = asyncio.get_running_loop().create_task(endpoint._run(media))
        return 200, "the mailbox took the caller"


def _status_word(result: RebridgeResult) -> str:
    if result.connected:
        return "connected"
    if result.status == 487:
        return "caller_left"
    return result.outcome


__all__ = ["CallControlError", "LiveCallControl", "UnknownCall", "UnknownTarget", "media_seat"]
