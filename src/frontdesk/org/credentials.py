"""API credentials: argon2 password hashes and bearer tokens.

Passwords for the API are hashed with argon2id (argon2-cffi defaults); SIP device logins
are not handled here (they need digest HA1s, see ``store.repo``). A bearer token is
``fdt_`` + 43 URL-safe characters (256 random bits); only its SHA-256 is stored, which
is enough for a secret of that strength and lets a request be matched with one indexed
lookup.

This module must never store or log a password or a token; it hands the plain token back
exactly once, to the caller that made it.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from frontdesk.org.model import ApiToken
from frontdesk.store.models import User

TOKEN_PREFIX = "fdt_"
MIN_PASSWORD_LENGTH = 8
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so timing does not tell.
    Made on first use: hashing costs ~0.4 s, which every CLI command would pay at import."""
    return _hasher.hash("frontdesk-no-such-user")


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (what ``users.password_hash`` holds)."""
    return _hasher.hash(password)


def check_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches ``password_hash`` (always False for None)."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    """Why ``password`` is not acceptable, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"it has {len(password)} characters; use at least {MIN_PASSWORD_LENGTH}"
    if len(password) > 1024 or "\x00" in password:
        return "use at most 1024 characters and no NUL"
    return None


def new_token() -> tuple[str, str]:
    """A fresh bearer token and the hash to store: ``(token, token_hash)``."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    """SHA-256 hex of a bearer token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenOwner:
    """Who a valid token belongs to."""

    token_id: int
    user: User


def user_for_token(session: Session, token: str, now: datetime) -> TokenOwner | None:
    """The user a bearer token authenticates at ``now``, or None (unknown, expired, revoked)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    user = session.get(User, row.user_id)
    return TokenOwner(row.id, user) if user is not None else None
