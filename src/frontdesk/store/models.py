"""SQLAlchemy 2 declarative models: tenants, users, extensions, SIP credentials,
registrations (location bindings) and CDRs.

Every row that belongs to a customer carries ``tenant_id`` from day one. Times that the SIP
hot path writes (registration ``expires_at``/``updated_at``) are UTC epoch seconds as floats;
times people read in reports (``created_at``, CDR times) are timezone-aware UTC datetimes.

This module only describes tables. It must never open connections, run queries or hold
business rules beyond column defaults: queries live in ``repo.py``, writes from the call
engine go through ``journal.py``. Changing a model needs a new Alembic revision in
``migrations/versions`` (the drift test fails otherwise).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.mutable import MutableDict
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

#: Constraint names are stable across SQLite and PostgreSQL, so migrations (and SQLite
#: batch mode, which recreates tables) can refer to them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Settings every tenant has; ``Tenant.settings`` holds overrides merged over these.
TENANT_SETTING_DEFAULTS: dict[str, Any] = {
    "ring_timeout": 30,
    "allow_unauthenticated_loopback": False,
    # Digest algorithms offered, in order. baresip 1.0 and SIPp 3.6 fail on any SHA-256
    # challenge, so MD5 alone is the default; tenants whose phones support RFC 8760 can
    # set ["SHA-256", "MD5"] or ["SHA-256"].
    "digest_algorithms": ["MD5"],
    # Region for reading callers' numbers written without a country code (tickets).
    "phone_region": "US",
    # File a service request (or a note) for every missed call (tickets).
    "missed_call_requests": False,
    # The number callers dial to reach the business: it runs the tenant's call flow
    # (the front-desk routine unless another flow is published); it takes precedence over an
    # extension with the same number. Empty: no flow, extensions only.
    "main_number": "100",
}

CDR_DISPOSITIONS = (
    "answered",
    "busy",
    "no-answer",
    "cancelled",
    "failed",
    "rejected",
    "interrupted",
)
CDR_HANGUP_SIDES = ("caller", "callee", "system")


def json_type() -> TypeEngine[Any]:
    """JSON column type: JSONB on PostgreSQL (indexable), JSON text elsewhere; Python None
    is SQL NULL. A new instance per column (``MutableDict.as_mutable`` marks its instance)."""
    return JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (column default)."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that always hands back aware UTC datetimes.

    SQLite has no time zones: values are stored as naive UTC and read back as UTC.
    A naive datetime given to the database is taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base; ``Base.metadata`` is Alembic's target metadata."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Tenant(Base):
    """A customer organisation; requests are matched to it by SIP domain."""

    __tablename__ = "tenants"
    __table_args__ = (
        # At most one default tenant (the one used for requests addressed to the server IP).
        Index(
            "uq_tenants_default_true",
            "default",
            unique=True,
            sqlite_where=text('"default"'),
            postgresql_where=text('"default"'),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    sip_domain: Mapped[str] = mapped_column(String(255), unique=True)
    default: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    settings: Mapped[dict[str, Any]] = mapped_column(
        MutableDict.as_mutable(json_type()), default=dict
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def setting(self, key: str) -> Any:
        """A tenant setting, falling back to ``TENANT_SETTING_DEFAULTS``."""
        if key in (self.settings or {}):
            return self.settings[key]
        return TENANT_SETTING_DEFAULTS[key]

    def __repr__(self) -> str:
        return f"Tenant(id={self.id!r}, slug={self.slug!r}, sip_domain={self.sip_domain!r})"


class User(Base):
    """A person in a tenant; may own extensions and (later) log in to the API."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "username"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    username: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Extension(Base):
    """A dialable number inside a tenant (e.g. "101")."""

    __tablename__ = "extensions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        CheckConstraint("max_contacts >= 1", name="max_contacts_positive"),
        CheckConstraint("ring_timeout IS NULL OR ring_timeout > 0", name="ring_timeout_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    display_name: Mapped[str] = mapped_column(String(255))
    #: Seconds to ring; None means the tenant's ``ring_timeout`` setting.
    ring_timeout: Mapped[int | None] = mapped_column(Integer)
    max_contacts: Mapped[int] = mapped_column(Integer, default=5, server_default=text("5"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SipCredential(Base):
    """A device login for an extension; stores digest HA1s, never the password."""

    __tablename__ = "sip_credentials"
    __table_args__ = (UniqueConstraint("tenant_id", "auth_username"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    extension_id: Mapped[int] = mapped_column(
        ForeignKey("extensions.id", ondelete="CASCADE"), index=True
    )
    auth_username: Mapped[str] = mapped_column(String(128))
    realm: Mapped[str] = mapped_column(String(255))
    ha1_md5: Mapped[str] = mapped_column(String(32))
    ha1_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Registration(Base):
    """A location binding: one Contact registered for an AOR (extension number).

    ``source_host``/``source_port`` are where the REGISTER really came from (received/rport),
    used to reach phones behind NAT. ``path`` is the Path header value as received (RFC 3327),
    comma-separated, or None.
    """

    __tablename__ = "registrations"
    __table_args__ = (UniqueConstraint("tenant_id", "aor", "contact_uri"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    aor: Mapped[str] = mapped_column(String(128))
    contact_uri: Mapped[str] = mapped_column(Text)
    transport: Mapped[str] = mapped_column(String(8))
    source_host: Mapped[str] = mapped_column(String(64))
    source_port: Mapped[int] = mapped_column(Integer)
    #: UTC epoch seconds.
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    call_id: Mapped[str] = mapped_column(String(255))
    cseq: Mapped[int] = mapped_column(Integer)
    user_agent: Mapped[str | None] = mapped_column(String(255))
    instance_id: Mapped[str | None] = mapped_column(String(255))
    reg_id: Mapped[int | None] = mapped_column(Integer)
    path: Mapped[str | None] = mapped_column(Text)
    #: UTC epoch seconds.
    updated_at: Mapped[float] = mapped_column(Float)


def _in_list(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IS NULL OR {column} IN ({quoted})"


class ConfigVersion(Base):
    """One row the database itself bumps (triggers, migration 0007) on every change to the
    configuration the SIP engine reads; the server compares it instead of hashing rows."""

    __tablename__ = "config_version"
    __table_args__ = (CheckConstraint("id = 1", name="config_version_one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)


class Cdr(Base):
    """A call detail record; ``id`` is a uuid string chosen by the call engine.

    ``ended_at`` and ``disposition`` stay NULL while the call is in progress.
    ``duration`` is seconds from start to end, ``billsec`` the talk time.
    """

    __tablename__ = "cdrs"
    __table_args__ = (
        CheckConstraint(_in_list("disposition", CDR_DISPOSITIONS), name="disposition_known"),
        CheckConstraint(_in_list("hangup_side", CDR_HANGUP_SIDES), name="hangup_side_known"),
        Index("ix_cdrs_tenant_id_started_at", "tenant_id", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    call_id: Mapped[str] = mapped_column(String(255), index=True)
    caller: Mapped[str] = mapped_column(String(128))
    caller_name: Mapped[str | None] = mapped_column(String(255))
    callee: Mapped[str] = mapped_column(String(128))
    callee_answered_by: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    disposition: Mapped[str | None] = mapped_column(String(16))
    hangup_side: Mapped[str | None] = mapped_column(String(8))
    duration: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    billsec: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    sip_code: Mapped[int | None] = mapped_column(Integer)
    path: Mapped[list[Any] | None] = mapped_column(json_type())
    extra: Mapped[dict[str, Any] | None] = mapped_column(json_type())
