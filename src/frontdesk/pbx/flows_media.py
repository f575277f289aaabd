"""Call flows inside Frontdesk's own media: Play and Menu nodes on live calls.

When a flow's walk reaches a play or menu node, the media endpoint answers the caller (with
the same CDR id if the caller was ringing phones through the B2BUA) and this module's script
walks the flow from there, in that one media session: play the message, run the menu (the
caller's key, or "timeout"; the flow itself decides about retries), and feed each outcome
back to the routing layer. A ring, queue or internal-transfer step re-bridges the caller to
the phones (`LiveCallControl.connect_media`, RFC 3725 delayed offer) — answered: the flow is
done and the B2BUA carries the call on; busy / no answer: the walk goes on in the same
session. Voicemail runs the mailbox's script in the same session; hang up plays the message
if there is one and ends the call.

It never touches SIP directly (the endpoint and `pbx.callcontrol` do), nor the database.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from frontdesk.media.prompts import PromptLibrary
from frontdesk.media.session import CallEnded
from frontdesk.pbx.media_call import MediaCall
from frontdesk.routing.actions import (
    Action,
    HangupAction,
    MenuAction,
    Outcome,
    PlayAction,
    QueueAction,
    RingAction,
    TransferAction,
    VoicemailAction,
)

if TYPE_CHECKING:
    from frontdesk.pbx.callcontrol import RebridgeResult
    from frontdesk.pbx.flows import FlowRunner, FlowWalk

log = logging.getLogger("frontdesk.flows")

KEYS = "0123456789*#"


class FlowMedia:
    """Answers a walking caller with the media endpoint and runs the flow's media steps."""

    def __init__(self, runner: FlowRunner) -> None:
        self.runner = runner
        self.prompts: PromptLibrary | None = None  # set by pbx.media_setup
        self.control: Any = None  # pbx.callcontrol_live.LiveCallControl, set by media_setup

    def _now(self) -> float:
        endpoint = self.runner.engine.endpoint
        assert endpoint is not None
        return endpoint.now()

    def ready(self) -> bool:
        engine = self.runner.engine
        return engine.endpoint is not None and self.prompts is not None and self.control is not None

    def answer(self, walk: FlowWalk, now: float) -> bool:
        """Answer the caller with our media and walk on inside it; False if not possible
        (the endpoint already answered with a failure status and wrote the CDR)."""
        endpoint = self.runner.engine.endpoint
        assert endpoint is not None

        async def script(call: MediaCall) -> None:
            await self.run(walk, call)

        call = walk.call
        if call is not None:  # the caller has been ringing phones through the B2BUA
            self.runner.engine.calls.release(call, now)
            walk.call = None
            walk.cdr_id = call.id
            media = endpoint.answer(
                call.a_tx,
                call.a_invite,
                walk.tenant,
                walk.caller,
                walk.caller_name,
                walk.dialled,
                script,
                now,
                to_tag=call.a_tag,
                call_id=call.id,
                started=call.started,
            )
        else:
            walk.cdr_id = str(uuid.uuid4())
            self.runner._remember(walk)
            media = endpoint.answer(
                walk.stx,
                walk.invite,
                walk.tenant,
                walk.caller,
                walk.caller_name,
                walk.dialled,
                script,
                now,
                call_id=walk.cdr_id,
            )
        walk.media = media
        return media is not None

    async def run(self, walk: FlowWalk, call: MediaCall) -> None:
        """The flow's steps, one after another, until one ends the call or connects it."""
        try:
            while walk.step is not None and not walk.finished:
                outcome = await self._do(walk, call, walk.step.action)
                if outcome is None:
                    break
                self.runner.advance_only(walk, outcome, self._now())
        except CallEnded:
            walk.finished = True
            raise
        finally:
            self.runner._finish(walk)

    async def _do(self, walk: FlowWalk, call: MediaCall, action: Action) -> Outcome | str | None:
        """Perform one action in the media session; its outcome, None when the flow ends."""
        session = call.session
        assert session is not None and self.prompts is not None
        if isinstance(action, PlayAction):
            text = action.text or action.message
            await session.play(await self.prompts.speech(text))
            return "done"
        if isinstance(action, MenuAction):
            said = [await self.prompts.speech(action.text or action.prompt)]
            if action.retry_message:  # "Sorry, that is not a choice." before asking again
                retry = action.retry_text or action.retry_message
                said.insert(0, await self.prompts.speech(retry))
            await session.play(said, interrupt_on=KEYS)
            key = await session.collect(1, timeout=float(action.timeout), terminators="")
            return Outcome.pressed(key) if key else "timeout"
        if isinstance(action, RingAction | QueueAction) or (
            isinstance(action, TransferAction) and action.internal
        ):
            return await self._ring(walk, call, action)
        if isinstance(action, VoicemailAction):
            await self._voicemail(walk, call, action)
            return None
        if isinstance(action, HangupAction) and action.message_text:
            await session.play(await self.prompts.speech(action.message_text))
        elif isinstance(action, TransferAction):  # an outside number: no trunks yet
            await session.play(await self.prompts.speech("Sorry, that number cannot be reached."))
        return None  # hang up, connected: the script ends

    async def _ring(
        self, walk: FlowWalk, call: MediaCall, action: RingAction | QueueAction | TransferAction
    ) -> Outcome | str | None:
        if isinstance(action, RingAction):
            targets, timeout = action.extensions, float(action.timeout)
        elif isinstance(action, QueueAction):
            targets, timeout = action.extensions, float(action.max_wait)
        else:
            targets, timeout = (action.number,), walk.tenant.ring_timeout
        control = self.control
        bindings = [b for ext in targets for b in control._bindings(walk.tenant.id, ext)]
        if not bindings:
            return "failed"
        label = targets[0] if len(targets) == 1 else walk.dialled  # the To of the INVITEs
        result: RebridgeResult = await control.connect_media(call, label, bindings, timeout)
        if result.status == 487:
            raise CallEnded("hangup")
        if result.connected:
            by = result.answered_by or targets[0]
            self.runner.advance_only(walk, Outcome.answered(by), self._now())
            return None  # connected: the B2BUA has the call, the flow is done
        return result.outcome

    async def _voicemail(self, walk: FlowWalk, call: MediaCall, action: VoicemailAction) -> None:
        self.runner._finish(walk)
        endpoint = self.runner.engine.endpoint
        assert endpoint is not None and call.session is not None and self.prompts is not None
        from frontdesk.pbx.callcontrol_live import mailbox_script

        script = mailbox_script(endpoint, walk.tenant, action.mailbox)
        if script is None:
            log.error("flow %s: mailbox %s has no voicemail here", walk.step, action.mailbox)
            await call.session.play(
                await self.prompts.speech("Sorry, no one can take your call. Goodbye.")
            )
            return
        await script(call)
