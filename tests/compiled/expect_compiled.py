"""pytest plugin for the child run of test_mypyc_build.py (``-p expect_compiled``): the run
stops before any test (exit 3) unless every module in `frontdesk.compiled.MODULES` was
imported from a compiled extension, and its first line names the build."""

from __future__ import annotations

import pytest

from frontdesk.compiled import describe


def pytest_sessionstart(session: pytest.Session) -> None:
    line = describe()
    if not line.startswith("compiled"):
        pytest.exit(f"expected the compiled build of frontdesk, got: {line}", returncode=3)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"frontdesk build: {line}")
