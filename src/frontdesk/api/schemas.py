"""Request and response models of the REST API (they make the OpenAPI document).

Inputs are strict: unknown fields are refused, text has no control characters, numbers
and times are bounded so nothing a client sends can overflow the database. Outputs mirror
the snapshots ``org`` keeps of each resource. This module holds no logic beyond field
constraints (the accepted resource types come from the kinds registered with ``org``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from frontdesk.org.resources import kinds
from frontdesk.org.roles import PERMISSIONS

NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"
NUMBER_PATTERN = r"^[A-Za-z0-9]{1,32}$"

Text = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=NO_CONTROL)]
LongText = Annotated[str, StringConstraints(max_length=1000, pattern=r"^[^\x00-\x1f\x7f]*$")]
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
Username = Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)]
Number = Annotated[str, StringConstraints(pattern=NUMBER_PATTERN)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=1024, pattern=r"^[^\x00]+$")]
SipPassword = Annotated[str, StringConstraints(min_length=6, max_length=128, pattern=NO_CONTROL)]
Email = Annotated[str, StringConstraints(max_length=255,
                                         pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+$")]
RoleName = Literal["administrator", "decision_maker", "phone_manager", "technical_contact",
                   "emergency_contact", "vendor", "office_manager", "service_manager",
                   "service_coordinator", "technician", "contact_center_manager", "agent",
                   "marketing"]
Feature = Literal["voicemail", "call_pickup", "queue_login", "call_recording", "intercom",
                  "international_calls", "external_forwarding"]
DigestAlgorithm = Literal["MD5", "SHA-256"]


def versioned_types() -> tuple[str, ...]:
    """Every registered resource kind whose versions a person may read (it has a
    ``<kind>.read`` permission; one's own API tokens have none), sorted."""
    return tuple(sorted(name for name in kinds() if f"{name}.read" in PERMISSIONS))


if TYPE_CHECKING:
    ResourceType = str
else:  # derived from the registry, so a new kind is reachable without editing this list
    ResourceType = Literal[versioned_types()]


def _utc_representable(moment: datetime) -> datetime:
    """Refuse times that cannot be expressed in UTC (year 1 with +hh:mm, year 9999 with -)."""
    try:
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range once converted to UTC") from None


Moment = Annotated[datetime, AfterValidator(_utc_representable)]


class Input(BaseModel):
    """Base of request bodies: unknown fields are an error that names them."""

    model_config = ConfigDict(extra="forbid")

    def fields(self) -> dict[str, Any]:
        """The fields the client actually sent (null included)."""
        return self.model_dump(exclude_unset=True, mode="json")

    def sent(self, *drop: str) -> dict[str, Any]:
        """The fields sent (see ``fields``) that a change carries: less ``reason`` and the
        names in ``drop`` (the key, which the change names separately)."""
        return {k: v for k, v in self.fields().items() if k not in ("reason", *drop)}


class WithReason(Input):
    reason: LongText = Field("", description="why: shown in the change request and the audit log")


# --- outputs ---------------------------------------------------------------------------------


class ChangeRequestOut(BaseModel):
    id: int
    status: Literal["open", "applied", "rejected"]
    resource_type: str
    resource_key: str | None
    action: str
    diff: list[dict[str, Any]]
    domains: list[str]
    approvals: dict[str, Any]
    reason: str
    requested_by: str
    channel: str
    created_at: str | None
    decided_at: str | None
    decided_by: str | None
    decision_comment: str | None


class TenantOut(BaseModel):
    slug: str
    name: str
    sip_domain: str
    default: bool
    ring_timeout: int
    digest_algorithms: list[str]
    allow_unauthenticated_loopback: bool


class SiteOut(BaseModel):
    slug: str
    name: str
    timezone: str
    address: str | None


class UserOut(BaseModel):
    username: str
    display_name: str
    email: str | None
    has_password: bool
    extensions: list[str]


class ExtensionOut(BaseModel):
    number: str
    display_name: str
    user: str | None
    ring_timeout: int | None
    max_contacts: int
    sip_logins: list[str]


class GroupOut(BaseModel):
    name: str
    display_name: str
    site: str | None
    features: list[str]
    members: list[str]
    has_mailbox: bool
    mailbox_checker: str | None


class RoleAssignmentOut(BaseModel):
    key: str = Field(description="user:role or user:role@site; use it to revoke")
    user: str
    role: str
    site: str | None


class PermissionOut(BaseModel):
    role: str
    permission: str
    allowed: bool
    default: bool


class VendorGrantOut(BaseModel):
    id: int
    user: str | None
    permissions: list[str]
    starts: str
    ends: str
    granted_by: str
    reason: str
    revoked_at: str | None
    active: bool


class TokenOut(BaseModel):
    id: int
    user: str | None
    name: str
    kind: str
    expires_at: str | None
    revoked_at: str | None


class TokenCreated(TokenOut):
    token: str = Field(description="the bearer token; shown only this once")


class VersionOut(BaseModel):
    version: int
    at: str
    actor: str
    change_request_id: int | None
    snapshot: dict[str, Any] | None


class AuditEntryOut(BaseModel):
    seq: int
    at: str
    actor: str
    actor_kind: str
    actor_user_id: int | None
    actor_roles: list[str]
    channel: str
    action: str
    resource_type: str
    resource_key: str
    before: Any
    after: Any
    change_request_id: int | None
    vendor_grant_id: int | None
    reason: str
    hash: str


class ChainProblemOut(BaseModel):
    seq: int
    row_id: int
    problem: str


class AuditVerifyOut(BaseModel):
    ok: bool
    checked: int
    problems: list[ChainProblemOut]


class CoverageProblemOut(BaseModel):
    check: str
    severity: Literal["problem", "warning"]
    subject: str
    message: str
    fix: str


class CoverageOut(BaseModel):
    tenant: str
    status: Literal["ok", "failing"]
    checks: list[str]
    problems: list[CoverageProblemOut]


class CdrOut(BaseModel):
    id: str
    call_id: str
    caller: str
    caller_name: str | None
    callee: str
    callee_answered_by: str | None
    started_at: str
    answered_at: str | None
    ended_at: str | None
    disposition: str | None
    hangup_side: str | None
    duration: float
    billsec: float
    sip_code: int | None


class RoleHeld(BaseModel):
    role: str
    site: str | None


class MeOut(BaseModel):
    username: str
    display_name: str
    tenant: str
    roles: list[RoleHeld]
    permissions: list[str]
    owned_domains: list[str]


def accepted(description: str = "") -> dict[int | str, dict[str, Any]]:
    """The 202 response of a mutating endpoint (the change became a change request)."""
    return {202: {"model": ChangeRequestOut,
                  "description": description or "The change touches another domain: a change "
                  "request was filed and waits for that domain's owner."}}


# --- path parameters ----------------------------------------------------------------------
SlugPath = Annotated[str, Path(pattern=SLUG_PATTERN, description="lowercase slug")]
UsernamePath = Annotated[str, Path(pattern=USERNAME_PATTERN)]
NumberPath = Annotated[str, Path(pattern=NUMBER_PATTERN, description="extension number")]
IdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]


def omitted() -> Any:
    """Default of a PATCH field that may be left out but not sent as null."""
    return Field(default=None)
