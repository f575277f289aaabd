"""/api/v1/groups: groups of users, the features each group gets, and who checks a group's
mailbox.

Business changes, except enabling or disabling international calls and external
forwarding (toll-fraud exposure: infrastructure). Every change goes through
``org.service``; this module never writes rows itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import Field
from sqlalchemy import select

from frontdesk.api.common import CallerDep, read_all, read_one
from frontdesk.api.schemas import (
    Feature,
    GroupOut,
    Input,
    LongText,
    Slug,
    SlugPath,
    Text,
    Username,
    accepted,
    omitted,
)
from frontdesk.org.model import UserGroup
from frontdesk.org.service import Change

router = APIRouter(prefix="/api/v1/groups", tags=["groups"])
Features = Annotated[list[Feature], Field(max_length=7)]
Members = Annotated[list[Username], Field(max_length=1000)]


class GroupIn(Input):
    name: Slug
    display_name: Text
    site: Slug | None = None
    features: Features = Field(default_factory=list)
    members: Members = Field(default_factory=list)
    has_mailbox: bool = False
    mailbox_checker: Username | None = None
    reason: LongText = ""


class GroupPatch(Input):
    display_name: Text = omitted()
    site: Slug | None = None
    features: Features = omitted()
    members: Members = omitted()
    has_mailbox: bool = omitted()
    mailbox_checker: Username | None = None
    reason: LongText = ""


def _fields(body: Input) -> dict[str, Any]:
    sent = body.model_dump(mode="json") if isinstance(body, GroupIn) else body.fields()
    return {k: v for k, v in sent.items() if k not in ("name", "reason")}


@router.get("", response_model=list[GroupOut], summary="Groups")
def list_groups(caller: CallerDep) -> Any:
    return read_all(caller, "group", select(UserGroup)
                    .where(UserGroup.tenant_id == caller.tenant_id).order_by(UserGroup.name))


@router.get("/{name}", response_model=GroupOut, summary="One group")
def get_group(name: SlugPath, caller: CallerDep) -> Any:
    return read_one(caller, "group", name)


@router.post("", response_model=GroupOut, status_code=201, responses=accepted(),
             summary="Add a group")
def create_group(body: GroupIn, caller: CallerDep) -> Response:
    return caller.change(Change("group", "create", body.name, _fields(body), body.reason),
                         created=True)


@router.patch("/{name}", response_model=GroupOut, responses=accepted(), summary="Change a group")
def update_group(name: SlugPath, body: GroupPatch, caller: CallerDep) -> Response:
    return caller.change(Change("group", "update", name, _fields(body), body.reason))


@router.delete("/{name}", status_code=204, responses=accepted(), summary="Remove a group")
def delete_group(name: SlugPath, caller: CallerDep) -> Response:
    return caller.change(Change("group", "delete", name))
