"""Call flows as documents, and the tables that keep their versions.

What it is for: a flow is a document (JSON or YAML) a business owner edits without a
programmer: named steps ("nodes"), each of one type, each naming the next step for every
outcome. The Pydantic models here are that document's schema (shared with the API); the
SQLAlchemy tables ``flows`` and ``flow_versions`` store every version of it per tenant.

Node types (``type:``) and the outcomes each must name:

============  ==============================================  ==============================
type          what it does                                    outcomes
============  ==============================================  ==============================
start         where every call enters                         next
hours         business hours of a schedule                    open, closed, holiday (=closed)
ring          rings people (strategy, seconds per step)       no_answer, busy (=no_answer)
play          plays a message                                 next
menu          prompt + keypad choices                         each digit, no_input, invalid
voicemail     leaves a message in a mailbox                   (ends the flow)
queue         waits for a group (until queues exist: rings)   no_answer
transfer      hands the call to a number                      (ends the flow)
condition     co-worker, known contact, open request, VIP,    then, otherwise
              emergency mode, a variable
set           sets a call variable                            next
hangup        ends the call (optionally after a message)      (ends the flow)
============  ==============================================  ==============================

An answered ring or queue connects the call: the flow is finished. Outcome fields are
optional in the schema so that ``validate.py`` can report a missing one in plain words.

What it must never do: evaluate flows, query the database, or decide permissions. The one
rule kept here is the storage guard: a published or archived version's document never
changes (``before_update`` below).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from frontdesk.routing.hours import Schedule, check_timezone
from frontdesk.store.models import Base, UtcDateTime, json_type, utcnow

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
DIGITS = frozenset("0123456789*#")
TargetKind = Literal["extension", "user", "group", "role", "mailbox"]
TARGET_KINDS: tuple[str, ...] = ("extension", "user", "group", "role", "mailbox")


class Target(BaseModel):
    """Who a step means: ``extension:101``, ``user:alice``, ``group:service``,
    ``role:office_manager`` (``office-manager`` works too) or (voicemail only) ``mailbox:general``. In a document it is
    written as that one string; a bare number means an extension."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: TargetKind
    name: str

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            return value
        kind, sep, name = value.partition(":")
        if not sep:
            if value.isdigit():
                return {"kind": "extension", "name": value}
            raise ValueError(
                f'"{value}" does not say who: write extension:101, user:NAME, group:NAME '
                f"or role:NAME"
            )
        kind, name = kind.strip().lower(), name.strip()
        if kind == "role":  # org/ spells roles office_manager; people also write office-manager
            name = name.lower().replace("-", "_").replace(" ", "_")
        return {"kind": kind, "name": name}

    @field_validator("name")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("a target needs a name after the colon, e.g. role:office-manager")
        return value

    @model_serializer
    def _as_text(self) -> str:
        return f"{self.kind}:{self.name}"

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


class _Node(BaseModel):
    """Fields every step has. ``label`` says what the step is for, in the owner's words."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = ""
    #: True when the step takes time with the caller (ringing, a message, a menu, a queue).
    WAITS: ClassVar[bool] = False
    #: True when the step ends the flow (voicemail, transfer, hang up).
    ENDS: ClassVar[bool] = False
    #: Outcomes that must name a next step.
    REQUIRED: ClassVar[tuple[str, ...]] = ()

    def outcomes(self) -> dict[str, str | None]:
        """Outcome -> next step (None when not set), in a fixed order."""
        return {}

    @model_serializer(mode="wrap")
    def _type_first(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict) and "type" in data:
            return {"type": data.pop("type"), **data}
        return data


class StartNode(_Node):
    type: Literal["start"]
    next: str | None = None
    REQUIRED = ("next",)

    def outcomes(self) -> dict[str, str | None]:
        return {"next": self.next}


class HoursNode(_Node):
    type: Literal["hours"]
    schedule: str
    open: str | None = None
    closed: str | None = None
    holiday: str | None = None
    REQUIRED = ("open", "closed")

    def outcomes(self) -> dict[str, str | None]:
        return {"open": self.open, "closed": self.closed, "holiday": self.holiday}


class RingNode(_Node):
    type: Literal["ring"]
    targets: list[Target] = Field(min_length=1)
    strategy: Literal["simultaneous", "sequential", "round-robin"] = "simultaneous"
    timeout: int = Field(default=20, ge=5, le=600)
    no_answer: str | None = None
    busy: str | None = None
    WAITS = True
    REQUIRED = ("no_answer",)

    def outcomes(self) -> dict[str, str | None]:
        return {"no_answer": self.no_answer, "busy": self.busy}


class PlayNode(_Node):
    type: Literal["play"]
    message: str
    next: str | None = None
    WAITS = True
    REQUIRED = ("next",)

    def outcomes(self) -> dict[str, str | None]:
        return {"next": self.next}


class MenuNode(_Node):
    type: Literal["menu"]
    prompt: str
    choices: dict[str, str] = Field(default_factory=dict)
    timeout: int = Field(default=5, ge=1, le=60)
    retries: int = Field(default=2, ge=0, le=5)
    #: Messages said before the prompt when the menu asks again after a key that is not a
    #: choice / after silence ("Sorry, that is not one of the choices."); none: just the prompt.
    invalid_prompt: str | None = None
    no_input_prompt: str | None = None
    no_input: str | None = None
    invalid: str | None = None
    WAITS = True
    REQUIRED = ("no_input",)

    @field_validator("choices", mode="before")
    @classmethod
    def _keys_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
        return value

    @field_validator("choices")
    @classmethod
    def _keypad(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if len(key) != 1 or key not in DIGITS:
                raise ValueError(f'choice "{key}" is not one key of the keypad (0-9, * or #)')
        return value

    def outcomes(self) -> dict[str, str | None]:
        found: dict[str, str | None] = {f"digit {k}": v for k, v in self.choices.items()}
        found.update(no_input=self.no_input, invalid=self.invalid)
        return found


class VoicemailNode(_Node):
    type: Literal["voicemail"]
    mailbox: Target
    greeting: str = "standard"
    ENDS = True


class QueueNode(_Node):
    type: Literal["queue"]
    group: str
    max_wait: int = Field(default=300, ge=10, le=3600)
    no_answer: str | None = None
    WAITS = True
    REQUIRED = ("no_answer",)

    def outcomes(self) -> dict[str, str | None]:
        return {"no_answer": self.no_answer}


class TransferNode(_Node):
    type: Literal["transfer"]
    number: str
    ENDS = True

    @field_validator("number", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


ConditionTest = Literal[
    "co-worker", "known-contact", "open-request", "vip", "emergency", "variable"
]


class ConditionNode(_Node):
    type: Literal["condition"]
    test: ConditionTest
    variable: str | None = None
    equals: str | None = None
    then: str | None = None
    otherwise: str | None = None
    REQUIRED = ("then", "otherwise")

    def outcomes(self) -> dict[str, str | None]:
        return {"then": self.then, "otherwise": self.otherwise}


class SetNode(_Node):
    type: Literal["set"]
    variable: str
    value: str
    next: str | None = None
    REQUIRED = ("next",)

    @field_validator("value", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float | bool) else value

    def outcomes(self) -> dict[str, str | None]:
        return {"next": self.next}


class HangupNode(_Node):
    type: Literal["hangup"]
    message: str | None = None
    ENDS = True


Node = Annotated[
    StartNode
    | HoursNode
    | RingNode
    | PlayNode
    | MenuNode
    | VoicemailNode
    | QueueNode
    | TransferNode
    | ConditionNode
    | SetNode
    | HangupNode,
    Field(discriminator="type"),
]
NODE_TYPES: tuple[str, ...] = (
    "start",
    "hours",
    "ring",
    "play",
    "menu",
    "voicemail",
    "queue",
    "transfer",
    "condition",
    "set",
    "hangup",
)


class FlowDocument(BaseModel):
    """One version of a call flow: its steps, schedules and messages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    title: str = ""
    #: Time zone of schedules that name none, and of times typed into the simulator.
    timezone: str = "UTC"
    schedules: dict[str, Schedule] = Field(default_factory=dict)
    #: Message name -> the words spoken (recorded prompts can replace them later).
    messages: dict[str, str] = Field(default_factory=dict)
    nodes: dict[str, Node]

    _start: str | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _flow_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f'flow name "{value}" may use lowercase letters, digits, - and _ '
                f"(at most 64, starting with a letter or digit)"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("nodes")
    @classmethod
    def _node_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(
                    f'step name "{name}" may use lowercase letters, digits, - and _ '
                    f"(at most 64, starting with a letter or digit)"
                )
        return value

    def model_post_init(self, context: object) -> None:
        starts = [name for name, node in self.nodes.items() if isinstance(node, StartNode)]
        self._start = starts[0] if len(starts) == 1 else None

    @property
    def start_node(self) -> str | None:
        """The name of the one start step (None when there is none or more than one)."""
        # read the private value directly: pydantic's private-attribute lookup costs
        # microseconds, and evaluation asks on every call
        start = (self.__pydantic_private__ or {}).get("_start")
        return start if isinstance(start, str) else None

    def to_json(self) -> dict[str, Any]:
        """The document as JSON-ready data (what ``flow_versions.document`` stores). Settings
        a person reads are kept even at their defaults (a ring's ``timeout: 20``); unset
        outcomes and empty labels, schedules' empty lists and messages are left out."""
        data = self.model_dump(mode="json", exclude_none=True)
        for key in ("title", "messages", "schedules"):
            if not data.get(key):
                data.pop(key, None)
        for node in data["nodes"].values():
            if not node.get("label"):
                node.pop("label", None)
        for schedule in data.get("schedules", {}).values():
            for key in ("closed_dates", "exceptions"):
                if not schedule.get(key):
                    schedule.pop(key, None)
        return data


# --- storage ---------------------------------------------------------------------------------

FLOW_STATES = ("draft", "published", "archived")


class Flow(Base):
    """A named call flow of a tenant (e.g. "front-desk"); its content lives in versions."""

    __tablename__ = "flows"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class FlowVersion(Base):
    """One version of a flow. At most one draft (editable) and one published version per
    flow; published and archived versions never change."""

    __tablename__ = "flow_versions"
    __table_args__ = (
        UniqueConstraint("flow_id", "version"),
        CheckConstraint("state IN ('draft', 'published', 'archived')", name="state_known"),
        CheckConstraint("version >= 1", name="version_positive"),
        Index(
            "uq_flow_versions_one_draft",
            "flow_id",
            unique=True,
            sqlite_where=text("state = 'draft'"),
            postgresql_where=text("state = 'draft'"),
        ),
        Index(
            "uq_flow_versions_one_published",
            "flow_id",
            unique=True,
            sqlite_where=text("state = 'published'"),
            postgresql_where=text("state = 'published'"),
        ),
        Index("ix_flow_versions_tenant_id_state", "tenant_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    document: Mapped[dict[str, Any]] = mapped_column(json_type())
    #: Why this version exists when not a plain edit, e.g. "rollback to version 3".
    note: Mapped[str | None] = mapped_column(String(255))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    published_by: Mapped[str | None] = mapped_column(String(128))
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ImmutableVersionError(Exception):
    """Something tried to change a published or archived flow version."""


_FROZEN_FIELDS = (
    "document",
    "version",
    "flow_id",
    "tenant_id",
    "created_by",
    "published_by",
    "published_at",
)


@event.listens_for(FlowVersion, "before_update")
def _published_versions_never_change(
    _mapper: Mapper[Any], _connection: Connection, target: FlowVersion
) -> None:
    """Refuse any change to a version that was not a draft when loaded (only its state may
    move on: published -> archived)."""
    attrs = inspect(target).attrs
    state_history = attrs.state.history
    was = state_history.deleted[0] if state_history.deleted else target.state
    if was == "draft":
        return
    changed = [name for name in _FROZEN_FIELDS if attrs[name].history.has_changes()]
    allowed = ("published", "archived") if was == "published" else ("archived",)
    if changed or target.state not in allowed:
        raise ImmutableVersionError(
            f"flow version {target.version} is {was}; published versions never change "
            f"(edit a draft and publish it instead)"
        )
