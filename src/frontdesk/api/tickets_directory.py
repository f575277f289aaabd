"""/api/v1/tickets/companies and /contacts: the callers' directory, with their phone numbers
(normalised to E.164; a number that cannot be parsed is a 422 naming it and the fix).

Reads and writes go through ``tickets.directory`` in the caller's tenant only; this module
holds no rules of its own.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from frontdesk.api.common import INT32, CallerDep
from frontdesk.api.tickets_common import (
    CONTACT_CREATE,
    CONTACT_DELETE,
    CONTACT_READ,
    CONTACT_UPDATE,
    TicketsRoute,
    company_out,
    contact_out,
    reading,
    work,
)
from frontdesk.api.tickets_schemas import (
    CompanyIn,
    CompanyOut,
    CompanyPatch,
    ContactIn,
    ContactOut,
    ContactPatch,
    NumberIn,
    PhoneText,
)
from frontdesk.tickets import directory

router = APIRouter(route_class=TicketsRoute, tags=["tickets: contacts"])
IdPath = Annotated[int, Path(ge=1, le=INT32)]
NumberPath = Annotated[PhoneText, Path()]
Search = Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")]


@router.get("/companies", response_model=list[CompanyOut], summary="Companies")
def list_companies(caller: CallerDep, search: Search = None) -> Any:
    with reading(caller, CONTACT_READ) as s:
        return [
            company_out(s, c) for c in directory.list_companies(s, caller.tenant_id, search=search)
        ]


@router.post("/companies", response_model=CompanyOut, status_code=201, summary="Add a company")
def create_company(body: CompanyIn, caller: CallerDep) -> Any:
    with work(caller, CONTACT_CREATE) as s:
        company = directory.create_company(
            s, caller.tenant_id, body.name, numbers=body.numbers, external_ref=body.external_ref
        )
        return company_out(s, company)


@router.get("/companies/{company_id}", response_model=CompanyOut, summary="One company")
def get_company(company_id: IdPath, caller: CallerDep) -> Any:
    with reading(caller, CONTACT_READ) as s:
        return company_out(s, directory.get_company(s, caller.tenant_id, company_id))


@router.patch("/companies/{company_id}", response_model=CompanyOut, summary="Rename a company")
def rename_company(company_id: IdPath, body: CompanyPatch, caller: CallerDep) -> Any:
    with work(caller, CONTACT_UPDATE) as s:
        return company_out(s, directory.rename_company(s, caller.tenant_id, company_id, body.name))


@router.delete("/companies/{company_id}", status_code=204, summary="Delete a company")
def delete_company(company_id: IdPath, caller: CallerDep) -> Response:
    with work(caller, CONTACT_DELETE) as s:
        directory.delete_company(s, caller.tenant_id, company_id)
    return Response(status_code=204)


@router.post(
    "/companies/{company_id}/numbers",
    response_model=CompanyOut,
    status_code=201,
    summary="Add a phone number to a company",
)
def add_company_number(company_id: IdPath, body: NumberIn, caller: CallerDep) -> Any:
    with work(caller, CONTACT_UPDATE) as s:
        directory.add_company_number(s, caller.tenant_id, company_id, body.number, body.label)
        return company_out(s, directory.get_company(s, caller.tenant_id, company_id))


@router.delete(
    "/companies/{company_id}/numbers/{number}",
    status_code=204,
    summary="Remove a phone number from a company",
)
def remove_company_number(company_id: IdPath, number: NumberPath, caller: CallerDep) -> Response:
    with work(caller, CONTACT_UPDATE) as s:
        directory.remove_company_number(s, caller.tenant_id, company_id, number)
    return Response(status_code=204)


@router.get("/contacts", response_model=list[ContactOut], summary="Contacts")
def list_contacts(
    caller: CallerDep,
    search: Search = None,
    company_id: Annotated[int | None, Query(ge=1, le=INT32)] = None,
) -> Any:
    with reading(caller, CONTACT_READ) as s:
        rows = directory.list_contacts(s, caller.tenant_id, company_id=company_id, search=search)
        return [contact_out(s, c) for c in rows]


@router.post("/contacts", response_model=ContactOut, status_code=201, summary="Add a contact")
def create_contact(body: ContactIn, caller: CallerDep) -> Any:
    with work(caller, CONTACT_CREATE) as s:
        contact = directory.create_contact(
            s,
            caller.tenant_id,
            body.name,
            email=body.email,
            company_ids=body.company_ids,
            numbers=body.numbers,
            external_ref=body.external_ref,
        )
        return contact_out(s, contact)


@router.get("/contacts/{contact_id}", response_model=ContactOut, summary="One contact")
def get_contact(contact_id: IdPath, caller: CallerDep) -> Any:
    with reading(caller, CONTACT_READ) as s:
        return contact_out(s, directory.get_contact(s, caller.tenant_id, contact_id))


@router.patch("/contacts/{contact_id}", response_model=ContactOut, summary="Change a contact")
def update_contact(contact_id: IdPath, body: ContactPatch, caller: CallerDep) -> Any:
    with work(caller, CONTACT_UPDATE) as s:
        contact = directory.update_contact(
            s, caller.tenant_id, contact_id, name=body.name, email=body.email
        )
        if body.company_ids is not None:
            directory.set_contact_companies(s, caller.tenant_id, contact_id, body.company_ids)
        return contact_out(s, contact)


@router.delete("/contacts/{contact_id}", status_code=204, summary="Delete a contact")
def delete_contact(contact_id: IdPath, caller: CallerDep) -> Response:
    with work(caller, CONTACT_DELETE) as s:
        directory.delete_contact(s, caller.tenant_id, contact_id)
    return Response(status_code=204)


@router.post(
    "/contacts/{contact_id}/numbers",
    response_model=ContactOut,
    status_code=201,
    summary="Add a phone number to a contact",
)
def add_contact_number(contact_id: IdPath, body: NumberIn, caller: CallerDep) -> Any:
    with work(caller, CONTACT_UPDATE) as s:
        directory.add_contact_number(s, caller.tenant_id, contact_id, body.number, body.label)
        return contact_out(s, directory.get_contact(s, caller.tenant_id, contact_id))


@router.delete(
    "/contacts/{contact_id}/numbers/{number}",
    status_code=204,
    summary="Remove a phone number from a contact",
)
def remove_contact_number(contact_id: IdPath, number: NumberPath, caller: CallerDep) -> Response:
    with work(caller, CONTACT_UPDATE) as s:
        directory.remove_contact_number(s, caller.tenant_id, contact_id, number)
    return Response(status_code=204)
