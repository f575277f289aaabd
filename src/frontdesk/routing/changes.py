"""What changed between two flow documents, in lines an approver reads.

A flow change request keeps the whole documents (what gets applied, and what the request is
checked against before it is applied), but a person deciding on it wants to see the steps
that were added, removed or changed: ``step "ring-om": timeout 20 -> 15``,
``step "after-hours-menu" added (menu)``, ``message "closed": "We are closed." -> "..."``.
``document_changes`` gives those lines; ``routing.kind`` attaches them to the request's diff.

What it must never do: validate, resolve people or touch the database — it compares two
JSON documents as they are (either may be None: no flow yet, or the draft was published).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

#: Longest rendering of one value before it is cut (``...``).
MAX_VALUE = 60
#: Top-level sections compared entry by entry, and what one entry is called.
SECTIONS = {"nodes": "step", "messages": "message", "schedules": "schedule"}


def _show(value: Any) -> str:
    """A value short enough for one line: text quoted, lists and mappings as compact JSON."""
    if value is None:
        return "(none)"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, bool | int | float):
        text = json.dumps(value)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), sort_keys=False)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "..."


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _entry_changes(what: str, key: str, old: Any, new: Any) -> list[str]:
    """One section entry (a step, a message, a schedule) compared field by field."""
    name = f'{what} "{key}"'
    if old is None:
        kind = _mapping(new).get("type")
        return [f"{name} added" + (f" ({kind})" if kind else f": {_show(new)}")]
    if new is None:
        kind = _mapping(old).get("type")
        return [f"{name} removed" + (f" ({kind})" if kind else f" (was {_show(old)})")]
    if old == new:
        return []
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return [f"{name}: {_show(old)} -> {_show(new)}"]
    lines = []
    for field in [*old, *(f for f in new if f not in old)]:
        before, after = old.get(field), new.get(field)
        if before != after:
            lines.append(f"{name}: {field} {_show(before)} -> {_show(after)}")
    return lines


def document_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
    """Readable lines for every difference from ``old`` to ``new`` ([] when equal).

    Steps, messages and schedules are named one by one (added / removed / field old -> new,
    in the order of the documents); other settings (name, timezone, title) as
    ``setting: old -> new``."""
    before, after = _mapping(old), _mapping(new)
    lines: list[str] = []
    for field in [*before, *(f for f in after if f not in before)]:
        if field in SECTIONS:
            continue
        if before.get(field) != after.get(field):
            lines.append(f"{field}: {_show(before.get(field))} -> {_show(after.get(field))}")
    for section, what in SECTIONS.items():
        old_entries, new_entries = _mapping(before.get(section)), _mapping(after.get(section))
        for key in [*old_entries, *(k for k in new_entries if k not in old_entries)]:
            lines.extend(_entry_changes(what, key, old_entries.get(key), new_entries.get(key)))
    return lines
