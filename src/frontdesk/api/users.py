"""/api/v1/users: people in the tenant, and their API passwords (argon2).

Anyone may set their own password; setting someone else's needs user.update. Every change
goes through ``org.service``; passwords are hashed before they reach it and never appear
in a response, a change request or the audit log.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select

from frontdesk.api.common import CallerDep, read_all, read_one
from frontdesk.api.schemas import (
    Email,
    Input,
    LongText,
    Password,
    Text,
    Username,
    UsernamePath,
    UserOut,
    accepted,
    omitted,
)
from frontdesk.org.service import Change
from frontdesk.store.models import User

router = APIRouter(prefix="/api/v1/users", tags=["users"])


class UserIn(Input):
    username: Username
    display_name: Text
    email: Email | None = None
    password: Password | None = None
    reason: LongText = ""


class UserPatch(Input):
    display_name: Text = omitted()
    email: Email | None = None
    reason: LongText = ""


class PasswordIn(Input):
    password: Password


@router.get("", response_model=list[UserOut], summary="Users")
def list_users(caller: CallerDep) -> Any:
    return read_all(caller, "user", select(User).where(User.tenant_id == caller.tenant_id)
                    .order_by(User.username))


@router.get("/{username}", response_model=UserOut, summary="One user")
def get_user(username: UsernamePath, caller: CallerDep) -> Any:
    return read_one(caller, "user", username)


@router.post("", response_model=UserOut, status_code=201, responses=accepted(),
             summary="Add a user")
def create_user(body: UserIn, caller: CallerDep) -> Response:
    change = Change("user", "create", body.username, body.sent("username"), body.reason)
    return caller.change(change, created=True)


@router.patch("/{username}", response_model=UserOut, responses=accepted(),
              summary="Change a user")
def update_user(username: UsernamePath, body: UserPatch, caller: CallerDep) -> Response:
    return caller.change(Change("user", "update", username, body.sent("username"), body.reason))


@router.put("/{username}/password", status_code=204, responses=accepted(),
            summary="Set a user's API password (your own, or anyone's with user.update)")
def set_password(username: UsernamePath, body: PasswordIn, caller: CallerDep) -> Response:
    response = caller.change(Change("user", "update", username, {"password": body.password}))
    return response if response.status_code == 202 else Response(status_code=204)


@router.delete("/{username}", status_code=204, responses=accepted(), summary="Remove a user")
def delete_user(username: UsernamePath, caller: CallerDep) -> Response:
    return caller.change(Change("user", "delete", username))
