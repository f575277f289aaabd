"""/api/v1/tickets/webhooks: outbound webhook endpoints (generic signed JSON, or Zammad CTI)
and their delivery log; a failed delivery can be queued again.

The endpoint's secret is shown once, in the answer to creating it. Reads and writes go
through ``tickets.endpoints``; this module holds no rules of its own.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response

from frontdesk.api.common import INT32, CallerDep
from frontdesk.api.tickets_common import (
    WEBHOOK_CREATE,
    WEBHOOK_DELETE,
    WEBHOOK_READ,
    WEBHOOK_UPDATE,
    TicketsRoute,
    delivery_out,
    endpoint_out,
    reading,
    work,
)
from frontdesk.api.tickets_schemas import (
    DeliveryOut,
    EndpointCreated,
    EndpointIn,
    EndpointOut,
    EndpointPatch,
)
from frontdesk.tickets import endpoints

router = APIRouter(route_class=TicketsRoute, tags=["tickets: webhooks"])
IdPath = Annotated[int, Path(ge=1, le=INT32)]


@router.get("/webhooks", response_model=list[EndpointOut], summary="Webhook endpoints")
def list_endpoints(caller: CallerDep) -> Any:
    with reading(caller, WEBHOOK_READ) as s:
        return [endpoint_out(e) for e in endpoints.list_endpoints(s, caller.tenant_id)]


@router.post(
    "/webhooks",
    response_model=EndpointCreated,
    status_code=201,
    summary="Add a webhook endpoint (its secret is shown once)",
)
def create_endpoint(body: EndpointIn, caller: CallerDep) -> Any:
    with work(caller, WEBHOOK_CREATE) as s:
        made = endpoints.create_endpoint(
            s,
            caller.tenant_id,
            body.name,
            body.url,
            kind=body.kind,
            secret=body.secret,
            events=body.events,
            enabled=body.enabled,
        )
        return {**endpoint_out(made), "secret": made.secret}


@router.patch(
    "/webhooks/{endpoint_id}", response_model=EndpointOut, summary="Change a webhook endpoint"
)
def update_endpoint(endpoint_id: IdPath, body: EndpointPatch, caller: CallerDep) -> Any:
    with work(caller, WEBHOOK_UPDATE) as s:
        changed = endpoints.update_endpoint(
            s, caller.tenant_id, endpoint_id, url=body.url, events=body.events, enabled=body.enabled
        )
        return endpoint_out(changed)


@router.delete(
    "/webhooks/{endpoint_id}",
    status_code=204,
    summary="Delete a webhook endpoint and its delivery log",
)
def delete_endpoint(endpoint_id: IdPath, caller: CallerDep) -> Response:
    with work(caller, WEBHOOK_DELETE) as s:
        endpoints.delete_endpoint(s, caller.tenant_id, endpoint_id)
    return Response(status_code=204)


@router.get(
    "/webhooks/{endpoint_id}/deliveries",
    response_model=list[DeliveryOut],
    summary="An endpoint's delivery log, newest first",
)
def list_deliveries(
    endpoint_id: IdPath,
    caller: CallerDep,
    status: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    with reading(caller, WEBHOOK_READ) as s:
        rows = endpoints.list_deliveries(
            s, caller.tenant_id, endpoint_id=endpoint_id, status=status, limit=limit
        )
        return [delivery_out(d) for d in rows]


@router.post(
    "/webhook-deliveries/{delivery_id}/redeliver",
    response_model=DeliveryOut,
    summary="Queue a delivery again (fresh attempts)",
)
def redeliver(delivery_id: IdPath, caller: CallerDep) -> Any:
    with work(caller, WEBHOOK_UPDATE) as s:
        return delivery_out(endpoints.redeliver(s, caller.tenant_id, delivery_id))
