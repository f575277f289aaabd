"""Schema constraints, on SQLite and PostgreSQL: uniqueness per tenant, foreign keys,
checks, cascades, and the column types (aware UTC datetimes, mutable JSON settings)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from frontdesk.store.db import Database
from frontdesk.store.models import Cdr, Extension, Registration, SipCredential, Tenant, User


def _tenant(session: Session, slug: str, *, default: bool = False) -> Tenant:
    tenant = Tenant(slug=slug, name=slug.title(), sip_domain=f"{slug}.example", default=default)
    session.add(tenant)
    session.flush()
    return tenant


def _registration(tenant_id: int, contact: str = "sip:101@10.0.0.5:5060") -> Registration:
    return Registration(
        tenant_id=tenant_id,
        aor="101",
        contact_uri=contact,
        transport="udp",
        source_host="10.0.0.5",
        source_port=5060,
        expires_at=2_000_000_000.0,
        call_id="c1",
        cseq=1,
        updated_at=1_900_000_000.0,
    )


def _refused(db: Database, *rows: object) -> bool:
    """True if adding ``rows`` after one fresh tenant violates a constraint."""
    try:
        with db.session() as session:
            tenant = session.scalar(select(Tenant).where(Tenant.slug == "acme"))
            assert tenant is not None
            for row in rows:
                session.add(row)
                session.flush()
    except IntegrityError:
        return True
    return False


@pytest.fixture
def acme(db: Database) -> int:
    with db.session() as session:
        return _tenant(session, "acme").id


def test_tenant_slug_and_domain_are_unique(db: Database, acme: int) -> None:
    assert _refused(db, Tenant(slug="acme", name="x", sip_domain="other.example"))
    assert _refused(db, Tenant(slug="other", name="x", sip_domain="acme.example"))
    assert not _refused(db, Tenant(slug="other", name="x", sip_domain="other.example"))


def test_only_one_default_tenant(db: Database, acme: int) -> None:
    with db.session() as session:
        _tenant(session, "main", default=True)
        _tenant(session, "spare", default=False)  # many non-default tenants are fine
    assert _refused(db, Tenant(slug="x", name="x", sip_domain="x.example", default=True))


def test_extension_numbers_are_unique_per_tenant_only(db: Database, acme: int) -> None:
    with db.session() as session:
        beta = _tenant(session, "beta")
        session.add(Extension(tenant_id=acme, number="101", display_name="A"))
        session.add(Extension(tenant_id=beta.id, number="101", display_name="B"))
    assert _refused(db, Extension(tenant_id=acme, number="101", display_name="again"))


def test_usernames_and_auth_usernames_are_unique_per_tenant(db: Database, acme: int) -> None:
    with db.session() as session:
        session.add(User(tenant_id=acme, username="ann", display_name="Ann"))
        ext = Extension(tenant_id=acme, number="101", display_name="Ann")
        session.add(ext)
        session.flush()
        ext_id = ext.id
        session.add(
            SipCredential(
                tenant_id=acme,
                extension_id=ext_id,
                auth_username="101",
                realm="acme.example",
                ha1_md5="0" * 32,
                ha1_sha256="0" * 64,
            )
        )
    assert _refused(db, User(tenant_id=acme, username="ann", display_name="Other"))
    dup = SipCredential(
        tenant_id=acme,
        extension_id=ext_id,
        auth_username="101",
        realm="r",
        ha1_md5="1" * 32,
        ha1_sha256="1" * 64,
    )
    assert _refused(db, dup)


def test_registration_binding_is_unique(db: Database, acme: int) -> None:
    with db.session() as session:
        session.add(_registration(acme))
        session.add(_registration(acme, "sip:101@10.0.0.6:5060"))  # second device
    assert _refused(db, _registration(acme))


def test_foreign_keys_are_enforced(db: Database, acme: int) -> None:
    assert _refused(db, Extension(tenant_id=acme + 999, number="1", display_name="x"))
    assert _refused(db, _registration(acme + 999))


def test_checks_refuse_unknown_disposition_and_bad_extension_values(
    db: Database, acme: int
) -> None:
    started = datetime(2026, 1, 1, tzinfo=UTC)

    def cdr(disposition: str | None) -> Cdr:
        return Cdr(
            id=f"cdr-{disposition}",
            tenant_id=acme,
            call_id="x",
            caller="101",
            callee="102",
            started_at=started,
            disposition=disposition,
        )

    assert _refused(db, cdr("exploded"))
    assert not _refused(db, cdr("no-answer"))
    assert not _refused(db, cdr(None))  # in progress
    assert _refused(db, Extension(tenant_id=acme, number="1", display_name="x", max_contacts=0))
    assert _refused(db, Extension(tenant_id=acme, number="2", display_name="x", ring_timeout=0))


def test_deleting_a_tenant_removes_its_rows(db: Database, acme: int) -> None:
    with db.session() as session:
        session.add(Extension(tenant_id=acme, number="101", display_name="A"))
        session.add(_registration(acme))
    with db.session() as session:
        session.delete(session.get(Tenant, acme))
    with db.session() as session:
        assert session.scalars(select(Extension)).all() == []
        assert session.scalars(select(Registration)).all() == []


def test_deleting_a_user_keeps_the_extension(db: Database, acme: int) -> None:
    with db.session() as session:
        user = User(tenant_id=acme, username="ann", display_name="Ann")
        session.add(user)
        session.flush()
        session.add(Extension(tenant_id=acme, number="101", display_name="A", user_id=user.id))
    with db.session() as session:
        session.delete(session.scalar(select(User)))
    with db.session() as session:
        ext = session.scalar(select(Extension))
        assert ext is not None and ext.user_id is None


def test_datetimes_come_back_as_aware_utc(db: Database, acme: int) -> None:
    local = timezone(timedelta(hours=-5))
    started = datetime(2026, 3, 1, 9, 30, 15, 250000, tzinfo=local)
    with db.session() as session:
        session.add(
            Cdr(id="c", tenant_id=acme, call_id="x", caller="1", callee="2", started_at=started)
        )
    with db.session() as session:
        cdr = session.get(Cdr, "c")
        tenant = session.get(Tenant, acme)
    assert cdr is not None and tenant is not None
    assert cdr.started_at == started
    assert cdr.started_at.utcoffset() == timedelta(0)
    assert cdr.started_at.hour == 14
    assert tenant.created_at.tzinfo is not None
    assert cdr.duration == 0.0 and cdr.path is None


def test_tenant_settings_changes_in_place_are_saved(db: Database, acme: int) -> None:
    with db.session() as session:
        tenant = session.get(Tenant, acme)
        assert tenant is not None
        assert tenant.setting("ring_timeout") == 30
        assert tenant.setting("allow_unauthenticated_loopback") is False
        tenant.settings["ring_timeout"] = 45
    with db.session() as session:
        tenant = session.get(Tenant, acme)
        assert tenant is not None and tenant.setting("ring_timeout") == 45
