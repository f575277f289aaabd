"""The technician shield on live calls, through a real `frontdesk serve` and real baresip
phones (demo tenant: 101 office manager, 102 service manager, 201 a technician):

- a co-worker (extension 102) calls the technician: 201 rings and answers;
- an unknown outside caller calls 201: 201 never rings, the call goes into the front-desk
  flow and the office manager answers;
- an outside caller whose contact has a service request that the technician marked as
  being worked on right now calls 201: 201 rings and answers, the office does not.

Each CDR records the decision and its reason. Outside callers are unregistered phones the
tenant trusts from loopback (``allow_unauthenticated_loopback``), as trunk calls arrive;
the caller lookup is tickets/' real one, reading the contact and request seeded here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from frontdesk_proc import FrontdeskProcess
from integration_kit import database, registered_baresip, sqlite_url, wait_for
from sqlalchemy import select

from frontdesk.store import repo
from frontdesk.store.models import Cdr, Extension
from frontdesk.tickets import directory, service
from frontdesk.tickets.actor import SYSTEM
from peers import BaresipPhone

pytestmark = [pytest.mark.peers, pytest.mark.timeout(180)]

KNOWN = "+12125550100"  # Hank Scorpio of Globex: his request is being worked on by 201
STRANGER = "+13125550142"
FLOW = """\
name: front-desk
title: Live shield test (no business hours, so the test does not depend on the time)
timezone: UTC
nodes:
  start: {type: start, next: ring-om}
  ring-om: {type: ring, targets: ["101"], timeout: 10, no_answer: bye, busy: bye}
  bye: {type: hangup}
"""


def _seed(fd: FrontdeskProcess) -> str:
    """Outside callers trusted from loopback; Hank's request worked on by 201 right now."""
    with database(fd) as db, db.session() as s:
        tenant = repo.get_tenant_by_slug(s, "demo")
        assert tenant is not None
        tenant.settings = {**(tenant.settings or {}), "allow_unauthenticated_loopback": True}
        technician = s.scalar(select(Extension).where(Extension.tenant_id == tenant.id,
                                                      Extension.number == "201"))
        assert technician is not None and technician.user_id is not None
        globex = directory.create_company(s, tenant.id, "Globex")
        hank = directory.create_contact(s, tenant.id, "Hank Scorpio", company_ids=[globex.id],
                                        numbers=[KNOWN])
        printer = service.create_request(s, tenant.id, SYSTEM, title="Printer broken",
                                         contact_id=hank.id, company_id=globex.id,
                                         assignee_id=technician.user_id)
        ref = f"SR-{printer.number}"
        service.set_working_on(s, tenant.id, SYSTEM, technician.user_id, ref)
        return ref


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FrontdeskProcess, str]]:
    base = tmp_path_factory.mktemp("shield")
    (base / "fd").mkdir()
    fd = FrontdeskProcess(base / "fd", sqlite_url(base / "fd"))
    fd.init_demo()
    (base / "flow.yaml").write_text(FLOW)
    fd.cli("flow", "publish", "--file", str(base / "flow.yaml"), "--actor", "test",
           "--data", str(fd.data_dir), *fd._db_args())
    ref = _seed(fd)
    fd.start(extra_env={"FRONTDESK_RTP_PORTS": "0"})
    yield fd, ref
    fd.stop()
    assert "Traceback" not in fd.log_tail(100_000), fd.log_tail(80)


def outside(make: Callable[..., BaresipPhone], fd: FrontdeskProcess,
            number: str) -> BaresipPhone:
    return make(number, domain=f"127.0.0.1:{fd.sip_port}", register=False)


def outside_call_to_201(make: Callable[..., BaresipPhone], fd: FrontdeskProcess, caller_number: str,
                        front_desk_answers: str) -> tuple[BaresipPhone, BaresipPhone, BaresipPhone]:
    """The front desk (101, ``answermode`` ``front_desk_answers``) and the technician (201,
    auto-answer) register; an outside phone ``caller_number`` dials 201. (front desk,
    technician, caller)."""
    front_desk = registered_baresip(make, fd, "101", answermode=front_desk_answers)
    technician = registered_baresip(make, fd, "201", answermode="auto")
    caller = outside(make, fd, caller_number)
    caller.dial(f"sip:201@127.0.0.1:{fd.sip_port}")
    return front_desk, technician, caller


def talk_and_hang_up(caller: BaresipPhone, answerer: BaresipPhone) -> None:
    answerer.wait_event("CALL_ESTABLISHED", timeout=15)
    caller.wait_event("CALL_ESTABLISHED", timeout=10)
    time.sleep(0.5)
    caller.hangup()
    answerer.wait_event("CALL_CLOSED", timeout=10)


def ended_cdr(fd: FrontdeskProcess, caller: str) -> Cdr:
    def probe() -> Cdr | None:
        with database(fd) as db, db.session() as s:
            row = s.scalar(select(Cdr).where(Cdr.caller == caller, Cdr.callee == "201",
                                             Cdr.ended_at.is_not(None)))
            if row is not None:
                s.expunge(row)
            return row
    return wait_for(f"the ended CDR of the call from {caller} to 201", probe)  # type: ignore[no-any-return]


def test_a_co_worker_rings_the_technician(
        office: tuple[FrontdeskProcess, str], baresip_phone: Callable[..., BaresipPhone]) -> None:
    fd, _ = office
    technician = registered_baresip(baresip_phone, fd, "201", answermode="auto")
    colleague = registered_baresip(baresip_phone, fd, "102")
    colleague.dial(f"sip:201@127.0.0.1:{fd.sip_port}")
    talk_and_hang_up(colleague, technician)
    cdr = ended_cdr(fd, "102")
    assert (cdr.disposition, cdr.callee_answered_by) == ("answered", "201")
    assert cdr.extra["shield"]["decision"] == "let through"
    assert cdr.extra["shield"]["reason"] == (
        "let through: caller 102 (Service Manager) is a co-worker")


def test_an_unknown_outside_caller_is_shielded_into_the_front_desk_flow(
        office: tuple[FrontdeskProcess, str], baresip_phone: Callable[..., BaresipPhone]) -> None:
    fd, _ = office
    front_desk, technician, caller = outside_call_to_201(baresip_phone, fd, STRANGER, "auto")
    talk_and_hang_up(caller, front_desk)
    assert "CALL_INCOMING" not in technician.event_types(), technician.event_types()
    cdr = ended_cdr(fd, STRANGER)
    assert (cdr.disposition, cdr.callee_answered_by) == ("answered", "101")
    shield = dict(cdr.extra["shield"])
    entered = shield.pop("entered")  # which flow took the call (the tenant has a main number)
    assert entered.startswith('flow "front-desk"') and "no main number" not in entered, entered
    assert shield == {"technician": "201", "decision": "shielded", "request": None,
                      "reason": f"shielded: unknown caller {STRANGER}"}
    assert [step["node"] for step in cdr.path][:3] == ["shield", "start", "ring-om"]


def test_a_caller_whose_request_the_technician_works_on_now_rings_through(
        office: tuple[FrontdeskProcess, str], baresip_phone: Callable[..., BaresipPhone]) -> None:
    fd, ref = office
    front_desk, technician, caller = outside_call_to_201(baresip_phone, fd, KNOWN, "manual")
    talk_and_hang_up(caller, technician)
    assert "CALL_INCOMING" not in front_desk.event_types(), front_desk.event_types()
    cdr = ended_cdr(fd, KNOWN)
    assert (cdr.disposition, cdr.callee_answered_by) == ("answered", "201")
    shield = cdr.extra["shield"]
    assert shield["decision"] == "let through" and shield["request"] == ref, shield
    assert "Hank Scorpio, Globex" in shield["reason"] and "working on it right now" not in (
        shield["reason"]) and "is working on right now" in shield["reason"]


def test_nothing_went_wrong_in_the_server_log(office: tuple[FrontdeskProcess, str]) -> None:
    fd, _ = office
    log = fd.log_tail(100_000)
    assert "Traceback" not in log and "internal error" not in log, log[-4000:]


