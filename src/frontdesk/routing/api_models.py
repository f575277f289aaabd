"""Request and response models of the flows REST resource (``routing/api.py``).

Inputs are strict like every API input (unknown fields refused, text bounded, no control
characters); the flow document itself is ``routing.model.FlowDocument``, the same schema
the CLI's files and the call engine use. This module holds no logic beyond field limits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from frontdesk.api.schemas import Input, LongText
from frontdesk.routing.model import NAME_PATTERN

FlowNamePath = Annotated[str, Path(pattern=NAME_PATTERN, description="flow name, e.g. front-desk")]
VersionPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="version number")]
#: A calling number or an extension (what a SIP From user part holds).
CallerNumber = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+*#._@-]{1,64}$")]
#: Who does not answer / is busy: an extension, role, group, user or "everyone".
Person = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9:._@ -]{1,128}$")]
VariableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
VariableValue = Annotated[str, StringConstraints(max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$")]


def _plausible(moment: datetime) -> datetime:
    """A simulated call must leave room for the call to go on (no year 1 or 9999)."""
    if not 1900 <= moment.year <= 9000:
        raise ValueError("the time must be between the years 1900 and 9000")
    return moment


class ReasonIn(Input):
    reason: LongText = Field("", description="why: shown in the change request and audit log")


class RollbackIn(ReasonIn):
    to_version: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = Field(
        None, description="the version to publish again (default: the one before the current)"
    )


class SimulateIn(Input):
    """The same inputs as ``frontdesk flow simulate``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    caller: CallerNumber = Field(alias="from", description="calling number, e.g. +15551234567")
    to: Annotated[str, StringConstraints(pattern=r"^(main|[A-Za-z0-9]{1,32})$")] = Field(
        "main", description="main, or an extension"
    )
    at: Annotated[datetime, AfterValidator(_plausible)] | None = Field(
        None, description="when; a time without offset is read in the flow's time zone"
    )
    no_answer: Annotated[list[Person], Field(max_length=50)] = Field(default_factory=list)
    busy: Annotated[list[Person], Field(max_length=50)] = Field(default_factory=list)
    press: Annotated[str, StringConstraints(pattern=r"^[0-9*#]{0,32}$")] = Field(
        "", description="keys pressed at successive menus"
    )
    vip: bool = False
    emergency: bool = False
    variables: Annotated[dict[VariableName, VariableValue], Field(max_length=50)] = Field(
        default_factory=dict
    )


class FlowOut(BaseModel):
    """A flow: what calls run now and what is being edited (documents are fetched apart)."""

    name: str
    draft_version: int | None
    published_version: int | None
    published_by: str | None
    published_at: str | None
    published_note: str | None
    outside_numbers: list[str] = Field(description="outside numbers the published flow "
                                                   "transfers to (infrastructure)")


class VersionOut(BaseModel):
    version: int
    state: Literal["draft", "published", "archived"]
    created_by: str
    created_at: str | None
    published_by: str | None
    published_at: str | None
    note: str | None


class VersionDocumentOut(VersionOut):
    document: dict[str, Any]


class PublishedOut(BaseModel):
    """What calls to the flow run: a published version, or (main flow, nothing published
    yet) the built-in front-desk template."""

    source: Literal["published", "template"]
    label: str
    version: int | None
    published_by: str | None
    published_at: str | None
    document: dict[str, Any]


class ProblemOut(BaseModel):
    node: str | None = Field(description="the step the problem is in, when it is in one")
    message: str


class ValidationOut(BaseModel):
    flow: str
    valid: bool
    problems: list[ProblemOut]


class SimulationOut(BaseModel):
    tenant: str
    flow: str
    runs: str = Field(description="which version ran (or the template)")
    started_at: str
    ended_at: str
    path: list[dict[str, Any]] = Field(description="node by node, with the reason for each")
    result: dict[str, Any]
    shield: dict[str, Any] | None
    lines: list[str] = Field(description="the path as `frontdesk flow simulate` prints it")
