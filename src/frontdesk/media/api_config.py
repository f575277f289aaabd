"""/api/v1/voicemail configuration: the tenant's greeting settings (template, variables,
greeting policy, longest message), mailboxes (name, PIN, routing, who checks them and when)
and recorded greetings (list; approve or reject one recorded by phone).

Every change goes through ``org.service`` with the signed-in caller as the actor and
channel "api" (permission ``voicemail.*``, ``mailbox.*``, ``greeting.*`` — see
docs/permissions.md), so it is versioned and audited; a denied change changes nothing.
This module never writes rows itself, and never shows a PIN ("(secret)"). Included in
``media.api``'s router, so it shares its prefix.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi import Path as UrlPath
from fastapi.responses import Response
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import select

from frontdesk.api.common import (
    INT32,
    CallerDep,
    outcome_body,
    outcome_response,
    plain,
    read_all,
    read_one,
)
from frontdesk.api.schemas import Input, LongText, Text, accepted, omitted
from frontdesk.media import kinds
from frontdesk.media import voicemail_store as store
from frontdesk.media.model import Greeting
from frontdesk.media.prompts import PromptError, PromptLibrary
from frontdesk.org import service
from frontdesk.org.errors import Conflict, Invalid, OrgError
from frontdesk.org.service import Change

router = APIRouter(tags=["Voicemail"])
MailboxNumber = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9*#+_-]{1,32}$")]
NumberPath = Annotated[str, UrlPath(pattern=r"^[A-Za-z0-9*#+_-]{1,32}$")]
Pin = Annotated[str, StringConstraints(pattern=r"^[0-9]{4,10}$")]
Person = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._@*#+-]{1,128}$")]
VariableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
VariableText = Annotated[str, StringConstraints(max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$")]
Template = Annotated[str, StringConstraints(min_length=1, max_length=2000,
                                            pattern=r"^[^\x00-\x1f\x7f]+$")]
ShortText = Annotated[str, StringConstraints(max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")]
Policy = Literal["forbidden", "allowed", "approval_required"]


class SettingsPatch(Input):
    greeting_template: Template = omitted()
    variables: Annotated[dict[VariableName, VariableText], Field(max_length=50)] = omitted()
    greeting_policy: Policy = omitted()
    max_message_seconds: Annotated[int, Field(ge=10, le=3600)] = omitted()
    voice: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[a-z0-9]{1,8}){0,2}$")] = (
        omitted())
    reason: LongText = ""


class SettingsOut(BaseModel):
    greeting_template: str
    variables: dict[str, str]
    greeting_policy: str
    max_message_seconds: int
    voice: str


class Schedule(Input):
    hours: Annotated[list[Annotated[int, Field(ge=0, le=23)]], Field(min_length=1,
                                                                     max_length=24)] = omitted()
    days: Annotated[list[Annotated[int, Field(ge=0, le=6)]], Field(max_length=7)] = omitted()
    grace_minutes: Annotated[int, Field(ge=1, le=120)] = omitted()
    timezone: Text = omitted()


People = Annotated[list[Person], Field(max_length=100)]


class MailboxPatch(Input):
    name: Text = omitted()
    pin: Pin = omitted()
    no_answer_to_voicemail: bool = omitted()
    max_messages: Annotated[int, Field(ge=1, le=10000)] = omitted()
    responsible: People = omitted()
    escalate_to: ShortText | None = None
    check_schedule: Schedule | None = None
    reason: LongText = ""


class MailboxIn(MailboxPatch):
    number: MailboxNumber
    pin: Pin


class MailboxOut(BaseModel):
    number: str
    name: str
    pin: str = Field(description='always "(secret)"')
    no_answer_to_voicemail: bool
    max_messages: int
    responsible: list[str]
    escalate_to: str | None
    check_schedule: dict[str, Any] | None


class GreetingIn(Input):
    mailbox: MailboxNumber | None = Field(
        None, description="the mailbox it greets for; null: every mailbox (replaces the "
                          "rendered standard greeting)")
    audio_base64: Annotated[str, StringConstraints(min_length=4, max_length=16_000_000,
                                                   pattern=r"^[A-Za-z0-9+/=\s]+$")] = Field(
        description="a WAV file (any rate, mono or stereo), base64-encoded")
    reason: LongText = ""


class GreetingOut(BaseModel):
    id: int
    mailbox: str | None
    source: str
    status: str
    audio_path: str
    created_by: str
    decided_by: str | None
    decided_at: str | None


def configured_data_dir(request: Request) -> Path | None:
    """The server's data directory (recordings and prompts live there), if it has one."""
    server = getattr(request.app.state, "server", None)
    configured = getattr(getattr(server, "config", None), "data_dir", None)
    if configured is None:
        configured = getattr(request.app.state, "data_dir", None)
    return Path(configured) if configured is not None else None


def data_dir_of(request: Request) -> Path:
    """The data directory, or the working directory when none is configured (reads only)."""
    return configured_data_dir(request) or Path(".")


@router.get("/settings", response_model=SettingsOut, summary="The greeting template and policy")
def get_settings(caller: CallerDep) -> Any:
    return read_one(caller, "voicemail", kinds.SETTINGS_KEY)


@router.patch("/settings", response_model=SettingsOut, responses=accepted(),
              summary="Change the greeting template, its variables, the policy or the longest "
                      "message")
def update_settings(body: SettingsPatch, caller: CallerDep) -> Response:
    change = Change("voicemail", "update", kinds.SETTINGS_KEY, body.sent(), body.reason)
    return caller.change(change)


@router.get("/mailboxes/{number}", response_model=MailboxOut,
            summary="A mailbox's configuration (the PIN never shown)")
def get_mailbox(number: NumberPath, caller: CallerDep) -> Any:
    return read_one(caller, "mailbox", number)


@router.post("/mailboxes", response_model=MailboxOut, status_code=201, responses=accepted(),
             summary="Add a mailbox")
def create_mailbox(body: MailboxIn, caller: CallerDep) -> Response:
    fields = body.sent("number")
    fields["pin"] = body.pin
    return caller.change(Change("mailbox", "create", body.number, fields, body.reason),
                         created=True)


@router.patch("/mailboxes/{number}", response_model=MailboxOut, responses=accepted(),
              summary="Change a mailbox (name, PIN, routing, who checks it and when)")
def update_mailbox(number: NumberPath, body: MailboxPatch, caller: CallerDep) -> Response:
    return caller.change(Change("mailbox", "update", number, body.sent(), body.reason))


@router.delete("/mailboxes/{number}", status_code=204, responses=accepted(),
               summary="Remove a mailbox that holds no messages")
def delete_mailbox(number: NumberPath, caller: CallerDep) -> Response:
    return caller.change(Change("mailbox", "delete", number))


@router.get("/greetings", response_model=list[GreetingOut], summary="Recorded greetings")
def list_greetings(caller: CallerDep) -> Any:
    return read_all(caller, "greeting", select(Greeting)
                    .where(Greeting.tenant_id == caller.tenant_id).order_by(Greeting.id))


@router.post("/greetings", response_model=GreetingOut, status_code=201, responses=accepted(),
             summary="Upload a recorded greeting (checked and converted to 8 kHz)")
def upload_greeting(body: GreetingIn, request: Request, caller: CallerDep) -> Response:
    try:
        audio = base64.b64decode(body.audio_base64, validate=False)
    except binascii.Error as exc:
        raise Invalid("audio_base64 is not base64", field="audio_base64",
                      fix="encode the WAV file with base64") from exc
    data_dir = configured_data_dir(request)
    if data_dir is None:
        raise Conflict("this API has no data directory to keep recorded greetings in",
                       fix="upload through `frontdesk serve --data DIR`, or with the CLI")
    with caller.session() as session:  # refuse before converting anything
        caller.require(session, "greeting.create")
    with tempfile.TemporaryDirectory(prefix="fd-greeting-") as tmp:
        upload = Path(tmp) / "greeting.wav"
        upload.write_bytes(audio)
        try:
            stored, fresh = store.import_new(PromptLibrary(data_dir), upload)
        except PromptError as exc:
            raise Invalid(str(exc), field="audio_base64",
                          fix="upload a WAV file of speech, 1 s to 5 min long") from exc
    fields = {"mailbox": body.mailbox, "source": "upload",
              "audio_path": stored.relative_to(data_dir).as_posix()}
    try:
        return caller.change(Change("greeting", "create", None, fields, body.reason),
                             created=True)
    except OrgError:
        if fresh:  # uploads are stored by content: keep a file another greeting uses
            stored.unlink(missing_ok=True)
        raise


@router.post("/greetings/{greeting_id}/{decision}", response_model=GreetingOut,
             responses=accepted(), summary="Approve or reject a greeting recorded by phone")
def decide_greeting(greeting_id: Annotated[int, UrlPath(ge=1, le=INT32)],
                    decision: Annotated[str, UrlPath(pattern="^(approve|reject)$")],
                    caller: CallerDep) -> Response:
    status = "active" if decision == "approve" else "rejected"
    change = Change("greeting", "update", str(greeting_id), {"status": status})
    with caller.session() as session:
        outcome = service.apply_change(session, caller.actor, "api", change)
        if outcome.status == "unchanged":
            raise Conflict(f"greeting {greeting_id} is already {status}",
                           fix="only a greeting pending approval can be approved or rejected")
        body = outcome_body(session, outcome, plain)
    caller.bus.publish(outcome.events)
    return outcome_response(outcome, body)

