"""Fixtures for media tests: a real ``frontdesk serve`` with the demo tenant (tests/integration's
FrontdeskProcess) whose RTP ports are OS-assigned, and spoken reference audio.

What it must never do: start anything a test did not ask for, or stop a process it did
not start.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from frontdesk_proc import FrontdeskProcess


@pytest.fixture
def media_server(tmp_path: Path) -> Iterator[FrontdeskProcess]:
    """A started server (demo tenant, extensions 101-203) on free ports."""
    fd = FrontdeskProcess(tmp_path / "fd")
    fd.init_demo()
    fd.start(extra_env={"FRONTDESK_RTP_PORTS": "0"})
    yield fd
    fd.stop()
    print(f"\n--- frontdesk log ---\n{fd.log_tail(120)}")
    assert "Traceback" not in fd.log_tail(10_000)
