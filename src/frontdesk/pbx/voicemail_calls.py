"""The voicemail call scripts: leaving a message, and the mailbox menu behind *97.

Deposit: the mailbox's greeting (personal if approved, else the tenant's standard greeting,
rendered from its template), a tone, then the caller speaks until they press #, hang up,
fall silent, or reach the maximum length. The audio is on disk as it is spoken and becomes
durable before the message row is written (`media.wav`, `media.voicemail_store`); only
silence, or less than half a second of speech, is thrown away — with a log line saying so.

Retrieval (*97): PIN (three tries), the counts, then 1 to listen — per message 9 saves,
7 deletes, 4 replays, # (or 1) skips to the next, * returns to the menu — and 5 to record a
personal greeting when the tenant's greeting policy allows it (pending the Phone Manager's
approval when the policy says so). Logging in records a mailbox check (compliance).

Scripts only talk to the caller through `MediaSession` and to data through the service's
worker-thread calls; they never block the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from frontdesk.media import voicemail_store as store
from frontdesk.media.events import MessageDeposited
from frontdesk.media.kinds import phone_actor_name
from frontdesk.media.model import Mailbox, VoicemailMessage
from frontdesk.media.prompts import Prompt, PromptError, silence, tone
from frontdesk.media.session import MediaSession
from frontdesk.media.wav import RATE, DurableRecorder, read_pcm
from frontdesk.org import service as org_service
from frontdesk.org.access import Actor
from frontdesk.org.errors import OrgError
from frontdesk.org.service import Change, ChangeOutcome
from frontdesk.pbx.endpoint import MediaCall
from frontdesk.store.models import Extension, User

if TYPE_CHECKING:
    from frontdesk.pbx.voicemail import MailboxView, VoicemailService

log = logging.getLogger("frontdesk.voicemail")

BEEP = tone(1000, 300)
MIN_SPEECH_SECONDS = 0.5
SILENCE_SECONDS = 10.0
GREETING_SECONDS = 60.0

SAY = {
    "saved": "Your message has been saved. Goodbye.",
    "too_long": "You have reached the maximum length for a message.",
    "full": "Sorry, this mailbox is full. Please call again later. Goodbye.",
    "not_saved": "Sorry, your message could not be saved. Please call again later. Goodbye.",
    "pin": "Please enter your PIN, followed by the pound key.",
    "bad_pin": "That PIN is not correct.",
    "goodbye": "Goodbye.",
    "no_mailbox": "There is no voice mailbox for your extension. Goodbye.",
    "menu": "To listen to your messages, press 1. To hang up, press star.",
    "menu_greeting": "To listen to your messages, press 1. To record your personal greeting, "
    "press 5. To hang up, press star.",
    "after": "To save this message, press 9. To delete it, press 7. To hear it again, press 4. "
    "For the next message, press pound.",
    "kept": "Message saved.",
    "deleted": "Message deleted.",
    "no_more": "You have no more messages.",
    "record_greeting": "Record your greeting after the tone. Press pound when you are done.",
    "confirm_greeting": "To keep this greeting, press 1. To record it again, press 2. To "
    "cancel, press star.",
    "greeting_active": "Your new greeting is now active.",
    "greeting_pending": "Thank you. Your new greeting will be used once the Phone Manager "
    "approves it.",
    "greeting_forbidden": "Recording a personal greeting is not allowed for this mailbox.",
    "invalid": "Sorry, that is not a valid choice.",
}


async def say(
    service: VoicemailService, session: MediaSession, key_or_text: str, interrupt_on: str = ""
) -> str | None:
    text = SAY.get(key_or_text, key_or_text)
    return await session.play(await service.prompts.speech(text), interrupt_on=interrupt_on)


def spoken_number(number: str) -> str:
    """ "101" -> "1 0 1" so it is read digit by digit, as people say extensions."""
    return " ".join(number) if number.isdigit() else number


# --- deposit --------------------------------------------------------------------------------
async def deposit(service: VoicemailService, call: MediaCall, view: MailboxView | None) -> None:
    session = call.session
    assert session is not None and view is not None
    greeting, max_seconds, full = await service.db_call(
        lambda s: _deposit_context(service, s, view)
    )
    if full:
        log.warning(
            "voicemail: mailbox %s is full; %s could not leave a message", view.number, call.caller
        )
        await say(service, session, "full")
        return
    prompt = (
        await asyncio.to_thread(service.prompts.load, greeting.path)
        if greeting.path is not None
        else await service.prompts.speech(greeting.text or "")
    )
    await session.play(prompt, interrupt_on="#")
    session.flush_digits()
    await session.play([BEEP, silence(100)])
    message_id = str(uuid.uuid4())
    wav = store.message_dir(service.data_dir, view.tenant_id, view.number) / f"{message_id}.wav"
    meta = {
        "id": message_id,
        "mailbox_id": view.id,
        "mailbox": view.number,
        "caller": call.caller,
        "caller_name": call.caller_name,
        "received_at": time.time(),
        "call_id": call.id,
    }
    recorder = DurableRecorder(wav, max_seconds=max_seconds)
    await asyncio.to_thread(_open_recording, recorder, meta)
    reason = await session.record(recorder, silence_seconds=SILENCE_SECONDS, stop_digits="#")
    outcome = await _keep(service, call, view, recorder, meta, reason)
    if session.ended is not None:
        return
    if reason == "max-length":
        await say(service, session, "too_long")
    await say(service, session, {"stored": "saved", "empty": "goodbye"}.get(outcome, "not_saved"))


def _deposit_context(
    service: VoicemailService, s: Session, view: MailboxView
) -> tuple[store.GreetingChoice, int, bool]:
    box = s.get(Mailbox, view.id)
    assert box is not None
    conf = store.settings(s, view.tenant_id)
    new, saved = store.counts(s, view.id)
    return (
        store.active_greeting(s, service.data_dir, box),
        conf.max_message_seconds,
        new + saved >= box.max_messages,
    )


def _open_recording(recorder: DurableRecorder, meta: dict[str, object]) -> None:
    recorder.open()
    store.write_sidecar(recorder.final_path, meta)


async def _keep(
    service: VoicemailService,
    call: MediaCall,
    view: MailboxView,
    recorder: DurableRecorder,
    meta: dict[str, object],
    reason: str,
) -> str:
    """Store the message (durable file, then row, then lamps) or discard it, with a log line
    saying why; returns "stored", "empty" or "failed"."""
    speech = recorder.voiced_samples / RATE
    if speech < MIN_SPEECH_SECONDS:
        await asyncio.to_thread(_discard, recorder)
        log.info(
            "voicemail: nothing stored for mailbox %s from %s: %.1f s recorded, %.1f s "
            "of it speech (ended by %s)",
            view.number,
            call.caller,
            recorder.seconds,
            speech,
            reason,
        )
        return "empty"
    if reason == "disk":
        log.error(
            "voicemail: message from %s for mailbox %s cut short by a write error "
            "after %.1f s; keeping what was recorded",
            call.caller,
            view.number,
            recorder.seconds,
        )
    try:
        await _persist(service, view, recorder, meta)
    except OSError as exc:
        log.error(
            "voicemail: could not store the message from %s for mailbox %s: %s — "
            "check free space and permissions under %s",
            call.caller,
            view.number,
            exc.strerror or exc,
            service.data_dir,
        )
        return "failed"
    log.info(
        "voicemail: message %s from %s for mailbox %s stored (%.1f s, ended by %s)",
        meta["id"],
        call.caller,
        view.number,
        recorder.seconds,
        reason,
    )
    service.bus.publish(
        MessageDeposited(
            view.tenant_id, view.number, str(meta["id"]), call.caller, recorder.seconds
        )
    )
    await service.mailbox_changed(view)
    return "stored"


async def _persist(
    service: VoicemailService,
    view: MailboxView,
    recorder: DurableRecorder,
    meta: dict[str, object],
) -> None:
    """Durable audio (fsync + rename), its sidecar, then the row — in that order."""
    path = await asyncio.to_thread(recorder.finish)
    meta["duration"] = recorder.seconds
    try:
        await asyncio.to_thread(store.write_sidecar, path, meta)
    except OSError as exc:  # the sidecar from the start of the recording stays valid
        log.warning(
            "voicemail: could not update %s (%s); the message is kept",
            path.with_suffix(".json").name,
            exc.strerror or exc,
        )

    def add(s: Session) -> None:
        box = s.get(Mailbox, view.id)
        assert box is not None
        store.add_message(s, service.data_dir, box, path, meta)

    await service.db_call(add)


def _discard(recorder: DurableRecorder) -> None:
    recorder.discard()
    recorder.final_path.with_suffix(".json").unlink(missing_ok=True)


# --- retrieval --------------------------------------------------------------------------------
async def no_mailbox(service: VoicemailService, call: MediaCall, view: MailboxView | None) -> None:
    assert call.session is not None
    log.info("voicemail: %s dialled %s but has no mailbox", call.caller, call.dialled)
    await say(service, call.session, "no_mailbox")


async def retrieve(service: VoicemailService, call: MediaCall, view: MailboxView | None) -> None:
    session = call.session
    assert session is not None and view is not None
    if not await _login(service, call, view):
        await say(service, session, "goodbye")
        return
    await service.record_check(view, call.caller, "phone")
    while True:
        policy = await service.db_call(lambda s: store.settings(s, view.tenant_id).greeting_policy)
        new, saved = service.counts.get(view.id, (0, 0))
        menu = "menu" if policy == "forbidden" else "menu_greeting"
        text = f"You have {_count(new, 'new')} and {_count(saved, 'saved')}. {SAY[menu]}"
        await say(service, session, text, interrupt_on="15*#")
        choice = await session.collect(1, timeout=6.0, terminators="")
        if choice == "1":
            await _listen(service, call, view)
        elif choice == "5" and policy != "forbidden":
            await _record_greeting(service, call, view)
        elif choice in ("*", "#", ""):
            await say(service, session, "goodbye")
            return
        else:
            await say(service, session, "invalid")


def _count(n: int, kind: str) -> str:
    return f"{'no' if n == 0 else n} {kind} {'message' if n == 1 else 'messages'}"


async def _login(service: VoicemailService, call: MediaCall, view: MailboxView) -> bool:
    session = call.session
    assert session is not None
    pin_hash: str = await service.db_call(lambda s: _pin_hash(s, view.id))
    for _attempt in range(3):
        await say(service, session, "pin", interrupt_on="0123456789*#")
        entered = await session.collect(10, timeout=10.0, inter_digit=5.0, terminators="#")
        if entered:
            ok: bool = await asyncio.to_thread(store.verify_pin, entered, pin_hash)
            if ok:
                return True
        await say(service, session, "bad_pin")
    log.warning(
        "voicemail: three wrong PINs for mailbox %s from %s; hanging up", view.number, call.caller
    )
    return False


def _pin_hash(s: Session, mailbox_id: int) -> str:
    box = s.get(Mailbox, mailbox_id)
    return box.pin_hash if box is not None else "none"


async def _listen(service: VoicemailService, call: MediaCall, view: MailboxView) -> None:
    session = call.session
    assert session is not None
    messages = await service.db_call(lambda s: store.list_messages(s, view.id))
    for index, message in enumerate(messages, start=1):
        audio = Prompt(
            message.id, await asyncio.to_thread(read_pcm, service.data_dir / message.audio_path)
        )
        envelope = f"Message {index}, from {spoken_number(message.caller)}."
        while True:
            await say(service, session, envelope, interrupt_on="*")
            if await session.play(audio, interrupt_on="79#14*") is None:
                await say(service, session, "after", interrupt_on="79#14*")
            action = await session.collect(1, timeout=8.0, terminators="")
            if action != "4":
                break
        if action == "*":
            return
        if action in ("9", "7"):
            await _act(service, view, message, action, call.caller)
            await say(service, session, "kept" if action == "9" else "deleted")
    await say(service, session, "no_more")


async def _act(
    service: VoicemailService, view: MailboxView, message: VoicemailMessage, action: str, by: str
) -> None:
    def run(s: Session) -> None:
        row = store.get_message(s, view.tenant_id, message.id)
        if action == "9":
            store.mark_heard(s, row, by)
        else:
            store.delete_message(s, service.data_dir, row)

    await service.db_call(run)
    log.info(
        "voicemail: message %s in mailbox %s %s by %s",
        message.id,
        view.number,
        "saved" if action == "9" else "deleted",
        by,
    )
    await service.mailbox_changed(view)


async def _record_greeting(service: VoicemailService, call: MediaCall, view: MailboxView) -> None:
    session = call.session
    assert session is not None
    while True:
        await say(service, session, "record_greeting")
        await session.play(BEEP)
        tmp = service.prompts.root / "recording" / f"{uuid.uuid4()}.wav"
        recorder = DurableRecorder(tmp, max_seconds=GREETING_SECONDS)
        await asyncio.to_thread(recorder.open)
        await session.record(recorder, silence_seconds=5.0, stop_digits="#")
        path = await asyncio.to_thread(recorder.finish)
        await say(service, session, "confirm_greeting", interrupt_on="12*")
        choice = await session.collect(1, timeout=8.0, terminators="")
        if choice != "2":
            break
        await asyncio.to_thread(path.unlink)
    if choice != "1":
        await asyncio.to_thread(path.unlink)
        return
    await _store_greeting(service, call, view, path)


async def _store_greeting(
    service: VoicemailService, call: MediaCall, view: MailboxView, path: Path
) -> None:
    session = call.session
    assert session is not None
    try:
        stored = await asyncio.to_thread(service.prompts.import_upload, path, min_seconds=0.5)
    except PromptError as exc:
        log.info("voicemail: greeting recorded for mailbox %s not kept: %s", view.number, exc)
        await say(service, session, "Sorry, that greeting could not be used.")
        return
    finally:
        path.unlink(missing_ok=True)

    def add(s: Session) -> ChangeOutcome:
        return personal_greeting_change(s, view, stored.relative_to(service.data_dir))

    try:
        outcome = await service.db_call(add)
    except OrgError as exc:
        stored.unlink(missing_ok=True)
        log.info("voicemail: greeting for mailbox %s refused: %s", view.number, exc)
        await say(service, session, "greeting_forbidden")
        return
    service.publish_org(outcome.events)  # committed: tell the Phone Manager
    status = greeting_status(outcome)
    log.info(
        "voicemail: new personal greeting for mailbox %s recorded by %s (%s)",
        view.number,
        call.caller,
        status,
    )
    await say(service, session, "greeting_active" if status == "active" else "greeting_pending")


def record_personal_greeting(s: Session, view: MailboxView, audio: Path) -> str:
    """``personal_greeting_change``, returning only the greeting's status."""
    return greeting_status(personal_greeting_change(s, view, audio))


def greeting_status(outcome: ChangeOutcome) -> str:
    """The status a greeting change left (active, pending_approval, ...)."""
    return str((outcome.after or {}).get("status", outcome.status))


def personal_greeting_change(s: Session, view: MailboxView, audio: Path) -> ChangeOutcome:
    """Store a greeting the owner recorded by phone through the one change path: the
    mailbox owner (the user of its extension, or the mailbox's own phone job) is the actor,
    channel "job"; the tenant's greeting policy decides active or pending approval.
    Returns the outcome; its events are published once the session committed."""
    owner = s.scalar(
        select(User)
        .join(Extension, Extension.user_id == User.id)
        .where(Extension.tenant_id == view.tenant_id, Extension.number == view.number)
    )
    actor = (
        Actor.for_user(owner)
        if owner is not None
        else Actor.job(view.tenant_id, phone_actor_name(view.number), ())
    )
    fields = {"mailbox": view.number, "source": "phone", "audio_path": audio.as_posix()}
    outcome = org_service.apply_change(s, actor, "job", Change("greeting", "create", None, fields))
    log.info(
        "voicemail: greeting %s for mailbox %s: %s by %s (audit #%s)",
        outcome.resource_key,
        view.number,
        outcome.status,
        actor.name,
        outcome.audit_seq,
    )
    return outcome
