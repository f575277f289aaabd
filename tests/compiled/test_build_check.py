"""`frontdesk.compiled.check_build`: a compiled module never silently shadows a newer source.

Pure Python and fast: the package directories hold empty stand-ins for extension files
(the check only lists and hashes files, it never imports them). The real build is tested in
test_mypyc_build.py.
"""

from __future__ import annotations

import json
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from frontdesk import compiled
from frontdesk.compiled import MANIFEST, StaleBuildError, check_build, write_manifest

EXT = EXTENSION_SUFFIXES[0]  # e.g. .cpython-311-x86_64-linux-gnu.so


def make_package(root: Path) -> Path:
    """A ``frontdesk`` directory with the sources of `compiled.MODULES` (one line each)."""
    package = root / "frontdesk"
    for module in compiled.MODULES:
        path = package.joinpath(*module.split(".")[1:]).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"NAME = {module!r}\n")
    (package / "__init__.py").write_text("")
    return package


def compile_stand_ins(package: Path) -> None:
    for module in compiled.MODULES:
        package.joinpath(*module.split(".")[1:-1], module.rsplit(".", 1)[1] + EXT).touch()


def test_pure_python_passes_without_a_manifest(tmp_path: Path) -> None:
    check_build(str(make_package(tmp_path)))


def test_a_build_matching_its_sources_passes(tmp_path: Path) -> None:
    package = make_package(tmp_path)
    compile_stand_ins(package)
    write_manifest(str(package), str(package), "rebuild-command", "go-pure")
    check_build(str(package))
    recorded = json.loads((package / MANIFEST).read_text())["modules"]
    assert sorted(recorded) == sorted(compiled.MODULES)


def test_a_changed_source_is_refused_with_the_rebuild_command(tmp_path: Path) -> None:
    package = make_package(tmp_path)
    compile_stand_ins(package)
    write_manifest(
        str(package), str(package), "python scripts/build_compiled.py", "leave it off PYTHONPATH"
    )
    (package / "sip" / "headers.py").write_text("NAME = 'edited'\n")
    with pytest.raises(StaleBuildError) as caught:
        check_build(str(package))
    text = str(caught.value)
    assert (
        f"frontdesk.sip.headers: {package / 'sip' / 'headers.py'} changed since it was compiled"
        in text
    )
    assert "Rebuild them with `python scripts/build_compiled.py`" in text
    assert "for pure Python instead, leave it off PYTHONPATH" in text
    assert "frontdesk.sip.message" not in text  # only the changed one


def test_a_compiled_module_missing_from_the_manifest_is_refused(tmp_path: Path) -> None:
    package = make_package(tmp_path)
    compile_stand_ins(package)  # no manifest: e.g. mypyc run by hand in the source tree
    with pytest.raises(StaleBuildError, match=r"frontdesk.sip.message: .* is not in ") as caught:
        check_build(str(package))
    assert str(package / "sip" / f"headers{EXT}") in str(caught.value)  # what to delete


def test_an_extension_without_a_source_beside_it_shadows_nothing(tmp_path: Path) -> None:
    package = make_package(tmp_path)
    (package / "sip" / f"affinity{EXT}").touch()
    check_build(str(package))


def test_a_linked_build_refuses_a_file_added_to_the_sources_since(tmp_path: Path) -> None:
    source = make_package(tmp_path / "src")
    built = make_package(tmp_path / "build")
    compile_stand_ins(built)
    write_manifest(str(built), str(source), "rebuild", "go-pure", linked_tree=True)
    check_build(str(built))
    (source / "pbx" / "new_feature.py").write_text("")
    with pytest.raises(StaleBuildError, match=r"new_feature\.py is new since the build"):
        check_build(str(built))
