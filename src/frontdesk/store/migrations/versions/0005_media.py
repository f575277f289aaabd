"""Voicemail and self-service menus: tenant greeting settings, mailboxes, messages,
greetings, mailbox checks, missed-check escalations, menus (frontdesk.media.model).

Revision ID: 0005_media
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_media"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "voicemail_mailboxes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("pin_hash", sa.String(length=255), nullable=False),
        sa.Column(
            "no_answer_to_voicemail", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column("max_messages", sa.Integer(), server_default=sa.text("100"), nullable=False),
        sa.Column("check_schedule", _json(), nullable=True),
        sa.Column("responsible", _json(), nullable=False),
        sa.Column("escalate_to", sa.String(length=64), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_voicemail_mailboxes_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voicemail_mailboxes")),
        sa.UniqueConstraint(
            "tenant_id", "number", name=op.f("uq_voicemail_mailboxes_tenant_id_number")
        ),
    )
    op.create_table(
        "voicemail_menus",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("choices", _json(), nullable=False),
        sa.Column("timeout_seconds", sa.Float(), server_default=sa.text("5"), nullable=False),
        sa.Column("retries", sa.Integer(), server_default=sa.text("2"), nullable=False),
        sa.Column("invalid_prompt", sa.Text(), nullable=False),
        sa.Column("default_branch", sa.String(length=64), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_voicemail_menus_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voicemail_menus")),
        sa.UniqueConstraint(
            "tenant_id", "number", name=op.f("uq_voicemail_menus_tenant_id_number")
        ),
    )
    op.create_table(
        "voicemail_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("greeting_template", sa.Text(), nullable=False),
        sa.Column("variables", _json(), nullable=False),
        sa.Column(
            "greeting_policy",
            sa.String(length=32),
            server_default=sa.text("'approval_required'"),
            nullable=False,
        ),
        sa.Column("voice", sa.String(length=32), server_default="en-us", nullable=False),
        sa.Column(
            "max_message_seconds", sa.Integer(), server_default=sa.text("180"), nullable=False
        ),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.CheckConstraint(
            "greeting_policy IN ('forbidden', 'allowed', 'approval_required')",
            name=op.f("ck_voicemail_settings_policy"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_voicemail_settings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voicemail_settings")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_voicemail_settings_tenant_id")),
    )
    op.create_table(
        "voicemail_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("checked_at", _utc(), nullable=False),
        sa.Column("checked_by", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("new_messages", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint(
            "channel IN ('phone', 'web', 'api', 'cli')", name=op.f("ck_voicemail_checks_channel")
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["voicemail_mailboxes.id"],
            name=op.f("fk_voicemail_checks_mailbox_id_voicemail_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_voicemail_checks_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voicemail_checks")),
    )
    with op.batch_alter_table("voicemail_checks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_voicemail_checks_mailbox_id_checked_at", ["mailbox_id", "checked_at"], unique=False
        )

    op.create_table(
        "voicemail_escalations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("slot_at", _utc(), nullable=False),
        sa.Column("raised_at", _utc(), nullable=False),
        sa.Column("escalated_to", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["voicemail_mailboxes.id"],
            name=op.f("fk_voicemail_escalations_mailbox_id_voicemail_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_voicemail_escalations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voicemail_escalations")),
        sa.UniqueConstraint(
            "mailbox_id", "slot_at", name=op.f("uq_voicemail_escalations_mailbox_id_slot_at")
        ),
    )
    op.create_table(
        "voicemail_greetings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("audio_path", sa.String(length=512), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", _utc(), nullable=True),
        sa.CheckConstraint("kind IN ('upload', 'phone')", name=op.f("ck_voicemail_greetings_kind")),
        sa.CheckConstraint(
            "status IN ('active', 'pending_approval', 'rejected', 'replaced')",
            name=op.f("ck_voicemail_greetings_status"),
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["voicemail_mailboxes.id"],
            name=op.f("fk_voicemail_greetings_mailbox_id_voicemail_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_voicemail_greetings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voicemail_greetings")),
    )
    with op.batch_alter_table("voicemail_greetings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_voicemail_greetings_tenant_id_mailbox_id", ["tenant_id", "mailbox_id"], unique=False
        )

    op.create_table(
        "voicemail_messages",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("caller", sa.String(length=64), nullable=False),
        sa.Column("caller_name", sa.String(length=255), nullable=True),
        sa.Column("received_at", _utc(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("audio_path", sa.String(length=512), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="new", nullable=False),
        sa.Column("heard_at", _utc(), nullable=True),
        sa.Column("heard_by", sa.String(length=128), nullable=True),
        sa.CheckConstraint("status IN ('new', 'saved')", name=op.f("ck_voicemail_messages_status")),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["voicemail_mailboxes.id"],
            name=op.f("fk_voicemail_messages_mailbox_id_voicemail_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_voicemail_messages_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voicemail_messages")),
    )
    with op.batch_alter_table("voicemail_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_voicemail_messages_mailbox_id_status", ["mailbox_id", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("voicemail_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_voicemail_messages_mailbox_id_status")

    op.drop_table("voicemail_messages")
    with op.batch_alter_table("voicemail_greetings", schema=None) as batch_op:
        batch_op.drop_index("ix_voicemail_greetings_tenant_id_mailbox_id")

    op.drop_table("voicemail_greetings")
    op.drop_table("voicemail_escalations")
    with op.batch_alter_table("voicemail_checks", schema=None) as batch_op:
        batch_op.drop_index("ix_voicemail_checks_mailbox_id_checked_at")

    op.drop_table("voicemail_checks")
    op.drop_table("voicemail_settings")
    op.drop_table("voicemail_menus")
    op.drop_table("voicemail_mailboxes")
