"""Tables for voicemail: the tenant's greeting template and policy, mailboxes (PIN, check
schedule, who is responsible), messages, greetings, the log of mailbox checks, missed-check
escalations, and self-service menus.

Audio never lives in the database: rows carry paths relative to the data directory, and a
message's WAV is durable on disk before its row is written (see `media.wav`). PINs are
stored as salted scrypt hashes, never in clear. Times people read are aware UTC datetimes.

This module only describes tables (migration ``0005_media``). It must never open
connections, run queries or hold business rules beyond column defaults: those live in
`media.voicemail_store` and `media.compliance`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.ext.mutable import MutableDict, MutableList
from sqlalchemy.orm import Mapped, mapped_column

from frontdesk.store.models import Base, UtcDateTime, json_type, utcnow

GREETING_POLICIES = ("forbidden", "allowed", "approval_required")
MESSAGE_STATUSES = ("new", "saved")
GREETING_KINDS = ("upload", "phone")
GREETING_STATUSES = ("active", "pending_approval", "rejected", "replaced")
CHECK_CHANNELS = ("phone", "web", "api", "cli")

DEFAULT_TEMPLATE = (
    "You have reached the voice mail for {name}. Please leave a detailed message and I will "
    "return your call as soon as possible. If this is an urgent issue, please call extension "
    "{service_manager_extension} for the Service Manager."
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class VoicemailSettings(Base):
    """Tenant-wide: the standard greeting template, its variables, and the greeting policy."""

    __tablename__ = "voicemail_settings"
    __table_args__ = (CheckConstraint(_in("greeting_policy", GREETING_POLICIES), name="policy"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), unique=True
    )
    greeting_template: Mapped[str] = mapped_column(Text, default=DEFAULT_TEMPLATE)
    #: values for {placeholders} besides the per-mailbox ones ({name}, {extension})
    variables: Mapped[dict[str, Any]] = mapped_column(
        MutableDict.as_mutable(json_type()), default=dict
    )
    greeting_policy: Mapped[str] = mapped_column(
        String(32), default="approval_required", server_default=text("'approval_required'")
    )
    voice: Mapped[str] = mapped_column(String(32), default="en-us", server_default="en-us")
    max_message_seconds: Mapped[int] = mapped_column(
        Integer, default=180, server_default=text("180")
    )
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Mailbox(Base):
    """One extension's voicemail box."""

    __tablename__ = "voicemail_mailboxes"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    pin_hash: Mapped[str] = mapped_column(String(255))
    #: ringing this extension without an answer (or with no phone registered) reaches here
    no_answer_to_voicemail: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=text("true")
    )
    max_messages: Mapped[int] = mapped_column(Integer, default=100, server_default=text("100"))
    #: {"hours": [9, 11, ...], "days": [0..6], "grace_minutes": 30, "timezone": "UTC"};
    #: None means the default (every odd hour during business hours)
    check_schedule: Mapped[dict[str, Any] | None] = mapped_column(
        MutableDict.as_mutable(json_type()), default=None
    )
    #: extensions (or user names) responsible for checking this mailbox
    responsible: Mapped[list[str]] = mapped_column(
        MutableList.as_mutable(json_type()), default=list
    )
    #: who hears about a missed check (the Service Manager's extension)
    escalate_to: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class VoicemailMessage(Base):
    """A message left in a mailbox; the audio is ``DATA/<audio_path>``."""

    __tablename__ = "voicemail_messages"
    __table_args__ = (
        CheckConstraint(_in("status", MESSAGE_STATUSES), name="status"),
        Index("ix_voicemail_messages_mailbox_id_status", "mailbox_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    mailbox_id: Mapped[int] = mapped_column(
        ForeignKey("voicemail_mailboxes.id", ondelete="CASCADE")
    )
    caller: Mapped[str] = mapped_column(String(64))
    caller_name: Mapped[str | None] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    duration: Mapped[float] = mapped_column(Float)
    audio_path: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="new", server_default="new")
    heard_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    heard_by: Mapped[str | None] = mapped_column(String(128))


class Greeting(Base):
    """A recorded greeting: a mailbox's personal one, or (mailbox_id NULL) the tenant's
    recorded replacement of the rendered standard greeting."""

    __tablename__ = "voicemail_greetings"
    __table_args__ = (
        CheckConstraint(_in("kind", GREETING_KINDS), name="kind"),
        CheckConstraint(_in("status", GREETING_STATUSES), name="status"),
        Index("ix_voicemail_greetings_tenant_id_mailbox_id", "tenant_id", "mailbox_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    mailbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("voicemail_mailboxes.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24))
    audio_path: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class MailboxCheck(Base):
    """Someone checked a mailbox (listened by phone, or opened it on the web/API)."""

    __tablename__ = "voicemail_checks"
    __table_args__ = (
        CheckConstraint(_in("channel", CHECK_CHANNELS), name="channel"),
        Index("ix_voicemail_checks_mailbox_id_checked_at", "mailbox_id", "checked_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    mailbox_id: Mapped[int] = mapped_column(
        ForeignKey("voicemail_mailboxes.id", ondelete="CASCADE")
    )
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    checked_by: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(16))
    new_messages: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class CheckEscalation(Base):
    """A scheduled check that nobody made, escalated once to ``escalated_to``."""

    __tablename__ = "voicemail_escalations"
    __table_args__ = (UniqueConstraint("mailbox_id", "slot_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    mailbox_id: Mapped[int] = mapped_column(
        ForeignKey("voicemail_mailboxes.id", ondelete="CASCADE")
    )
    slot_at: Mapped[datetime] = mapped_column(UtcDateTime)
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    escalated_to: Mapped[str | None] = mapped_column(String(64))


class Menu(Base):
    """A self-service menu (IVR) reachable at ``number``: a prompt, choices, retries."""

    __tablename__ = "voicemail_menus"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    prompt: Mapped[str] = mapped_column(Text)
    #: digit -> branch, e.g. {"1": "extension:101", "2": "voicemail:102", "9": "menu:501"}
    choices: Mapped[dict[str, str]] = mapped_column(
        MutableDict.as_mutable(json_type()), default=dict
    )
    timeout_seconds: Mapped[float] = mapped_column(Float, default=5.0, server_default=text("5"))
    retries: Mapped[int] = mapped_column(Integer, default=2, server_default=text("2"))
    invalid_prompt: Mapped[str] = mapped_column(Text, default="Sorry, that is not a valid choice.")
    #: where a caller who chooses nothing goes (None: hang up after the retries)
    default_branch: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
