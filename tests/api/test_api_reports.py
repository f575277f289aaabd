"""REST API: change requests, audit, coverage and CDRs — the shared permission suite for
the read-only resources."""

from __future__ import annotations

from permsuite import CASES, permission_tests

test_permissions = permission_tests(
    CASES["change_request"] + CASES["audit"] + CASES["coverage"] + CASES["cdr"])


def test_the_suite_covers_every_permission() -> None:
    from permsuite import CASES

    from frontdesk.org.roles import PERMISSIONS

    covered = {case.permission for cases in CASES.values() for case in cases}
    assert covered == PERMISSIONS
