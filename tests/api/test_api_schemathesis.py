"""schemathesis against the live OpenAPI document (through ASGI, in-process): for every
operation, generated requests never get a 5xx, and every answer matches the documented
status codes, media types and schemas. Bounded examples per operation, so it stays short;
runs as the tenant administrator on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from frontdesk.api.http import create_app
from frontdesk.org.roles import Role
from frontdesk.org.service import Change
from frontdesk.store.db import Database
from orgkit import make_world

#: Generated examples plus the schema's own examples; the coverage phase (every boundary
#: value of every field) is left out to keep the run short.
CONFIG = SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False},
                                                  "stateful": {"enabled": False}}})
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def admin_headers_and_app(module_db: Database) -> tuple[dict[str, str], Any]:
    world = make_world(module_db, roles=False)
    # other users' tokens first, so the administrator's token id is not a small number a
    # generated DELETE /tokens/{id} would likely hit
    for n in range(40):
        world.add_user(f"staff{n}")
    world.add_user("admin", Role.ADMINISTRATOR)
    world.setup(Change("site", "create", "main", {"name": "Main office"}),
                Change("extension", "create", "101", {"display_name": "Front desk",
                                                      "user": "admin"}),
                Change("group", "create", "service", {"display_name": "Service",
                                                      "members": ["admin"]}))
    return world.headers("admin"), create_app(db=module_db)


@pytest.fixture(scope="module")
def api_schema(admin_headers_and_app: tuple[dict[str, str], Any]) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", admin_headers_and_app[1],
                                          config=CONFIG)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_conforms(case: Any,
                                  admin_headers_and_app: tuple[dict[str, str], Any]) -> None:
    case.call_and_validate(headers=admin_headers_and_app[0], checks=CHECKS)
