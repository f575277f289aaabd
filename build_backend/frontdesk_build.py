"""Frontdesk's PEP 517 build backend: setuptools' own, plus mypy as a build requirement when
FRONTDESK_COMPILE asks for the mypyc build (setup.py) and it can happen here. A pure-Python
build never downloads mypy. (An in-tree wrapper, as setuptools documents for dynamic build
requirements.)
"""

from __future__ import annotations

import importlib.util
import os

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (every hook setuptools provides)

MYPY = "mypy>=2.4"  # the mypyc Frontdesk's compiled build was tested with


def _compile_requirements() -> list[str]:
    value = os.environ.get("FRONTDESK_COMPILE", "0").strip().lower()
    if value in ("", "0", "no", "false", "off"):
        return []
    if value == "auto":  # no compiler or headers: setup.py installs pure Python, no mypy needed
        spec = importlib.util.spec_from_file_location(
            "_frontdesk_compiled", "src/frontdesk/compiled.py"
        )
        assert spec is not None and spec.loader is not None
        compiled = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(compiled)
        if compiled.missing_toolchain(need_mypy=False) is not None:
            return []
    return [MYPY]


def get_requires_for_build_wheel(config_settings=None):  # type: ignore[no-untyped-def]
    return [*_setuptools.get_requires_for_build_wheel(config_settings), *_compile_requirements()]


def get_requires_for_build_editable(config_settings=None):  # type: ignore[no-untyped-def]
    return [*_setuptools.get_requires_for_build_editable(config_settings), *_compile_requirements()]
