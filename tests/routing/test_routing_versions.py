"""Flow versions on SQLite and PostgreSQL: drafts, publishing (who and when), immutability of
published versions, rollback, and what calls run (published flow or the template)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from routing_support import acme_directory
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from frontdesk.routing import versions
from frontdesk.routing.model import FlowVersion, ImmutableVersionError
from frontdesk.routing.templates import front_desk
from frontdesk.routing.validate import FlowInvalid, parse_flow
from frontdesk.store import repo
from frontdesk.store.db import Database

T1 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
T2 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
T3 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
DIRECTORY = acme_directory()


def _tenant(db: Database, slug: str = "acme") -> int:
    with db.session() as s:
        return repo.create_tenant(s, slug, slug.title(), f"{slug}.example").id


def _variant(timeout: int):  # type: ignore[no-untyped-def]
    data = front_desk().to_json()
    data["nodes"]["ring-office-manager"]["timeout"] = timeout
    return parse_flow(data)


def test_draft_publish_records_who_and_when(db: Database) -> None:
    tenant = _tenant(db)
    with db.session() as s:
        draft = versions.save_draft(s, tenant, front_desk(), actor="dana", now=T1)
        assert (draft.version, draft.state, draft.created_by) == (1, "draft", "dana")
        again = versions.save_draft(s, tenant, _variant(25), actor="erin", now=T1)
        assert again.id == draft.id and again.created_by == "erin"  # one draft, edited
        published = versions.publish(s, tenant, "front-desk", actor="dana", directory=DIRECTORY,
                                     now=T2)  # fmt: skip
    with db.session() as s:
        row = versions.published_version(s, tenant, "front-desk")
        assert row is not None and row.id == published.id
        assert (row.state, row.published_by, row.published_at) == ("published", "dana", T2)
        loaded = versions.load_flow(s, tenant)
        assert loaded.source == "published" and loaded.version == 1
        assert loaded.document.nodes["ring-office-manager"].timeout == 25  # type: ignore[union-attr]
        assert "version 1, published by dana at 2026-12-02 09:00 UTC" in loaded.label
        assert versions.draft_version(s, tenant, "front-desk") is None


def test_publishing_archives_the_previous_version(db: Database) -> None:
    tenant = _tenant(db)
    with db.session() as s:
        versions.save_draft(s, tenant, front_desk(), actor="dana", now=T1)
        versions.publish(s, tenant, "front-desk", actor="dana", directory=DIRECTORY, now=T1)
        versions.save_draft(s, tenant, _variant(30), actor="erin", now=T2)
        second = versions.publish(s, tenant, "front-desk", actor="erin", directory=DIRECTORY,
                                  now=T2)  # fmt: skip
        assert second.version == 2
    with db.session() as s:
        states = [
            (v.version, v.state, v.published_by)
            for v in versions.list_versions(s, tenant, "front-desk")
        ]
        assert states == [(2, "published", "erin"), (1, "archived", "dana")]


def test_published_versions_never_change(db: Database) -> None:
    tenant = _tenant(db)
    with db.session() as s:
        versions.save_draft(s, tenant, front_desk(), actor="dana", now=T1)
        versions.publish(s, tenant, "front-desk", actor="dana", directory=DIRECTORY, now=T1)
    for change in ({"document": _variant(40).to_json()}, {"published_by": "mallory"},
                   {"state": "draft"}):  # fmt: skip
        with (
            pytest.raises(ImmutableVersionError, match="published versions never change"),
            db.session() as s,
        ):
            row = versions.published_version(s, tenant, "front-desk")
            assert row is not None
            for name, value in change.items():
                setattr(row, name, value)
            s.flush()
    with db.session() as s:
        row = versions.published_version(s, tenant, "front-desk")
        assert row is not None and row.published_by == "dana"
        assert row.document == front_desk().to_json()


def test_archived_versions_never_change(db: Database) -> None:
    tenant = _tenant(db)
    with db.session() as s:
        for when in (T1, T2):
            versions.save_draft(s, tenant, front_desk(), actor="dana", now=when)
            versions.publish(s, tenant, "front-desk", actor="dana", directory=DIRECTORY, now=when)
    with pytest.raises(ImmutableVersionError, match="version 1 is archived"), db.session() as s:
        old = versions.get_version(s, tenant, "front-desk", 1)
        assert old is not None
        old.state = "published"
        s.flush()


def test_the_database_allows_one_published_version_per_flow(db: Database) -> None:
    tenant = _tenant(db)
    with db.session() as s:
        for when in (T1, T2):
            versions.save_draft(s, tenant, front_desk(), actor="dana", now=when)
            versions.publish(s, tenant, "front-desk", actor="dana", directory=DIRECTORY, now=when)
    with pytest.raises(IntegrityError), db.session() as s:  # bypasses the ORM guard on purpose
        s.execute(update(FlowVersion).where(FlowVersion.version == 1).values(state="published"))


def test_rollback_publishes_the_previous_document_as_a_new_version(db: Database) -> None:
    tenant = _tenant(db)
    with db.session() as s:
        versions.save_draft(s, tenant, front_desk(), actor="dana", now=T1)
        versions.publish(s, tenant, "front-desk", actor="dana", directory=DIRECTORY, now=T1)
        versions.save_draft(s, tenant, _variant(45), actor="erin", now=T2)
        versions.publish(s, tenant, "front-desk", actor="erin", directory=DIRECTORY, now=T2)
        versions.save_draft(s, tenant, _variant(50), actor="erin", now=T2)  # work in progress
        rolled = versions.rollback(s, tenant, "front-desk", actor="frank", directory=DIRECTORY,
                                   now=T3)  # fmt: skip
        assert (rolled.version, rolled.note, rolled.published_by) == (
            4,
            "rollback to version 1",
            "frank",
        )
    with db.session() as s:
        listing = [(v.version, v.state) for v in versions.list_versions(s, tenant, "front-desk")]
        assert listing == [(4, "published"), (3, "draft"), (2, "archived"), (1, "archived")]
        assert versions.load_flow(s, tenant).document == front_desk()
        to_two = versions.rollback(s, tenant, "front-desk", actor="frank", directory=DIRECTORY,
                                   to_version=2, now=T3)  # fmt: skip
        assert to_two.version == 5 and to_two.document == _variant(45).to_json()
        # the default target is the version published before the current one
        back = versions.rollback(s, tenant, "front-desk", actor="frank", directory=DIRECTORY)
        assert back.note == "rollback to version 4" and back.document == front_desk().to_json()


@pytest.mark.parametrize(
    ("setup", "call", "message"),
    [
        ([], "publish", 'flow "front-desk" has no draft to publish; save a draft first'),
        ([], "rollback", 'flow "front-desk" has no published version to roll back'),
        (["publish"], "rollback", "has no earlier published version to roll back to"),
        (["publish"], "rollback-9", "has no published version 9; see `frontdesk flow list`"),
        (["publish"], "rollback-1", "version 1 is already the one calls run"),
        (["draft"], "rollback-1", "has no published version"),
        ([], "discard", 'flow "front-desk" has no draft to discard'),
        ([], "anonymous", "say who is making the change (actor)"),
    ],
)
def test_version_errors_say_what_to_do(
    db: Database, setup: list[str], call: str, message: str
) -> None:
    tenant = _tenant(db)
    with pytest.raises(versions.VersionError, match=re.escape(message)), db.session() as s:
        if setup:
            versions.save_draft(s, tenant, front_desk(), actor="dana")
        if setup == ["publish"]:
            versions.publish(s, tenant, "front-desk", actor="dana", directory=DIRECTORY)
        if call == "publish":
            versions.publish(s, tenant, "front-desk", actor="dana", directory=DIRECTORY)
        elif call.startswith("rollback"):
            number = int(call.split("-")[1]) if "-" in call else None
            versions.rollback(s, tenant, "front-desk", actor="dana", directory=DIRECTORY,
                              to_version=number)  # fmt: skip
        elif call == "discard":
            versions.discard_draft(s, tenant, "front-desk", actor="dana")
        else:
            versions.save_draft(s, tenant, front_desk(), actor="  ")


def test_an_invalid_draft_is_not_published(db: Database) -> None:
    tenant = _tenant(db)
    data = front_desk().to_json()
    data["nodes"]["ring-office-manager"]["targets"] = ["group:service-managers"]
    with db.session() as s:
        versions.save_draft(s, tenant, parse_flow(data), actor="dana")
    with (
        pytest.raises(FlowInvalid, match='target group "service-managers" does not exist'),
        db.session() as s,
    ):
        versions.publish(s, tenant, "front-desk", actor="dana", directory=DIRECTORY)
    with db.session() as s:
        assert versions.published_version(s, tenant, "front-desk") is None
        assert [v.state for v in versions.list_versions(s, tenant, "front-desk")] == ["draft"]
        assert versions.discard_draft(s, tenant, "front-desk", actor="dana") == 1
        assert versions.list_versions(s, tenant, "front-desk") == []


def test_tenants_have_their_own_flows_and_the_template_by_default(db: Database) -> None:
    acme, beta = _tenant(db, "acme"), _tenant(db, "beta")
    with db.session() as s:
        versions.save_draft(s, acme, _variant(35), actor="dana")
        versions.publish(s, acme, "front-desk", actor="dana", directory=DIRECTORY)
    with db.session() as s:
        assert versions.load_flow(s, acme).source == "published"
        fallback = versions.load_flow(s, beta)
        assert fallback.source == "template" and fallback.document == front_desk()
        assert "the built-in template" in fallback.label
        assert versions.list_flows(s, beta) == []
        assert [f.name for f in versions.list_flows(s, acme)] == ["front-desk"]
        with pytest.raises(versions.VersionError, match='flow "sales" has no published version'):
            versions.load_flow(s, acme, "sales")
        rows = s.scalars(select(FlowVersion.tenant_id)).all()
        assert set(rows) == {acme}
