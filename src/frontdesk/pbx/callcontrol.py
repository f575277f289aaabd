"""Third-party call control (RFC 3725, flow I) on live calls: connect a caller who is already
answered — by Frontdesk's media endpoint (a prompt, a menu) or by a phone through the B2BUA —
to a new destination, or give the caller's leg a new session description.

The re-bridge, step by step:

1. INVITE *without SDP* (delayed offer) forked to every reachable contact of the target(s);
2. the first 2xx carries the callee's offer; the other forks are CANCELled (a late 2xx from
   one of them is ACKed and BYEd);
3. re-INVITE the caller's leg with that offer (`reinvite`; a 491 — glare — is retried after a
   random 0-2 s, RFC 3261 §14.1: the caller owns that Call-ID);
4. the caller's 2xx carries its answer: ACK the caller, ACK the callee *with the answer*;
5. `CallManager` joins the caller's dialog and the callee's (BYE, re-INVITE, INFO relayed as
   for any bridged call); the old callee leg, if any, gets BYE.

Failures come back to whoever asked through ``on_done`` (a `RebridgeResult`): all forks
busy (486), nobody answered in time (480), the caller's phone refusing the callee's offer
(its status), no offer in the callee's 2xx (488). ``abort`` — the caller hung up mid-way —
CANCELs ringing forks, ACKs and BYEs a callee that already answered, and reports 487.

Synchronous and sans-I/O like `CallManager`: SIP leaves through the transaction layer, time
comes in as ``now``. It never touches sockets, RTP, the database or the wall clock; what
happens to the media side (our prompt stops, a mailbox takes the caller) is decided by the
caller of this module (`pbx.callcontrol_live`, `pbx.flows_media`).
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from frontdesk.pbx.callcontrol_model import (
    CallerSeat,
    Rebridge,
    RebridgeResult,
    ReInvite,
    declining_answer,
    seat_of,
)
from frontdesk.pbx.calls import ALLOW, BLeg, Call, _best_failure
from frontdesk.pbx.location import Binding
from frontdesk.sip.dialog import Dialog
from frontdesk.sip.headers import Headers
from frontdesk.sip.message import Request, Response
from frontdesk.sip.peer import Peer
from frontdesk.sip.transaction import ClientTransaction, ServerTransaction, new_branch

if TYPE_CHECKING:
    from frontdesk.pbx.calls import CallManager

log = logging.getLogger("frontdesk.callcontrol")

MAX_GLARE_RETRIES = 4
#: RFC 3261 §14.1: the owner of the Call-ID waits 2.1-4 s, the other side 0-2 s
GLARE_WAIT_OWNER = (2.1, 4.0)
GLARE_WAIT_OTHER = (0.0, 2.0)
#: after the caller's old media source stopped (the old callee confirmed its BYE, our own
#: stream paused), its last packets are let through before the caller is switched: a phone
#: that takes a stale packet after the switch can lock its jitter buffer onto the old
#: sequence numbers and drop the new phone's audio (seen with baresip 1.0)
SWITCH_GRACE = 0.2


class CallControl:
    """The re-bridges and re-INVITEs of one engine (owned by its `CallManager`)."""

    def __init__(self, calls: CallManager, rng: random.Random | None = None) -> None:
        self.calls = calls
        self.tx = calls.tx
        self.timers = calls.timers
        self.rng = rng or random.Random()
        self.rebridges: dict[str, Rebridge] = {}  # by id
        self.legs: dict[str, tuple[Rebridge, BLeg]] = {}  # by INVITE client transaction id
        self.reinvites: dict[str, ReInvite] = {}  # by re-INVITE client transaction id
        self.byes: dict[str, Rebridge] = {}  # BYE to the old callee, by transaction id
        self.active: list[ReInvite] = []  # re-INVITEs without a final outcome yet
        #: our ACKs of re-INVITE 2xx, kept 32 s for retransmitted 2xx: (call-id, cseq)
        self.acks: dict[tuple[str, int], tuple[Request, Peer, float]] = {}
        self.notes: dict[str, list[dict[str, Any]]] = {}  # CDR id -> call-control actions

    # --- starting -------------------------------------------------------------------------
    def connect(
        self,
        seat: CallerSeat,
        target: str,
        bindings: list[Binding],
        timeout: float,
        now: float,
        on_done: Callable[[Rebridge, RebridgeResult, float], None],
        call: Call | None = None,
        on_answered: Callable[[Rebridge, float], None] | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> Rebridge:
        """Ring ``bindings`` (all contacts of ``target``) with delayed-offer INVITEs; the
        first to answer is connected to the caller of ``seat``."""
        rb = Rebridge(
            str(uuid.uuid4()), seat, target, on_done, call, on_answered=on_answered, headers=headers
        )
        self.rebridges[rb.id] = rb
        for binding in bindings:
            self._fork(rb, binding, now)
        rb.timer = self.timers.add(now + timeout, self._ring_timeout, rb)
        log.info(
            "call %s: connecting %s to %s (%d contacts, %.0f s)",
            seat.id[:8],
            seat.caller,
            target,
            len(bindings),
            timeout,
        )
        return rb

    def _fork(self, rb: Rebridge, binding: Binding, now: float) -> None:
        seat = rb.seat
        domain = seat.tenant.sip_domain
        h = Headers()
        h.add(
            "Via",
            f"SIP/2.0/{binding.peer.transport.upper()} {self.calls.via_host};"
            f"branch={new_branch()};rport",
        )
        h.add("Max-Forwards", "70")
        name = seat.caller_name.replace("\\", "").replace('"', "")
        display = f'"{name}" ' if name else ""
        h.add("From", f"{display}<sip:{seat.caller}@{domain}>;tag={rb.b_from_tag}")
        h.add("To", f"<sip:{rb.target}@{domain}>")
        h.add("Call-ID", rb.b_call_id)
        h.add("CSeq", "1 INVITE")
        h.add("Contact", self.calls.contact(binding.peer))
        h.add("Allow", ALLOW)
        for name, value in rb.headers:
            h.add(name, value)
        invite = Request("INVITE", binding.contact_uri, h)  # no SDP: the callee offers
        ctx = self.tx.send_request(invite, binding.peer, now)
        leg = BLeg(binding, invite, ctx)
        rb.legs.append(leg)
        self.legs[ctx.id] = (rb, leg)

    def reinvite(
        self,
        dialog: Dialog,
        body: bytes,
        now: float,
        on_answer: Callable[[Response | None, int, float], None],
        owner: bool = False,
        owner_id: str = "",
    ) -> ReInvite:
        """Send ``body`` as a new offer on ``dialog``; ``on_answer(response, status, now)``
        gets the final outcome (the 2xx is ACKed here; 491 is retried, RFC 3261 §14.1)."""
        ri = ReInvite(dialog, body, on_answer, owner, owner_id)
        self.active.append(ri)
        self._send_reinvite(ri, now)
        return ri

    def _send_reinvite(self, ri: ReInvite, now: float) -> None:
        ri.timer = None
        ri.attempts += 1
        ri.request = ri.dialog.request("INVITE", new_branch(), ri.body, "application/sdp")
        ctx = self.tx.send_request(ri.request, ri.dialog.peer, now)
        self.reinvites[ctx.id] = ri

    def pending_reinvite(self, dialog: Dialog | None) -> bool:
        """True while we wait for the answer to our re-INVITE on ``dialog``: a re-INVITE
        from the peer now is glare and gets 491."""
        if dialog is None:
            return False
        return any(ri.dialog is dialog for ri in self.active) or any(
            rb.seat.dialog is dialog and rb.state == "reinviting" for rb in self.rebridges.values()
        )

    # --- responses ------------------------------------------------------------------------
    def on_response(self, ctx: ClientTransaction, resp: Response, now: float) -> bool:
        """A response to one of our INVITEs or re-INVITEs; False if it is not ours."""
        released = self.byes.get(ctx.id)
        if released is not None:
            if resp.status >= 200:
                del self.byes[ctx.id]
                self._old_released(released, now)
            return True
        found = self.legs.get(ctx.id)
        if found is not None:
            rb, leg = found
            if resp.status < 200:
                self._on_provisional(rb, leg, resp, now)
            elif resp.status < 300:
                self._on_leg_answered(rb, leg, resp, now)
            else:
                self._on_leg_failed(rb, leg, resp.status, now)
            if resp.status >= 200 and (
                leg.state != "answered" or rb.state in ("failed", "aborted")
            ):
                self.legs.pop(ctx.id, None)
            return True
        ri = self.reinvites.get(ctx.id)
        if ri is None:  # maybe a retransmitted 2xx of one we ACKed already: ACK again
            return resp.status // 100 == 2 and self.on_stray(resp)
        if resp.status >= 200:
            del self.reinvites[ctx.id]
            self._on_reinvite_final(ri, resp, now)
        return True

    def _on_provisional(self, rb: Rebridge, leg: BLeg, resp: Response, now: float) -> None:
        if leg.state == "calling" and resp.status > 100:
            leg.state = "early"
        if leg.cancel_pending and resp.status > 100:
            leg.cancel_pending = False
            self.calls._send_cancel(leg, now)

    def _on_leg_answered(self, rb: Rebridge, leg: BLeg, resp: Response, now: float) -> None:
        if leg is rb.winner:  # a 2xx retransmission: ACK again once we have the answer
            if leg.ack is not None:
                self.tx.send_stateless(leg.ack, leg.binding.peer)
            return
        if rb.state != "ringing":  # another fork, or too late
            self._release(leg, resp, now)
            return
        leg.state = "answered"
        rb.winner, rb.offer = leg, resp
        self.timers.cancel(rb.timer)
        rb.timer = None
        leg.dialog = Dialog.from_uac(
            leg.invite,
            resp,
            self.calls.contact(leg.binding.peer),
            self.calls.via_host,
            leg.binding.peer,
        )
        for other in rb.legs:
            if other is not leg:
                self.calls._cancel_leg(other, now)
        if not resp.body:
            log.warning("call %s: %s answered without an SDP offer", rb.seat.id[:8], rb.target)
            self._drop_winner(rb, now)
            self._finish(rb, RebridgeResult(488, None, "the new phone sent no offer"), now)
            return
        rb.state = "reinviting"
        if rb.on_answered is not None:
            rb.on_answered(rb, now)
        if not self._release_old(rb, now):
            rb.timer = self.timers.add(now + SWITCH_GRACE, self._switch, rb)

    def _release_old(self, rb: Rebridge, now: float) -> bool:
        """BYE the phone the caller talks to now; the re-INVITE waits for its answer (at
        most a second) so that no packet of its media reaches the caller after the switch."""
        call = rb.call
        old = call.answered if call is not None else None
        if call is None or old is None or old.dialog is None:
            return False
        ctx = self.tx.send_request(old.dialog.request("BYE", new_branch()), old.binding.peer, now)
        self.byes[ctx.id] = rb
        rb.released_old = True
        self.calls.dialogs.pop((call.b_call_id, call.b_from_tag), None)
        self.calls.legs.pop(old.tx.id, None)
        rb.timer = self.timers.add(now + 1.0, self._old_released, rb)
        return True

    def _old_released(self, rb: Rebridge, now: float) -> None:
        self.timers.cancel(rb.timer)
        rb.timer = self.timers.add(now + SWITCH_GRACE, self._switch, rb)

    def _switch(self, rb: Rebridge, now: float) -> None:
        rb.timer = None
        if rb.state == "reinviting" and rb.reinvite is None:
            self._reinvite_caller(rb, now)

    def _reinvite_caller(self, rb: Rebridge, now: float) -> None:
        assert rb.offer is not None

        def answered(answer: Response | None, status: int, at: float) -> None:
            self._on_caller_answer(rb, answer, status, at)

        rb.reinvite = self.reinvite(rb.seat.dialog, rb.offer.body, now, answered)

    def _on_leg_failed(self, rb: Rebridge, leg: BLeg, status: int, now: float) -> None:
        leg.final_status = status
        if leg.state != "cancelled":
            leg.state = "failed"
        if rb.state != "ringing" or any(o.state in ("calling", "early") for o in rb.legs):
            return
        code = _best_failure([o.final_status or 480 for o in rb.legs])
        reason = "busy" if code in (486, 600) else f"the phone answered {code}"
        self._fail(rb, code, reason, now)

    def _on_reinvite_final(self, ri: ReInvite, resp: Response, now: float) -> None:
        status = resp.status
        if status == 491 and ri.attempts <= MAX_GLARE_RETRIES:
            low, high = GLARE_WAIT_OWNER if ri.owner else GLARE_WAIT_OTHER
            wait = self.rng.uniform(low, high)
            log.info("re-INVITE glare (491) on %s: trying again in %.2f s", ri.dialog.call_id, wait)
            ri.timer = self.timers.add(now + wait, self._retry_reinvite, ri)
            return
        self._done(ri)
        if 200 <= status < 300 and ri.request is not None:
            ri.dialog.update_target(resp)
            ack = ri.dialog.request("ACK", new_branch(), cseq=ri.request.cseq.number)
            self.tx.send_stateless(ack, ri.dialog.peer)
            self._keep_ack(ri.dialog.call_id, ri.request.cseq.number, ack, ri.dialog.peer, now)
            ri.on_answer(resp, status, now)
            return
        ri.on_answer(resp, status, now)

    def _done(self, ri: ReInvite) -> None:
        ri.done = True
        self.timers.cancel(ri.timer)
        if ri in self.active:
            self.active.remove(ri)

    def _retry_reinvite(self, ri: ReInvite, now: float) -> None:
        if not ri.done:
            self._send_reinvite(ri, now)

    def _on_caller_answer(
        self, rb: Rebridge, answer: Response | None, status: int, now: float
    ) -> None:
        if rb.state != "reinviting":
            return
        leg = rb.winner
        assert leg is not None and leg.dialog is not None
        if answer is None or not 200 <= status < 300 or not answer.body:
            self._drop_winner(rb, now)
            code = status if status >= 300 else 488
            self._fail(rb, code, f"the caller's phone refused the new media ({code})", now)
            if rb.released_old and rb.call is not None and rb.call.state == "answered":
                self._end_orphan(rb.call, code, now)  # nobody is left to talk to
            return
        leg.ack = leg.dialog.request(
            "ACK",
            new_branch(),
            answer.body,
            answer.headers.get("Content-Type"),
            cseq=leg.invite.cseq.number,
        )
        self.tx.send_stateless(leg.ack, leg.binding.peer)
        rb.state = "connected"
        self.legs.pop(leg.tx.id, None)
        if rb.call is not None:
            self._join_existing(rb.call, rb, leg, now)
        else:
            self._adopt(rb, leg, now)
        self._finish(rb, RebridgeResult(200, leg.binding.aor, "connected"), now)

    # --- joining the caller and the new callee in the B2BUA ------------------------------
    def _join_existing(self, call: Call, rb: Rebridge, leg: BLeg, now: float) -> None:
        """A bridged caller now talks to ``leg``: BYE the old callee, swap the B side."""
        calls = self.calls
        old = call.answered
        if old is not None and old.dialog is not None and not rb.released_old:
            self.tx.send_request(old.dialog.request("BYE", new_branch()), old.binding.peer, now)
        if old is not None:
            calls.legs.pop(old.tx.id, None)
        calls.dialogs.pop((call.b_call_id, call.b_from_tag), None)
        call.b_call_id, call.b_from_tag = rb.b_call_id, rb.b_from_tag
        call.legs.append(leg)
        call.answered = leg
        calls.legs[leg.tx.id] = (call, leg)  # 2xx retransmissions are ACKed again
        calls.dialogs[(call.b_call_id, call.b_from_tag)] = (call, "b")
        calls._write_cdr(call, now)

    def _end_orphan(self, call: Call, code: int, now: float) -> None:
        """The old callee is gone and the new one could not be connected: end the call."""
        assert call.a_dialog is not None
        self.tx.send_request(call.a_dialog.request("BYE", new_branch()), call.a_peer, now)
        self.calls._end(call, now, "answered", "system", code)

    def _adopt(self, rb: Rebridge, leg: BLeg, now: float) -> Call:
        """A caller answered by the media endpoint becomes a bridged B2BUA call (same id)."""
        seat, calls = rb.seat, self.calls
        call = Call(
            id=seat.id,
            tenant=seat.tenant,
            caller=seat.caller,
            caller_name=seat.caller_name,
            callee=seat.callee,
            a_tx=seat.a_tx,
            a_invite=seat.a_invite,
            a_peer=seat.dialog.peer,
            a_tag=seat.dialog.local_tag,
            b_call_id=rb.b_call_id,
            b_from_tag=rb.b_from_tag,
            started=seat.started,
            state="answered",
            legs=[leg],
            answered=leg,
            a_dialog=seat.dialog,
            answered_at=seat.answered_at,
        )
        calls.legs[leg.tx.id] = (call, leg)
        calls.dialogs[(seat.dialog.call_id, seat.dialog.local_tag)] = (call, "a")
        calls.dialogs[(rb.b_call_id, rb.b_from_tag)] = (call, "b")
        calls._write_cdr(call, now)
        return call

    def detach(self, call: Call, now: float) -> None:
        """The media endpoint takes over a bridged caller: BYE the callee and forget the
        call here without ending its CDR (the endpoint continues it under the same id)."""
        calls = self.calls
        old = call.answered
        if old is not None and old.dialog is not None:
            self.tx.send_request(old.dialog.request("BYE", new_branch()), old.binding.peer, now)
        call.state = "ended"
        calls.calls.pop(call.a_tx.id, None)
        for leg in call.legs:
            if not leg.cancel_pending:
                calls.legs.pop(leg.tx.id, None)
        calls.dialogs.pop((call.a_invite.call_id, call.a_tag), None)
        calls.dialogs.pop((call.b_call_id, call.b_from_tag), None)
        self.call_ended(call, now)

    # --- failures, timeouts, the caller leaving ------------------------------------------
    def _ring_timeout(self, rb: Rebridge, now: float) -> None:
        rb.timer = None
        if rb.state == "ringing":
            self._fail(rb, 480, f"no answer from {rb.target}", now)

    def _fail(self, rb: Rebridge, status: int, reason: str, now: float) -> None:
        for leg in rb.legs:
            self.calls._cancel_leg(leg, now)
        self._finish(rb, RebridgeResult(status, None, reason), now)

    def _drop_winner(self, rb: Rebridge, now: float) -> None:
        """The callee answered but will not be connected: ACK its 2xx and BYE it."""
        leg = rb.winner
        if leg is None or rb.offer is None:
            return
        self._release(leg, rb.offer, now)

    def _release(self, leg: BLeg, resp: Response, now: float) -> None:
        """ACK an unwanted 2xx — with an answer that declines every stream, since the 2xx
        carried an offer (RFC 3261 §13.2.2.4) — and BYE the dialog at once."""
        dialog = leg.dialog or Dialog.from_uac(
            leg.invite,
            resp,
            self.calls.contact(leg.binding.peer),
            self.calls.via_host,
            leg.binding.peer,
        )
        body = declining_answer(resp.body)
        leg.ack = dialog.request(
            "ACK",
            new_branch(),
            body,
            "application/sdp" if body else None,
            cseq=leg.invite.cseq.number,
        )
        self.tx.send_stateless(leg.ack, leg.binding.peer)
        self.tx.send_request(dialog.request("BYE", new_branch()), leg.binding.peer, now)
        leg.state = "cancelled"
        self.legs.pop(leg.tx.id, None)

    def _finish(self, rb: Rebridge, result: RebridgeResult, now: float) -> None:
        self.timers.cancel(rb.timer)
        rb.timer = None
        for tx_id in [k for k, v in self.byes.items() if v is rb]:
            del self.byes[tx_id]
        if rb.state not in ("connected",):
            rb.state = "aborted" if result.status == 487 else "failed"
        if rb.reinvite is not None:
            self._done(rb.reinvite)
        rb.result = result
        self.rebridges.pop(rb.id, None)
        for leg in rb.legs:
            if not leg.cancel_pending and leg is not rb.winner:
                self.legs.pop(leg.tx.id, None)
        log.info("call %s: connecting to %s: %s", rb.seat.id[:8], rb.target, result.reason)
        rb.on_done(rb, result, now)

    def abort(self, rb: Rebridge, now: float, reason: str = "the caller hung up") -> None:
        """The caller left (or the asker gave up): cancel the forks, drop an answered one."""
        if rb.state in ("connected", "failed", "aborted"):
            return
        if rb.state == "reinviting":
            self._drop_winner(rb, now)
        self._fail(rb, 487, reason, now)

    def call_ended(self, call: Call, now: float) -> None:
        """`CallManager` ended ``call``: abort re-bridges that were moving its caller."""
        if not self.rebridges:  # every call ends here; re-bridges are rare
            return
        for rb in [r for r in self.rebridges.values() if r.call is call]:
            self.abort(rb, now)

    def on_timeout(self, txn: ClientTransaction | ServerTransaction, now: float) -> bool:
        found = self.legs.pop(txn.id, None)
        if found is not None:
            self._on_leg_failed(found[0], found[1], 408, now)
            return True
        ri = self.reinvites.pop(txn.id, None)
        if ri is not None:
            self._done(ri)
            ri.on_answer(None, 408, now)
            return True
        return False

    def on_stray(self, resp: Response) -> bool:
        """A retransmitted 2xx to one of our re-INVITEs: ACK it again (never BYE)."""
        found = self.acks.get((resp.call_id, resp.cseq.number))
        if found is None or resp.cseq.method != "INVITE":
            return False
        self.tx.send_stateless(found[0], found[1])
        return True

    def _keep_ack(self, call_id: str, cseq: int, ack: Request, peer: Peer, now: float) -> None:
        """Remember an ACK for 64*T1 (32 s), as long as a 2xx may be retransmitted."""
        for key in [k for k, v in self.acks.items() if v[2] < now]:
            del self.acks[key]
        self.acks[(call_id, cseq)] = (ack, peer, now + 32.0)

    # --- the CDR --------------------------------------------------------------------------
    def note(self, cdr_id: str, entry: dict[str, Any]) -> None:
        """Record a call-control action (who, what, when, outcome) for the CDR's extra."""
        self.notes.setdefault(cdr_id, []).append(entry)

    def cdr_fields(self, record: dict[str, Any]) -> None:
        actions = self.notes.get(record["id"])
        if not actions:
            return
        extra = dict(record.get("extra") or {})
        extra["call_control"] = list(actions)
        record["extra"] = extra
        if record.get("ended_at") is not None:
            del self.notes[record["id"]]


__all__ = [
    "CallControl",
    "CallerSeat",
    "ReInvite",
    "Rebridge",
    "RebridgeResult",
    "declining_answer",
    "seat_of",
]
