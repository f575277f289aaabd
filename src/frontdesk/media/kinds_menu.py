"""Self-service menus (IVR) as a resource kind of the one change path (``org.service``).

A ``menu`` (key: the number callers dial) is a prompt, keypad choices each leading to a
branch (``extension:101``, ``voicemail:102``, ``menu:501``, ``hangup``), the seconds to
wait for a key, how often to retry, what to say after a wrong key, and where a caller who
chooses nothing goes. Menus are business-domain configuration ("self-service menus"): the
Phone Manager or contact-center manager changes them at once; anyone else needs the
``menu.*`` permission, and every change is versioned and audited.

Validation is ``media.ivr.MenuSpec``'s, so the change path refuses exactly what the server
could not run, with the error naming the field. Like every kind, this module must never
check permissions, write audit rows or versions, or commit — the service does that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from frontdesk.media.ivr import MenuError, MenuSpec, parse_branch
from frontdesk.media.model import Menu
from frontdesk.org.errors import Invalid
from frontdesk.org.resources import (
    ApplyContext,
    ResourceKind,
    register,
    text_field,
    unknown_fields,
)

MENU_NUMBER_RE = re.compile(r"^[A-Za-z0-9*#+_-]{1,32}$")
DEFAULT_INVALID_PROMPT = "Sorry, that is not a valid choice."
#: Snapshot field -> model column, where they differ.
_COLUMNS = {"timeout": "timeout_seconds"}


class MenuKind(ResourceKind):
    name = "menu"
    title = "menu"
    read_only_fields = frozenset({"number"})
    _FIELDS = frozenset({"name", "prompt", "choices", "timeout", "retries", "invalid_prompt",
                         "default_branch"})

    def load(self, ctx: ApplyContext, key: str) -> Menu | None:
        return ctx.session.scalar(select(Menu).where(Menu.tenant_id == ctx.tenant_id,
                                                     Menu.number == key))

    def key_of(self, row: Menu) -> str:
        return row.number

    def snapshot(self, ctx: ApplyContext, row: Menu) -> dict[str, Any]:
        return menu_snapshot(row)

    def create_key(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> str:
        if key is None or not MENU_NUMBER_RE.match(key):
            raise Invalid(f"menu number {key!r} is not valid", field="number",
                          fix="use what callers dial: digits, * # + _ -, at most 32")
        return key

    def normalise(self, ctx: ApplyContext, action: str, key: str | None,
                  fields: Mapping[str, Any], row: Any | None) -> dict[str, Any]:
        unknown_fields(self, fields, set(self._FIELDS))
        if action == "delete":
            return {}
        creating = action == "create"
        out: dict[str, Any] = {}
        for name, limit in (("name", 255), ("prompt", 2000), ("invalid_prompt", 2000)):
            if creating or name in fields:
                required = name != "invalid_prompt"
                value = text_field(fields, name, required=required, max_length=limit)
                out[name] = value if value is not None else DEFAULT_INVALID_PROMPT
        if creating or "choices" in fields:
            out["choices"] = _choices(fields.get("choices"))
        if "timeout" in fields or creating:
            out["timeout"] = _timeout(fields.get("timeout", 5.0))
        if "retries" in fields or creating:
            out["retries"] = _retries(fields.get("retries", 2))
        if "default_branch" in fields:
            out["default_branch"] = _branch(fields["default_branch"], "default_branch")
        _check_runs(key or "", out, row)
        return out

    def create(self, ctx: ApplyContext, key: str | None, fields: Mapping[str, Any]) -> Menu:
        row = Menu(tenant_id=ctx.tenant_id, number=key)
        self.update(ctx, row, fields)
        ctx.session.add(row)
        return row

    def update(self, ctx: ApplyContext, row: Menu, fields: Mapping[str, Any]) -> None:
        for name, value in fields.items():
            setattr(row, _COLUMNS.get(name, name), dict(value) if isinstance(value, dict)
                    else value)


def menu_snapshot(row: Menu) -> dict[str, Any]:
    """A menu as the change path, the API and ``frontdesk menu list --json`` show it."""
    return {"number": row.number, "name": row.name, "prompt": row.prompt,
            "choices": dict(sorted((row.choices or {}).items())),
            "timeout": float(row.timeout_seconds), "retries": row.retries,
            "invalid_prompt": row.invalid_prompt, "default_branch": row.default_branch}


def _choices(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        raise Invalid("choices must be an object of KEYS: BRANCH with at least one choice",
                      field="choices", fix='send e.g. {"1": "extension:101", "2": "voicemail:102"}')
    out: dict[str, str] = {}
    for keys, branch in value.items():
        if not isinstance(keys, str) or not 1 <= len(keys) <= 8 or \
                any(k not in "0123456789*#" for k in keys):
            raise Invalid(f"menu choice {keys!r} must be keypad keys (0-9, *, #)",
                          field="choices", fix="use keys like 1, 2 or 21, at most 8 of them")
        out[keys] = _branch(branch, "choices") or ""
    return dict(sorted(out.items()))


def _branch(value: Any, field: str) -> str | None:
    if value is None and field == "default_branch":
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise Invalid(f"menu branch {value!r} must be text of at most 64 characters",
                      field=field, fix="use extension:NUMBER, voicemail:MAILBOX, menu:NUMBER "
                                       "or hangup")
    try:
        parse_branch(value)
    except MenuError as exc:
        raise Invalid(str(exc), field=field,
                      fix="use extension:NUMBER, voicemail:MAILBOX, menu:NUMBER or hangup") \
            from exc
    return value


def _timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not 1.0 <= float(value) <= 60.0:
        raise Invalid(f"timeout must be 1 to 60 seconds, not {value!r}", field="timeout",
                      fix="give the seconds to wait for a key, e.g. 5")
    return float(value)


def _retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 9:
        raise Invalid(f"retries must be a whole number from 0 to 9, not {value!r}",
                      field="retries", fix="give how often the prompt is repeated, e.g. 2")
    return value


def _check_runs(number: str, out: Mapping[str, Any], row: Menu | None) -> None:
    """The resulting menu must be one the server can run (``MenuSpec`` agrees)."""
    current = menu_snapshot(row) if row is not None else {}
    merged = {**current, **out}
    try:
        MenuSpec(merged.get("name") or number, merged.get("prompt") or "",
                 merged.get("choices") or {}, merged.get("timeout", 5.0),
                 merged.get("retries", 2), merged.get("invalid_prompt") or DEFAULT_INVALID_PROMPT,
                 default_branch=merged.get("default_branch"))
    except MenuError as exc:
        raise Invalid(str(exc), field="choices", fix="check the menu's choices and timeout") \
            from exc


register(MenuKind())
