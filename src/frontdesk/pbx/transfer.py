"""The transfer key of a desk phone or softphone: a REFER inside a bridged call, carried out
by the PBX itself (RFC 3515 with RFC 3892 Referred-By; RFC 5589 attended transfer).

Blind transfer: a party of an answered call REFERs it to a number. We answer 202 Accepted,
report progress to the transferor in the implicit subscription's NOTIFYs (message/sipfrag:
``100 Trying``, then the target's ``200 OK`` or the failure; the last one with
``Subscription-State: terminated;reason=noresource``), and move the OTHER party — the
transferee — to the target with the RFC 3725 re-bridge of `pbx.callcontrol` (delayed-offer
INVITE to the target, re-INVITE of the transferee). The transferor's leg gets BYE once the
target answered, right after the final NOTIFY; a transferor that hangs up after the 202 (as
phones do) leaves the transfer going on. The target is a number dialled from that extension:
an extension of the tenant (a technician too: a co-worker rings through); an unknown number
or one nobody can answer is reported in the NOTIFY (404, 480, 486) and the call stays up.
A call whose transferor is the caller is turned around first (`turn_around`), so that the
transferee is always the call's 'a' side, the seat `pbx.callcontrol` moves.

Attended transfer (a Replaces in the Refer-To) is `pbx.transfer_attended`.

Sans-I/O like `CallManager`: SIP leaves through the transaction layer, time comes in as
``now``. It never touches sockets, media or the database, and never raises at a peer: a bad
REFER gets 400 naming the header, another domain 403, one transfer at a time 491.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from frontdesk.pbx.callcontrol_model import Rebridge, RebridgeResult, seat_of
from frontdesk.pbx.calls import BLeg, Call
from frontdesk.pbx.location import Binding
from frontdesk.pbx.transfer_attended import Attended
from frontdesk.pbx.transfer_model import (
    SUBSCRIPTION_SECONDS,
    ReferTarget,
    ReferToError,
    Transfer,
    parse_refer_to,
    sipfrag,
)
from frontdesk.sip.message import Request, Response
from frontdesk.sip.transaction import ClientTransaction, ServerTransaction, new_branch

if TYPE_CHECKING:
    from frontdesk.pbx.calls import CallManager
    from frontdesk.pbx.engine import SipEngine

log = logging.getLogger("frontdesk.transfer")


class Transfers:
    """The transfers asked by phones on the calls of one `CallManager`."""

    def __init__(self, calls: CallManager) -> None:
        self.calls = calls
        self.engine: SipEngine | None = None  # set by the engine: directory and location
        self.active: dict[str, Transfer] = {}  # by CDR id of every call a transfer holds
        self.notifies: dict[str, Transfer] = {}  # by NOTIFY client transaction id
        self.turned: dict[str, tuple[str, str | None]] = {}  # CDR id -> (Call-ID, callee)
        self.attended = Attended(self)

    # --- from CallManager -----------------------------------------------------------------
    def on_request(
        self, call: Call, side: str, stx: ServerTransaction, req: Request, now: float
    ) -> bool:
        """An in-dialog request on ``call``: a REFER, or one that a blind transfer in
        progress handles itself; False lets the B2BUA relay it as usual."""
        if req.method == "REFER":
            self._on_refer(call, side, stx, req, now)
            return True
        t = self.active.get(call.id)
        if t is None or t.kind != "blind":
            return False
        if side == "b" and req.method == "BYE":  # the transferor leaves after the 202
            self.calls._respond(stx, req, 200, now)
            self._transferor_left(t)
            return True
        if side != "a" or not t.gone:
            return False  # both still there: relayed as usual
        if req.method == "BYE":  # the transferee leaves, alone: the transfer stops
            self.calls._respond(stx, req, 200, now)
            self.calls._end(call, now, "answered", "caller", None)
        else:  # nobody to relay it to until the target answers
            status = 491 if req.method in ("INVITE", "UPDATE") else 200
            self.calls._respond(stx, req, status, now)
        return True

    def on_response(self, ctx: ClientTransaction, resp: Response, now: float) -> bool:
        t = self.notifies.get(ctx.id)
        if t is None:
            return self.attended.on_response(ctx, resp, now)
        if resp.status >= 200:
            del self.notifies[ctx.id]
            if resp.status in (481, 408):  # the transferor's dialog is gone
                t.gone = True
        return True

    def on_timeout(self, txn: ClientTransaction | ServerTransaction, now: float) -> bool:
        if self.notifies.pop(txn.id, None) is not None:
            return True
        return self.attended.on_timeout(txn, now)

    def call_ended(self, call: Call, now: float) -> None:
        t = self.active.get(call.id)
        if t is not None and t.kind == "attended":
            self.attended.call_ended(t, call, now)

    def cdr_fields(self, record: dict[str, Any]) -> None:
        """A turned-around call keeps its caller's Call-ID and callee on the CDR."""
        turned = self.turned.get(record["id"])
        if turned is None:
            return
        record["call_id"] = turned[0]
        if record.get("callee_answered_by") == record.get("caller"):
            record["callee_answered_by"] = turned[1]
        if record.get("ended_at") is not None:
            del self.turned[record["id"]]

    # --- REFER ----------------------------------------------------------------------------
    def _on_refer(
        self, call: Call, side: str, stx: ServerTransaction, req: Request, now: float
    ) -> None:
        respond = self.calls._respond
        mine = call.a_dialog if side == "a" else (call.answered.dialog if call.answered else None)
        if mine is None or self.engine is None:
            respond(stx, req, 481 if mine is None else 501, now)
            return
        if not mine.accepts(req):
            respond(stx, req, 500, now, reason="Out Of Order CSeq")
            return
        try:
            target = parse_refer_to(req.headers.get_all("Refer-To"))
        except ReferToError as exc:
            respond(stx, req, 400, now, reason=f"Bad Request ({exc})")
            return
        host = target.host
        if host is not None and self.engine.directory.tenant_for_host(host) is not call.tenant:
            reason = f"Forbidden (Refer-To names another domain: {host[:60]})"
            respond(stx, req, 403, now, reason=reason)
            return
        if self._busy(call) or call.state != "answered" or call.awaiting_a_ack:
            respond(stx, req, 491, now, reason="Request Pending (the call is being moved)")
            return
        if target.replaces is not None:
            self.attended.start(call, side, stx, req, target, now)
            return
        self._blind(call, side, stx, req, target, now)

    def _busy(self, call: Call) -> bool:
        control = self.calls.control
        return (
            call.id in self.active
            or any(rb.seat.id == call.id for rb in control.rebridges.values())
            or any(ri.owner_id == call.id for ri in control.active)
            or control.pending_reinvite(call.a_dialog)
        )

    def party(self, call: Call, side: str) -> str:
        """The extension (or caller number) on ``side`` of a bridged call."""
        if side == "a":
            return call.caller
        return call.answered.binding.aor if call.answered is not None else ""

    def transferee(self, call: Call) -> str:
        """The number of the party on the 'a' side (the callee of a turned-around call)."""
        turned = self.turned.get(call.id)
        return (turned[1] or "") if turned is not None else call.caller

    def accept(
        self,
        call: Call,
        side: str,
        stx: ServerTransaction,
        req: Request,
        kind: str,
        target: str,
        now: float,
    ) -> Transfer:
        """Answer the REFER 202, note the transfer on the CDR and NOTIFY 100 Trying."""
        self.calls._respond(stx, req, 202, now, contact=True)
        mine = call.a_dialog if side == "a" else call.answered.dialog  # type: ignore[union-attr]
        assert mine is not None
        t = Transfer(call, kind, self.party(call, side), mine, target, calls=[call])
        at = datetime.fromtimestamp(now + self.calls.wall_offset, UTC)
        t.entry = {
            "action": "transfer",
            "kind": kind,
            "target": target,
            "actor": t.transferor,
            "via": "REFER",
            "at": at.isoformat(),
            "status": "requested",
        }
        self.calls.control.note(call.id, t.entry)
        self.active[call.id] = t
        log.info("call %s: %s transfer by %s to %s", call.id[:8], kind, t.transferor, target)
        self.notify(t, 100, now)
        return t

    def _blind(
        self,
        call: Call,
        side: str,
        stx: ServerTransaction,
        req: Request,
        target: ReferTarget,
        now: float,
    ) -> None:
        t = self.accept(call, side, stx, req, "blind", target.number, now)
        bindings, status = self._resolve(call, target.number, now)
        if not bindings:
            self.finish(t, status, now)
            return
        if side == "a":
            self.turn_around(call)
        seat = seat_of(call)
        if side == "a":  # the transferee is the callee: the target sees its number
            seat = dataclasses.replace(seat, caller=self.transferee(call), caller_name="")
        domain = call.tenant.sip_domain
        referred_by = (("Referred-By", f"<sip:{t.transferor}@{domain}>"),)

        def answered(_rb: Rebridge, at: float) -> None:
            self.notify(t, 200, at, final=True)  # before the transferor's leg gets BYE

        def done(_rb: Rebridge, result: RebridgeResult, at: float) -> None:
            self._blind_done(t, result, at)

        timeout = float(call.tenant.ring_timeout)
        ext = (
            self.engine.directory.extension(call.tenant.id, target.number) if self.engine else None
        )
        if ext is not None:
            timeout = float(ext.ring_timeout)
        t.rebridge = self.calls.control.connect(
            seat, target.number, bindings, timeout, now, done, call, answered, referred_by
        )

    def _resolve(self, call: Call, number: str, now: float) -> tuple[list[Binding], int]:
        """The reachable phones of ``number`` dialled from the call's tenant, or the status
        a caller dialling it would get (404 unknown, 480 no phone registered)."""
        engine = self.engine
        assert engine is not None
        tenant = call.tenant
        if engine.directory.extension(tenant.id, number) is None:
            if number and number == tenant.main_number:
                log.info("call %s: transfer to the main number is not supported", call.id[:8])
                return [], 501
            return [], 404
        found = [b for b in engine.location.lookup(tenant.id, number, now) if b.reachable]
        return found, 480

    def _blind_done(self, t: Transfer, result: RebridgeResult, now: float) -> None:
        call = t.call
        t.entry.update(status=_status_word(result), sip_code=result.status)
        if result.answered_by:
            t.entry["answered_by"] = result.answered_by
        if result.connected or result.status == 487:  # connected, or the call ended
            self.finish(t, 200 if result.connected else 487, now)
            return
        self.finish(t, result.status, now)
        if t.gone and call.state == "answered":  # the transferee is alone: end the call
            assert call.a_dialog is not None
            bye = call.a_dialog.request("BYE", new_branch())
            self.calls.tx.send_request(bye, call.a_dialog.peer, now)
            self.calls._end(call, now, "answered", "system", result.status)
        elif call.state == "answered":
            self.calls._write_cdr(call, now)  # the note on the CDR of the call going on

    def _transferor_left(self, t: Transfer) -> None:
        """The transferor hung up during a blind transfer: its leg is gone, no BYE to it."""
        t.gone = True
        call, leg = t.call, t.call.answered
        self.calls.dialogs.pop((call.b_call_id, call.b_from_tag), None)
        if leg is not None:
            leg.dialog = None  # the re-bridge then sends it no BYE

    # --- NOTIFY and the end of a transfer ---------------------------------------------------
    def notify(self, t: Transfer, status: int, now: float, final: bool = False) -> None:
        """Tell the transferor how the transfer goes (RFC 3515 §2.4.4-5)."""
        if t.gone or t.final is not None:
            return
        req = t.dialog.request(
            "NOTIFY", new_branch(), sipfrag(status), "message/sipfrag;version=2.0"
        )
        req.headers.add("Event", "refer")
        state = (
            "terminated;reason=noresource" if final else f"active;expires={SUBSCRIPTION_SECONDS}"
        )
        req.headers.add("Subscription-State", state)
        if final:
            t.final = status
        ctx = self.calls.tx.send_request(req, t.dialog.peer, now)
        self.notifies[ctx.id] = t

    def finish(self, t: Transfer, status: int, now: float) -> None:
        """The final NOTIFY (unless the call ended) and the transfer's end."""
        if status != 487:
            self.notify(t, status, now, final=True)
        if t.entry.get("status") == "requested":
            t.entry.update(status="connected" if status == 200 else "failed", sip_code=status)
        for call in t.calls:
            if self.active.get(call.id) is t:
                del self.active[call.id]
        log.info("call %s: %s transfer to %s: %d", t.call.id[:8], t.kind, t.target, status)

    def turn_around(self, call: Call) -> None:
        """Swap the sides of a bridged call, so that its callee becomes the 'a' side (the
        seat `pbx.callcontrol` moves) and its caller the answered leg."""
        calls, callee = self.calls, call.answered
        assert callee is not None and callee.dialog is not None and call.a_dialog is not None
        a_dialog, a_call_id = call.a_dialog, call.a_invite.call_id
        binding = Binding(
            call.tenant.id,
            call.caller,
            a_dialog.remote_target,
            a_dialog.peer,
            math.inf,
            a_call_id,
            0,
        )
        caller_leg = BLeg(
            binding, call.a_invite, call.a_tx, "answered", a_dialog
        )
        calls.dialogs.pop((a_call_id, call.a_tag), None)
        calls.dialogs.pop((call.b_call_id, call.b_from_tag), None)
        calls.legs.pop(callee.tx.id, None)
        self.turned.setdefault(call.id, (a_call_id, callee.binding.aor))
        call.b_call_id, call.b_from_tag, call.a_tag = a_call_id, call.a_tag, call.b_from_tag
        call.a_invite, call.a_dialog, call.a_peer = callee.invite, callee.dialog, callee.dialog.peer
        call.legs, call.answered = [caller_leg], caller_leg
        calls.dialogs[(call.a_invite.call_id, call.a_tag)] = (call, "a")
        calls.dialogs[(call.b_call_id, call.b_from_tag)] = (call, "b")


def _status_word(result: RebridgeResult) -> str:
    if result.connected:
        return "connected"
    if result.status == 487:
        return "caller_left"
    return result.outcome


__all__ = ["Transfer", "Transfers"]
