"""Who a WebSocket listener gets ownership events for (api/events_ws.py ``Listener``): the
informed person, the approvers of a change request, audit readers entitled to the kind of
resource — never anyone of another tenant, and only what the ``events`` filter asks for.
The live side (a real server and WebSocket client) is tests/integration/
test_tickets_live_events.py; this checks every rule, including other tenants, directly."""

from __future__ import annotations

from frontdesk.api.events_ws import Listener, org_envelope
from frontdesk.org.access import Access
from frontdesk.org.events import ChangeApplied, ChangeRequested, StakeholderInformed
from frontdesk.tickets import events

RITA = 11


def _listener(*permissions: str, tenant: int = 1, patterns: tuple[str, ...] = ()) -> Listener:
    access = Access(
        roles=frozenset(), permissions=frozenset(permissions), owned_domains=frozenset()
    )
    return Listener(RITA, "rita", tenant, access, patterns)


def _informed(tenant: int = 1, user: int = RITA) -> StakeholderInformed:
    return StakeholderInformed(tenant, user, "office_manager", "extension", "203", "renamed")


def _applied(tenant: int = 1, kind: str = "extension") -> ChangeApplied:
    return ChangeApplied(tenant, kind, "203", "update", 2, "pat", "api", 41)


def _requested(tenant: int = 1, approvers: tuple[int, ...] = (RITA,)) -> ChangeRequested:
    return ChangeRequested(tenant, 5, "extension", "203", "update", "sam", ("business",),
                           approvers, "rename 203")


def test_the_informed_person_and_the_approvers_get_theirs_only() -> None:
    rita = _listener()  # no permissions at all
    assert rita.wants(_informed())
    assert not rita.wants(_informed(user=RITA + 1))  # someone else's notice
    assert rita.wants(_requested())
    assert not rita.wants(_requested(approvers=(RITA + 1,)))
    assert not rita.wants(_applied())  # not an audit reader


def test_audit_readers_get_changes_of_kinds_they_may_read() -> None:
    auditor = _listener("audit.read", "extension.read", "change_request.read")
    assert auditor.wants(_applied())
    assert not auditor.wants(_applied(kind="trunk"))  # no trunk.read
    assert auditor.wants(_requested(approvers=()))
    assert auditor.wants(_informed(user=RITA + 1))  # notices are audited too
    assert not _listener("extension.read").wants(_applied())  # reading is not auditing


def test_nothing_crosses_tenants() -> None:
    everything = _listener("audit.read", "extension.read", "change_request.read", "cdr.read")
    assert not everything.wants(_informed(tenant=2))
    assert not everything.wants(_requested(tenant=2))
    assert not everything.wants(_applied(tenant=2))
    call = events.CallEnded(tenant_id=2, call_id="c", caller="1", callee="2", disposition="busy")
    assert not everything.wants(call)


def test_the_events_filter_applies_to_ownership_events() -> None:
    calls_only = _listener("audit.read", "extension.read", patterns=("call.*",))
    assert not calls_only.wants(_informed())
    assert not calls_only.wants(_applied())
    org = _listener("audit.read", "extension.read", patterns=("org.extension.*",))
    assert org.wants(_applied()) and not org.wants(_informed())


def test_an_ownership_event_is_sent_as_an_envelope_with_a_stable_id() -> None:
    first, again = org_envelope(_informed()), org_envelope(_informed())
    assert first["event"] == f"org.informed.user.{RITA}" and first["tenant_id"] == 1
    assert first["data"]["resource_key"] == "203" and "tenant_id" not in first["data"]
    assert first["id"] == again["id"] != org_envelope(_informed(user=RITA + 1))["id"]
    assert org_envelope(_requested())["data"]["approver_user_ids"] == [RITA]
