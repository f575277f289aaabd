"""REST API: /api/v1/flows — the shared permission suite for call flows, and what is
particular to them: reading what calls run (or the template), drafts, versions, validation
and publish errors as problem+json naming flow and step, a publish that sends calls to a new
outside number waiting for the Technical Contact, rollback, and the simulator reading the
same data as the engine. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from permsuite import CASES, Api, flow_document, permission_tests

from frontdesk.org.service import Change
from orgkit import audit_count

test_permissions = permission_tests(CASES["flow"])

PROBLEM = "application/problem+json"


def _put(api: Api, who: str, document: dict[str, Any], name: str | None = None) -> Any:
    return api.client.put(f"/api/v1/flows/{name or document['name']}/draft",
                          headers=api.world.headers(who), json=document)


def test_the_main_flow_runs_the_template_until_something_is_published(api: Api) -> None:
    reply = api.client.get("/api/v1/flows/front-desk/published",
                           headers=api.world.headers("office_manager"))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["source"] == "template" and body["version"] is None
    assert body["document"]["name"] == "front-desk"
    other = api.client.get("/api/v1/flows/nothing-here/published",
                           headers=api.world.headers("office_manager"))
    assert other.status_code == 404 and other.headers["content-type"] == PROBLEM
    assert 'flow "nothing-here" has no published version' in other.json()["detail"]


def test_draft_publish_versions_and_rollback(api: Api) -> None:
    ccm = "contact_center_manager"
    headers = api.world.headers(ccm)
    assert _put(api, ccm, flow_document("evening", message="one")).status_code == 200
    draft = api.client.get("/api/v1/flows/evening/draft", headers=headers).json()
    assert draft["state"] == "draft" and draft["document"]["messages"] == {"bye": "one"}
    first = api.client.post("/api/v1/flows/evening/publish", headers=headers, json={})
    assert first.status_code == 200, first.text
    assert first.json()["published_version"] == 1 and first.json()["published_by"] == ccm
    assert first.json()["draft_version"] is None and first.json()["published_at"]
    _put(api, ccm, flow_document("evening", message="two"))
    api.client.post("/api/v1/flows/evening/publish", headers=headers, json={})
    listed = {f["name"]: f for f in api.client.get("/api/v1/flows", headers=headers).json()}
    assert listed["evening"]["published_version"] == 2
    back = api.client.post("/api/v1/flows/evening/rollback", headers=headers,
                           json={"to_version": 1, "reason": "two was wrong"})
    assert back.status_code == 200, back.text
    assert back.json()["published_version"] == 3
    assert back.json()["published_note"] == "rollback to version 1"
    history = api.client.get("/api/v1/flows/evening/versions", headers=headers).json()
    assert [(v["version"], v["state"]) for v in history] == [
        (3, "published"), (2, "archived"), (1, "archived")]
    one = api.client.get("/api/v1/flows/evening/versions/1", headers=headers).json()
    assert one["document"]["messages"] == {"bye": "one"} and one["published_by"] == ccm
    current = api.client.get("/api/v1/flows/evening/published", headers=headers).json()
    assert current["source"] == "published" and current["document"]["messages"] == {"bye": "one"}
    audit = api.client.get("/api/v1/audit?resource_type=flow&resource_key=evening",
                           headers=headers).json()
    assert [(e["action"], e["actor"]) for e in audit] == [
        ("draft", ccm), ("publish", ccm), ("draft", ccm), ("publish", ccm), ("rollback", ccm)]
    missing = api.client.post("/api/v1/flows/evening/rollback", headers=headers,
                              json={"to_version": 99})
    assert missing.status_code == 409 and missing.json()["errors"][0]["field"] == "to_version"


def test_a_document_that_does_not_fit_is_refused_naming_flow_and_step(api: Api) -> None:
    bad = flow_document("late")
    bad["nodes"]["ring"] = {"type": "ring", "targets": ["101"], "timeout": 900}
    before = audit_count(api.world.db)
    reply = _put(api, "phone_manager", bad)
    assert reply.status_code == 422 and reply.headers["content-type"] == PROBLEM
    problem = reply.json()
    assert problem["title"] == "Invalid flow"
    assert 'flow "late" node "ring": "timeout" must be at most 600' in problem["detail"]
    assert problem["errors"][0]["field"] == "nodes.ring" and problem["fix"]
    mismatch = _put(api, "phone_manager", flow_document("late"), name="early")
    assert mismatch.status_code == 422 and mismatch.json()["errors"][0]["field"] == "name"
    assert 'the document is flow "late", not "early"' in mismatch.json()["detail"]
    assert audit_count(api.world.db) == before


def test_validate_and_publish_report_every_problem_with_its_step(api: Api) -> None:
    broken = flow_document("weekend")
    broken["nodes"]["start"]["next"] = "ring"
    broken["nodes"]["ring"] = {"type": "ring", "targets": ["group:ghosts"], "no_answer": "end"}
    headers = api.world.headers("phone_manager")
    checked = api.client.post("/api/v1/flows/weekend/validate", headers=headers, json=broken)
    assert checked.status_code == 200, checked.text
    assert checked.json()["valid"] is False
    assert {"node": "ring", "message": 'flow "weekend" node "ring": target group "ghosts" '
            "does not exist"} in checked.json()["problems"]
    good = api.client.post("/api/v1/flows/weekend/validate", headers=headers,
                           json=flow_document("weekend"))
    assert good.json() == {"flow": "weekend", "valid": True, "problems": []}
    assert _put(api, "phone_manager", broken).status_code == 200  # drafts may be unfinished
    before = audit_count(api.world.db)
    refused = api.client.post("/api/v1/flows/weekend/publish", headers=headers, json={})
    assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM
    assert refused.json()["errors"][0]["field"] == "nodes.ring"
    assert audit_count(api.world.db) == before
    nothing = api.client.post("/api/v1/flows/weekend/validate", headers=headers)
    assert nothing.status_code == 200 and nothing.json()["valid"] is False


def test_a_transfer_to_a_new_outside_number_is_published_after_the_technical_contact_approves(
        api: Api) -> None:
    ccm, tc = api.world.headers("contact_center_manager"), api.world.headers("technical_contact")
    _put(api, "contact_center_manager", flow_document("overflow", transfer="+15559870000"))
    asked = api.client.post("/api/v1/flows/overflow/publish", headers=ccm,
                            json={"reason": "overflow to the answering service"})
    assert asked.status_code == 202, asked.text
    request = asked.json()
    assert request["domains"] == ["infrastructure"] and request["action"] == "publish"
    assert api.client.get("/api/v1/flows/overflow/published", headers=ccm).status_code == 404
    approved = api.client.post(f"/api/v1/change-requests/{request['id']}/approve", headers=tc,
                               json={"comment": "answering service is on trunk 1"})
    assert approved.status_code == 200 and approved.json()["status"] == "applied"
    live = api.client.get("/api/v1/flows/overflow/published", headers=ccm).json()
    assert live["version"] == 1 and live["published_by"] == "contact_center_manager"
    assert live["document"]["nodes"]["end"] == {"type": "transfer", "number": "+15559870000"}


def test_simulate_walks_the_published_flow_node_by_node(api: Api) -> None:
    api.world.setup(Change("extension", "create", "101", {"display_name": "Front desk",
                                                          "user": "office_manager"}))
    document = flow_document("front-desk")
    document["nodes"]["start"]["next"] = "ring"
    document["nodes"]["ring"] = {"type": "ring", "targets": ["role:office_manager"],
                                 "timeout": 15, "no_answer": "end"}
    _put(api, "administrator", document)
    headers = api.world.headers("administrator")
    assert api.client.post("/api/v1/flows/front-desk/publish", headers=headers,
                           json={}).status_code == 200
    reply = api.client.post("/api/v1/flows/simulate", headers=api.world.headers("office_manager"),
                            json={"from": "+12125550147", "to": "main",
                                  "at": "2026-12-22T10:30:00", "no_answer": ["office_manager"]})
    assert reply.status_code == 200, reply.text
    sim = reply.json()
    assert [e["node"] for e in sim["path"] if e["type"] != "outcome"] == ["start", "ring", "end"]
    assert sim["result"]["action"] == "hangup" and "version 1" in sim["runs"]
    assert any("101" in line and "15 s" in line for line in sim["lines"]), sim["lines"]
    wrong = api.client.post("/api/v1/flows/simulate", headers=headers,
                            json={"from": "+12125550147", "to": "999"})
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "to"
    nobody = api.client.post("/api/v1/flows/simulate", headers=headers,
                             json={"from": "+12125550147", "no_answer": ["janitor"]})
    assert nobody.status_code == 422 and "janitor" in nobody.json()["detail"]
