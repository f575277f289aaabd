"""Frontdesk: an open-source business phone system and contact center."""

__version__ = "0.1.0"
