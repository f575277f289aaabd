"""Errors as application/problem+json (RFC 9457) that name the field and the fix.

Every error the API returns — validation (422), not signed in (401), not allowed (403),
not found (404), conflict (409), unknown route or method, and the unexpected (500, logged)
— has the same shape: ``type``, ``title``, ``status``, ``detail``, ``fix``, and for field
problems ``errors: [{field, message, fix}]``. ``document_problems`` rewrites the OpenAPI
document so every /api/v1 operation declares these responses with that media type.

This module must never decide permissions; it only translates errors into responses.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from frontdesk.org.errors import OrgError

log = logging.getLogger("frontdesk.api")

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:frontdesk:problem:"
DOCUMENTED = {
    "400": "Bad request",
    "401": "Not signed in",
    "403": "Not allowed",
    "404": "Not found",
    "409": "Conflict",
    "422": "Invalid value",
}


class FieldProblem(BaseModel):
    """One field that is wrong, and how to make it right."""

    field: str = Field(description="the field, e.g. ring_timeout or members.0")
    message: str
    fix: str


class Problem(BaseModel):
    """RFC 9457 problem details, with ``fix`` and per-field ``errors`` added."""

    type: str = Field(description="urn:frontdesk:problem:<slug>")
    title: str
    status: int
    detail: str
    fix: str = ""
    errors: list[FieldProblem] = Field(default_factory=list)


class NotSignedIn(OrgError):
    """No bearer token, or one that is unknown, expired or revoked."""

    status = 401
    title = "Not signed in"


def problem_response(status: int, title: str, detail: str, fix: str = "",
                     errors: list[FieldProblem] | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    """A problem+json response."""
    slug = title.lower().replace(" ", "-")
    body = Problem(type=TYPE_BASE + slug, title=title, status=status, detail=detail, fix=fix,
                   errors=errors or [])
    return JSONResponse(body.model_dump(), status_code=status, media_type=MEDIA_TYPE,
                        headers=headers)


def _fix_for(error: dict[str, Any]) -> str:
    """A fix in words for one pydantic validation error."""
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    fixes = {
        "missing": "add this field",
        "extra_forbidden": "remove this field; see the schema at /openapi.json",
        "string_too_short": f"use at least {ctx.get('min_length')} characters",
        "string_too_long": f"use at most {ctx.get('max_length')} characters",
        "string_pattern_mismatch": f"match the pattern {ctx.get('pattern')}",
        "greater_than_equal": f"use a value of at least {ctx.get('ge')}",
        "less_than_equal": f"use a value of at most {ctx.get('le')}",
        "greater_than": f"use a value above {ctx.get('gt')}",
        "less_than": f"use a value below {ctx.get('lt')}",
        "int_parsing": "send a whole number",
        "int_type": "send a whole number",
        "bool_parsing": "send true or false",
        "bool_type": "send true or false",
        "literal_error": f"use one of: {ctx.get('expected')}",
        "enum": f"use one of: {ctx.get('expected')}",
        "json_invalid": "send a valid JSON document",
        "model_attributes_type": "send a JSON object",
        "dict_type": "send a JSON object",
        "list_type": "send a JSON array",
        "string_type": "send text",
        "datetime_parsing": "send an ISO 8601 time, e.g. 2030-01-31T18:00:00Z",
        "datetime_from_date_parsing": "send an ISO 8601 time, e.g. 2030-01-31T18:00:00Z",
        "too_long": f"send at most {ctx.get('max_length')} items",
    }
    return fixes.get(kind, "correct the value; see the schema at /openapi.json")


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or [parts[0]]
    return ".".join(parts)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [FieldProblem(field=_field_name(e.get("loc", ())), message=str(e.get("msg", "")),
                           fix=_fix_for(e)) for e in exc.errors()]
    first = errors[0] if errors else FieldProblem(field="body", message="invalid", fix="")
    detail = f"{first.field}: {first.message}" + (
        f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
    return problem_response(422, "Invalid value", detail, first.fix, errors)


async def _on_org_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OrgError)
    errors = [FieldProblem(field=exc.field, message=exc.message, fix=exc.fix)] if exc.field else []
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return problem_response(exc.status, exc.title, exc.message, exc.fix, errors, headers)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    fix = ("see /openapi.json for the paths and methods there are"
           if exc.status_code in (404, 405) else "")
    detail = f"{request.method} {request.url.path}: {exc.detail}"
    return problem_response(exc.status_code, title, detail, fix,
                            headers=getattr(exc, "headers", None))


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem_response(500, "Internal error", f"{request.method} {request.url.path} "
                            "failed unexpectedly; it has been logged",
                            "try again; if it persists, report it with the server log")


def install(app: FastAPI) -> None:
    """Register the problem+json handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(OrgError, _on_org_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare the problem responses on every /api/v1 operation, as problem+json."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (FieldProblem, Problem):
        definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in definition.pop("$defs", {}).items():
            components[name] = sub
        components[model.__name__] = definition
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    ref = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in DOCUMENTED.items():
                responses[status] = {"description": description, "content": ref}
    return schema
