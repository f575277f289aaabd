"""Tickets: companies, contacts, phone numbers, service requests, notes, "working on",
webhook endpoints and the webhook delivery log (frontdesk.tickets.model).

Revision ID: 0002_tickets
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_tickets"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "working_on",
    "request_notes",
    "webhook_deliveries",
    "service_requests",
    "coworker_numbers",
    "contact_numbers",
    "contact_companies",
    "company_numbers",
    "webhook_endpoints",
    "service_request_counters",
    "contacts",
    "companies",
)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _id() -> sa.Column[Any]:
    return sa.Column("id", sa.Integer(), nullable=False)


def _tenant_id() -> sa.Column[Any]:
    return sa.Column("tenant_id", sa.Integer(), nullable=False)


def _fk(table: str, column: str, target: str, ondelete: str = "CASCADE") -> Any:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete
    )


def _tenant_fk(table: str) -> Any:
    return _fk(table, "tenant_id", "tenants")


def _create_directory() -> None:
    for table in ("companies", "contacts"):
        extra: list[Any] = []
        if table == "contacts":
            extra.append(sa.Column("email", sa.String(length=255), nullable=True))
        else:
            extra.append(
                sa.UniqueConstraint("tenant_id", "name", name="uq_companies_tenant_id_name")
            )
        op.create_table(
            table,
            _id(),
            _tenant_id(),
            sa.Column("name", sa.String(length=255), nullable=False),
            sa.Column("external_ref", sa.String(length=255), nullable=True),
            sa.Column("created_at", _utc(), nullable=False),
            sa.Column("updated_at", _utc(), nullable=False),
            _tenant_fk(table),
            sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
            *extra,
        )
    op.create_index("ix_contacts_tenant_id_name", "contacts", ["tenant_id", "name"])
    op.create_table(
        "contact_companies",
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        _tenant_id(),
        _fk("contact_companies", "company_id", "companies"),
        _fk("contact_companies", "contact_id", "contacts"),
        _tenant_fk("contact_companies"),
        sa.PrimaryKeyConstraint("contact_id", "company_id", name="pk_contact_companies"),
    )
    op.create_index("ix_contact_companies_company_id", "contact_companies", ["company_id"])


def _create_numbers() -> None:
    owners = (
        ("contact_numbers", "contact_id", "contacts"),
        ("company_numbers", "company_id", "companies"),
        ("coworker_numbers", "user_id", "users"),
    )
    for table, owner, target in owners:
        op.create_table(
            table,
            _id(),
            _tenant_id(),
            sa.Column(owner, sa.Integer(), nullable=False),
            sa.Column("e164", sa.String(length=16), nullable=False),
            sa.Column("label", sa.String(length=32), nullable=True),
            _fk(table, owner, target),
            _tenant_fk(table),
            sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
            sa.UniqueConstraint(owner, "e164", name=f"uq_{table}_{owner}_e164"),
        )
        op.create_index(f"ix_{table}_tenant_id_e164", table, ["tenant_id", "e164"])


def _create_service_requests() -> None:
    op.create_table(
        "service_request_counters",
        _tenant_id(),
        sa.Column("last_number", sa.Integer(), nullable=False),
        _tenant_fk("service_request_counters"),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_service_request_counters"),
    )
    table = "service_requests"
    op.create_table(
        table,
        _id(),
        _tenant_id(),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=8), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("caller_number", sa.String(length=16), nullable=True),
        sa.Column("external_source", sa.String(length=64), nullable=True),
        sa.Column("external_ref", sa.String(length=255), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("resolved_at", _utc(), nullable=True),
        sa.CheckConstraint(
            "priority IN ('low', 'normal', 'high', 'urgent')",
            name="ck_service_requests_priority_known",
        ),
        sa.CheckConstraint(
            "state IN ('new', 'open', 'in_progress', 'waiting', 'resolved')",
            name="ck_service_requests_state_known",
        ),
        _fk(table, "assignee_id", "users", "SET NULL"),
        _fk(table, "company_id", "companies", "SET NULL"),
        _fk(table, "contact_id", "contacts", "SET NULL"),
        _tenant_fk(table),
        sa.PrimaryKeyConstraint("id", name="pk_service_requests"),
        sa.UniqueConstraint(
            "tenant_id",
            "external_source",
            "external_ref",
            name="uq_service_requests_tenant_id_external_source_external_ref",
        ),
        sa.UniqueConstraint("tenant_id", "number", name="uq_service_requests_tenant_id_number"),
    )
    op.create_index("ix_service_requests_assignee_id", table, ["assignee_id"])
    for columns in (["company_id", "state"], ["contact_id", "state"], ["state"]):
        name = "ix_service_requests_tenant_id_" + "_".join(columns)
        op.create_index(name, table, ["tenant_id", *columns])


def _create_notes_and_working_on() -> None:
    table = "request_notes"
    op.create_table(
        table,
        _id(),
        _tenant_id(),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("author_user_id", sa.Integer(), nullable=True),
        sa.Column("cdr_id", sa.String(length=36), nullable=True),
        sa.Column("attachment_path", sa.Text(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('note', 'call', 'voicemail', 'missed_call', 'change')",
            name="ck_request_notes_kind_known",
        ),
        _fk(table, "author_user_id", "users", "SET NULL"),
        _fk(table, "request_id", "service_requests"),
        _tenant_fk(table),
        sa.PrimaryKeyConstraint("id", name="pk_request_notes"),
    )
    op.create_index("ix_request_notes_cdr_id", table, ["cdr_id"])
    op.create_index("ix_request_notes_request_id", table, ["request_id"])
    table = "working_on"
    op.create_table(
        table,
        _id(),
        _tenant_id(),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("since", _utc(), nullable=False),
        sa.Column("set_by", sa.String(length=128), nullable=False),
        _fk(table, "request_id", "service_requests"),
        _tenant_fk(table),
        _fk(table, "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name="pk_working_on"),
        sa.UniqueConstraint("user_id", name="uq_working_on_user_id"),
    )
    op.create_index("ix_working_on_request_id", table, ["request_id"])


def _create_webhook_endpoints() -> None:
    table = "webhook_endpoints"
    op.create_table(
        table,
        _id(),
        _tenant_id(),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=255), nullable=False),
        sa.Column("events", _json(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.CheckConstraint("kind IN ('generic', 'zammad')", name="ck_webhook_endpoints_kind_known"),
        _tenant_fk(table),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_endpoints"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_webhook_endpoints_tenant_id_name"),
    )


def _create_webhook_deliveries() -> None:
    table = "webhook_deliveries"
    op.create_table(
        table,
        _id(),
        _tenant_id(),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_name", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", _utc(), nullable=True),
        sa.Column("last_attempt_at", _utc(), nullable=True),
        sa.Column("delivered_at", _utc(), nullable=True),
        sa.Column("history", _json(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')",
            name="ck_webhook_deliveries_status_known",
        ),
        _fk(table, "endpoint_id", "webhook_endpoints"),
        _tenant_fk(table),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.UniqueConstraint(
            "endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_id_event_id"
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_status_next_attempt_at", table, ["status", "next_attempt_at"]
    )


def upgrade() -> None:
    _create_directory()
    _create_numbers()
    _create_service_requests()
    _create_notes_and_working_on()
    _create_webhook_endpoints()
    _create_webhook_deliveries()


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
