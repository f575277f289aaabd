"""The optional mypyc build of the SIP hot path: which modules it compiles, and the check that
a compiled module always matches the source beside it.

Frontdesk runs as pure Python. ``FRONTDESK_COMPILE=1 pip install .`` (setup.py) or
``scripts/build_compiled.py`` (benchmarks and tests, in a directory of its own) also compile
the modules in `MODULES` to C extensions with mypyc. Python imports an extension in
preference to the ``.py`` of the same name, so a compiled module left beside a changed source
would silently run old code. Every build therefore writes a manifest (`MANIFEST`, beside the
package's ``__init__.py``) with a hash of each compiled module's source, and `check_build`,
called when the ``frontdesk`` package is imported, refuses to go on (`StaleBuildError`) while
a compiled module has no entry there or its source has changed since.

`describe` says which build runs (``python scripts/build_compiled.py --which``). Standard
library only; never compiled itself (setup.py loads it by path before anything is built);
imports the modules it lists only in `describe`.
"""

from __future__ import annotations

import os
from importlib.machinery import EXTENSION_SUFFIXES

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms at start-up
if TYPE_CHECKING:
    from setuptools import Extension

#: Compiled by mypyc when Frontdesk is built with FRONTDESK_COMPILE=1: every module a
#: REGISTER or a call passes through in the engine (parser, transactions, auth, registrar,
#: B2BUA), plus the modules their classes derive from (sip.sdp's errors subclass
#: sip.errors'; compiled classes cannot be subclassed by interpreted ones).
MODULES: tuple[str, ...] = (
    "frontdesk.sip.errors",
    "frontdesk.sip.peer",
    "frontdesk.sip.uri",
    "frontdesk.sip.headers",
    "frontdesk.sip.message",
    "frontdesk.sip.events",
    "frontdesk.sip.framing",
    "frontdesk.sip.auth_params",
    "frontdesk.sip.auth",
    "frontdesk.sip.dialog",
    "frontdesk.sip.sdp",
    "frontdesk.sip.transaction_state",
    "frontdesk.sip.transaction_match",
    "frontdesk.sip.transaction",
    "frontdesk.pbx.timers",
    "frontdesk.pbx.directory",
    "frontdesk.pbx.location",
    "frontdesk.pbx.guard",
    "frontdesk.pbx.registrar",
    "frontdesk.pbx.calls",
    "frontdesk.pbx.engine",
)
MANIFEST = "_compiled.json"
# the package's directories that can hold compiled modules
_SUBPACKAGES = tuple(sorted({m.split(".")[1] for m in MODULES}))


class StaleBuildError(ImportError):
    """A compiled module does not match the source beside it (or was built by hand)."""


def source_digest(path: str) -> str:
    """SHA-256 of a source file, as recorded in the manifest."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _module_source(package_dir: str, module: str) -> str:
    return os.path.join(package_dir, *module.split(".")[1:]) + ".py"


def compiled_files(package_dir: str) -> dict[str, str]:
    """Module name -> path of every extension module in the package's hot-path directories."""
    found: dict[str, str] = {}
    for sub in _SUBPACKAGES:
        directory = os.path.join(package_dir, sub)
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            for suffix in EXTENSION_SUFFIXES:  # longest first: .cpython-311-...so, .abi3.so, .so
                if name.endswith(suffix):
                    found[f"frontdesk.{sub}.{name[: -len(suffix)]}"] = os.path.join(directory, name)
                    break
    return found


def write_manifest(
    package_dir: str, source_dir: str, rebuild: str, pure: str, *, linked_tree: bool = False
) -> str:
    """Record the sources in ``source_dir`` (a ``frontdesk`` package directory) that the
    compiled modules in ``package_dir`` were built from. ``rebuild`` and ``pure`` tell a
    person what to do when they are stale: rebuild, or go back to pure Python.
    ``linked_tree``: ``package_dir`` is a tree of links to ``source_dir``
    (scripts/build_compiled.py), whose file lists are checked too."""
    import json
    import platform

    manifest = {
        "format": 1,
        "python": platform.python_version(),
        "rebuild": rebuild,
        "pure": pure,
        "source": os.path.abspath(source_dir) if linked_tree else None,
        "modules": {
            m: source_digest(_module_source(source_dir, m))
            for m in MODULES
            if os.path.exists(_module_source(source_dir, m))
        },
    }
    path = os.path.join(package_dir, MANIFEST)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    return path


def _tree_entries(directory: str) -> set[str]:
    """What a package directory holds, without build products."""
    skip = (MANIFEST, "__pycache__", "build")
    return {
        n
        for n in os.listdir(directory)
        if n not in skip and not n.endswith((".so", ".pyd", ".c", ".h", ".o"))
    }


def _linked_tree_problems(package_dir: str, source: str) -> list[str]:
    problems = []
    for sub in ("", *_SUBPACKAGES):
        built, wanted = os.path.join(package_dir, sub), os.path.join(source, sub)
        try:
            missing = sorted(_tree_entries(wanted) - _tree_entries(built))
        except OSError as e:
            problems.append(f"{wanted}: {e.strerror}")
            continue
        problems += [f"{os.path.join(wanted, n)} is new since the build" for n in missing]
    return problems


def check_build(package_dir: str | None = None) -> None:
    """Raise `StaleBuildError` unless every compiled module in the package matches its
    source (pure Python, the usual case, costs two directory listings)."""
    package_dir = package_dir or os.path.dirname(os.path.abspath(__file__))
    compiled = compiled_files(package_dir)
    if not compiled:
        return
    import json

    manifest_path = os.path.join(package_dir, MANIFEST)
    try:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
        recorded: dict[str, str] = manifest["modules"]
    except (OSError, ValueError, KeyError, TypeError):
        manifest, recorded = {}, {}
    problems = []
    for module, extension in sorted(compiled.items()):
        source = _module_source(package_dir, module)
        if not os.path.exists(source):
            continue  # shadows nothing
        digest = recorded.get(module)
        if digest is None:
            problems.append(f"{module}: {extension} is not in {manifest_path}")
        elif digest != source_digest(source):
            problems.append(f"{module}: {source} changed since it was compiled")
    if manifest.get("source"):
        problems += _linked_tree_problems(package_dir, manifest["source"])
    if problems:
        rebuild = manifest.get("rebuild") or "FRONTDESK_COMPILE=1 pip install -e ."
        pure = manifest.get("pure") or "delete these files:\n  " + "\n  ".join(
            sorted(compiled.values())
        )
        raise StaleBuildError(
            f"Frontdesk's compiled (mypyc) modules in {package_dir} do not match their "
            "sources, and Python would run the compiled ones:\n  "
            + "\n  ".join(problems)
            + f"\nRebuild them with `{rebuild}`; for pure Python instead, {pure}"
        )


def missing_toolchain(*, need_mypy: bool = True) -> str | None:
    """Why mypyc cannot build here, in words a person can act on; None when it can."""
    import importlib.util
    import shutil
    import sysconfig

    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    if shutil.which(cc.split()[0]) is None:
        return f"no C compiler ({cc.split()[0]}) on PATH (Debian: apt install gcc)"
    include = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include, "Python.h")):
        return f"no Python headers ({include}/Python.h; Debian: apt install python3-dev)"
    if need_mypy and importlib.util.find_spec("mypyc") is None:
        return "mypy is not installed (pip install mypy, or the test extras: '.[test]')"
    return None


def mypyc_extensions(base: str, *, opt_level: str = "3") -> list[Extension]:
    """The setuptools extensions that compile `MODULES` with mypyc (needs mypy); ``base`` is
    the directory holding the ``frontdesk`` package, relative to the working directory
    (``src`` in a checkout). Frontdesk's other dependencies need not be installed: a build
    environment holds only setuptools and mypy, so what mypy cannot find is typed Any."""
    from mypyc.build import mypycify

    package_dir = os.path.join(base, "frontdesk")
    paths = [_module_source(package_dir, m) for m in MODULES]
    return list(
        mypycify(
            ["--ignore-missing-imports", "--follow-imports=silent", *paths],
            opt_level=opt_level,
            group_name="frontdesk",
        )
    )


def describe() -> str:
    """One line: which build of the hot path this interpreter runs."""
    import importlib

    loaded = {m: str(importlib.import_module(m).__file__) for m in MODULES}
    native = [m for m, f in loaded.items() if not f.endswith(".py")]
    example = loaded["frontdesk.sip.message"]
    if not native:
        return f"pure Python (frontdesk.sip.message from {example})"
    kind = "compiled with mypyc" if len(native) == len(MODULES) else "PARTLY compiled"
    pure = sorted(set(MODULES) - set(native))
    rest = f"; pure: {', '.join(pure)}" if pure else ""
    return f"{kind}: {len(native)} of {len(MODULES)} modules (frontdesk.sip.message from {example}){rest}"
