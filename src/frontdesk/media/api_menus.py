"""/api/v1/voicemail/menus: self-service menus (IVR) — list, read, create, change, delete.

Every change goes through ``org.service`` with the signed-in caller as the actor and
channel "api" (permissions ``menu.*``, see docs/permissions.md), so it is versioned,
audited and told to the Phone Manager and contact-center manager on the event bus; a
denied change changes nothing. Validation is the ``menu`` kind's (``media.kinds_menu``):
the API refuses exactly what the server could not run. This module never writes rows
itself. Included in ``media.api``'s router, so it shares its prefix.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as UrlPath
from fastapi.responses import Response
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import select

from frontdesk.api.common import CallerDep, read_all, read_one
from frontdesk.api.schemas import Input, LongText, Text, accepted, omitted
from frontdesk.media import kinds_menu
from frontdesk.media.model import Menu
from frontdesk.org.service import Change

router = APIRouter(tags=["Voicemail"])
_NUMBER = r"^[A-Za-z0-9*#+_-]{1,32}$"
MenuNumber = Annotated[str, StringConstraints(pattern=_NUMBER)]
MenuNumberPath = Annotated[str, UrlPath(pattern=_NUMBER, description="the number callers dial")]
Keys = Annotated[str, StringConstraints(pattern=r"^[0-9*#]{1,8}$")]
Branch = Annotated[str, StringConstraints(
    max_length=64, pattern=r"^(hangup|(extension|voicemail|menu):[^\x00-\x1f\x7f:]{1,58})$")]
Spoken = Annotated[str, StringConstraints(min_length=1, max_length=2000,
                                          pattern=r"^[^\x00-\x1f\x7f]+$")]
Choices = Annotated[dict[Keys, Branch], Field(min_length=1, max_length=12, description=(
    'keypad keys -> branch, e.g. {"1": "extension:101", "2": "voicemail:102", '
    '"9": "menu:501", "0": "hangup"}'))]


class MenuPatch(Input):
    name: Text = omitted()
    prompt: Annotated[Spoken, Field(description="what callers hear (rendered to speech)")] = (
        omitted())
    choices: Choices = omitted()
    timeout: Annotated[float, Field(ge=1.0, le=60.0, description="seconds to wait for a key")] \
        = omitted()
    retries: Annotated[int, Field(ge=0, le=9)] = omitted()
    invalid_prompt: Spoken = omitted()
    default_branch: Branch | None = Field(
        None, description="where a caller who chooses nothing valid goes (null: hang up)")
    reason: LongText = ""


class MenuIn(MenuPatch):
    number: MenuNumber
    name: Text
    prompt: Spoken
    choices: Choices


class MenuOut(BaseModel):
    number: str
    name: str
    prompt: str
    choices: dict[str, str]
    timeout: float
    retries: int
    invalid_prompt: str
    default_branch: str | None


@router.get("/menus", response_model=list[MenuOut], summary="Self-service menus")
def list_menus(caller: CallerDep) -> Any:
    return read_all(caller, "menu", select(Menu).where(Menu.tenant_id == caller.tenant_id)
                    .order_by(Menu.number))


@router.get("/menus/{number}", response_model=MenuOut, summary="One self-service menu")
def get_menu(number: MenuNumberPath, caller: CallerDep) -> Any:
    return read_one(caller, "menu", number)


@router.post("/menus", response_model=MenuOut, status_code=201, responses=accepted(),
             summary="Add a self-service menu")
def create_menu(body: MenuIn, caller: CallerDep) -> Response:
    change = Change(kinds_menu.MenuKind.name, "create", body.number, body.sent("number"),
                    body.reason)
    return caller.change(change, created=True)


@router.patch("/menus/{number}", response_model=MenuOut, responses=accepted(),
              summary="Change a menu (prompt, choices, timeout, retries, default branch)")
def update_menu(number: MenuNumberPath, body: MenuPatch, caller: CallerDep) -> Response:
    return caller.change(Change("menu", "update", number, body.sent(), body.reason))


@router.delete("/menus/{number}", status_code=204, responses=accepted(),
               summary="Remove a self-service menu")
def delete_menu(number: MenuNumberPath, caller: CallerDep) -> Response:
    return caller.change(Change("menu", "delete", number))
