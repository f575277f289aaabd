"""Errors are application/problem+json (RFC 9457) naming the field and the fix: validation
(422), not signed in (401), not allowed (403), not found (404), conflict (409), unknown
routes and methods; and the OpenAPI document declares them."""

from __future__ import annotations

from typing import Any

import pytest
from permsuite import Api

PROBLEM_KEYS = {"type", "title", "status", "detail", "fix", "errors"}


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) == PROBLEM_KEYS
    assert body["status"] == status and body["type"].startswith("urn:frontdesk:problem:")
    assert body["detail"] and body["fix"]
    return body


def test_validation_names_every_field_and_its_fix(api: Api) -> None:
    response = api.client.patch("/api/v1/extensions/101", headers=api.world.headers(
        "administrator"), json={"ring_timeout": 9000, "ring_tmeout": 5})
    body = _problem(response, 422)
    errors = {e["field"]: e for e in body["errors"]}
    assert set(errors) == {"ring_timeout", "ring_tmeout"}
    assert errors["ring_timeout"]["fix"] == "use a value of at most 600"
    assert "remove this field" in errors["ring_tmeout"]["fix"]


def test_malformed_json_is_a_problem(api: Api) -> None:
    response = api.client.post("/api/v1/users", headers={
        **api.world.headers("administrator"), "content-type": "application/json"},
        content=b"{not json")
    assert "valid JSON" in _problem(response, 422)["fix"]


def test_service_validation_names_the_field(api: Api) -> None:
    response = api.client.post("/api/v1/extensions", headers=api.world.headers("administrator"),
                               json={"number": "555", "display_name": "X", "user": "ghost"})
    body = _problem(response, 422)
    assert body["errors"] == [{"field": "user", "message": body["detail"],
                               "fix": body["fix"]}]
    assert "ghost" in body["detail"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer fdt_nope"},
                                     {"Authorization": "Basic YTpi"}])
def test_not_signed_in(api: Api, headers: dict[str, str]) -> None:
    response = api.client.get("/api/v1/users", headers=headers)
    _problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def test_not_allowed_names_the_permission_and_who_holds_it(api: Api) -> None:
    body = _problem(api.client.post("/api/v1/sites", headers=api.world.headers("agent"),
                                    json={"slug": "x", "name": "X"}), 403)
    assert "site.create" in body["detail"] and "Technical Contact" in body["fix"]


def test_not_found_and_conflict(api: Api) -> None:
    admin = api.world.headers("administrator")
    body = _problem(api.client.get("/api/v1/groups/no-such-group", headers=admin), 404)
    assert "no-such-group" in body["detail"]
    _problem(api.client.get("/api/v1/tenants/other", headers=admin), 404)
    created = api.client.post("/api/v1/groups", headers=admin,
                              json={"name": "dup", "display_name": "Dup"})
    assert created.status_code == 201
    body = _problem(api.client.post("/api/v1/groups", headers=admin,
                                    json={"name": "dup", "display_name": "Dup"}), 409)
    assert "already exists" in body["detail"]


def test_unknown_routes_and_methods(api: Api) -> None:
    _problem(api.client.get("/api/v1/nothing-here"), 404)
    _problem(api.client.put("/api/v1/audit"), 405)


def test_openapi_declares_problem_responses(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    operation = document["paths"]["/api/v1/extensions/{number}"]["patch"]
    for status in ("401", "403", "404", "409", "422"):
        content = operation["responses"][status]["content"]
        assert list(content) == ["application/problem+json"]
    assert "Problem" in document["components"]["schemas"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "bearer" in str(document["components"]["securitySchemes"]).lower()
