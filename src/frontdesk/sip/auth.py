"""SIP digest authentication, sans-I/O (RFC 3261 §22, RFC 7616, RFC 8760).

For: parsing Authorization / WWW-Authenticate header *values* (and their Proxy- twins);
building challenges and verifying credentials against a stored HA1 (``DigestAuthenticator``);
answering challenges for trunks and tests (``build_authorization``).

Never: touch sockets, asyncio, a database or the wall clock (``now`` is a parameter, in
seconds); store or log a password (the PBX stores HA1 per algorithm, see ``compute_ha1``);
tell a peer whether a user exists.

Theory of operation (server side):
- Nonces are self-validating: base64url(issued_ms | salt | HMAC(secret, issued_ms | salt |
  realm)), so any instance holding the secret can check them and nothing is stored per
  challenge; the random salt keeps clients challenged in the same millisecond apart.
- ``verify`` checks realm, algorithm, qop and digest-uri, then the response (against a dummy
  HA1 for an unknown user: same work, same outward answer), then that the nonce and opaque
  are ours, then freshness and nonce-count. A correct response over an expired nonce, or
  over one we did not issue (e.g. before a secret change), gives ``stale=True``.
- With qop=auth the highest nc per nonce is remembered once the response is verified (a
  forger cannot poison it); a repeated or lower nc is REPLAY, answered stale so an honest
  phone that reordered requests just retries. Call ``verify`` once per server transaction,
  not per retransmission. The table is bounded: entries leave with their nonce, and when it
  is full the oldest is dropped and nonces issued no later than it are answered stale.
- Without qop (RFC 2069, old phones) there is no nc: the nonce is accepted until it expires
  (``accept_without_qop=False`` refuses such credentials).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import math
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from frontdesk.sip.auth_params import AuthParseError, digest_params, excerpt

_HASHES: dict[str, Callable[[bytes], hashlib._Hash]] = {
    "MD5": hashlib.md5,
    "SHA-256": hashlib.sha256,
}
SUPPORTED_ALGORITHMS: tuple[str, ...] = ("SHA-256", "MD5")
"""Algorithms we can compute, in the order challenges offer them (RFC 8760 §2.4)."""

_NC = re.compile(r"[0-9a-fA-F]{1,8}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{43}")


class AuthReason(enum.StrEnum):
    """Why ``DigestAuthenticator.verify`` accepted or refused credentials (for logs only).

    UNKNOWN_USER and BAD_RESPONSE must look the same to the peer: send the same 401.
    """

    OK = "ok"
    UNKNOWN_USER = "unknown-user"
    BAD_RESPONSE = "bad-response"
    STALE_NONCE = "stale-nonce"
    BAD_NONCE = "bad-nonce"
    BAD_OPAQUE = "bad-opaque"
    REPLAY = "replay"
    WRONG_REALM = "wrong-realm"
    UNSUPPORTED_ALGORITHM = "unsupported-algorithm"
    UNSUPPORTED_QOP = "unsupported-qop"
    URI_MISMATCH = "uri-mismatch"


@dataclass(frozen=True)
class AuthResult:
    """Outcome of one verification. ``stale`` means: re-challenge with ``stale=true``."""

    ok: bool
    reason: AuthReason
    username: str
    stale: bool = False
    algorithm: str | None = None

    @property
    def failed_attempt(self) -> bool:
        """True when this should count against the source (wrong password, forgery, ...)."""
        return not self.ok and not self.stale


@dataclass(frozen=True)
class DigestCredentials:
    """A parsed ``Digest`` Authorization / Proxy-Authorization value (strings unescaped)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def nonce_count(self) -> int | None:
        return int(self.nc, 16) if self.nc is not None else None


@dataclass(frozen=True)
class DigestChallenge:
    """A parsed ``Digest`` WWW-Authenticate / Proxy-Authenticate value."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop_options: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    extra: tuple[tuple[str, str], ...] = ()


def _canonical_algorithm(name: str) -> str:
    upper = name.upper()
    return upper if upper in _HASHES else name


def _h(algorithm: str, text: str) -> str:
    return _HASHES[algorithm](text.encode("utf-8", "surrogatepass")).hexdigest()


def _supported(algorithm: str) -> str:
    algo = _canonical_algorithm(algorithm)
    if algo not in _HASHES:
        raise ValueError(
            f"digest algorithm {algorithm!r} is not supported; use one of {SUPPORTED_ALGORITHMS}"
        )
    return algo


def compute_ha1(username: str, realm: str, password: str, algorithm: str) -> str:
    """HA1 = H(username:realm:password), lowercase hex; what the PBX stores per algorithm."""
    return _h(_supported(algorithm), f"{username}:{realm}:{password}")


def compute_response(
    ha1: str,
    method: str,
    uri: str,
    nonce: str,
    algorithm: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
) -> str:
    """The request-digest (RFC 7616 §3.4.1); without qop the RFC 2069 form H(HA1:nonce:HA2)."""
    algo = _supported(algorithm)
    ha2 = _h(algo, f"{method}:{uri}")
    if qop is None:
        return _h(algo, f"{ha1}:{nonce}:{ha2}")
    if nc is None or cnonce is None:
        raise ValueError("qop needs both nc and cnonce to compute a digest response")
    return _h(algo, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def _require(params: dict[str, str], names: Sequence[str], what: str) -> None:
    for name in names:
        if name not in params:
            raise AuthParseError(f'Digest {what} lacks "{name}"; it must carry {", ".join(names)}')


_CREDENTIAL_FIELDS = ("username", "realm", "nonce", "uri", "response")
_CREDENTIAL_KNOWN = frozenset((*_CREDENTIAL_FIELDS, "algorithm", "qop", "nc", "cnonce", "opaque"))


def parse_credentials(value: str) -> DigestCredentials | None:
    """Parse an Authorization / Proxy-Authorization value.

    Returns None for a scheme other than Digest (answer with a fresh challenge); raises
    AuthParseError for a malformed value.
    """
    params = digest_params(value)
    if params is None:
        return None
    _require(params, _CREDENTIAL_FIELDS, "credentials")
    qop = params.get("qop")
    nc = params.get("nc")
    if qop is not None:
        qop = qop.lower()
        _require(params, ("nc", "cnonce"), "credentials with qop")
    if nc is not None and not _NC.fullmatch(nc):
        raise AuthParseError(f"nonce count nc={nc!r} must be 1 to 8 hexadecimal digits")
    return DigestCredentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"],
        algorithm=_canonical_algorithm(params.get("algorithm", "MD5")),
        qop=qop,
        nc=nc if qop is not None else None,
        cnonce=params.get("cnonce") if qop is not None else None,
        opaque=params.get("opaque"),
        extra=tuple((k, v) for k, v in params.items() if k not in _CREDENTIAL_KNOWN),
    )


_CHALLENGE_KNOWN = frozenset(("realm", "nonce", "algorithm", "qop", "opaque", "stale"))


def parse_challenge(value: str) -> DigestChallenge | None:
    """Parse a WWW-Authenticate / Proxy-Authenticate value; None for a non-Digest scheme."""
    params = digest_params(value)
    if params is None:
        return None
    _require(params, ("realm", "nonce"), "challenge")
    qop_text = params.get("qop", "")
    return DigestChallenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=_canonical_algorithm(params.get("algorithm", "MD5")),
        qop_options=tuple(q.strip(' \t').lower() for q in qop_text.split(",") if q.strip(' \t')),
        opaque=params.get("opaque"),
        stale=params.get("stale", "false").lower() == "true",
        extra=tuple((k, v) for k, v in params.items() if k not in _CHALLENGE_KNOWN),
    )


def _quote(text: str) -> str:
    if "\r" in text or "\n" in text:
        raise ValueError(f"cannot put a line break into a SIP header parameter: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_authorization(
    challenge_value: str,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int = 1,
) -> str:
    """Answer a WWW-Authenticate / Proxy-Authenticate value with an Authorization value.

    Uses qop=auth when the challenge offers it, the RFC 2069 form when it offers no qop.
    Raises AuthParseError when the challenge cannot be answered (not Digest, an algorithm
    or qop we do not implement).
    """
    challenge = parse_challenge(challenge_value)
    if challenge is None:
        raise AuthParseError(
            f"cannot answer {excerpt(challenge_value, 0)}: only the Digest scheme is supported"
        )
    if challenge.algorithm not in _HASHES:
        raise AuthParseError(
            f"realm {challenge.realm!r} asks for digest algorithm {challenge.algorithm!r}; "
            f"supported: {', '.join(SUPPORTED_ALGORITHMS)}"
        )
    if not 1 <= nc <= 0xFFFFFFFF:
        raise ValueError(f"nonce count {nc} out of range 1..0xFFFFFFFF")
    qop: str | None = None
    if challenge.qop_options:
        if "auth" not in challenge.qop_options:
            raise AuthParseError(
                f"realm {challenge.realm!r} offers qop {challenge.qop_options}; "
                'only qop "auth" is supported'
            )
        qop = "auth"
    nc_text = f"{nc:08x}"
    ha1 = compute_ha1(username, challenge.realm, password, challenge.algorithm)
    response = compute_response(
        ha1, method, uri, challenge.nonce, challenge.algorithm, qop, nc_text, cnonce
    )
    quoted = {"username": username, "realm": challenge.realm, "nonce": challenge.nonce}
    quoted |= {"uri": uri, "response": response}
    parts = [f"{name}={_quote(text)}" for name, text in quoted.items()]
    parts.append(f"algorithm={challenge.algorithm}")
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if qop is not None:
        parts += [f"qop={qop}", f"nc={nc_text}", f"cnonce={_quote(cnonce)}"]
    return "Digest " + ", ".join(parts)


@dataclass
class _NonceUse:
    issued_ms: int
    highest_nc: int


class DigestAuthenticator:
    """Issues Digest challenges and verifies credentials; one per PBX or per realm.

    ``secret`` must be shared by every instance that may see the answer to a challenge.
    ``random_bytes`` is injectable so tests can be deterministic. Interop: baresip 1.0.0 and
    SIPp 3.6.1 give up when SHA-256 is offered first; use ``algorithms=("MD5",)`` for them.
    """

    def __init__(
        self,
        secret: bytes,
        *,
        nonce_lifetime: float = 300.0,
        algorithms: Sequence[str] = SUPPORTED_ALGORITHMS,
        accept_without_qop: bool = True,
        max_clock_skew: float = 30.0,
        max_tracked_nonces: int = 65536,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the digest nonce secret must be at least 16 random bytes")
        if not (nonce_lifetime > 0 and max_clock_skew >= 0 and max_tracked_nonces >= 1):
            raise ValueError(
                "need nonce_lifetime > 0, max_clock_skew >= 0, max_tracked_nonces >= 1"
            )
        chosen = tuple(_supported(a) for a in algorithms)
        if not chosen:
            raise ValueError(f"choose one or more digest algorithms of {SUPPORTED_ALGORITHMS}")
        self._secret = secret
        self._lifetime_ms = math.ceil(nonce_lifetime * 1000)
        self._skew_ms = math.ceil(max_clock_skew * 1000)
        self.algorithms = chosen
        self.accept_without_qop = accept_without_qop
        self._max_tracked = max_tracked_nonces
        self._random_bytes = random_bytes
        self._uses: OrderedDict[str, _NonceUse] = OrderedDict()
        self._dropped_up_to_ms = -(2**63)  # issue time of the newest nonce dropped for room
        # Stand-ins for unknown users: same length and cost as a stored HA1.
        self._dummy_ha1 = {a: _h(a, f"unknown-user:{secret.hex()}") for a in _HASHES}

    @property
    def tracked_nonces(self) -> int:
        return len(self._uses)

    def _mac(self, stamp_and_salt: bytes, realm: str) -> bytes:
        data = (
            b"frontdesk-digest-nonce\x00" + stamp_and_salt + realm.encode("utf-8", "surrogatepass")
        )
        return hmac.new(self._secret, data, hashlib.sha256).digest()[:16]

    def opaque_for(self, realm: str) -> str:
        data = b"frontdesk-digest-opaque\x00" + realm.encode("utf-8", "surrogatepass")
        return hmac.new(self._secret, data, hashlib.sha256).hexdigest()[:32]

    def make_nonce(self, realm: str, now: float) -> str:
        """A fresh nonce for realm, authenticated by the secret, with its issue time inside."""
        stamp_and_salt = _to_ms(now).to_bytes(8, "big", signed=True) + self._random_bytes(8)
        raw = stamp_and_salt + self._mac(stamp_and_salt, realm)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def _open_nonce(self, nonce: str, realm: str) -> int | None:
        """The issue time (ms) of an authentic nonce for realm; None if forged or garbled."""
        if not _NONCE.fullmatch(nonce):
            return None
        raw = base64.urlsafe_b64decode(nonce + "=")
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != nonce:
            return None  # non-canonical spelling of the same bytes
        if not hmac.compare_digest(raw[16:], self._mac(raw[:16], realm)):
            return None
        return int.from_bytes(raw[:8], "big", signed=True)

    def challenge(self, realm: str, now: float, stale: bool = False) -> list[str]:
        """One WWW-Authenticate / Proxy-Authenticate value per algorithm, strongest first."""
        nonce, opaque = _quote(self.make_nonce(realm, now)), _quote(self.opaque_for(realm))
        common = f"realm={_quote(realm)}, nonce={nonce}, opaque={opaque}"
        tail = ', qop="auth"' + (", stale=true" if stale else "")
        return [f"Digest {common}, algorithm={algo}{tail}" for algo in self.algorithms]

    def verify(
        self,
        credentials: DigestCredentials,
        method: str,
        realm: str,
        now: float,
        lookup_ha1: Callable[[str, str], str | None],
        *,
        request_uri: str | None = None,
    ) -> AuthResult:
        """Check credentials for a request; see the module docstring for the order of checks.

        lookup_ha1(username, algorithm) returns the stored HA1 or None for an unknown user.
        Pass request_uri to require that the digest-uri is the request's URI (same string).
        """
        creds = credentials
        algo = creds.algorithm

        def refuse(reason: AuthReason, stale: bool = False) -> AuthResult:
            return AuthResult(reason is AuthReason.OK, reason, creds.username, stale, algo)

        if creds.realm != realm:
            return refuse(AuthReason.WRONG_REALM)
        if algo not in self.algorithms:
            return refuse(AuthReason.UNSUPPORTED_ALGORITHM)
        if creds.qop not in ("auth", None) or (creds.qop is None and not self.accept_without_qop):
            return refuse(AuthReason.UNSUPPORTED_QOP)
        if request_uri is not None and creds.uri != request_uri:
            return refuse(AuthReason.URI_MISMATCH)
        now_ms = _to_ms(now)
        issued_ms = self._open_nonce(creds.nonce, realm)
        if issued_ms is None or issued_ms - now_ms > self._skew_ms:
            not_ours: AuthReason | None = AuthReason.BAD_NONCE
        elif creds.opaque is not None and not hmac.compare_digest(
            creds.opaque.encode("utf-8", "surrogatepass"), self.opaque_for(realm).encode()
        ):
            not_ours = AuthReason.BAD_OPAQUE
        else:
            not_ours = None
        known, matches = self._digest_matches(creds, method, lookup_ha1)
        if not_ours is not None or issued_ms is None:
            # Not our challenge (forged, or from before a secret change): stale only when the
            # digest is right, so a phone re-registers after a restart without counting as a
            # failure, while a guess still fails (RFC 7616 §3.3, "stale").
            return refuse(not_ours or AuthReason.BAD_NONCE, stale=known and matches)
        if not known:
            return refuse(AuthReason.UNKNOWN_USER)
        if not matches:
            return refuse(AuthReason.BAD_RESPONSE)
        self._forget_expired(now_ms)
        if now_ms - issued_ms > self._lifetime_ms:
            return refuse(AuthReason.STALE_NONCE, stale=True)
        if creds.qop is not None:
            return refuse(*self._check_nonce_count(creds, issued_ms))
        return refuse(AuthReason.OK)

    def _digest_matches(
        self, creds: DigestCredentials, method: str, lookup_ha1: Callable[[str, str], str | None]
    ) -> tuple[bool, bool]:
        """(user known, response right); an unknown user costs the same, against a dummy HA1."""
        stored = lookup_ha1(creds.username, creds.algorithm)
        ha1 = stored.lower() if stored is not None else self._dummy_ha1[creds.algorithm]
        expected = compute_response(
            ha1, method, creds.uri, creds.nonce, creds.algorithm, creds.qop, creds.nc, creds.cnonce
        )
        matches = hmac.compare_digest(
            expected.encode("ascii"), creds.response.lower().encode("utf-8", "surrogatepass")
        )
        return stored is not None, matches

    def _check_nonce_count(
        self, creds: DigestCredentials, issued_ms: int
    ) -> tuple[AuthReason, bool]:
        """(reason, stale) for a verified qop=auth request; records its nc when accepted."""
        nc = creds.nonce_count or 0
        use = self._uses.get(creds.nonce)
        if use is None and issued_ms <= self._dropped_up_to_ms:
            # Its history may have been dropped for room: make the phone fetch a new one.
            return AuthReason.STALE_NONCE, True
        if nc <= (use.highest_nc if use is not None else 0):
            # The response was right, so this is a replay or a reordered request: a fresh
            # nonce (stale=true) lets an honest phone retry and tells an attacker nothing.
            return AuthReason.REPLAY, True
        if use is None:
            self._remember(creds.nonce, _NonceUse(issued_ms, nc))
        else:
            use.highest_nc = nc
        return AuthReason.OK, False

    def _remember(self, nonce: str, use: _NonceUse) -> None:
        self._uses[nonce] = use
        while len(self._uses) > self._max_tracked:
            _, dropped = self._uses.popitem(last=False)
            self._dropped_up_to_ms = max(self._dropped_up_to_ms, dropped.issued_ms)

    def _forget_expired(self, now_ms: int) -> None:
        """Drop nonce-count entries whose nonce has expired (oldest first, amortised O(1))."""
        while self._uses:
            use = next(iter(self._uses.values()))
            if use.issued_ms + self._lifetime_ms >= now_ms:
                return
            self._uses.popitem(last=False)


def _to_ms(now: float) -> int:
    if not math.isfinite(now):
        raise ValueError(f"now must be a finite number of seconds, got {now!r}")
    return math.floor(now * 1000)
