"""The B2BUA for extension-to-extension calls: one inbound leg (A, the caller's INVITE) and
one outbound leg per registered contact of the callee (B, forked), joined when one answers.

Signalling only: SDP is passed through unchanged, so media flows directly between phones.
`CallManager` reacts to transaction-layer events and produces SIP through the
`TransactionLayer` it is given; it never touches sockets, the database or the wall clock
(times come in as ``now``; CDRs leave through the ``cdr_sink`` callback).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from frontdesk.pbx.directory import ExtensionInfo, TenantInfo
from frontdesk.pbx.location import Binding
from frontdesk.pbx.timers import Timers
from frontdesk.sip.dialog import Dialog, new_call_id
from frontdesk.sip.headers import Headers
from frontdesk.sip.message import Request, Response, make_response
from frontdesk.sip.peer import Peer
from frontdesk.sip.transaction import (
    ClientTransaction,
    ServerTransaction,
    TransactionLayer,
    new_branch,
    new_tag,
)

log = logging.getLogger("frontdesk.calls")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, NOTIFY, MESSAGE, REFER"


@dataclass(slots=True)
class BLeg:
    """One forked INVITE to one registered contact of the callee."""

    binding: Binding
    invite: Request
    # a server transaction when the caller's side became the answered leg
    # (pbx.transfer.turn_around): only its id is used then
    tx: ClientTransaction | ServerTransaction
    state: str = "calling"  # calling, early, answered, failed, cancelled
    dialog: Dialog | None = None
    ack: Request | None = None
    final_status: int | None = None
    cancel_pending: bool = False


@dataclass(slots=True)
class Call:
    id: str
    tenant: TenantInfo
    caller: str
    caller_name: str
    callee: str
    a_tx: ServerTransaction
    a_invite: Request
    a_peer: Peer
    a_tag: str
    b_call_id: str
    b_from_tag: str
    started: float
    state: str = "ringing"  # ringing, answered, ended
    legs: list[BLeg] = field(default_factory=list)
    answered: BLeg | None = None
    a_dialog: Dialog | None = None
    answered_at: float | None = None
    ring_timer: int | None = None
    awaiting_a_ack: bool = False
    walk: Any = None  # the flow this call is walking (pbx.flows.FlowWalk), if any


@dataclass(slots=True)
class _Relay:
    """An in-dialog request relayed from one leg to the other, awaiting its answer."""

    call: Call
    server_tx: ServerTransaction
    request: Request
    forwarded: Request
    to_dialog: Dialog


class CallManager:
    """All live calls of one engine."""

    def __init__(
        self,
        tx: TransactionLayer,
        timers: Timers,
        *,
        via_host: str,
        cdr_sink: Any,
        wall_offset: float = 0.0,
    ) -> None:
        self.tx = tx
        self.timers = timers
        self.via_host = via_host
        self.cdr_sink = cdr_sink
        self.wall_offset = wall_offset
        self.calls: dict[str, Call] = {}  # by A-leg INVITE transaction id
        self.legs: dict[str, tuple[Call, BLeg]] = {}  # by B-leg INVITE transaction id
        self.dialogs: dict[tuple[str, str], tuple[Call, str]] = {}  # (call-id, our tag)
        self.relays: dict[str, _Relay] = {}  # by relayed client transaction id
        self.completed = 0
        # media (issue #3): the endpoint takes callers whose callee did not answer (voicemail)
        self.no_answer: Callable[[Call, float], bool] | None = None
        from frontdesk.pbx.callcontrol import CallControl  # it builds on this module

        self.control = CallControl(self)  # re-bridges (RFC 3725) and re-INVITEs we send
        from frontdesk.pbx.transfer import Transfers  # a phone's transfer key (REFER)

        self.transfers = Transfers(self)
        # tickets (issue #6): told of each fork (whose phone rings) for the screen pop;
        # must only note it, never block or raise
        self.on_fork: Callable[[Call, Binding], None] | None = None
        # trunks: a carrier's 401/407 on a leg; True when answered (the leg goes on)
        self.on_challenge: Callable[[Call, BLeg, Response, float], bool] | None = None

    # --- helpers ------------------------------------------------------------------------
    def contact(self, peer: Peer) -> str:
        suffix = ";transport=tcp" if peer.transport == "tcp" else ""
        return f"<sip:frontdesk@{self.via_host}{suffix}>"

    def _wall(self, now: float) -> float:
        return now + self.wall_offset

    def _respond(
        self,
        stx: ServerTransaction,
        request: Request,
        status: int,
        now: float,
        to_tag: str | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        contact: bool = False,
        reason: str | None = None,
    ) -> Response:
        resp = make_response(request, status, reason, to_tag=to_tag, body=body)
        if body:
            resp.headers.add("Content-Type", content_type or "application/sdp")
        if contact:
            resp.headers.add("Contact", self.contact(stx.peer))
            resp.headers.add("Allow", ALLOW)
        self.tx.send_response(stx, resp, now)
        return resp

    # --- a new call ---------------------------------------------------------------------
    def start(
        self,
        stx: ServerTransaction,
        invite: Request,
        tenant: TenantInfo,
        caller: str,
        caller_name: str,
        callee: ExtensionInfo,
        bindings: list[Binding],
        now: float,
        walk: Any = None,
    ) -> Call:
        """Fork the INVITE to every binding of ``callee`` and start ringing."""
        call = Call(
            id=str(uuid.uuid4()),
            tenant=tenant,
            caller=caller,
            caller_name=caller_name,
            callee=callee.number,
            a_tx=stx,
            a_invite=invite,
            a_peer=stx.peer,
            a_tag=new_tag(),
            b_call_id=new_call_id(),
            b_from_tag=new_tag(),
            started=now,
            walk=walk,
        )
        self.calls[stx.id] = call
        self._write_cdr(call, now)
        mf = invite.headers.get("Max-Forwards")
        max_forwards = int(mf) - 1 if mf and mf.isdigit() else 69
        for binding in bindings:
            self._fork(call, binding, max_forwards, now)
        call.ring_timer = self.timers.add(now + callee.ring_timeout, self._ring_timeout, call)
        return call

    def ring_more(self, call: Call, bindings: list[Binding], timeout: float, now: float) -> None:
        """The flow's next ring step on a call still ringing: fork to ``bindings``."""
        mf = call.a_invite.headers.get("Max-Forwards")
        max_forwards = int(mf) - 1 if mf and mf.isdigit() else 69
        for binding in bindings:
            self._fork(call, binding, max_forwards, now)
        call.ring_timer = self.timers.add(now + timeout, self._ring_timeout, call)

    def release(self, call: Call, now: float) -> None:
        """Hand the unanswered caller to someone else (the media endpoint): the B2BUA
        forgets the call without answering it."""
        self.timers.cancel(call.ring_timer)
        self._forget(call)

    def _forget(self, call: Call) -> None:
        call.state = "ended"
        self.calls.pop(call.a_tx.id, None)
        for leg in call.legs:
            if not leg.cancel_pending:  # kept until a provisional lets us CANCEL it
                self.legs.pop(leg.tx.id, None)

    def fail(self, call: Call, status: int, now: float, side: str) -> None:
        """End an unanswered call with ``status`` (the flow decided so)."""
        if call.state == "ringing":
            call.walk = None
            self._fail(call, status, now, side)

    def _fork(self, call: Call, binding: Binding, max_forwards: int, now: float) -> None:
        a = call.a_invite
        h = Headers()
        h.add(
            "Via",
            f"SIP/2.0/{binding.peer.transport.upper()} {self.via_host};branch={new_branch()};rport",
        )
        h.add("Max-Forwards", str(max_forwards))
        name = call.caller_name.replace("\\", "").replace('"', "")
        display = f'"{name}" ' if name else ""
        domain = call.tenant.sip_domain
        h.add("From", f"{display}<sip:{call.caller}@{domain}>;tag={call.b_from_tag}")
        h.add("To", f"<sip:{call.callee}@{domain}>")
        h.add("Call-ID", call.b_call_id)
        h.add("CSeq", "1 INVITE")
        h.add("Contact", self.contact(binding.peer))
        h.add("Allow", ALLOW)
        if a.body:
            h.add("Content-Type", a.headers.get("Content-Type") or "application/sdp")
        invite = Request("INVITE", binding.contact_uri, h, a.body)
        ctx = self.tx.send_request(invite, binding.peer, now)
        leg = BLeg(binding, invite, ctx)
        call.legs.append(leg)
        self.legs[ctx.id] = (call, leg)
        if self.on_fork is not None:
            self.on_fork(call, binding)

    # --- responses from B legs ----------------------------------------------------------
    def on_leg_response(self, ctx: ClientTransaction, resp: Response, now: float) -> bool:
        """Handle a response on a B-leg INVITE; False if the transaction is not ours."""
        found = self.legs.get(ctx.id)
        if found is None:
            initial = ctx.request.method == "INVITE" and ctx.request.to_tag is None
            if resp.status // 100 == 2 and initial:  # a fork answered after the call ended
                self._ack_and_bye(ctx.request, resp, ctx.peer, now)
                return True
            return False
        call, leg = found
        status = resp.status
        if status < 200:
            self._on_provisional(call, leg, resp, now)
            return True
        if status < 300:
            self._on_leg_answered(call, leg, resp, now)
        elif status in (401, 407) and self.on_challenge and self.on_challenge(call, leg, resp, now):
            return True  # re-sent with credentials: the leg goes on
        else:
            self._on_leg_failed(call, leg, status, now)
        if call.state == "ended":
            self.legs.pop(ctx.id, None)
        return True

    def _on_provisional(self, call: Call, leg: BLeg, resp: Response, now: float) -> None:
        if leg.state == "calling" and resp.status > 100:
            leg.state = "early"
        if leg.cancel_pending:
            leg.cancel_pending = False
            self._send_cancel(leg, now)
            return
        if resp.status == 100 or call.state != "ringing":
            return
        status = 183 if resp.body else 180
        self._respond(
            call.a_tx,
            call.a_invite,
            status,
            now,
            to_tag=call.a_tag,
            body=resp.body,
            content_type=resp.headers.get("Content-Type"),
            contact=True,
        )

    def _on_leg_answered(self, call: Call, leg: BLeg, resp: Response, now: float) -> None:
        if leg is call.answered:  # 2xx retransmission: ACK again
            if leg.ack is not None:
                self.tx.send_stateless(leg.ack, leg.binding.peer)
            return
        if call.state != "ringing":  # a fork answered after another, or after CANCEL
            self._ack_and_bye(leg.invite, resp, leg.binding.peer, now)
            leg.state = "cancelled"
            return
        leg.state = "answered"
        call.answered = leg
        call.state = "answered"
        call.answered_at = now
        self.timers.cancel(call.ring_timer)
        leg.dialog = Dialog.from_uac(
            leg.invite, resp, self.contact(leg.binding.peer), self.via_host, leg.binding.peer
        )
        if call.a_invite.body:  # offer was in the INVITE: ACK B now
            self._ack_leg(leg, b"", None)
        for other in call.legs:
            if other is not leg:
                self._cancel_leg(other, now)
        a_resp = self._respond(
            call.a_tx,
            call.a_invite,
            200,
            now,
            to_tag=call.a_tag,
            body=resp.body,
            content_type=resp.headers.get("Content-Type"),
            contact=True,
        )
        call.awaiting_a_ack = True
        if call.walk is not None:
            call.walk.runner.answered(call, leg.binding.aor, now)
        call.a_dialog = Dialog.from_uas(
            call.a_invite, a_resp, self.contact(call.a_peer), self.via_host, call.a_peer
        )
        self.dialogs[(call.a_invite.call_id, call.a_tag)] = (call, "a")
        self.dialogs[(call.b_call_id, call.b_from_tag)] = (call, "b")
        self._write_cdr(call, now)

    def _ack_leg(self, leg: BLeg, body: bytes, content_type: str | None) -> None:
        assert leg.dialog is not None
        leg.ack = leg.dialog.request(
            "ACK", new_branch(), body, content_type, cseq=leg.invite.cseq.number
        )
        self.tx.send_stateless(leg.ack, leg.binding.peer)

    def _on_leg_failed(self, call: Call, leg: BLeg, status: int, now: float) -> None:
        leg.final_status = status
        if leg.state != "cancelled":
            leg.state = "failed"
        if call.state != "ringing":
            return
        if any(other.state in ("calling", "early") for other in call.legs):
            return
        codes = [other.final_status or 480 for other in call.legs]
        self._fail(call, _best_failure(codes), now, "callee")

    # --- ending -------------------------------------------------------------------------
    def _fail(self, call: Call, status: int, now: float, side: str) -> None:
        """End a call that was never answered, answering the caller with ``status``."""
        self.timers.cancel(call.ring_timer)
        for leg in call.legs:
            self._cancel_leg(leg, now)
        if (
            call.walk is not None
            and side != "caller"
            and call.walk.runner.ring_failed(call, status, now)
        ):
            return  # the flow goes on (next ring step, voicemail, ...)
        if status in (408, 480) and self._voicemail_takes(call, now):  # media (issue #3)
            return
        reason = "No Answer" if status == 480 and side == "system" else None
        self._respond(call.a_tx, call.a_invite, status, now, to_tag=call.a_tag, reason=reason)
        disposition = {486: "busy", 600: "busy", 603: "rejected", 487: "cancelled"}.get(
            status, "no-answer" if side == "system" else "failed"
        )
        self._end(call, now, disposition, side, status)

    def _voicemail_takes(self, call: Call, now: float) -> bool:
        """Media (issue #3): hand an unanswered caller to the media endpoint (the callee's
        voicemail answers the caller's INVITE); the call then leaves the B2BUA, and the
        endpoint continues its CDR under the same id."""
        if self.no_answer is None or not self.no_answer(call, now):
            return False
        self._forget(call)
        return True

    def _ring_timeout(self, call: Call, now: float) -> None:
        call.ring_timer = None
        if call.state == "ringing":
            log.info("call %s: no answer from %s after ring timeout", call.id, call.callee)
            self._fail(call, 480, now, "system")

    def _cancel_leg(self, leg: BLeg, now: float) -> None:
        if leg.state == "early":
            self._send_cancel(leg, now)
        elif leg.state == "calling":
            leg.cancel_pending = True  # RFC 3261 §9.1: only after a provisional response
        if leg.state in ("calling", "early"):
            leg.state = "cancelled"

    def _send_cancel(self, leg: BLeg, now: float) -> None:
        inv = leg.invite
        h = Headers()
        h.add("Via", inv.headers.get("Via") or "")
        h.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            h.add(name, inv.headers.get(name) or "")
        h.add("CSeq", f"{inv.cseq.number} CANCEL")
        self.tx.send_request(Request("CANCEL", inv.uri, h), leg.binding.peer, now)

    def _ack_and_bye(self, invite: Request, resp: Response, peer: Peer, now: float) -> None:
        """A 2xx we no longer want: confirm the dialog and end it at once."""
        dialog = Dialog.from_uac(invite, resp, self.contact(peer), self.via_host, peer)
        self.tx.send_stateless(dialog.request("ACK", new_branch(), cseq=invite.cseq.number), peer)
        self.tx.send_request(dialog.request("BYE", new_branch()), peer, now)

    def on_stray_response(self, resp: Response, source: Peer, now: float) -> None:
        """A 2xx to an INVITE whose transaction is gone: re-ACK it if it is a live call's
        answer (our ACK was lost), otherwise confirm and end the unwanted dialog."""
        if resp.status // 100 != 2 or resp.cseq.method != "INVITE" or self.control.on_stray(resp):
            return
        found = self.dialogs.get((resp.call_id, resp.from_tag or ""))
        if found is not None:
            leg = found[0].answered
            if (
                leg is not None
                and leg.ack is not None
                and leg.dialog is not None
                and leg.dialog.remote_tag == (resp.to_tag or "")
            ):
                self.tx.send_stateless(leg.ack, leg.binding.peer)
                return
        contacts = resp.contacts
        if not contacts:
            return
        h = Headers()
        h.add("Via", f"SIP/2.0/{source.transport.upper()} {self.via_host};branch=x")
        for name in ("From", "Call-ID", "CSeq"):
            h.add(name, resp.headers.get(name) or "")
        h.add("To", "<sip:unknown@invalid>")
        invite = Request("INVITE", str(contacts[0].uri), h)
        self._ack_and_bye(invite, resp, source, now)

    def on_cancel(
        self,
        cancel_tx: ServerTransaction,
        cancel: Request,
        invite_tx: ServerTransaction | None,
        now: float,
    ) -> None:
        """The caller hung up before answer."""
        self._respond(cancel_tx, cancel, 200, now)
        call = self.calls.get(invite_tx.id) if invite_tx is not None else None
        if call is not None and call.state == "ringing":
            self._fail(call, 487, now, "caller")

    def _end(
        self, call: Call, now: float, disposition: str, side: str, sip_code: int | None
    ) -> None:
        self._forget(call)
        self.dialogs.pop((call.a_invite.call_id, call.a_tag), None)
        self.dialogs.pop((call.b_call_id, call.b_from_tag), None)
        self.control.call_ended(call, now)  # a re-bridge moving this caller stops
        self.transfers.call_ended(call, now)  # and a transfer asked by REFER
        self.completed += 1
        self._write_cdr(call, now, disposition, side, sip_code)

    def _write_cdr(
        self,
        call: Call,
        now: float,
        disposition: str | None = None,
        side: str | None = None,
        sip_code: int | None = None,
    ) -> None:
        ended = now if disposition is not None else None
        answered = call.answered_at
        record = {
            "id": call.id,
            "tenant_id": call.tenant.id,
            "call_id": call.a_invite.call_id,
            "caller": call.caller,
            "caller_name": call.caller_name or None,
            "callee": call.callee,
            "callee_answered_by": call.answered.binding.aor if call.answered else None,
            "started_at": self._wall(call.started),
            "answered_at": self._wall(answered) if answered is not None else None,
            "ended_at": self._wall(ended) if ended is not None else None,
            "disposition": disposition,
            "hangup_side": side,
            "duration": (ended - call.started) if ended is not None else 0.0,
            "billsec": (ended - answered) if ended is not None and answered else 0.0,
            "sip_code": sip_code,
        }
        self.cdr_sink(record)

    # --- in-dialog requests -------------------------------------------------------------
    def on_in_dialog(self, stx: ServerTransaction, req: Request, now: float) -> bool:
        """A request with a To-tag; False if it belongs to no dialog we know (-> 481)."""
        found = self.dialogs.get((req.call_id, req.to_tag or ""))
        if found is None:
            return False
        call, side = found
        if self.transfers.on_request(call, side, stx, req, now):  # REFER, and during one
            return True
        mine, other = (call.a_dialog, call.answered.dialog if call.answered else None)
        if side == "b":
            mine, other = other, mine
        if mine is None or other is None:
            return False
        if not mine.accepts(req):
            self._respond(stx, req, 500, now, reason="Out Of Order CSeq")
            return True
        if req.method == "BYE":
            self._respond(stx, req, 200, now)
            self.tx.send_request(other.request("BYE", new_branch()), other.peer, now)
            self._end(call, now, "answered", "caller" if side == "a" else "callee", None)
            return True
        if req.method == "INVITE":
            if self.control.pending_reinvite(mine):  # glare (RFC 3261 §14.2)
                self._respond(stx, req, 491, now)
                return True
            mine.update_target(req)
        fwd = other.request(req.method, new_branch(), req.body, req.headers.get("Content-Type"))
        for name in ("Event", "Subscription-State", "Info-Package"):
            value = req.headers.get(name)
            if value is not None:
                fwd.headers.add(name, value)
        ctx = self.tx.send_request(fwd, other.peer, now)
        self.relays[ctx.id] = _Relay(call, stx, req, fwd, other)
        return True

    def on_relay_response(self, ctx: ClientTransaction, resp: Response, now: float) -> bool:
        relay = self.relays.get(ctx.id)
        if relay is None:
            return self.transfers.on_response(ctx, resp, now) or self.control.on_response(
                ctx, resp, now
            )
        if resp.status == 100:
            return True
        if resp.status >= 200:
            del self.relays[ctx.id]
        is_invite = relay.request.method == "INVITE"
        ok = 200 <= resp.status < 300
        self._respond(
            relay.server_tx,
            relay.request,
            resp.status,
            now,
            body=resp.body,
            content_type=resp.headers.get("Content-Type"),
            contact=is_invite and ok,
            reason=resp.reason,
        )
        if is_invite and ok:
            relay.to_dialog.update_target(resp)
            ack = relay.to_dialog.request("ACK", new_branch(), cseq=relay.forwarded.cseq.number)
            self.tx.send_stateless(ack, relay.to_dialog.peer)
        return True

    def on_ack(self, ack: Request, now: float) -> None:
        """ACK for our 2xx. With a delayed offer the caller's answer goes on to B."""
        found = self.dialogs.get((ack.call_id, ack.to_tag or ""))
        if found is None:
            return
        call, side = found
        if side == "a" and call.awaiting_a_ack:
            call.awaiting_a_ack = False
            leg = call.answered
            if leg is not None and leg.ack is None:
                self._ack_leg(leg, ack.body, ack.headers.get("Content-Type"))

    def on_timeout(
        self, transaction: ClientTransaction | ServerTransaction, timer: str, now: float
    ) -> None:
        if self.control.on_timeout(transaction, now) or self.transfers.on_timeout(transaction, now):
            return
        found = self.legs.get(transaction.id)
        if found is not None:
            self._on_leg_failed(found[0], found[1], 408, now)
            return
        relay = self.relays.pop(transaction.id, None)
        if relay is not None:
            self._respond(relay.server_tx, relay.request, 408, now)
            return
        unacked = self.calls.get(transaction.id)
        if unacked is not None and timer == "L" and unacked.state == "answered":
            # our 2xx was never acknowledged: the caller is gone; end both sides
            answered = unacked.answered
            if answered is not None and answered.dialog is not None:
                self.tx.send_request(
                    answered.dialog.request("BYE", new_branch()), answered.binding.peer, now
                )
            self._end(unacked, now, "failed", "system", 408)


def _best_failure(codes: list[int]) -> int:
    """RFC 3261 §16.7-style choice among the forks' final responses."""
    for code in (486, 600, 603):
        if code in codes:
            return 486 if code == 600 else code
    four = sorted(c for c in codes if 400 <= c < 500 and c != 408)
    if four:
        return four[0]
    return 480
