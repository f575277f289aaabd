"""REST API end to end: password login and tokens, one's own password, a cross-domain
change approved by the Technical Contact, versions and rollback, audit and coverage, CDRs
kept to their tenant. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from permsuite import Api

from frontdesk.org.service import Change
from frontdesk.store.models import Cdr
from orgkit import PASSWORD, audit_count, make_world


def _login(api: Api, username: str, password: str = PASSWORD) -> object:
    return api.client.post("/api/v1/login", json={"tenant": "acme", "username": username,
                                                  "password": password})


def test_password_login_gives_a_working_session_token(api: Api) -> None:
    api.world.setup(Change("user", "update", "phone_manager", {"password": PASSWORD}))
    response = _login(api, "phone_manager")
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    token = response.json()["token"]  # type: ignore[attr-defined]
    me = api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["username"] == "phone_manager" and me["owned_domains"] == ["business"]
    assert me["roles"] == [{"role": "phone_manager", "site": None}]
    for wrong in (("phone_manager", "not the password"), ("nobody", PASSWORD)):
        failed = _login(api, *wrong)
        assert failed.status_code == 401  # type: ignore[attr-defined]
        assert failed.json()["detail"] == "tenant, username or password is wrong"  # type: ignore[attr-defined]


def test_own_tokens_are_made_listed_and_revoked(api: Api) -> None:
    headers = api.world.headers("technician")
    before = audit_count(api.world.db)
    made = api.client.post("/api/v1/tokens", headers=headers, json={"name": "script"})
    assert made.status_code == 201, made.text
    assert audit_count(api.world.db) == before + 1
    token, token_id = made.json()["token"], made.json()["id"]
    mine = {"Authorization": f"Bearer {token}"}
    assert [t["name"] for t in api.client.get("/api/v1/tokens", headers=mine).json()] == [
        "test", "script"]
    other = api.client.delete(f"/api/v1/tokens/{token_id}", headers=api.world.headers("agent"))
    assert other.status_code == 404
    assert api.client.delete(f"/api/v1/tokens/{token_id}", headers=mine).status_code == 204
    assert api.client.get("/api/v1/me", headers=mine).status_code == 401


def test_anyone_sets_their_own_password_but_not_others(api: Api) -> None:
    agent = api.world.headers("agent")
    mine = api.client.put("/api/v1/users/agent/password", headers=agent,
                          json={"password": "a new passphrase"})
    assert mine.status_code == 204, mine.text
    assert _login(api, "agent", "a new passphrase").status_code == 200  # type: ignore[attr-defined]
    theirs = api.client.put("/api/v1/users/marketing/password", headers=agent,
                            json={"password": "a new passphrase"})
    assert theirs.status_code == 403


def test_cross_domain_change_is_applied_only_after_the_technical_contact_approves(
        api: Api) -> None:
    """The contact-center manager gives a group international calls (toll-fraud exposure,
    infrastructure): a change request, until the Technical Contact approves it."""
    ccm, tc = api.world.headers("contact_center_manager"), api.world.headers("technical_contact")
    assert api.client.post("/api/v1/groups", headers=ccm, json={
        "name": "export-desk", "display_name": "Export desk"}).status_code == 201
    asked = api.client.patch("/api/v1/groups/export-desk", headers=ccm, json={
        "features": ["voicemail", "international_calls"], "reason": "customers abroad"})
    assert asked.status_code == 202, asked.text
    request = asked.json()
    assert request["domains"] == ["infrastructure"] and request["reason"] == "customers abroad"
    assert request["diff"] == [{"field": "features", "before": [],
                                "after": ["international_calls", "voicemail"]}]
    group = api.client.get("/api/v1/groups/export-desk", headers=ccm).json()
    assert group["features"] == []
    denied = api.client.post(f"/api/v1/change-requests/{request['id']}/approve",
                             headers=api.world.headers("phone_manager"), json={})
    assert denied.status_code == 403 and "Technical Contact" in denied.json()["detail"]
    approved = api.client.post(f"/api/v1/change-requests/{request['id']}/approve",
                               headers=tc, json={"comment": "country list restricted"})
    assert approved.status_code == 200 and approved.json()["status"] == "applied"
    group = api.client.get("/api/v1/groups/export-desk", headers=ccm).json()
    assert group["features"] == ["international_calls", "voicemail"]
    entries = api.client.get("/api/v1/audit?resource_type=group&resource_key=export-desk",
                             headers=tc).json()
    assert [(e["actor"], e["action"], e["channel"]) for e in entries] == [
        ("contact_center_manager", "create", "api"), ("technical_contact", "update", "api")]
    assert entries[-1]["change_request_id"] == request["id"]


def test_versions_and_rollback(api: Api) -> None:
    admin = api.world.headers("administrator")
    api.client.post("/api/v1/extensions", headers=admin,
                    json={"number": "301", "display_name": "Lab"})
    api.client.patch("/api/v1/extensions/301", headers=admin, json={"display_name": "Lab 2"})
    history = api.client.get("/api/v1/versions?resource_type=extension&key=301",
                             headers=admin).json()
    assert [(v["version"], v["snapshot"]["display_name"]) for v in history] == [
        (1, "Lab"), (2, "Lab 2")]
    back = api.client.post("/api/v1/versions/rollback", headers=admin, json={
        "resource_type": "extension", "key": "301", "version": 1, "reason": "typo"})
    assert back.status_code == 200, back.text
    assert back.json()["version"] == 3 and back.json()["resource"]["display_name"] == "Lab"


def test_audit_chain_verifies_over_the_api(api: Api) -> None:
    report = api.client.get("/api/v1/audit/verify", headers=api.world.headers("technical_contact"))
    assert report.status_code == 200 and report.json()["ok"] is True
    assert report.json()["checked"] == audit_count(api.world.db, api.world.tenant_id)


def test_coverage_over_the_api(api: Api) -> None:
    report = api.client.get("/api/v1/coverage", headers=api.world.headers("decision_maker"))
    assert report.status_code == 200
    assert report.json()["status"] in ("ok", "failing")
    assert "owner-roles" in report.json()["checks"]


def test_cdrs_stay_in_their_tenant(api: Api) -> None:
    other = make_world(api.world.db, "other", roles=False)
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    with api.world.db.session() as session:
        for cdr_id, tenant_id in ((mine, api.world.tenant_id), (theirs, other.tenant_id)):
            session.add(Cdr(id=cdr_id, tenant_id=tenant_id, call_id=cdr_id, caller="101",
                            callee="102", started_at=datetime(2030, 1, 2, 3, 4, tzinfo=UTC),
                            disposition="answered"))
    headers = api.world.headers("office_manager")
    ids = [c["id"] for c in api.client.get("/api/v1/cdrs", headers=headers).json()]
    assert mine in ids and theirs not in ids
    assert api.client.get(f"/api/v1/cdrs/{theirs}", headers=headers).status_code == 404
    one = api.client.get(f"/api/v1/cdrs/{mine}", headers=headers).json()
    assert one["started_at"] == "2030-01-02T03:04:00.000000+00:00"
    since = api.client.get("/api/v1/cdrs?since=2030-01-03T00:00:00Z", headers=headers).json()
    assert mine not in [c["id"] for c in since]
