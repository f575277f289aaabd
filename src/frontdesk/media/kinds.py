"""Voicemail configuration as resource kinds of the one change path (``org.service``):

- ``voicemail`` (key ``settings``): the tenant's standard greeting template, its variables,
  the greeting policy (may mailbox owners record a personal greeting by phone, and does it
  need approval first) and the longest message;
- ``mailbox`` (key: its number): name, PIN, routing, who is responsible for checking it and
  when (the check schedule), who hears about missed checks;
- ``greeting`` (key: its id): a recorded greeting — uploaded, or recorded by phone by the
  mailbox owner — and its status; approving or rejecting one waiting for approval is an
  ``update`` of its status.

All three are business-domain configuration ("greetings and messages"). A mailbox owner
recording their own greeting by phone (after entering the PIN) and changing their own PIN
act on something of their own: no permission is needed, but the tenant's greeting policy
still decides whether the greeting is allowed and whether it waits for approval.

The PIN is a secret: it is hashed here and never appears in a snapshot, a diff, a version
or an audit row (shown as "(secret)"). These kinds must never check permissions, write
audit rows or versions, or commit — the service does that around them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import func, select

from frontdesk.media import compliance
from frontdesk.media import voicemail_store as store
from frontdesk.media.model import (
    DEFAULT_TEMPLATE,
    GREETING_KINDS,
    GREETING_POLICIES,
    GREETING_STATUSES,
    Greeting,
    Mailbox,
    VoicemailMessage,
    VoicemailSettings,
)
from frontdesk.org.access import ActorKind
from frontdesk.org.errors import Conflict, Invalid, NotAllowed
from frontdesk.org.resources import (
    SECRET,
    ApplyContext,
    ResourceKind,
    int_field,
    register,
    text_field,
    unknown_fields,
)
from frontdesk.store.models import Extension

SETTINGS_KEY = "settings"
NUMBER_RE = re.compile(r"^[A-Za-z0-9*#+_-]{1,32}$")
_PERSON_RE = re.compile(r"^[A-Za-z0-9._@*#+-]{1,128}$")
_VOICE_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8}){0,2}$")
#: Which greeting status may follow which: deciding a pending greeting, retiring or
#: reinstating one, and a rollback putting a decided greeting back to waiting.
GREETING_MOVES: Mapping[str, frozenset[str]] = {
    "pending_approval": frozenset({"active", "rejected"}),
    "active": frozenset({"replaced", "pending_approval"}),
    "rejected": frozenset({"pending_approval", "active"}),
    "replaced": frozenset({"active"}),
}


def phone_actor_name(number: str) -> str:
    """The job name the phone path acts under for a mailbox whose extension has no user."""
    return f"mailbox {number} owner"


def owns_mailbox(ctx: ApplyContext, number: str) -> bool:
    """True when the actor is the mailbox's owner: the user of the extension with its
    number, or the phone job acting for a mailbox without a user (after its PIN)."""
    actor = ctx.actor
    if actor.kind is ActorKind.JOB:
        return actor.name == f"job {phone_actor_name(number)}"
    if actor.user_id is None:
        return False
    owner = ctx.session.scalar(select(Extension.user_id).where(
        Extension.tenant_id == ctx.tenant_id, Extension.number == number))
    return owner is not None and owner == actor.user_id


def _bool(fields: Mapping[str, Any], name: str) -> bool | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, bool):
        raise Invalid(f"{name} must be true or false, not {value!r}", field=name,
                      fix=f"send {name} as a JSON boolean")
    return value


# --- the tenant's greeting settings -----------------------------------------------------------


class VoicemailSettingsKind(ResourceKind):
    name = "voicemail"
    title = "voicemail"
    actions = ("update",)
    _FIELDS = frozenset({"greeting_template", "variables", "greeting_policy",
                         "max_message_seconds", "voice"})

    def load(self, ctx: ApplyContext, key: str) -> VoicemailSettings | None:
        """The tenant's settings; until first changed, the defaults (not yet stored)."""
        if key != SETTINGS_KEY or ctx.tenant_id is None:
            return None
        row = ctx.session.scalar(select(VoicemailSettings).where(
            VoicemailSettings.tenant_id == ctx.tenant_id))
        return row if row is not None else store.default_settings(ctx.tenant_id)

    def key_of(self, row: VoicemailSettings) -> str:
        return SETTINGS_KEY

    def snapshot(self, ctx: ApplyContext, row: VoicemailSettings) -> dict[str, Any]:
        return {"greeting_template": row.greeting_template,
                "variables": dict(sorted((row.variables or {}).items())),
                "greeting_policy": row.greeting_policy,
                "max_message_seconds": row.max_message_seconds, "voice": row.voice}

    def normalise(self, ctx: ApplyContext, action: str, key: str | None,
                  fields: Mapping[str, Any], row: Any | None) -> dict[str, Any]:
        unknown_fields(self, fields, set(self._FIELDS))
        out: dict[str, Any] = {}
        if "greeting_template" in fields:
            out["greeting_template"] = text_field(fields, "greeting_template", required=True,
                                                  max_length=2000)
        if "variables" in fields:
            out["variables"] = _variables(fields["variables"])
        if "greeting_policy" in fields:
            policy = fields["greeting_policy"]
            if policy not in GREETING_POLICIES:
                raise Invalid(f"greeting_policy {policy!r} is not a greeting policy",
                              field="greeting_policy", fix=f"use one of: {', '.join(GREETING_POLICIES)}")
            out["greeting_policy"] = policy
        if "max_message_seconds" in fields:
            if fields["max_message_seconds"] is None:
                raise Invalid("max_message_seconds cannot be empty", field="max_message_seconds",
                              fix="give the longest message in seconds, 10 to 3600")
            out["max_message_seconds"] = int_field(fields, "max_message_seconds", 10, 3600)
        if "voice" in fields:
            voice = text_field(fields, "voice", required=True, max_length=32) or ""
            if not _VOICE_RE.match(voice):
                raise Invalid(f"voice {voice!r} is not an espeak-ng voice name", field="voice",
                              fix="use a language code such as en-us, en-gb or de")
            out["voice"] = voice
        if "greeting_template" in out or "variables" in out:
            self._check_renders(row, out)
        return out

    def _check_renders(self, row: VoicemailSettings | None, out: Mapping[str, Any]) -> None:
        """Every placeholder of the resulting template must have a value — except in the
        built-in template, which a rollback may bring back before its variables are set (the
        phone path then plays a plain greeting and logs why)."""
        template = out.get("greeting_template", row.greeting_template if row else "")
        variables = out.get("variables", dict(row.variables or {}) if row else {})
        if template == DEFAULT_TEMPLATE:
            return
        example = Mailbox(name="Example", number="100")
        try:
            store.render_greeting(template, variables, example)
        except store.VoicemailError as exc:
            field = "variables" if "variables" in out and "greeting_template" not in out \
                else "greeting_template"
            raise Invalid(str(exc), field=field,
                          fix="give every {placeholder} a value in variables "
                              "({name} and {extension} come from the mailbox)") from exc

    def update(self, ctx: ApplyContext, row: VoicemailSettings, fields: Mapping[str, Any]) -> None:
        if row not in ctx.session:
            ctx.session.add(row)
        for name, value in fields.items():
            setattr(row, name, value)
        row.updated_at = ctx.now


def _variables(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise Invalid("variables must be an object of NAME: text", field="variables",
                      fix='send e.g. {"service_manager_extension": "102"}')
    out: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise Invalid(f"template variable name {name!r} is not a plain name",
                          field="variables", fix="use letters, digits and _, e.g. office_hours")
        checked = text_field({name: text}, name, max_length=255, empty_ok=True)
        out[name] = checked or ""
    return dict(sorted(out.items()))


# --- mailboxes ---------------------------------------------------------------------------------


class MailboxKind(ResourceKind):
    name = "mailbox"
    title = "mailbox"
    secret_fields = frozenset({"pin_hash"})
    read_only_fields = frozenset({"number", "pin"})
    _FIELDS = frozenset({"name", "pin", "no_answer_to_voicemail", "max_messages", "responsible",
                         "escalate_to", "check_schedule"})

    def load(self, ctx: ApplyContext, key: str) -> Mailbox | None:
        return store.get_mailbox(ctx.session, ctx.tenant_id or -1, key)

    def key_of(self, row: Mailbox) -> str:
        return row.number

    def snapshot(self, ctx: ApplyContext, row: Mailbox) -> dict[str, Any]:
        return {"number": row.number, "name": row.name, "pin": SECRET,
                "no_answer_to_voicemail": row.no_answer_to_voicemail,
                "max_messages": row.max_messages,
                "responsible": list(row.responsible or [row.number]),
                "escalate_to": row.escalate_to,
                "check_schedule": dict(row.check_schedule) if row.check_schedule else None}

    def is_personal(self, ctx: ApplyContext, action: str, key: str | None,
                    fields: Mapping[str, Any], row: Any | None) -> bool:
        """The owner changing only their own PIN."""
        return (action == "update" and row is not None and set(fields) <= {"pin"}
                and owns_mailbox(ctx, row.number))

    def create_key(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> str:
        if key is None or not NUMBER_RE.match(key):
            raise Invalid(f"mailbox number {key!r} is not valid", field="number",
                          fix="use the extension number: digits, * # + _ -, at most 32")
        return key

    def normalise(self, ctx: ApplyContext, action: str, key: str | None,
                  fields: Mapping[str, Any], row: Any | None) -> dict[str, Any]:
        unknown_fields(self, fields, set(self._FIELDS))
        creating = action == "create"
        out: dict[str, Any] = {}
        if creating or "name" in fields:
            out["name"] = self._name(ctx, key or "", fields)
        if creating or "pin" in fields:
            out["pin_hash"] = _pin_hash(fields.get("pin"))
        if "no_answer_to_voicemail" in fields:
            out["no_answer_to_voicemail"] = bool(_bool(fields, "no_answer_to_voicemail"))
        if "max_messages" in fields:
            if fields["max_messages"] is None:
                raise Invalid("max_messages cannot be empty", field="max_messages",
                              fix="give how many messages the mailbox keeps, 1 to 10000")
            out["max_messages"] = int_field(fields, "max_messages", 1, 10000)
        if "responsible" in fields:
            out["responsible"] = _people(fields["responsible"]) or [key or ""]
        if "escalate_to" in fields:
            out["escalate_to"] = text_field(fields, "escalate_to", max_length=64,
                                            empty_ok=True) or None
        if "check_schedule" in fields:
            out["check_schedule"] = _schedule(fields["check_schedule"])
        return out

    def _name(self, ctx: ApplyContext, number: str, fields: Mapping[str, Any]) -> str:
        name = text_field(fields, "name")
        if name:
            return name
        display = ctx.session.scalar(select(Extension.display_name).where(
            Extension.tenant_id == ctx.tenant_id, Extension.number == number))
        if not display:
            raise Invalid(f"mailbox {number} needs a name: extension {number} does not exist",
                          field="name", fix="give a name, or create the extension first")
        return str(display)

    def create(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> Mailbox:
        box = Mailbox(tenant_id=ctx.tenant_id, number=key, name=fields["name"],
                      pin_hash=fields["pin_hash"],
                      no_answer_to_voicemail=fields.get("no_answer_to_voicemail", True),
                      max_messages=fields.get("max_messages", 100),
                      responsible=list(fields.get("responsible") or [key or ""]),
                      escalate_to=fields.get("escalate_to"),
                      check_schedule=fields.get("check_schedule"))
        ctx.session.add(box)
        return box

    def update(self, ctx: ApplyContext, row: Mailbox, fields: Mapping[str, Any]) -> None:
        for name, value in fields.items():
            setattr(row, name, list(value) if isinstance(value, list) else value)

    def delete(self, ctx: ApplyContext, row: Mailbox) -> dict[str, Any] | None:
        held = ctx.session.scalar(select(func.count()).select_from(VoicemailMessage).where(
            VoicemailMessage.mailbox_id == row.id)) or 0
        if held:
            raise Conflict(f"mailbox {row.number} still holds {held} message(s)",
                           fix="listen to, export or delete them first "
                               "(frontdesk voicemail list / export / delete)")
        ctx.session.delete(row)
        return None


def _pin_hash(pin: Any) -> str:
    if pin is None:
        raise Invalid("a mailbox needs a PIN", field="pin",
                      fix="give 4 to 10 digits, typed on the keypad after *97")
    if not isinstance(pin, str):
        raise Invalid("pin must be text", field="pin", fix='send the PIN as a string, e.g. "4821"')
    try:
        return store.hash_pin(pin)
    except store.VoicemailError as exc:
        raise Invalid("the PIN is not 4 to 10 digits", field="pin",
                      fix="use 4 to 10 digits (0-9) so it can be typed on a keypad") from exc


def _people(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise Invalid("responsible must be a list of extension numbers or user names",
                      field="responsible", fix='send e.g. ["102", "103"]')
    people = list(dict.fromkeys(v.strip() for v in items if v.strip()))
    for person in people:
        if not _PERSON_RE.match(person):
            raise Invalid(f"responsible person {person!r} is not an extension or user name",
                          field="responsible", fix="use extension numbers or user names")
    return people


def _schedule(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid("check_schedule must be an object or null", field="check_schedule",
                      fix='send e.g. {"hours": [9, 11, 13, 15, 17], "days": [0, 1, 2, 3, 4]}')
    known = {"hours", "days", "grace_minutes", "timezone"}
    for name in value:
        if name not in known:
            raise Invalid(f"check_schedule has no part {name!r}", field="check_schedule",
                          fix=f"use only: {', '.join(sorted(known))}")
    try:
        compliance.parse_schedule(value)
    except compliance.ScheduleError as exc:
        raise Invalid(str(exc), field="check_schedule",
                      fix="hours 0-23, days 0 (Monday) to 6, grace_minutes 1-120, an IANA "
                          "time zone") from exc
    return dict(value)


# --- recorded greetings ------------------------------------------------------------------------


class GreetingKind(ResourceKind):
    name = "greeting"
    title = "greeting"
    actions = ("create", "update")
    read_only_fields = frozenset({"id", "mailbox", "source", "audio_path", "created_by",
                                  "decided_by", "decided_at"})

    def load(self, ctx: ApplyContext, key: str) -> Greeting | None:
        if not key.isdigit() or not 0 < int(key) < 2**31:
            return None
        row = ctx.session.get(Greeting, int(key))
        return row if row is not None and row.tenant_id == ctx.tenant_id else None

    def key_of(self, row: Greeting) -> str:
        return str(row.id)

    def snapshot(self, ctx: ApplyContext, row: Greeting) -> dict[str, Any]:
        box = ctx.session.get(Mailbox, row.mailbox_id) if row.mailbox_id is not None else None
        return {"id": row.id, "mailbox": box.number if box else None, "source": row.kind,
                "status": row.status, "audio_path": row.audio_path,
                "created_by": row.created_by, "decided_by": row.decided_by,
                "decided_at": row.decided_at.isoformat() if row.decided_at else None}

    def is_personal(self, ctx: ApplyContext, action: str, key: str | None,
                    fields: Mapping[str, Any], row: Any | None) -> bool:
        """The mailbox owner recording their own greeting by phone (the policy still rules)."""
        mailbox = fields.get("mailbox")
        return (action == "create" and fields.get("source") == "phone"
                and isinstance(mailbox, str) and owns_mailbox(ctx, mailbox))

    def create_key(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> None:
        return None

    def normalise(self, ctx: ApplyContext, action: str, key: str | None,
                  fields: Mapping[str, Any], row: Any | None) -> dict[str, Any]:
        if action == "create":
            return self._new(ctx, fields)
        unknown_fields(self, fields, {"status"})
        status = fields.get("status")
        if status not in GREETING_STATUSES:
            raise Invalid(f"greeting status {status!r} is not one of "
                          f"{', '.join(GREETING_STATUSES)}", field="status",
                          fix="approve with status active, reject with status rejected")
        assert isinstance(row, Greeting)
        if status != row.status and status not in GREETING_MOVES[row.status]:
            waiting = "is not waiting for approval" if status in ("active", "rejected") else \
                f"cannot go from {row.status} to {status}"
            raise Conflict(f"greeting {row.id} is {row.status}: it {waiting}",
                           field="status", fix="only a greeting pending approval can be "
                                               "approved or rejected (frontdesk voicemail greeting list)")
        return {"status": status}

    def _new(self, ctx: ApplyContext, fields: Mapping[str, Any]) -> dict[str, Any]:
        unknown_fields(self, fields, {"mailbox", "source", "audio_path"})
        source = fields.get("source", "upload")
        if source not in GREETING_KINDS:
            raise Invalid(f"greeting source {source!r} is not one of {', '.join(GREETING_KINDS)}",
                          field="source", fix="use upload (a WAV file) or phone (recorded by phone)")
        number = text_field(fields, "mailbox", max_length=32)
        box = None
        if number is not None:
            box = store.get_mailbox(ctx.session, ctx.tenant_id or -1, number)
            if box is None:
                raise Invalid(f"mailbox {number!r} does not exist", field="mailbox",
                              fix="create it first (frontdesk voicemail mailbox add)")
        elif source == "phone":
            raise Invalid("a greeting recorded by phone belongs to a mailbox", field="mailbox",
                          fix="name the mailbox")
        audio = _audio_path(fields.get("audio_path"))
        status = "active"
        if source == "phone":
            status = self._policy_status(ctx)
        return {"mailbox": number, "source": source, "audio_path": audio, "status": status}

    def _policy_status(self, ctx: ApplyContext) -> str:
        """What the tenant's greeting policy makes of a greeting recorded by phone."""
        conf = VoicemailSettingsKind().load(ctx, SETTINGS_KEY)
        policy = conf.greeting_policy if conf is not None else "approval_required"
        if policy == "forbidden":
            raise NotAllowed("personal greetings are not allowed by the tenant's greeting policy",
                             fix="the Phone Manager can allow them "
                                 "(frontdesk voicemail template --policy approval_required)")
        return "pending_approval" if policy == "approval_required" else "active"

    def create(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> Greeting:
        box = (store.get_mailbox(ctx.session, ctx.tenant_id or -1, fields["mailbox"])
               if fields["mailbox"] is not None else None)
        row = Greeting(tenant_id=ctx.tenant_id, mailbox_id=box.id if box else None,
                       kind=fields["source"], status=fields["status"],
                       audio_path=fields["audio_path"], created_by=ctx.actor.name[:128],
                       created_at=ctx.now)
        ctx.session.add(row)
        ctx.session.flush()
        if row.status == "active":
            store.replace_others(ctx.session, row)
        return row

    def update(self, ctx: ApplyContext, row: Greeting, fields: Mapping[str, Any]) -> None:
        status = fields["status"]
        if row.status == "pending_approval" and status in ("active", "rejected"):
            row.decided_by, row.decided_at = ctx.actor.name[:128], ctx.now
        row.status = status
        if status == "active":
            store.replace_others(ctx.session, row)


def _audio_path(value: Any) -> str:
    """A stored recording's path relative to the data directory (prompts/...)."""
    path = PurePosixPath(value) if isinstance(value, str) and value else None
    if (path is None or path.is_absolute() or ".." in path.parts or not path.parts
            or path.parts[0] != "prompts" or path.suffix != ".wav"):
        raise Invalid(f"audio_path {value!r} is not a stored recording", field="audio_path",
                      fix="upload the WAV first; it is stored under prompts/ in the data "
                          "directory")
    return path.as_posix()


for _kind in (VoicemailSettingsKind(), MailboxKind(), GreetingKind()):
    register(_kind)

from frontdesk.media import kinds_menu  # noqa: E402, F401  (self-service menus register too)
