"""Frontdesk: an open-source business phone system and contact center."""

from frontdesk.compiled import check_build as _check_build

__version__ = "0.1.0"

_check_build()  # a compiled (mypyc) module must never shadow a newer source beside it
