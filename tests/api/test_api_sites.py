"""REST API: sites — the shared permission suite (every role x every action against
the matrix) and what is particular to this resource."""

from __future__ import annotations

from permsuite import CASES, permission_tests

test_permissions = permission_tests(CASES["site"])
