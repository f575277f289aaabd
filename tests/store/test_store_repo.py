"""Query helpers: tenants, users with extensions and HA1s, registrations, CDRs."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from frontdesk.store import repo
from frontdesk.store.db import Database
from frontdesk.store.models import TENANT_SETTING_DEFAULTS, Cdr, Registration, SipCredential, User

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def test_compute_ha1_matches_rfc2617_example() -> None:
    ha1 = repo.compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    assert ha1.md5 == "939e7578ed9e3c518a452acee763bce9"
    expected = hashlib.sha256(b"Mufasa:testrealm@host.com:Circle Of Life").hexdigest()
    assert ha1.sha256 == expected


def test_tenants_are_found_by_slug_domain_and_default(db: Database) -> None:
    with db.session() as s:
        repo.create_tenant(s, "acme", "Acme", "PBX.Acme.Example", default=True)
        repo.create_tenant(s, "beta", "Beta", "beta.example", settings={"ring_timeout": 20})
    with db.session() as s:
        acme = repo.get_tenant_by_slug(s, "acme")
        assert acme is not None and acme.sip_domain == "pbx.acme.example"
        assert repo.get_tenant_by_domain(s, "pbx.ACME.example") == acme
        assert repo.default_tenant(s) == acme
        beta = repo.resolve_tenant(s, "beta.example")
        assert beta is not None and beta.slug == "beta"
        assert beta.settings == {**TENANT_SETTING_DEFAULTS, "ring_timeout": 20}
        assert repo.resolve_tenant(s, "192.0.2.10") == acme
        assert repo.get_tenant_by_domain(s, "nobody.example") is None
        assert [t.slug for t in repo.list_tenants(s)] == ["acme", "beta"]


def test_set_default_tenant_moves_the_flag(db: Database) -> None:
    with db.session() as s:
        repo.create_tenant(s, "acme", "Acme", "acme.example", default=True)
        beta = repo.create_tenant(s, "beta", "Beta", "beta.example")
        repo.set_default_tenant(s, beta)
    with db.session() as s:
        default = repo.default_tenant(s)
        assert default is not None and default.slug == "beta"


def test_second_default_tenant_is_refused(db: Database) -> None:
    with pytest.raises(IntegrityError), db.session() as s:
        repo.create_tenant(s, "acme", "Acme", "acme.example", default=True)
        repo.create_tenant(s, "beta", "Beta", "beta.example", default=True)


def test_unknown_tenant_setting_is_refused_with_the_known_ones(db: Database) -> None:
    with pytest.raises(ValueError, match=r"unknown settings \['ring_timout'\]"), db.session() as s:
        repo.create_tenant(s, "acme", "Acme", "acme.example", settings={"ring_timout": 5})


def test_user_with_extension_stores_ha1s_and_never_the_password(db: Database) -> None:
    password = "correct-horse-battery"
    with db.session() as s:
        tenant = repo.create_tenant(s, "acme", "Acme", "acme.example")
        user, ext, cred = repo.create_user_with_extension(s, tenant, "101", "Ann Lee", password)
        other = repo.create_tenant(s, "beta", "Beta", "beta.example")
        tenant_id, other_id = tenant.id, other.id
    assert (user.username, ext.number, ext.user_id, cred.realm) == (
        "101",
        "101",
        user.id,
        "acme.example",
    )
    with db.session() as s:
        ha1 = repo.credential_ha1(s, tenant_id, "101")
        assert ha1 == repo.compute_ha1("101", "acme.example", password)
        md5, _ = ha1
        assert md5 == hashlib.md5(f"101:acme.example:{password}".encode()).hexdigest()
        assert repo.credential_ha1(s, other_id, "101") is None
        assert repo.credential_ha1(s, tenant_id, "999") is None
        credential = repo.get_credential(s, tenant_id, "101")
        assert credential is not None and credential.extension_id == ext.id
        stored = [*s.scalars(select(User)), *s.scalars(select(SipCredential))]
        for row in stored:
            values = [getattr(row, c.key) for c in row.__table__.columns]
            assert not any(password in str(v) for v in values)


def test_extensions_are_listed_per_tenant_and_ring_timeout_falls_back(db: Database) -> None:
    with db.session() as s:
        acme = repo.create_tenant(s, "acme", "Acme", "acme.example", settings={"ring_timeout": 25})
        beta = repo.create_tenant(s, "beta", "Beta", "beta.example")
        for number in ("102", "101"):
            repo.create_user_with_extension(s, acme, number, f"User {number}", "pw")
        repo.create_user_with_extension(s, beta, "101", "Beta 101", "pw")
        ext = repo.get_extension(s, acme.id, "102")
        assert ext is not None
        ext.ring_timeout = 12
    with db.session() as s:
        found = repo.get_tenant_by_slug(s, "acme")
        assert found is not None
        extensions = repo.list_extensions(s, found)
        assert [e.number for e in extensions] == ["101", "102"]
        assert [repo.ring_timeout(found, e) for e in extensions] == [25, 12]
        assert repo.get_extension(s, found.id, "103") is None


def _binding(tenant_id: int, contact: str, expires_at: float, aor: str = "101") -> Registration:
    return Registration(
        tenant_id=tenant_id,
        aor=aor,
        contact_uri=contact,
        transport="udp",
        source_host="192.0.2.7",
        source_port=5062,
        expires_at=expires_at,
        call_id=f"call-{contact}",
        cseq=1,
        updated_at=expires_at - 3600,
    )


def test_registrations_load_unexpired_and_purge_expired(db: Database) -> None:
    now = 1_800_000_000.0
    with db.session() as s:
        tid = repo.create_tenant(s, "acme", "Acme", "acme.example").id
        s.add_all(
            [
                _binding(tid, "sip:a@h", now + 60),
                _binding(tid, "sip:b@h", now - 1),
                _binding(tid, "sip:c@h", now + 120),
                _binding(tid, "sip:d@h", now + 60, aor="102"),
            ]
        )
    with db.session() as s:
        assert [r.contact_uri for r in repo.load_registrations(s, now)] == [
            "sip:a@h",
            "sip:c@h",
            "sip:d@h",
        ]
        assert [r.contact_uri for r in repo.registrations_for(s, tid, "101", now)] == [
            "sip:c@h",
            "sip:a@h",
        ]
        assert repo.purge_expired_registrations(s, now) == 1
    with db.session() as s:
        assert len(repo.load_registrations(s, 0.0)) == 3


def _cdr(tenant_id: int, n: int, **fields: object) -> Cdr:
    values: dict[str, object] = {
        "id": f"00000000-0000-0000-0000-{n:012d}",
        "tenant_id": tenant_id,
        "call_id": f"call-{n}",
        "caller": "101",
        "callee": "102",
        "started_at": T0 + timedelta(minutes=n),
        "disposition": "answered",
    }
    values.update(fields)
    return Cdr(**values)


def test_list_cdrs_filters_newest_first_and_stays_in_the_tenant(db: Database) -> None:
    with db.session() as s:
        acme = repo.create_tenant(s, "acme", "Acme", "acme.example")
        beta = repo.create_tenant(s, "beta", "Beta", "beta.example")
        s.add_all(
            [
                _cdr(acme.id, 1),
                _cdr(acme.id, 2, disposition="no-answer"),
                _cdr(acme.id, 3, caller="200", callee="300", callee_answered_by="105"),
                _cdr(beta.id, 4),
            ]
        )
    with db.session() as s:
        found = repo.get_tenant_by_slug(s, "acme")
        assert found is not None

        def numbers(**filters: object) -> list[str]:
            return [c.call_id for c in repo.list_cdrs(s, found, **filters)]  # type: ignore[arg-type]

        assert numbers() == ["call-3", "call-2", "call-1"]
        assert numbers(limit=2) == ["call-3", "call-2"]
        assert numbers(disposition="no-answer") == ["call-2"]
        assert numbers(number="105") == ["call-3"]
        assert numbers(number="102") == ["call-2", "call-1"]
        assert numbers(since=T0 + timedelta(minutes=2)) == ["call-3", "call-2"]
        assert numbers(until=T0 + timedelta(minutes=2)) == ["call-1"]
        cdr = repo.get_cdr(s, "00000000-0000-0000-0000-000000000004")
        assert cdr is not None and cdr.tenant_id == beta.id
