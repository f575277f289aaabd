"""/api/v1/voicemail: mailboxes, messages (list, download as WAV, mark heard, delete),
mailbox checks and the compliance report; the configuration endpoints (greeting settings,
mailboxes, greeting approval) are in `media.api_config`, self-service menus in
`media.api_menus`; both included below.

Who may open a mailbox: the person whose extension it is, the people responsible for
checking it (extension numbers or user names in its ``responsible`` list), and whoever may
change mailboxes (``mailbox.update``: Phone Manager, contact-center manager,
administrator). Opening a mailbox's messages is a check (channel ``web``) for the compliance
report, as listening through *97 is by phone. The compliance report needs ``mailbox.read``
(service manager, business owners, Decision Maker).

Lamps follow changes made here within seconds (the voicemail service re-reads counts).
Endpoints are plain functions FastAPI runs in worker threads; errors are the ownership
layer's (problem+json naming the thing and the fix). Never another tenant's rows; never a
configuration change except through ``org.service``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as UrlPath
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from frontdesk.api.common import Caller, CallerDep
from frontdesk.media import api_config, api_menus, compliance
from frontdesk.media import voicemail_store as store
from frontdesk.media.model import Mailbox, VoicemailMessage
from frontdesk.org.access import resolve_access
from frontdesk.org.errors import NotAllowed, NotFound
from frontdesk.store.models import Extension, User, utcnow

router = APIRouter(prefix="/api/v1/voicemail", tags=["Voicemail"])
Number = Annotated[str, UrlPath(pattern=r"^[A-Za-z0-9*#+_-]{1,32}$")]
MessageId = Annotated[str, UrlPath(pattern=r"^[A-Za-z0-9-]{1,36}$")]


def _data_dir(request: Request) -> Path:
    return api_config.data_dir_of(request)


def _identities(session: Session, caller: Caller) -> set[str]:
    """The caller's user name and extension numbers (how mailboxes name people)."""
    names = {caller.actor.name}
    if caller.actor.user_id is not None:
        names.update(
            session.scalars(
                select(Extension.number).where(
                    Extension.tenant_id == caller.tenant_id,
                    Extension.user_id == caller.actor.user_id,
                )
            )
        )
        user = session.get(User, caller.actor.user_id)
        if user is not None:
            names.add(user.username)
    return names


def _may_open(session: Session, caller: Caller, box: Mailbox) -> bool:
    people = {box.number, *(box.responsible or [])}
    if _identities(session, caller) & people:
        return True
    return resolve_access(session, caller.actor, caller.tenant_id, None, utcnow()).allows(
        "mailbox.update"
    )


def _mailbox(session: Session, caller: Caller, number: str) -> Mailbox:
    box = store.get_mailbox(session, caller.tenant_id, number)
    if box is None:
        raise NotFound(
            f"mailbox {number!r} does not exist in tenant {caller.tenant_slug}",
            fix="list them with GET /api/v1/voicemail/mailboxes",
        )
    if not _may_open(session, caller, box):
        raise NotAllowed(
            f"{caller.actor.name} may not open mailbox {number}",
            fix="ask its owner, someone responsible for it, or the Phone Manager",
        )
    return box


def message_out(box: Mailbox, m: VoicemailMessage) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": m.id,
        "mailbox": box.number,
        "caller": m.caller,
        "caller_name": m.caller_name,
        "received_at": iso(m.received_at),
        "duration": m.duration,
        "status": m.status,
        "heard_at": iso(m.heard_at),
        "heard_by": m.heard_by,
        "audio": f"{router.prefix}/messages/{m.id}/audio",
    }


@router.get("/mailboxes", summary="Mailboxes the caller may open, with message counts")
def list_mailboxes(caller: CallerDep) -> list[dict[str, Any]]:
    with caller.session() as session:
        rows = session.scalars(
            select(Mailbox).where(Mailbox.tenant_id == caller.tenant_id).order_by(Mailbox.number)
        )
        out = []
        for box in rows:
            if _may_open(session, caller, box):
                new, saved = store.counts(session, box.id)
                out.append(
                    {
                        "number": box.number,
                        "name": box.name,
                        "new": new,
                        "saved": saved,
                        "responsible": list(box.responsible or [box.number]),
                        "escalate_to": box.escalate_to,
                    }
                )
        return out


@router.get("/mailboxes/{number}/messages", summary="A mailbox's messages (a web check)")
def list_box_messages(
    number: Number, caller: CallerDep, record_check: Annotated[bool, Query()] = True
) -> list[dict[str, Any]]:
    with caller.session() as session:
        box = _mailbox(session, caller, number)
        messages = store.list_messages(session, box.id)
        if record_check:
            compliance.record_check(
                session,
                box,
                caller.actor.name,
                "web",
                sum(1 for m in messages if m.status == "new"),
            )
        return [message_out(box, m) for m in messages]


@router.post(
    "/mailboxes/{number}/checks",
    status_code=201,
    summary="Record that the caller checked the mailbox now",
)
def check_mailbox(number: Number, caller: CallerDep) -> dict[str, Any]:
    with caller.session() as session:
        box = _mailbox(session, caller, number)
        row = compliance.record_check(
            session, box, caller.actor.name, "web", store.counts(session, box.id)[0]
        )
        return {
            "mailbox": number,
            "checked_by": row.checked_by,
            "channel": row.channel,
            "checked_at": row.checked_at.isoformat(),
        }


def _message(session: Session, caller: Caller, message_id: str) -> tuple[Mailbox, Any]:
    try:
        row = store.get_message(session, caller.tenant_id, message_id)
    except store.VoicemailError as exc:
        raise NotFound(
            str(exc), fix="list messages with GET /api/v1/voicemail/mailboxes/{number}/messages"
        ) from exc
    box = session.get(Mailbox, row.mailbox_id)
    assert box is not None
    _mailbox(session, caller, box.number)
    return box, row


@router.get(
    "/messages/{message_id}/audio",
    response_class=FileResponse,
    summary="A message's audio (8 kHz mono WAV)",
)
def message_audio(message_id: MessageId, request: Request, caller: CallerDep) -> Any:
    with caller.session() as session:
        _, row = _message(session, caller, message_id)
        path = _data_dir(request) / row.audio_path
    if not path.exists():
        raise NotFound(
            f"the audio of message {message_id} is missing on the server",
            fix="restore the data directory from a backup",
        )
    return FileResponse(path, media_type="audio/wav", filename=f"voicemail-{message_id}.wav")


@router.post("/messages/{message_id}/heard", summary="Mark a message heard (saved)")
def message_heard(message_id: MessageId, caller: CallerDep) -> dict[str, Any]:
    with caller.session() as session:
        box, row = _message(session, caller, message_id)
        store.mark_heard(session, row, caller.actor.name)
        compliance.record_check(
            session, box, caller.actor.name, "web", store.counts(session, box.id)[0]
        )
        return message_out(box, row)


@router.delete("/messages/{message_id}", status_code=204, summary="Delete a message")
def message_delete(message_id: MessageId, request: Request, caller: CallerDep) -> None:
    with caller.session() as session:
        _, row = _message(session, caller, message_id)
        store.delete_message(session, _data_dir(request), row)


@router.get("/compliance", summary="Scheduled mailbox checks: made, missed, by whom")
def compliance_report(
    caller: CallerDep,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
    mailbox: Annotated[str | None, Query(max_length=32)] = None,
) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    end = _aware(until) or now
    start = _aware(since) or end - timedelta(days=7)
    with caller.session() as session:
        caller.require(session, "mailbox.read")
        return [
            r.as_dict()
            for r in compliance.report(session, caller.tenant_id, start, end, now, mailbox)
        ]


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


router.include_router(api_config.router)  # the configuration endpoints share this prefix
router.include_router(api_menus.router)  # self-service menus (/menus) too
