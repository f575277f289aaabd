"""/api/v1/extensions: dialable numbers, who they belong to, ring time and SIP login.

Every change goes through ``org.service``; a SIP password is turned into digest HA1s
before it reaches it and is never returned. This module never writes rows itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import Field
from sqlalchemy import select

from frontdesk.api.common import CallerDep, read_all, read_one
from frontdesk.api.schemas import (
    ExtensionOut,
    Input,
    LongText,
    Number,
    NumberPath,
    SipPassword,
    Text,
    Username,
    accepted,
    omitted,
)
from frontdesk.org.service import Change
from frontdesk.store.models import Extension

router = APIRouter(prefix="/api/v1/extensions", tags=["extensions"])
Timeout = Annotated[int, Field(ge=1, le=600, description="seconds; null: the tenant's")]
Contacts = Annotated[int, Field(ge=1, le=100)]


class ExtensionIn(Input):
    number: Number
    display_name: Text
    user: Username | None = None
    ring_timeout: Timeout | None = None
    max_contacts: Contacts = 5
    sip_password: SipPassword | None = None
    reason: LongText = ""


class ExtensionPatch(Input):
    display_name: Text = omitted()
    user: Username | None = None
    ring_timeout: Timeout | None = None
    max_contacts: Contacts = omitted()
    sip_password: SipPassword = omitted()
    reason: LongText = ""


def _fields(body: Input) -> dict[str, Any]:
    sent = body.fields()
    if isinstance(body, ExtensionIn):
        sent = {k: v for k, v in body.model_dump(mode="json").items() if v is not None}
    return {k: v for k, v in sent.items() if k not in ("number", "reason")}


@router.get("", response_model=list[ExtensionOut], summary="Extensions")
def list_extensions(caller: CallerDep) -> Any:
    return read_all(caller, "extension", select(Extension)
                    .where(Extension.tenant_id == caller.tenant_id).order_by(Extension.number))


@router.get("/{number}", response_model=ExtensionOut, summary="One extension")
def get_extension(number: NumberPath, caller: CallerDep) -> Any:
    return read_one(caller, "extension", number)


@router.post("", response_model=ExtensionOut, status_code=201, responses=accepted(),
             summary="Add an extension")
def create_extension(body: ExtensionIn, caller: CallerDep) -> Response:
    return caller.change(Change("extension", "create", body.number, _fields(body), body.reason),
                         created=True)


@router.patch("/{number}", response_model=ExtensionOut, responses=accepted(),
              summary="Change an extension")
def update_extension(number: NumberPath, body: ExtensionPatch, caller: CallerDep) -> Response:
    return caller.change(Change("extension", "update", number, _fields(body), body.reason))


@router.delete("/{number}", status_code=204, responses=accepted(),
               summary="Remove an extension")
def delete_extension(number: NumberPath, caller: CallerDep) -> Response:
    return caller.change(Change("extension", "delete", number))
