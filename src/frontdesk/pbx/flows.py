"""Runs the tenant's published call flow (``routing/``) for calls to its main number, and the
technician shield for calls to a technician's extension (shielded calls enter the flow).

The routing layer is pure: (flow, call context, time) -> next action, and the outcome of
the action goes back in. This module is the other half: it turns each action into SIP on the
live call — ring these extensions for N seconds (B2BUA forks through `CallManager`), take the
caller to voicemail (the media endpoint answers), hang up — and feeds the result (answered by
whom, no answer, busy, failed) back to the walk. A play or menu step hands the walk to our
media (`pbx.flows_media`): the endpoint answers the caller and the rest of the walk runs in
that session, ring steps re-bridging the caller (`pbx.callcontrol`). The path taken and the
shield's decision end up on the CDR.

It never touches the database or sockets: the flow document and routing directory come from
the configuration snapshot, and caller lookups (which need the database) are injected as a
callback that may answer later.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from frontdesk.pbx.directory import ExtensionInfo, TenantInfo
from frontdesk.pbx.flows_media import FlowMedia
from frontdesk.routing.actions import (
    Action,
    ConnectedAction,
    HangupAction,
    MenuAction,
    Outcome,
    PlayAction,
    QueueAction,
    RingAction,
    Step,
    TransferAction,
    VoicemailAction,
    cdr_record,
)
from frontdesk.routing.context import UNKNOWN_CALLER, CallContext, CallerFacts, build_context
from frontdesk.routing.evaluate import advance
from frontdesk.routing.model import FlowDocument
from frontdesk.routing.shield import start_call
from frontdesk.sip.message import Request, make_response
from frontdesk.sip.transaction import ServerTransaction, new_tag

if TYPE_CHECKING:
    from frontdesk.pbx.calls import Call
    from frontdesk.pbx.engine import SipEngine
    from frontdesk.routing.directory import StaticDirectory

log = logging.getLogger("frontdesk.flows")

#: lookup(tenant_id, caller, reply): find the caller's contact/company/open requests and call
#: reply(facts) (maybe later, from the event loop).
CallerLookup = Callable[[int, str, Callable[[CallerFacts], None]], None]


@dataclass(slots=True)
class TenantRouting:
    """What the engine needs to route a tenant's calls: its flow and who is who."""

    flow: FlowDocument
    directory: StaticDirectory
    label: str = ""


@dataclass(slots=True)
class FlowWalk:
    """One call walking a flow."""

    runner: FlowRunner
    routing: TenantRouting
    tenant: TenantInfo
    stx: ServerTransaction
    invite: Request
    caller: str
    caller_name: str
    dialled: str
    ctx: CallContext | None = None
    step: Step | None = None
    call: Call | None = None
    finished: bool = False
    skipped: list[str] = field(default_factory=list)
    cdr_id: str | None = None  # once our media answered the caller (pbx.flows_media)
    media: Any = None  # that media call (pbx.media_call.MediaCall)

    def record(self) -> dict[str, Any]:
        """Cdr.path and Cdr.extra for the walk so far."""
        if self.step is None:
            return {}
        rec = cdr_record(self.step.state)
        shield = rec["extra"].get("shield")
        if shield is not None and shield["decision"] == "shielded":
            # which flow took the call: the main number's, even for a tenant without one
            shield["entered"] = self.routing.label or f'flow "{self.routing.flow.name}"'
            if not self.tenant.main_number:
                shield["entered"] += " (the tenant has no main number)"
        if self.skipped:
            rec["extra"]["skipped"] = list(self.skipped)
        return rec


class FlowRunner:
    def __init__(
        self,
        engine: SipEngine,
        lookup: CallerLookup | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.engine = engine
        self.lookup = lookup  # None: every caller is unknown (tests, no tickets data)
        self.clock = clock  # the event loop's time, for lookups that answer later
        self.turns: dict[int, int] = {}
        self._records: dict[str, dict[str, Any]] = {}  # CDR id -> path/extra
        self.media = FlowMedia(self)  # play/menu nodes: our media answers the caller

    # --- entry ----------------------------------------------------------------------------
    def wants(self, tenant: TenantInfo, dialled: str) -> bool:
        """Calls to the main number run the tenant's flow; calls to a technician's extension
        meet the technician shield first (``routing/shield.py``)."""
        routing = self.engine.directory.routing.get(tenant.id)
        if routing is None or not dialled:
            return False
        return dialled == tenant.main_number or routing.directory.is_technician(dialled)

    def start(
        self,
        stx: ServerTransaction,
        invite: Request,
        tenant: TenantInfo,
        caller: str,
        caller_name: str,
        dialled: str,
        now: float,
    ) -> None:
        """A call to the main number or a technician's extension: look the caller up (a
        co-worker needs no lookup), then start the flow or let the shield decide."""
        walk = FlowWalk(
            self,
            self.engine.directory.routing[tenant.id],
            tenant,
            stx,
            invite,
            caller,
            caller_name,
            dialled,
        )
        directory = walk.routing.directory
        if (
            self.lookup is None
            or self.clock is None
            or directory.extension_name(caller) is not None
        ):
            self._begin(walk, UNKNOWN_CALLER, now)  # a co-worker: nothing to look up
            return
        clock = self.clock
        self.lookup(tenant.id, caller, lambda facts: self._begin(walk, facts, clock()))

    def _begin(self, walk: FlowWalk, facts: CallerFacts, now: float) -> None:
        turn = self.turns.get(walk.tenant.id, 0)
        self.turns[walk.tenant.id] = turn + 1
        direct = None if walk.dialled == walk.tenant.main_number else walk.dialled
        callee = self.engine.directory.extension(walk.tenant.id, direct) if direct else None
        walk.ctx = build_context(
            caller=walk.caller,
            directory=walk.routing.directory,
            dialled_extension=direct,  # a technician's extension: the shield decides
            facts=facts,
            round_robin_turn=turn,
            direct_ring_seconds=int(callee.ring_timeout if callee else walk.tenant.ring_timeout),
        )
        walk.step = start_call(walk.routing.flow, walk.ctx, self._clock(now))
        shield = walk.step.state.shield
        if shield is not None and shield.let_through and callee is not None:
            self._ring_through(walk, callee, now)
            return
        self._perform(walk, now)

    def _ring_through(self, walk: FlowWalk, callee: ExtensionInfo, now: float) -> None:
        """Let through by the shield: the technician's phone rings exactly as for any call
        dialled directly (busy answers busy, no answer goes to their voicemail); the CDR
        keeps the shield's decision and reason."""
        engine = self.engine
        bindings = [
            b for b in engine.location.lookup(walk.tenant.id, callee.number, now) if b.reachable
        ]
        if not bindings:
            self._advance(walk, "failed", now)  # not registered: their voicemail, or 480
            return
        walk.finished = True
        walk.call = engine.calls.start(
            walk.stx, walk.invite, walk.tenant, walk.caller, walk.caller_name, callee,
            bindings, now,
        )
        self._remember(walk)

    def _clock(self, now: float) -> datetime:
        return datetime.fromtimestamp(now + self.engine.calls.wall_offset, UTC)

    # --- actions --------------------------------------------------------------------------
    def _perform(self, walk: FlowWalk, now: float) -> None:
        assert walk.step is not None
        action: Action = walk.step.action
        if isinstance(action, RingAction | QueueAction):
            timeout = action.timeout if isinstance(action, RingAction) else action.max_wait
            self._ring(walk, action.extensions, float(timeout), now)
        elif isinstance(action, TransferAction) and action.internal:
            self._ring(walk, (action.number,), walk.tenant.ring_timeout, now)
        elif isinstance(action, TransferAction) and self.engine.trunks.transfer(
            walk, action.number, now
        ):
            self._remember(walk)  # to an outside number through a trunk
        elif isinstance(action, ConnectedAction):
            self._finish(walk)
        elif isinstance(action, VoicemailAction):
            self._voicemail(walk, action.mailbox, now)
        elif isinstance(action, PlayAction | MenuAction) and self.media.ready():
            if not self.media.answer(walk, now):  # no RTP port / no common codec
                self._finish(walk)
        elif isinstance(action, PlayAction | MenuAction):
            # an engine without a media endpoint (no media configured): nobody can hear a
            # prompt, so the walk goes on, and the CDR says what was not played
            walk.skipped.append(f"{action.node}: {type(action).__name__} not played (no media)")
            log.warning("flow node %s: no media endpoint, %s not played", action.node, action)
            self._advance(walk, "done" if isinstance(action, PlayAction) else "timeout", now)
        else:  # hang up, or a transfer to an outside number with no trunk
            reason = action.reason if isinstance(action, HangupAction) else "no outside lines"
            self._reject(walk, 480, f"Temporarily Unavailable ({reason[:60]})", now)

    def _advance(self, walk: FlowWalk, outcome: Outcome | str, now: float) -> None:
        assert walk.step is not None and walk.ctx is not None
        walk.step = advance(walk.routing.flow, walk.step.state, outcome, walk.ctx, self._clock(now))
        self._remember(walk)
        self._perform(walk, now)

    def advance_only(self, walk: FlowWalk, outcome: Outcome | str, now: float) -> None:
        """The outcome of an action performed in our media (pbx.flows_media): the next
        step, which that script performs itself."""
        assert walk.step is not None and walk.ctx is not None
        walk.step = advance(walk.routing.flow, walk.step.state, outcome, walk.ctx, self._clock(now))
        self._remember(walk)

    def _ring(
        self, walk: FlowWalk, extensions: tuple[str, ...], timeout: float, now: float
    ) -> None:
        engine = self.engine
        bindings = [
            b
            for ext in extensions
            for b in engine.location.lookup(walk.tenant.id, ext, now)
            if b.reachable
        ]
        if not bindings:
            self._advance(walk, "failed", now)
            return
        if walk.call is None:
            target = ExtensionInfo(walk.tenant.id, walk.dialled, walk.tenant.name, timeout, 0)
            walk.call = engine.calls.start(
                walk.stx,
                walk.invite,
                walk.tenant,
                walk.caller,
                walk.caller_name,
                target,
                bindings,
                now,
                walk=walk,
            )
        else:
            engine.calls.ring_more(walk.call, bindings, timeout, now)
        self._remember(walk)

    # --- outcomes from the call engine ---------------------------------------------------
    def ring_failed(self, call: Call, status: int, now: float) -> bool:
        """All forks of a ring step failed or timed out; True if the flow goes on."""
        walk = call.walk
        if walk is None or walk.finished:
            return False
        outcome = (
            "busy"
            if status in (486, 600)
            else "no_answer"
            if status in (408, 480, 487)
            else "failed"
        )
        self._advance(walk, outcome, now)
        return True

    def answered(self, call: Call, extension: str, now: float) -> None:
        walk = call.walk
        if walk is not None and not walk.finished:
            self._advance(walk, Outcome.answered(extension), now)

    def _voicemail(self, walk: FlowWalk, mailbox: str, now: float) -> None:
        endpoint = self.engine.endpoint
        script = endpoint._script_for_unanswered(walk.tenant, mailbox) if endpoint else None
        if endpoint is None or script is None:
            self._reject(walk, 480, "Temporarily Unavailable (no voicemail)", now)
            return
        self._finish(walk)
        call = walk.call
        if call is not None:  # the caller has been ringing through the B2BUA
            self.engine.calls.release(call, now)
            endpoint.answer(
                call.a_tx,
                call.a_invite,
                walk.tenant,
                walk.caller,
                walk.caller_name,
                mailbox,
                script,
                now,
                to_tag=call.a_tag,
                call_id=call.id,
                started=call.started,
            )
        else:  # straight to voicemail (e.g. after hours): the CDR id is chosen here
            call_id = str(uuid.uuid4())
            self._records[call_id] = walk.record()
            endpoint.answer(
                walk.stx,
                walk.invite,
                walk.tenant,
                walk.caller,
                walk.caller_name,
                mailbox,
                script,
                now,
                call_id=call_id,
            )

    def _reject(self, walk: FlowWalk, status: int, reason: str, now: float) -> None:
        self._finish(walk)
        if walk.call is not None:
            self.engine.calls.fail(walk.call, status, now, "system")
            return
        resp = make_response(walk.invite, status, reason, to_tag=new_tag())
        self.engine.tx.send_response(walk.stx, resp, now)

    def _finish(self, walk: FlowWalk) -> None:
        walk.finished = True
        self._remember(walk)

    # --- CDR ------------------------------------------------------------------------------
    def _remember(self, walk: FlowWalk) -> None:
        cdr_id = walk.call.id if walk.call is not None else walk.cdr_id
        if cdr_id is not None:
            self._records[cdr_id] = walk.record()

    def cdr_fields(self, record: dict[str, Any]) -> None:
        """Add the flow's path/extra to a CDR record about to be stored (the B2BUA's or the
        media endpoint's, which continue the same CDR id)."""
        fields = self._records.get(record["id"])
        if fields:
            record.update(fields)
            if record.get("ended_at") is not None:
                del self._records[record["id"]]
        self.engine.calls.control.cdr_fields(record)  # answer-time actions (callcontrol)
