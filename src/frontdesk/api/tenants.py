"""/api/v1/tenants: the caller's own tenant (read, update) and, for administrators of the
hosting (default) tenant, new tenants.

Every change goes through ``org.service`` with the caller as actor; changing security or
SIP settings (sip_domain, digest_algorithms, allow_unauthenticated_loopback) is an
infrastructure change. This module never writes rows itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import Field

from frontdesk.api.common import Caller, CallerDep, read_one
from frontdesk.api.schemas import (
    DigestAlgorithm,
    Input,
    LongText,
    Slug,
    SlugPath,
    TenantOut,
    Text,
    accepted,
    omitted,
)
from frontdesk.org.errors import NotFound
from frontdesk.org.service import Change

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"])
Timeout = Annotated[int, Field(ge=1, le=600)]
Algorithms = Annotated[list[DigestAlgorithm], Field(min_length=1, max_length=2)]
Host = Annotated[str, Field(max_length=253, pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")]


class TenantIn(Input):
    slug: Slug
    name: Text
    sip_domain: Host
    ring_timeout: Timeout = omitted()
    digest_algorithms: Algorithms = omitted()
    allow_unauthenticated_loopback: bool = omitted()
    reason: LongText = ""


class TenantPatch(Input):
    name: Text = omitted()
    sip_domain: Host = omitted()
    ring_timeout: Timeout = omitted()
    digest_algorithms: Algorithms = omitted()
    allow_unauthenticated_loopback: bool = omitted()
    reason: LongText = ""


@router.get("", response_model=list[TenantOut], summary="My tenant")
def list_tenants(caller: CallerDep) -> Any:
    return [read_one(caller, "tenant", caller.tenant_slug)]


@router.get("/{slug}", response_model=TenantOut, summary="One tenant (only my own)")
def get_tenant(slug: SlugPath, caller: CallerDep) -> Any:
    _own(caller, slug)
    return read_one(caller, "tenant", slug)


@router.post("", response_model=TenantOut, status_code=201, responses=accepted(),
             summary="Create a tenant (administrators of the hosting tenant)")
def create_tenant(body: TenantIn, caller: CallerDep) -> Response:
    return caller.change(Change("tenant", "create", body.slug, body.sent("slug"), body.reason),
                         created=True)


@router.patch("/{slug}", response_model=TenantOut, responses=accepted(),
              summary="Change my tenant's name and settings")
def update_tenant(slug: SlugPath, body: TenantPatch, caller: CallerDep) -> Response:
    _own(caller, slug)
    return caller.change(Change("tenant", "update", slug, body.sent("slug"), body.reason))


def _own(caller: Caller, slug: str) -> None:
    if slug != caller.tenant_slug:
        raise NotFound(f"tenant {slug!r} is not yours",
                       fix=f"use your own tenant {caller.tenant_slug!r}")
