"""Call flows as a resource of org/'s one change path: the ``flow`` resource kind.

What it is for: saving a draft, discarding it, publishing it and rolling back go through
``org.service.apply_change`` like every other configuration change — permission check
(``flow.draft``, ``flow.discard``, ``flow.publish``, ``flow.rollback``), a change request
when the change crosses into the infrastructure domain, the write, a version and one
hash-chained audit row. ``FlowChanges`` builds those changes; the CLI and the API use it.

A flow's snapshot is what calls run and what is being edited::

    {"name", "draft", "draft_version", "published", "published_version",
     "published_by", "published_note", "outside_numbers"}

A change's diff keeps the whole documents (what is applied, and what a change request is
checked against before it is applied); ``explain_change`` adds the readable lines (steps
added, removed, changed: ``step "ring-om": timeout 20 -> 15``) that approvers read.

``outside_numbers`` are the outside phone numbers the *published* flow transfers calls to.
Flows are business configuration, but publishing a flow that transfers to an outside number
it did not reach before puts calls on the trunks (toll exposure, capacity): that touches the
infrastructure domain, so a business owner's publish becomes a change request the Technical
Contact approves. Drafts never touch infrastructure (calls do not run them). A number counts
as outside when it looks like a phone number (``+15551234567``, 7-15 digits) — decided from
the document alone, so the classification cannot drift when extensions change.

What it must never do: check permissions, write audit rows or commit (org/ does), or apply
a document that does not pass validation (publish and rollback check against the tenant's
directory; a draft need only be a well-formed document).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from frontdesk.org.errors import Conflict, Invalid, NotFound
from frontdesk.org.resources import ApplyContext, ResourceKind, register, unknown_fields
from frontdesk.org.roles import Domain
from frontdesk.org.service import Change
from frontdesk.routing import versions
from frontdesk.routing.changes import document_changes
from frontdesk.routing.directory import load_directory
from frontdesk.routing.model import NAME_PATTERN, FlowDocument
from frontdesk.routing.validate import FlowInvalid, check_flow, parse_flow

_NAME = re.compile(NAME_PATTERN)
_PHONE = re.compile(r"^\+?[0-9]{7,15}$")
FLOW = "flow"


class FlowRejected(Invalid):
    """A flow document cannot be used; ``problems`` name the flow and node of each."""

    def __init__(self, problems: tuple[str, ...], *, field: str) -> None:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(problems[0] + more if problems else "the flow cannot be used",
                         field=field, fix="correct the flow as each problem says, then try again")
        self.problems = problems


@dataclass(frozen=True, slots=True)
class FlowRef:
    """A flow of a tenant by name — whether or not anything has been saved under it yet
    (saving the first draft is what creates a flow)."""

    tenant_id: int
    name: str


def outside_numbers(document: Mapping[str, Any] | None) -> list[str]:
    """The outside phone numbers a flow document transfers calls to, sorted."""
    if not document:
        return []
    found = set()
    for node in (document.get("nodes") or {}).values():
        if isinstance(node, Mapping) and node.get("type") == "transfer":
            number = str(node.get("number", "")).replace(" ", "")
            if _PHONE.match(number):
                found.add(number)
    return sorted(found)


def _checked(ctx: ApplyContext, document: Mapping[str, Any], field: str) -> FlowDocument:
    """Parse ``document`` and check it against the tenant's directory, or FlowRejected."""
    try:
        parsed = parse_flow(document)
        check_flow(parsed, load_directory(ctx.session, ctx.tenant.id))
    except FlowInvalid as exc:
        raise FlowRejected(exc.problems, field=field) from None
    return parsed


class FlowKind(ResourceKind):
    """The ``flow`` resource kind; see the module docstring."""

    name = FLOW
    title = "flow"
    actions = ("draft", "discard", "publish", "rollback")
    read_only_fields = frozenset(
        {"name", "draft_version", "published_version", "published_by", "outside_numbers"}
    )
    _REQUEST_FIELDS: ClassVar[Mapping[str, set[str]]] = {
        "draft": {"document"}, "discard": set(), "publish": set(), "rollback": {"to_version"},
    }

    # --- reading ---------------------------------------------------------------------
    def load(self, ctx: ApplyContext, key: str) -> FlowRef | None:
        if ctx.tenant_id is None or not _NAME.match(key or ""):
            return None
        return FlowRef(ctx.tenant_id, key)

    def key_of(self, row: FlowRef) -> str:
        return row.name

    def snapshot(self, ctx: ApplyContext, row: FlowRef) -> dict[str, Any]:
        draft = versions.draft_version(ctx.session, row.tenant_id, row.name)
        current = versions.published_version(ctx.session, row.tenant_id, row.name)
        document = current.document if current is not None else None
        return {
            "name": row.name,
            "draft": draft.document if draft is not None else None,
            "draft_version": draft.version if draft is not None else None,
            "published": document,
            "published_version": current.version if current is not None else None,
            "published_by": current.published_by if current is not None else None,
            "published_note": current.note if current is not None else None,
            "outside_numbers": outside_numbers(document),
        }

    # --- validating ------------------------------------------------------------------
    def normalise(self, ctx: ApplyContext, action: str, key: str | None,
                  fields: Mapping[str, Any], row: Any | None) -> dict[str, Any]:
        if not isinstance(row, FlowRef):
            raise Invalid(f"flow name {key!r} is not valid", field="name",
                          fix="use lowercase letters, digits, - and _ (at most 64)")
        unknown_fields(self, fields, self._REQUEST_FIELDS[action])
        if action == "draft":
            return self._draft(ctx, row, fields.get("document"))
        draft = versions.draft_version(ctx.session, row.tenant_id, row.name)
        if action == "discard":
            if draft is None:
                raise Conflict(f'flow "{row.name}" has no draft to discard', fix="nothing to do")
            return {"draft": None, "draft_version": None}
        if action == "publish":
            if draft is None:
                raise NotFound(f'flow "{row.name}" has no draft to publish',
                               fix="save a draft first")
            _checked(ctx, draft.document, "draft")
            return {"draft": None, "draft_version": None, "published": draft.document,
                    "published_version": draft.version, "published_by": ctx.actor.name,
                    "published_note": None, "outside_numbers": outside_numbers(draft.document)}
        return self._rollback(ctx, row, fields.get("to_version"))

    def _draft(self, ctx: ApplyContext, row: FlowRef, document: Any) -> dict[str, Any]:
        if isinstance(document, FlowDocument):
            parsed = document
        else:
            if not isinstance(document, Mapping):
                raise Invalid("a draft needs the flow document", field="document",
                              fix="send the flow as a JSON object with name and nodes")
            try:
                parsed = parse_flow(document)
            except FlowInvalid as exc:
                raise FlowRejected(exc.problems, field="document") from None
        if parsed.name != row.name:
            raise Invalid(f'the document is flow "{parsed.name}", not "{row.name}"',
                          field="name", fix=f'set name: {row.name} in the document, or save '
                                            f'it as flow "{parsed.name}"')
        draft = versions.draft_version(ctx.session, row.tenant_id, row.name)
        flow = versions.get_flow(ctx.session, row.tenant_id, row.name)
        number = draft.version if draft is not None else versions.next_version(ctx.session, flow)
        return {"draft": parsed.to_json(), "draft_version": number}

    def _rollback(self, ctx: ApplyContext, row: FlowRef, to_version: Any) -> dict[str, Any]:
        if to_version is not None and (isinstance(to_version, bool)
                                       or not isinstance(to_version, int)
                                       or not 1 <= to_version < 2**31):
            raise Invalid(f"to_version must be a version number, not {to_version!r}",
                          field="to_version", fix="list the flow's versions and pick one")
        try:
            target = versions.rollback_target(ctx.session, row.tenant_id, row.name, to_version)
        except versions.VersionError as exc:
            raise Conflict(str(exc), field="to_version",
                           fix="list the flow's versions (GET .../versions)") from None
        _checked(ctx, target.document, "to_version")
        flow = versions.get_flow(ctx.session, row.tenant_id, row.name)
        return {"published": target.document,
                "published_version": versions.next_version(ctx.session, flow),
                "published_by": ctx.actor.name,
                "published_note": f"rollback to version {target.version}",
                "outside_numbers": outside_numbers(target.document)}

    # --- classifying -----------------------------------------------------------------
    def field_domain(self, field: str, old: Any, new: Any) -> set[Domain]:
        if field == "outside_numbers" and set(new or []) - set(old or []):
            return {Domain.INFRASTRUCTURE}
        return {Domain.BUSINESS}

    # --- describing ------------------------------------------------------------------
    def explain_change(self, field: str, old: Any, new: Any) -> list[str] | None:
        """The readable lines for a document field of the diff (org.service shows them
        instead of the whole documents, which stay in the diff for applying)."""
        if field not in ("draft", "published"):
            return None
        if new is None:
            return ["no draft any more"] if old is not None else None
        return document_changes(old, new) or ["no step changed"]

    # --- writing ---------------------------------------------------------------------
    def update(self, ctx: ApplyContext, row: FlowRef, fields: Mapping[str, Any]) -> None:
        session, tenant_id = ctx.session, row.tenant_id
        if fields.get("draft") is not None:
            versions.save_draft(session, tenant_id, parse_flow(fields["draft"]),
                                actor=ctx.actor.name, now=ctx.now)
            return
        if "published" not in fields:
            versions.discard_draft(session, tenant_id, row.name, actor=ctx.actor.name)
            return
        flow = versions.get_flow(session, tenant_id, row.name)
        if flow is None:
            raise Conflict(f'flow "{row.name}" no longer exists', fix="save a draft again")
        who = str(fields.get("published_by") or ctx.actor.name)
        if "draft" in fields:  # publish: the draft becomes the published version
            draft = versions.draft_version(session, tenant_id, row.name)
            if draft is None or draft.document != fields["published"]:
                raise Conflict(f'the draft of flow "{row.name}" changed meanwhile',
                               fix="publish it again")
            versions.publish(session, tenant_id, row.name, actor=who,
                             directory=load_directory(session, tenant_id), now=ctx.now)
            return
        versions.publish_document(session, flow, fields["published"], actor=who,
                                  note=fields.get("published_note"), now=ctx.now)


KIND = FlowKind()
register(KIND)


@dataclass(frozen=True, slots=True)
class FlowChanges:
    """The changes the CLI and the API hand to ``org.service.apply_change``."""

    name: str
    reason: str = ""

    def draft(self, document: FlowDocument | Mapping[str, Any]) -> Change:
        data = document.to_json() if isinstance(document, FlowDocument) else dict(document)
        return Change(FLOW, "draft", self.name, {"document": data}, self.reason)

    def discard(self) -> Change:
        return Change(FLOW, "discard", self.name, {}, self.reason)

    def publish(self) -> Change:
        return Change(FLOW, "publish", self.name, {}, self.reason)

    def rollback(self, to_version: int | None = None) -> Change:
        fields = {} if to_version is None else {"to_version": to_version}
        return Change(FLOW, "rollback", self.name, fields, self.reason)
