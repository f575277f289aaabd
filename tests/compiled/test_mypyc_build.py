"""The mypyc-compiled SIP hot path behaves like the pure Python it is built from.

Builds `frontdesk.compiled.MODULES` with ``scripts/build_compiled.py`` into a temporary
directory, then runs the parser, transaction, auth, registrar and B2BUA tests (tests/sip,
tests/conformance, tests/pbx without its real-time media and database/CLI files) in a child
pytest against that build; the child's ``-p expect_compiled`` plugin fails the run unless
every module came from a compiled extension. Then a changed source beside the build must
make importing ``frontdesk`` fail. Skipped, with the reason, where mypyc cannot build (no
mypy, C compiler or Python headers).

About 1.5 minutes on an idle core (~1 min of it the C compiler): deselect with
``-m "not compiled"``. ``FRONTDESK_COMPILED_DIR=build/compiled`` uses a build made by
``python scripts/build_compiled.py`` instead (it must be up to date).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHILD_TESTS = [
    "tests/sip",
    "tests/conformance",
    "tests/pbx",
    "--ignore=tests/pbx/test_flows_media.py",  # real-time media: seconds of waiting
    "--ignore=tests/pbx/test_trunks_cli.py",  # CLI and database, not the SIP path
    "--ignore=tests/pbx/test_trunks_org.py",
]


def _build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_compiled", ROOT / "scripts" / "build_compiled.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.compiled
@pytest.mark.timeout(1200)
def test_compiled_modules_pass_the_sip_and_pbx_tests(tmp_path: Path) -> None:
    build = _build_script()
    given = os.environ.get("FRONTDESK_COMPILED_DIR")
    if given:
        out = Path(given).resolve()
        assert build.up_to_date(out), f"{out} is missing or stale: python scripts/build_compiled.py"
    else:
        reason = build.missing_toolchain()
        if reason is not None:
            pytest.skip(f"cannot compile with mypyc here: {reason}")
        out = tmp_path / "compiled"
        made = _run(
            [sys.executable, "scripts/build_compiled.py", "--out", str(out)], dict(os.environ), 900
        )
        assert made.returncode == 0, made.stdout + made.stderr
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(out), str(ROOT / "tests" / "compiled")]))

    which = _run(
        [sys.executable, "scripts/build_compiled.py", "--which", "--expect", "compiled"], env, 60
    )
    assert which.returncode == 0, which.stdout + which.stderr
    print(which.stdout)

    child = _run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "expect_compiled",
            *CHILD_TESTS,
        ],
        env,
        900,
    )
    summary = child.stdout.strip().splitlines()[-1] if child.stdout.strip() else ""
    assert child.returncode == 0, child.stdout[-6000:] + child.stderr[-3000:]
    assert "frontdesk build: compiled with mypyc" in child.stdout
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary

    # a source changed after the build: importing frontdesk from the build must refuse
    stale = tmp_path / "stale"
    shutil.copytree(out / "frontdesk", stale / "frontdesk", symlinks=True)
    for name in out.glob("frontdesk__mypyc*"):
        shutil.copy2(name, stale / name.name)
    message_py = stale / "frontdesk" / "sip" / "message.py"
    changed = message_py.read_text() + "\n# changed after the build\n"
    message_py.unlink()  # a link into src/: replace the link, never the file behind it
    message_py.write_text(changed)
    refused = _run(
        [sys.executable, "-c", "import frontdesk.sip.message"],
        dict(os.environ, PYTHONPATH=str(stale)),
        60,
    )
    assert refused.returncode != 0
    assert "StaleBuildError" in refused.stderr, refused.stderr
    assert f"frontdesk.sip.message: {message_py} changed since it was compiled" in refused.stderr
