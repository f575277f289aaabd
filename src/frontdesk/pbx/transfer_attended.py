"""Attended (consultative) transfer by REFER with Replaces (RFC 5589 §7, RFC 3891): the
transferor B talks with C (the consultation call) while A waits on hold, then REFERs A's
call with ``Refer-To: <sip:C?Replaces=<B's consultation dialog>>``. Both of A's and C's legs
already exist in the B2BUA, so the PBX joins them itself (RFC 3725 on existing dialogs):

1. a re-INVITE without SDP to C (delayed offer): C's 2xx carries its offer;
2. a re-INVITE of A with C's offer (`CallControl.reinvite`, 491 retried): A's answer;
3. ACK to C carrying A's answer; NOTIFY B ``200 OK`` (terminated); BYE B's two legs;
4. A's call carries on with C as its answered leg (same CDR id); the consultation call's CDR
   ends; both CDRs note the transfer (``extra.call_control``).

A failure (C or A refusing the re-INVITE, a Replaces naming no call of ours or a call the
transferor is not in) is answered to B (403 for the REFER, or the NOTIFY's status); the calls
stay as they were, except after C already sent its offer and A refused it: then the
consultation call is ended (C's media cannot be given back to B). An incoming INVITE with
Replaces (RFC 3891 without REFER) is not handled here.

Sans-I/O like `pbx.transfer`: SIP through the transaction layer, time as ``now``; it never
touches sockets, media or the database, and never raises at a peer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from frontdesk.pbx.callcontrol_model import declining_answer
from frontdesk.pbx.calls import BLeg, Call
from frontdesk.pbx.transfer_model import ReferTarget, Transfer
from frontdesk.sip.message import Request, Response
from frontdesk.sip.transaction import ClientTransaction, ServerTransaction, new_branch

if TYPE_CHECKING:
    from frontdesk.pbx.transfer import Transfers

log = logging.getLogger("frontdesk.transfer")


@dataclass(eq=False)
class Consultation:
    """An attended transfer joining the transferee (``transfer.call``'s 'a' side) with the
    consulted party (``leg``, the answered leg of ``consult``)."""

    transfer: Transfer
    consult: Call  # B's call with C, turned so that B is its 'a' side
    leg: BLeg  # C's leg
    request: Request | None = None  # our delayed-offer re-INVITE to C
    ack: Request | None = None
    offer: bytes = b""
    state: str = "offering"  # offering, answering, joined, failed, aborted


class Attended:
    def __init__(self, transfers: Transfers) -> None:
        self.transfers = transfers
        self.calls = transfers.calls
        self.reinvites: dict[str, Consultation] = {}  # by re-INVITE client transaction id
        self.by_transfer: dict[int, Consultation] = {}  # id(Transfer) -> consultation

    def start(
        self,
        call: Call,
        side: str,
        stx: ServerTransaction,
        req: Request,
        target: ReferTarget,
        now: float,
    ) -> None:
        """REFER with Replaces on ``call`` (side ``side`` is the transferor)."""
        transfers, calls = self.transfers, self.calls
        assert target.replaces is not None
        call_id, to_tag, from_tag = target.replaces
        found = calls.dialogs.get((call_id, to_tag)) or calls.dialogs.get((call_id, from_tag))
        reason = None
        if found is None or found[0] is call:
            reason = "Forbidden (Replaces names no other call of ours)"
        elif transfers.party(found[0], found[1]) != transfers.party(call, side):
            reason = "Forbidden (Replaces names a call the transferor is not in)"
        if found is None or reason is not None:
            calls._respond(stx, req, 403, now, reason=reason)
            return
        consult, consult_side = found
        if transfers._busy(consult) or consult.state != "answered" or consult.awaiting_a_ack:
            calls._respond(stx, req, 491, now, reason="Request Pending (the call is being moved)")
            return
        other = "b" if consult_side == "a" else "a"
        t = transfers.accept(call, side, stx, req, "attended", transfers.party(consult, other), now)
        t.calls.append(consult)
        transfers.active[consult.id] = t
        if side == "a":
            transfers.turn_around(call)
        if consult_side == "b":
            transfers.turn_around(consult)
        leg = consult.answered
        assert leg is not None and leg.dialog is not None
        cons = Consultation(t, consult, leg)
        self.by_transfer[id(t)] = cons
        cons.request = leg.dialog.request("INVITE", new_branch())  # no SDP: C offers
        ctx = calls.tx.send_request(cons.request, leg.dialog.peer, now)
        self.reinvites[ctx.id] = cons

    # --- C's offer, A's answer -------------------------------------------------------------
    def on_response(self, ctx: ClientTransaction, resp: Response, now: float) -> bool:
        cons = self.reinvites.get(ctx.id)
        if cons is None:
            return False
        if resp.status < 200:
            return True
        if resp.status >= 300:
            del self.reinvites[ctx.id]
            self._fail(cons, resp.status, now)
            return True
        if cons.ack is not None:  # a retransmitted 2xx: the same ACK again
            self.calls.tx.send_stateless(cons.ack, cons.leg.binding.peer)
            return True
        dialog = cons.leg.dialog
        if cons.state != "offering" or dialog is None or not resp.body:
            self._ack_consulted(cons, declining_answer(resp.body), now)
            self._fail(cons, 488 if cons.state == "offering" else 487, now)
            return True
        dialog.update_target(resp)
        cons.offer, cons.state = resp.body, "answering"
        a_dialog = cons.transfer.call.a_dialog
        assert a_dialog is not None

        def answered(answer: Response | None, status: int, at: float) -> None:
            self._on_transferee_answer(cons, answer, status, at)

        self.calls.control.reinvite(
            a_dialog, resp.body, now, answered, owner_id=cons.transfer.call.id
        )
        return True

    def _ack_consulted(self, cons: Consultation, body: bytes, now: float) -> None:
        dialog, request = cons.leg.dialog, cons.request
        if dialog is None or request is None:
            return
        ctype = "application/sdp" if body else None
        cons.ack = dialog.request("ACK", new_branch(), body, ctype, cseq=request.cseq.number)
        self.calls.tx.send_stateless(cons.ack, dialog.peer)

    def _on_transferee_answer(
        self, cons: Consultation, answer: Response | None, status: int, now: float
    ) -> None:
        if cons.state != "answering":  # a call ended meanwhile
            return
        if answer is None or not 200 <= status < 300 or not answer.body:
            self._ack_consulted(cons, declining_answer(cons.offer), now)
            self._fail(cons, status if status >= 300 else 488, now)
            self._end_consultation(cons, now)  # C's media was taken from B: end that call
            return
        self._ack_consulted(cons, answer.body, now)
        self._join(cons, now)

    # --- the end ------------------------------------------------------------------------
    def _join(self, cons: Consultation, now: float) -> None:
        """A and C talk: B's two legs get BYE, A's call takes C's leg, C's call ends."""
        t, calls = cons.transfer, self.calls
        call, consult, leg = t.call, cons.consult, cons.leg
        cons.state = "joined"
        self._forget(cons)
        calls.timers.add(now + 32.0, self._drop, cons)  # 2xx retransmissions until then
        self.transfers.notify(t, 200, now, final=True)
        b_leg = call.answered
        for dialog in (b_leg.dialog if b_leg else None, consult.a_dialog):
            if dialog is not None:
                calls.tx.send_request(dialog.request("BYE", new_branch()), dialog.peer, now)
        c_key = (consult.b_call_id, consult.b_from_tag)
        calls.dialogs.pop((call.b_call_id, call.b_from_tag), None)
        if b_leg is not None:
            calls.legs.pop(b_leg.tx.id, None)
        consult.legs = [other for other in consult.legs if other is not leg]
        transferee = self.transfers.transferee(call)
        note = {**t.entry, "target": transferee, "joined_call": call.id, "status": "connected"}
        self.calls.control.note(consult.id, note)
        t.entry.update(
            status="connected", sip_code=200, answered_by=leg.binding.aor, replaced_call=consult.id
        )
        self.transfers.finish(t, 200, now)
        calls._end(consult, now, "answered", "system", None)
        call.b_call_id, call.b_from_tag = c_key
        call.legs.append(leg)
        call.answered = leg
        calls.legs[leg.tx.id] = (call, leg)
        calls.dialogs[c_key] = (call, "b")
        calls._write_cdr(call, now)
        log.info("call %s: joined with %s (call %s)", call.id[:8], leg.binding.aor, consult.id[:8])

    def _fail(self, cons: Consultation, status: int, now: float) -> None:
        if cons.state in ("joined", "failed", "aborted"):
            return
        cons.state = "failed" if status != 487 else "aborted"
        self._forget(cons)
        self.transfers.finish(cons.transfer, status, now)

    def _end_consultation(self, cons: Consultation, now: float) -> None:
        consult, calls = cons.consult, self.calls
        if consult.state != "answered":
            return
        for dialog in (consult.a_dialog, consult.answered.dialog if consult.answered else None):
            if dialog is not None:
                calls.tx.send_request(dialog.request("BYE", new_branch()), dialog.peer, now)
        calls._end(consult, now, "answered", "system", None)

    def _drop(self, cons: Consultation, _now: float) -> None:
        for tx_id in [k for k, v in self.reinvites.items() if v is cons]:
            del self.reinvites[tx_id]

    def _forget(self, cons: Consultation) -> None:
        self.by_transfer.pop(id(cons.transfer), None)

    def call_ended(self, t: Transfer, call: Call, now: float) -> None:
        """One of the two calls ended before A and C were joined: the transfer stops."""
        cons = self.by_transfer.get(id(t))
        if cons is not None and cons.state in ("offering", "answering"):
            self._fail(cons, 487, now)

    def on_timeout(self, txn: ClientTransaction | ServerTransaction, now: float) -> bool:
        cons = self.reinvites.pop(txn.id, None)
        if cons is None:
            return False
        self._fail(cons, 408, now)
        return True
