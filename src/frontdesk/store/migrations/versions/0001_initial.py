"""Initial schema: tenants, users, extensions, SIP credentials, registrations, CDRs.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
    )


def _create_tenants() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("sip_domain", sa.String(length=255), nullable=False),
        sa.Column("default", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("settings", _json(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.UniqueConstraint("sip_domain", name="uq_tenants_sip_domain"),
        sa.UniqueConstraint("slug", name="uq_tenants_slug"),
    )
    op.create_index(
        "uq_tenants_default_true",
        "tenants",
        ["default"],
        unique=True,
        sqlite_where=sa.text('"default"'),
        postgresql_where=sa.text('"default"'),
    )


def _create_users_extensions_credentials() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        _tenant_fk("users"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("tenant_id", "username", name="uq_users_tenant_id_username"),
    )
    op.create_table(
        "extensions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("ring_timeout", sa.Integer(), nullable=True),
        sa.Column("max_contacts", sa.Integer(), server_default=sa.text("5"), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.CheckConstraint("max_contacts >= 1", name="ck_extensions_max_contacts_positive"),
        sa.CheckConstraint(
            "ring_timeout IS NULL OR ring_timeout > 0", name="ck_extensions_ring_timeout_positive"
        ),
        _tenant_fk("extensions"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_extensions_user_id_users", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_extensions"),
        sa.UniqueConstraint("tenant_id", "number", name="uq_extensions_tenant_id_number"),
    )
    op.create_index("ix_extensions_user_id", "extensions", ["user_id"])
    op.create_table(
        "sip_credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("extension_id", sa.Integer(), nullable=False),
        sa.Column("auth_username", sa.String(length=128), nullable=False),
        sa.Column("realm", sa.String(length=255), nullable=False),
        sa.Column("ha1_md5", sa.String(length=32), nullable=False),
        sa.Column("ha1_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["extension_id"],
            ["extensions.id"],
            name="fk_sip_credentials_extension_id_extensions",
            ondelete="CASCADE",
        ),
        _tenant_fk("sip_credentials"),
        sa.PrimaryKeyConstraint("id", name="pk_sip_credentials"),
        sa.UniqueConstraint(
            "tenant_id", "auth_username", name="uq_sip_credentials_tenant_id_auth_username"
        ),
    )
    op.create_index("ix_sip_credentials_extension_id", "sip_credentials", ["extension_id"])


def _create_registrations() -> None:
    op.create_table(
        "registrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("aor", sa.String(length=128), nullable=False),
        sa.Column("contact_uri", sa.Text(), nullable=False),
        sa.Column("transport", sa.String(length=8), nullable=False),
        sa.Column("source_host", sa.String(length=64), nullable=False),
        sa.Column("source_port", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("call_id", sa.String(length=255), nullable=False),
        sa.Column("cseq", sa.Integer(), nullable=False),
        sa.Column("user_agent", sa.String(length=255), nullable=True),
        sa.Column("instance_id", sa.String(length=255), nullable=True),
        sa.Column("reg_id", sa.Integer(), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        _tenant_fk("registrations"),
        sa.PrimaryKeyConstraint("id", name="pk_registrations"),
        sa.UniqueConstraint(
            "tenant_id", "aor", "contact_uri", name="uq_registrations_tenant_id_aor_contact_uri"
        ),
    )
    op.create_index("ix_registrations_expires_at", "registrations", ["expires_at"])


def _create_cdrs() -> None:
    dispositions = (
        "'answered', 'busy', 'no-answer', 'cancelled', 'failed', 'rejected', 'interrupted'"
    )
    op.create_table(
        "cdrs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=255), nullable=False),
        sa.Column("caller", sa.String(length=128), nullable=False),
        sa.Column("caller_name", sa.String(length=255), nullable=True),
        sa.Column("callee", sa.String(length=128), nullable=False),
        sa.Column("callee_answered_by", sa.String(length=32), nullable=True),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("answered_at", _utc(), nullable=True),
        sa.Column("ended_at", _utc(), nullable=True),
        sa.Column("disposition", sa.String(length=16), nullable=True),
        sa.Column("hangup_side", sa.String(length=8), nullable=True),
        sa.Column("duration", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("billsec", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("sip_code", sa.Integer(), nullable=True),
        sa.Column("path", _json(), nullable=True),
        sa.Column("extra", _json(), nullable=True),
        sa.CheckConstraint(
            f"disposition IS NULL OR disposition IN ({dispositions})",
            name="ck_cdrs_disposition_known",
        ),
        sa.CheckConstraint(
            "hangup_side IS NULL OR hangup_side IN ('caller', 'callee', 'system')",
            name="ck_cdrs_hangup_side_known",
        ),
        _tenant_fk("cdrs"),
        sa.PrimaryKeyConstraint("id", name="pk_cdrs"),
    )
    op.create_index("ix_cdrs_call_id", "cdrs", ["call_id"])
    op.create_index("ix_cdrs_started_at", "cdrs", ["started_at"])
    op.create_index("ix_cdrs_tenant_id_started_at", "cdrs", ["tenant_id", "started_at"])


def upgrade() -> None:
    _create_tenants()
    _create_users_extensions_credentials()
    _create_registrations()
    _create_cdrs()


def downgrade() -> None:
    for table in ("cdrs", "registrations", "sip_credentials", "extensions", "users", "tenants"):
        op.drop_table(table)
