"""/api/v1/sites: the tenant's places (offices, branches); roles may be held per site.

Sites are infrastructure (the Technical Contact's); changes go through ``org.service``.
This module never writes rows itself.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select

from frontdesk.api.common import CallerDep, read_all, read_one
from frontdesk.api.schemas import Input, LongText, SiteOut, Slug, SlugPath, Text, accepted, omitted
from frontdesk.org.model import Site
from frontdesk.org.service import Change

router = APIRouter(prefix="/api/v1/sites", tags=["sites"])


class SiteIn(Input):
    slug: Slug
    name: Text
    timezone: Text = "UTC"
    address: LongText | None = None
    reason: LongText = ""


class SitePatch(Input):
    name: Text = omitted()
    timezone: Text = omitted()
    address: LongText | None = None
    reason: LongText = ""


def _fields(body: Input) -> dict[str, Any]:
    sent = body.model_dump(mode="json") if isinstance(body, SiteIn) else body.fields()
    return {k: v for k, v in sent.items() if k not in ("slug", "reason")}


@router.get("", response_model=list[SiteOut], summary="Sites")
def list_sites(caller: CallerDep) -> Any:
    return read_all(caller, "site", select(Site).where(Site.tenant_id == caller.tenant_id)
                    .order_by(Site.slug))


@router.get("/{slug}", response_model=SiteOut, summary="One site")
def get_site(slug: SlugPath, caller: CallerDep) -> Any:
    return read_one(caller, "site", slug)


@router.post("", response_model=SiteOut, status_code=201, responses=accepted(),
             summary="Add a site")
def create_site(body: SiteIn, caller: CallerDep) -> Response:
    return caller.change(Change("site", "create", body.slug, _fields(body), body.reason),
                         created=True)


@router.patch("/{slug}", response_model=SiteOut, responses=accepted(), summary="Change a site")
def update_site(slug: SlugPath, body: SitePatch, caller: CallerDep) -> Response:
    return caller.change(Change("site", "update", slug, _fields(body), body.reason))


@router.delete("/{slug}", status_code=204, responses=accepted(), summary="Remove a site")
def delete_site(slug: SlugPath, caller: CallerDep) -> Response:
    return caller.change(Change("site", "delete", slug))
