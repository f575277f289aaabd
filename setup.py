"""Frontdesk's build: pure Python, or with the SIP hot path compiled by mypyc.

Metadata lives in pyproject.toml; this file only adds the optional compiled modules
(``frontdesk.compiled.MODULES``), chosen by the environment variable FRONTDESK_COMPILE:

- unset or ``0``: pure Python, the default (installs in seconds; nothing to rebuild after
  an edit in a checkout). ``pip install -e .`` also removes a compiled build from ``src/``;
- ``1``: compile, or stop with what is missing (mypy is added to the build requirements by
  build_backend/frontdesk_build.py; a C compiler and the Python headers must be there:
  Debian ``apt install gcc python3-dev``). About a minute. For a server:
  ``FRONTDESK_COMPILE=1 pip install .``. With ``-e`` it compiles into ``src/``: then every
  edit of a compiled module needs that command again (importing ``frontdesk`` refuses a
  stale build: `frontdesk.compiled.check_build`), and everybody using the checkout runs
  the compiled build; for benchmarks use ``scripts/build_compiled.py`` instead;
- ``auto``: compile when this machine can, otherwise print one line and install pure Python.

Every compiled build writes ``frontdesk/_compiled.json``: the source hashes that check uses.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import sys
from types import ModuleType

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "src", "frontdesk")


def _compiled_module() -> ModuleType:
    """src/frontdesk/compiled.py, loaded by path (the package itself is not importable in a
    build environment that lacks Frontdesk's dependencies)."""
    path = os.path.join(SOURCE, "compiled.py")
    spec = importlib.util.spec_from_file_location("_frontdesk_compiled", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compile_mode() -> str:
    """``0``, ``1`` or ``auto``, from FRONTDESK_COMPILE."""
    value = os.environ.get("FRONTDESK_COMPILE", "0").strip().lower()
    if value in ("", "0", "no", "false", "off"):
        return "0"
    if value in ("1", "yes", "true", "on"):
        return "1"
    if value == "auto":
        return "auto"
    raise SystemExit(f"FRONTDESK_COMPILE={value!r}: use 0 (pure Python), 1 (compile) or auto")


def _notice(line: str) -> None:
    print(f"frontdesk: {line}", file=sys.stderr)


# setup.py runs once for metadata (egg_info, dist_info: pip asks what to install to build)
# and once to build; only a build compiles, so mypy need not be there for the first run
BUILD_COMMANDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "install", "develop"}


def extensions() -> list[Extension]:
    """The mypyc extensions when this run builds and FRONTDESK_COMPILE asks for them."""
    mode = compile_mode()
    if mode == "0":
        return []
    compiled = _compiled_module()
    building = bool(BUILD_COMMANDS.intersection(sys.argv[1:]))
    reason = compiled.missing_toolchain(need_mypy=building)
    if reason is None:
        return list(compiled.mypyc_extensions("src")) if building else []
    if mode == "1":
        raise SystemExit(
            f"FRONTDESK_COMPILE=1, but mypyc cannot compile here: {reason}. "
            "Unset FRONTDESK_COMPILE (or set it to auto) to install pure Python."
        )
    if building:  # once, not in the metadata runs too
        _notice(f"installing pure Python (FRONTDESK_COMPILE=auto: {reason})")
    return []


class BuildExtWithManifest(build_ext):
    """build_ext, then the manifest beside the compiled package (`check_build` reads it).
    With FRONTDESK_COMPILE=auto a failed compilation leaves pure Python."""

    def run(self) -> None:
        if not self.extensions:
            return
        try:
            super().run()
        except Exception as exc:
            if compile_mode() != "auto":
                raise
            for path in self.get_outputs():
                if os.path.exists(path):
                    os.remove(path)
            _notice(f"installing pure Python: compiling with mypyc failed ({exc})")
            return
        built = self.get_ext_fullpath("frontdesk.sip.message")
        package_dir = os.path.dirname(os.path.dirname(built))
        how = "pip install -e ." if self.inplace else "pip install ."
        _compiled_module().write_manifest(
            package_dir,
            SOURCE,
            f"FRONTDESK_COMPILE=1 {how}",
            f"run `{how}` without FRONTDESK_COMPILE (it removes them)",
        )


def remove_inplace_build() -> None:
    """A pure-Python editable install removes what a compiled one left in src/ (else those
    modules would go on running compiled)."""
    compiled = _compiled_module()
    names = set(compiled.MODULES)
    found = [p for m, p in compiled.compiled_files(SOURCE).items() if m in names]
    found += glob.glob(os.path.join(HERE, "src", "frontdesk__mypyc.*"))
    found += glob.glob(os.path.join(SOURCE, compiled.MANIFEST))
    for path in found:
        os.remove(path)
    if found:
        _notice(f"removed the compiled build from src/ ({len(found)} files): pure Python")


if compile_mode() == "0" and {"editable_wheel", "develop"}.intersection(sys.argv[1:]):
    remove_inplace_build()
setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExtWithManifest})
