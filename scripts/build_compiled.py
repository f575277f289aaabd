"""Build the mypyc-compiled SIP hot path in a directory of its own, for benchmarks and tests.

The build directory (default ``build/compiled``, ignored by git) holds a ``frontdesk``
package made of links to ``src/frontdesk`` plus the compiled modules
(``frontdesk.compiled.MODULES``) and a manifest of the sources they were built from. Put it
first on the path to run the compiled build; without it everything runs pure Python as
usual, and the source tree never receives a compiled file (other people work in the same
checkout)::

    python scripts/build_compiled.py                 # build (~1 min), or --if-stale
    PYTHONPATH=build/compiled python bench/bench_callpath.py
    PYTHONPATH=build/compiled python scripts/build_compiled.py --which   # which build runs

When a compiled module's source changes (or a file is added beside it), importing
``frontdesk`` from the build directory fails with the command to rebuild
(`frontdesk.compiled.check_build`). Needs mypy (the test extras), a C compiler and the
Python headers; says which one is missing otherwise (exit 3). Never touches ``src/``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "frontdesk"
DEFAULT_OUT = ROOT / "build" / "compiled"


def load_compiled_module() -> ModuleType:
    """src/frontdesk/compiled.py, loaded by path (importing ``frontdesk`` would check the
    build this script is about to replace)."""
    spec = importlib.util.spec_from_file_location("_frontdesk_compiled", SOURCE / "compiled.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def missing_toolchain() -> str | None:
    """Why mypyc cannot build here (None when it can): mypy, a C compiler, Python.h."""
    reason: str | None = load_compiled_module().missing_toolchain()
    return reason


def link_tree(source: Path, out: Path, real_dirs: set[str]) -> None:
    """``out/frontdesk``: a real directory for the package and for each subpackage in
    ``real_dirs`` (they receive the compiled files), links to ``source`` for the rest."""
    skip = {"__pycache__", "_compiled.json"}
    top = out / "frontdesk"
    top.mkdir(parents=True)
    for entry in sorted(source.iterdir()):
        if entry.name in skip or entry.suffix in (".so", ".pyd"):
            continue
        if entry.name in real_dirs:
            (top / entry.name).mkdir()
            for sub in sorted(entry.iterdir()):
                if sub.name not in skip and sub.suffix not in (".so", ".pyd"):
                    (top / entry.name / sub.name).symlink_to(sub)
        else:
            (top / entry.name).symlink_to(entry)


def build(out: Path, opt_level: str) -> None:
    compiled = load_compiled_module()
    work = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    link_tree(SOURCE, work, {m.split(".")[1] for m in compiled.MODULES})
    code = (  # frontdesk/compiled.py loaded by path, as here
        "import importlib.util as u; from setuptools import setup; "
        "s = u.spec_from_file_location('c', 'frontdesk/compiled.py'); "
        "c = u.module_from_spec(s); s.loader.exec_module(c); "
        f"setup(name='frontdesk-compiled', ext_modules=c.mypyc_extensions('.', "
        f"opt_level={opt_level!r}), script_args=['build_ext', '--inplace'])"
    )
    log = work / "build.log"
    started = time.monotonic()
    with log.open("wb") as f:
        done = subprocess.run([sys.executable, "-c", code], cwd=work, stdout=f, stderr=f)
    if done.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        raise SystemExit("mypyc build failed:\n" + "\n".join(tail) + f"\n(full log: {log})")
    for scratch in ("build", ".mypy_cache"):  # generated C, objects, mypy's cache: ~50 MB
        shutil.rmtree(work / scratch, ignore_errors=True)
    made = compiled.compiled_files(str(work / "frontdesk"))
    missing = sorted(set(compiled.MODULES) - set(made))
    if missing:
        raise SystemExit(f"mypyc produced no extension for {', '.join(missing)} (log: {log})")
    rel = os.path.relpath(out, ROOT)
    compiled.write_manifest(
        str(work / "frontdesk"),
        str(SOURCE),
        f"python scripts/build_compiled.py --out {rel}"
        if rel != "build/compiled"
        else "python scripts/build_compiled.py",
        f"leave {out} off PYTHONPATH",
        linked_tree=True,
    )
    if out.exists():
        old = out.with_name(f"{out.name}.old-{os.getpid()}")
        out.rename(old)
        work.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        work.rename(out)
    print(f"compiled {len(made)} modules in {time.monotonic() - started:.0f} s into {out}")


def up_to_date(out: Path) -> bool:
    compiled = load_compiled_module()
    package = out / "frontdesk"
    if set(compiled.compiled_files(str(package))) < set(compiled.MODULES):
        return False
    try:
        compiled.check_build(str(package))
    except compiled.StaleBuildError:
        return False
    return True


def which(expect: str | None) -> int:
    """Which build the interpreter runs with the current path (PYTHONPATH)."""
    from frontdesk.compiled import describe  # from the path: the build being asked about

    line = describe()
    print(f"frontdesk build: {line}")
    if expect is not None and line.startswith("compiled") != (expect == "compiled"):
        print(f"expected the {expect} build", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="build directory [build/compiled]"
    )
    ap.add_argument("--if-stale", action="store_true", help="build only when missing or stale")
    ap.add_argument("--opt-level", default="3", help="C optimisation level [3]")
    ap.add_argument("--which", action="store_true", help="print which build runs (PYTHONPATH)")
    ap.add_argument("--expect", choices=("compiled", "pure"), help="with --which: exit 1 otherwise")
    args = ap.parse_args(argv)
    if args.which:
        return which(args.expect)
    out = args.out.resolve()
    if args.if_stale and up_to_date(out):
        print(f"{out}: up to date")
        return 0
    reason = missing_toolchain()
    if reason is not None:
        print(f"cannot compile with mypyc: {reason}", file=sys.stderr)
        return 3
    build(out, args.opt_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
