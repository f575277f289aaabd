"""Voicemail data: mailboxes, PINs, messages and their files, greetings, the greeting
template — the queries and rules the phone scripts, the CLI and the API share.

Every function takes an open SQLAlchemy session (the caller commits) and, where files are
involved, the data directory. Message audio lives at
``DATA/voicemail/<tenant>/<mailbox>/<id>.wav`` beside ``<id>.json`` (who called, when), both
written before the row: `reconcile` re-creates rows for files a crash left without one, so
a message is never lost between its fsync and its commit. PINs are salted scrypt hashes.

Configuration — the greeting template and policy, mailboxes, recorded greetings and their
approval — is never written here: it changes only through ``org.service`` (the kinds in
`media.kinds`), so every change is permission-checked, versioned and audited. This module
holds the rules those kinds reuse (PIN hashing, template rendering) and the messages.

Blocking (database and disk): call it through ``asyncio.to_thread`` from the event loop.
Errors a person causes raise `VoicemailError` with the thing and the fix named.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from frontdesk.media.model import (
    DEFAULT_TEMPLATE,
    Greeting,
    Mailbox,
    VoicemailMessage,
    VoicemailSettings,
)
from frontdesk.media.prompts import PromptLibrary
from frontdesk.media.wav import fsync_dir, recover_partials

log = logging.getLogger("frontdesk.voicemail")

VOICEMAIL_DIR = "voicemail"
PIN_DIGITS = (4, 10)


class VoicemailError(ValueError):
    """A voicemail request that cannot be done as asked (the message says why and how)."""


# --- PINs ---------------------------------------------------------------------------------
def hash_pin(pin: str) -> str:
    if not (pin.isdigit() and PIN_DIGITS[0] <= len(pin) <= PIN_DIGITS[1]):
        raise VoicemailError(
            f"a voicemail PIN must be {PIN_DIGITS[0]} to {PIN_DIGITS[1]} digits "
            "(0-9) so it can be typed on a keypad"
        )
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_pin(pin: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt" or not pin.isdigit():
        return False
    got = hashlib.scrypt(pin.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1)
    return hmac.compare_digest(got.hex(), digest)


# --- settings and the greeting template --------------------------------------------------------
def default_settings(tenant_id: int) -> VoicemailSettings:
    """A tenant's settings before anyone changed them (a new row, not added to a session)."""
    return VoicemailSettings(
        tenant_id=tenant_id,
        greeting_template=DEFAULT_TEMPLATE,
        variables={},
        greeting_policy="approval_required",
        voice="en-us",
        max_message_seconds=180,
    )


def settings(s: Session, tenant_id: int) -> VoicemailSettings:
    """The tenant's voicemail settings (the defaults until changed; never written here)."""
    row = s.scalar(select(VoicemailSettings).where(VoicemailSettings.tenant_id == tenant_id))
    return row if row is not None else default_settings(tenant_id)


def template_fields(template: str) -> list[str]:
    """The ``{placeholders}`` a template uses; VoicemailError if it is malformed."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise VoicemailError(
            f"greeting template is malformed ({exc}); write placeholders "
            "as {name}, and a literal brace as {{ or }}"
        ) from exc
    fields = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise VoicemailError(
                f"greeting template placeholder {{{name}}} is not a plain "
                "name; use e.g. {name} or {service_manager_extension}"
            )
        fields.append(name)
    return fields


def render_greeting(template: str, variables: dict[str, Any], mailbox: Mailbox | None) -> str:
    """The greeting text for ``mailbox`` ({name}, {extension} come from it)."""
    values = {str(k): str(v) for k, v in variables.items()}
    if mailbox is not None:
        values.setdefault("name", mailbox.name)
        values.setdefault("extension", mailbox.number)
    missing = [f for f in template_fields(template) if f not in values]
    if missing:
        raise VoicemailError(
            f"greeting template uses {{{missing[0]}}} but no value is set; set it with "
            f"`frontdesk voicemail template --var {missing[0]}=VALUE`"
        )
    return template.format(**values)


# --- mailboxes ---------------------------------------------------------------------------------
def get_mailbox(s: Session, tenant_id: int, number: str) -> Mailbox | None:
    return s.scalar(select(Mailbox).where(Mailbox.tenant_id == tenant_id, Mailbox.number == number))


def require_mailbox(s: Session, tenant_id: int, number: str) -> Mailbox:
    box = get_mailbox(s, tenant_id, number)
    if box is None:
        known = (
            ", ".join(
                s.scalars(
                    select(Mailbox.number)
                    .where(Mailbox.tenant_id == tenant_id)
                    .order_by(Mailbox.number)
                )
            )
            or "none yet"
        )
        raise VoicemailError(
            f"mailbox {number!r} does not exist (mailboxes: {known}); create "
            f"it with `frontdesk voicemail mailbox add {number} --pin PIN`"
        )
    return box


def counts(s: Session, mailbox_id: int) -> tuple[int, int]:
    """(new, saved) message counts."""
    rows = dict(
        s.execute(
            select(VoicemailMessage.status, func.count())
            .where(VoicemailMessage.mailbox_id == mailbox_id)
            .group_by(VoicemailMessage.status)
        ).all()
    )
    return int(rows.get("new", 0)), int(rows.get("saved", 0))


# --- messages ------------------------------------------------------------------------------------
def message_dir(data_dir: Path, tenant_id: int, number: str) -> Path:
    safe = "".join(c for c in number if c.isalnum() or c in "*#+-_") or "_"
    return data_dir / VOICEMAIL_DIR / str(tenant_id) / safe


def write_sidecar(wav: Path, meta: dict[str, Any]) -> None:
    """The message's metadata beside its audio (atomic, fsynced): what `reconcile` reads."""
    path = wav.with_suffix(".json")
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(meta, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def add_message(
    s: Session, data_dir: Path, box: Mailbox, wav: Path, meta: dict[str, Any]
) -> VoicemailMessage:
    row = VoicemailMessage(
        id=str(meta["id"]),
        tenant_id=box.tenant_id,
        mailbox_id=box.id,
        caller=str(meta.get("caller") or "anonymous")[:64],
        caller_name=(str(meta["caller_name"])[:255] if meta.get("caller_name") else None),
        received_at=datetime.fromtimestamp(float(meta["received_at"]), UTC),
        duration=float(meta.get("duration") or 0.0),
        audio_path=wav.relative_to(data_dir).as_posix(),
        status="new",
    )
    s.add(row)
    s.flush()
    return row


def list_messages(s: Session, mailbox_id: int, status: str | None = None) -> list[VoicemailMessage]:
    """New messages first, then saved; oldest first within each."""
    query = select(VoicemailMessage).where(VoicemailMessage.mailbox_id == mailbox_id)
    if status is not None:
        query = query.where(VoicemailMessage.status == status)
    rows = list(s.scalars(query.order_by(VoicemailMessage.received_at)))
    return sorted(rows, key=lambda m: m.status != "new")


def get_message(s: Session, tenant_id: int, message_id: str) -> VoicemailMessage:
    row = s.get(VoicemailMessage, message_id)
    if row is None or row.tenant_id != tenant_id:
        raise VoicemailError(
            f"voicemail message {message_id!r} does not exist (list them "
            "with `frontdesk voicemail list`)"
        )
    return row


def mark_heard(s: Session, row: VoicemailMessage, by: str) -> None:
    """Move a message to the saved folder (heard)."""
    row.status = "saved"
    row.heard_at = row.heard_at or datetime.now(UTC)
    row.heard_by = row.heard_by or by[:128]


def delete_message(s: Session, data_dir: Path, row: VoicemailMessage) -> None:
    wav = data_dir / row.audio_path
    s.delete(row)
    s.flush()
    for path in (wav, wav.with_suffix(".json")):
        path.unlink(missing_ok=True)


def reconcile(s: Session, data_dir: Path) -> list[str]:
    """After a crash: finish interrupted recordings and add rows for messages whose files
    were durable but whose row was never committed. Returns the ids added."""
    root = data_dir / VOICEMAIL_DIR
    for path in recover_partials(root):
        log.warning("voicemail: recovered the interrupted recording %s", path)
    added: list[str] = []
    if not root.exists():
        return added
    for wav in sorted(root.rglob("*.wav")):
        meta_path = wav.with_suffix(".json")
        if not meta_path.exists():
            continue
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if s.get(VoicemailMessage, str(meta["id"])) is not None:
            continue
        box = s.get(Mailbox, int(meta["mailbox_id"]))
        if box is None:
            continue
        if not meta.get("duration"):
            meta["duration"] = max(0, wav.stat().st_size - 44) / 16000
        add_message(s, data_dir, box, wav, meta)
        added.append(str(meta["id"]))
        log.warning(
            "voicemail: message %s from %s for mailbox %s was stored on disk but not "
            "in the database (server stopped); added it",
            meta["id"],
            meta.get("caller"),
            box.number,
        )
    return added


def import_new(library: PromptLibrary, wav: Path) -> tuple[Path, bool]:
    """Check and convert an uploaded greeting (PromptError if unusable); return where it is
    stored and whether that file is new (uploads are stored by content, so the same audio
    uploaded twice is one file: only a new one may be removed when its change is refused)."""
    before = set((library.root / "uploads").glob("*.wav"))
    stored = library.import_upload(wav)
    return stored, stored not in before


# --- greetings -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GreetingChoice:
    """What a caller hears: a recorded file, or text to render."""

    path: Path | None
    text: str | None


def active_greeting(s: Session, data_dir: Path, box: Mailbox) -> GreetingChoice:
    """Personal greeting if active, else the tenant's recorded standard greeting, else the
    standard template rendered for this mailbox."""
    for mailbox_id in (box.id, None):
        row = s.scalar(
            select(Greeting)
            .where(
                Greeting.tenant_id == box.tenant_id,
                Greeting.mailbox_id.is_(None)
                if mailbox_id is None
                else Greeting.mailbox_id == mailbox_id,
                Greeting.status == "active",
            )
            .order_by(Greeting.id.desc())
        )
        if row is not None and (data_dir / row.audio_path).exists():
            return GreetingChoice(data_dir / row.audio_path, None)
    conf = settings(s, box.tenant_id)
    try:
        return GreetingChoice(
            None, render_greeting(conf.greeting_template, conf.variables or {}, box)
        )
    except VoicemailError as exc:
        log.error("mailbox %s: %s; playing a plain greeting meanwhile", box.number, exc)
        return GreetingChoice(
            None,
            f"You have reached the voice mail for {box.name}. "
            "Please leave a message after the tone.",
        )


def replace_others(s: Session, row: Greeting) -> None:
    """Mark the other active greetings of the same mailbox (or tenant-wide) replaced."""
    same = (
        Greeting.mailbox_id.is_(None)
        if row.mailbox_id is None
        else Greeting.mailbox_id == row.mailbox_id
    )
    for other in s.scalars(
        select(Greeting).where(
            Greeting.tenant_id == row.tenant_id,
            same,
            Greeting.status == "active",
            Greeting.id != row.id,
        )
    ):
        other.status = "replaced"
