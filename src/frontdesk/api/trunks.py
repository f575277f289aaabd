"""/api/v1/trunks: SIP trunks to carriers — list, read, create, change, delete.

Every change goes through ``org.service`` with the signed-in caller as the actor and channel
"api" (permissions ``trunk.*``, see docs/permissions.md): trunks are infrastructure, so a
change by someone who does not own infrastructure becomes a change request (202) for the
Technical Contact. Validation is the ``trunk`` kind's (``pbx.trunk_kind``). This module never
writes rows itself, and never returns the password (it reads back as "(secret)").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi import Path as UrlPath
from fastapi.responses import Response
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import select

from frontdesk.api.common import CallerDep, read_all, read_one
from frontdesk.api.schemas import Input, LongText, accepted, omitted
from frontdesk.org.service import Change
from frontdesk.pbx import trunk_kind  # noqa: F401  (registers the kind)
from frontdesk.pbx.trunk_model import Trunk

router = APIRouter(prefix="/api/v1", tags=["Trunks"])
_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
TrunkName = Annotated[str, StringConstraints(pattern=_NAME)]
TrunkPath = Annotated[str, UrlPath(pattern=_NAME, description="the trunk's name")]
Host = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.:\[\]-]{1,255}$")]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()-]{3,32}$")]
Source = Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f.:/]{2,64}$")]
Rule = Annotated[str, StringConstraints(pattern=r"^(\+|[0-9*#]{1,4})$")]
Dest = Annotated[str, StringConstraints(pattern=r"^(main|ext:[A-Za-z0-9*#+_-]{1,32})$")]
Secret = Annotated[str, StringConstraints(max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")]


class TrunkPatch(Input):
    host: Host = omitted()
    port: Annotated[int, Field(ge=1, le=65535)] = omitted()
    transport: Literal["udp", "tcp"] = omitted()
    username: Secret | None = None
    password: Secret | None = Field(None, description="our password at the carrier "
                                    "(write-only: reads back as \"(secret)\")")
    registration: bool = omitted()
    caller_id: Phone | None = Field(None, description="outbound caller ID (E.164)")
    sources: Annotated[list[Source], Field(max_length=32, description=(
        "addresses or networks the carrier sends from"))] = omitted()
    dids: Annotated[dict[Phone, Dest], Field(max_length=1000, description=(
        'DIDs the carrier delivers -> "main" or "ext:<number>"'))] = omitted()
    dial_rules: Annotated[list[Rule], Field(max_length=8, description=(
        '"+" (E.164 as dialled) and/or a prefix like "9" stripped before the national '
        "number"))] = omitted()
    reason: LongText = ""


class TrunkIn(TrunkPatch):
    name: TrunkName
    host: Host


class TrunkOut(BaseModel):
    name: str
    host: str
    port: int
    transport: str
    username: str | None
    password: str | None
    registration: bool
    caller_id: str | None
    sources: list[str]
    dids: dict[str, str]
    dial_rules: list[str]


@router.get("/trunks", response_model=list[TrunkOut], summary="SIP trunks")
def list_trunks(caller: CallerDep) -> Any:
    return read_all(caller, "trunk", select(Trunk).where(Trunk.tenant_id == caller.tenant_id)
                    .order_by(Trunk.name))


@router.get("/trunks/{name}", response_model=TrunkOut, summary="One SIP trunk")
def get_trunk(name: TrunkPath, caller: CallerDep) -> Any:
    return read_one(caller, "trunk", name)


@router.post("/trunks", response_model=TrunkOut, status_code=201, responses=accepted(),
             summary="Add a SIP trunk")
def create_trunk(body: TrunkIn, caller: CallerDep) -> Response:
    return caller.change(Change("trunk", "create", body.name, body.sent("name"), body.reason),
                         created=True)


@router.patch("/trunks/{name}", response_model=TrunkOut, responses=accepted(),
              summary="Change a SIP trunk")
def update_trunk(name: TrunkPath, body: TrunkPatch, caller: CallerDep) -> Response:
    return caller.change(Change("trunk", "update", name, body.sent(), body.reason))


@router.delete("/trunks/{name}", status_code=204, responses=accepted(),
               summary="Remove a SIP trunk")
def delete_trunk(name: TrunkPath, caller: CallerDep) -> Response:
    return caller.change(Change("trunk", "delete", name))

