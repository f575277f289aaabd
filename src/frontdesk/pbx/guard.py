"""Brute-force and scanner guard: block a source address after repeated failed authentications.

For: the registrar and the INVITE/other request authenticator tell it about every failed and
successful digest verification (``AuthResult.failed_attempt``); it answers whether a source is
blocked. The caller drops a blocked source's requests silently, so a scanner learns nothing.

Never: do I/O, read the clock (``now`` is a parameter, in seconds, from one monotonic clock),
or exempt any address by itself; loopback is exempt only when configured in ``exempt``.

Policy: ``max_failures`` failures within a sliding ``window`` block the source for
``block_for`` seconds; afterwards it starts from a clean slate. A success does *not* erase
failures: otherwise an attacker holding one valid account could interleave logins and keep
guessing other passwords. Successes are remembered only to explain a block (a shared office
address where one phone has a wrong password). IPv6 sources are grouped per /64 by default,
since one host can use a whole /64.

Memory is bounded: failure histories hold at most ``max_failures`` timestamps, expire after
``window``, and at most ``max_sources`` sources (and blocks) are tracked, oldest dropped first.
Over UDP a source address can be forged, so a flood of forged failures can block a real
office: list such offices in ``exempt``.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_V = TypeVar("_V")
_MEMO_SIZE = 4096  # remembered source addresses (source_key, is_exempt)


@dataclass(frozen=True)
class SourceBlocked:
    """A source that is (or was) blocked; ``describe()`` is the log line."""

    source: str
    blocked_at: float
    blocked_until: float
    failures: int
    window: float
    last_success_at: float | None = None

    def describe(self) -> str:
        text = (
            f"blocking {self.source} for {self.blocked_until - self.blocked_at:g} s after "
            f"{self.failures} failed authentications in {self.window:g} s"
        )
        if self.last_success_at is not None:
            ago = self.blocked_at - self.last_success_at
            text += (
                f"; the same address authenticated successfully {ago:g} s before, so this is "
                "probably one phone with a wrong password behind a shared address: correct "
                "that phone's password, or add the address to the guard's exempt list"
            )
        return text


class AuthFailureGuard:
    """Counts failed authentications per source and blocks sources that fail too often."""

    def __init__(
        self,
        max_failures: int = 10,
        window: float = 60.0,
        block_for: float = 600.0,
        *,
        exempt: frozenset[str] = frozenset(),
        max_sources: int = 100_000,
        ipv6_prefix_len: int = 64,
    ) -> None:
        if max_failures < 1 or not window > 0 or not block_for > 0 or max_sources < 1:
            raise ValueError(
                "auth failure guard: need max_failures >= 1, window > 0, block_for > 0 and "
                f"max_sources >= 1 (got {max_failures}, {window}, {block_for}, {max_sources})"
            )
        if not 0 <= ipv6_prefix_len <= 128:
            raise ValueError(f"ipv6_prefix_len {ipv6_prefix_len} must be between 0 and 128")
        self.max_failures = max_failures
        self.window = window
        self.block_for = block_for
        self.max_sources = max_sources
        self.ipv6_prefix_len = ipv6_prefix_len
        self._exempt = _parse_exempt(exempt)
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._successes: OrderedDict[str, float] = OrderedDict()
        self._blocks: OrderedDict[str, SourceBlocked] = OrderedDict()
        # address parsing costs more than the rest of a successful digest check: remember
        # the answers per source address (both depend only on settings fixed at start)
        self._keys: dict[str, str] = {}
        self._exempt_memo: dict[str, bool] = {}
        # several SIP processes (serve --sip-workers): a worker reports each failure to the
        # main process, whose guard counts them all and tells the workers about each block
        self.on_failure: Callable[[str, float], None] | None = None
        self.on_block: Callable[[SourceBlocked], None] | None = None

    # ---- queries

    def source_key(self, source_ip: str) -> str:
        """The key a source is counted under: the normalised address, or its IPv6 prefix."""
        key = self._keys.get(source_ip)
        if key is None:
            if len(self._keys) >= _MEMO_SIZE:  # bounded: a scan from many addresses
                self._keys.clear()
            key = self._keys[source_ip] = self._source_key(source_ip)
        return key

    def _source_key(self, source_ip: str) -> str:
        try:
            addr = ipaddress.ip_address(source_ip.strip("[]"))
        except ValueError:
            return source_ip
        if isinstance(addr, ipaddress.IPv6Address):
            if addr.ipv4_mapped is not None:
                return str(addr.ipv4_mapped)
            plain = ipaddress.IPv6Address(int(addr))  # without a %zone
            if self.ipv6_prefix_len < 128:
                return str(ipaddress.IPv6Network((plain, self.ipv6_prefix_len), strict=False))
            return str(plain)
        return str(addr)

    def is_exempt(self, source_ip: str) -> bool:
        exempt = self._exempt_memo.get(source_ip)
        if exempt is None:
            if len(self._exempt_memo) >= _MEMO_SIZE:
                self._exempt_memo.clear()
            exempt = self._exempt_memo[source_ip] = self._is_exempt(source_ip)
        return exempt

    def _is_exempt(self, source_ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(source_ip.strip("[]"))
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address):
            addr = addr.ipv4_mapped or ipaddress.IPv6Address(int(addr))
        return any(addr in net for net in self._exempt)

    def block_of(self, source_ip: str, now: float) -> SourceBlocked | None:
        """The block currently in force for this source, if any."""
        if self.is_exempt(source_ip):
            return None
        self._expire(now)
        block = self._blocks.get(self.source_key(source_ip))
        if block is None or block.blocked_until <= now:
            return None
        return block

    def is_blocked(self, source_ip: str, now: float) -> bool:
        if not self._blocks:  # the hot path: nobody is blocked, no address parsing
            self._expire(now)  # cheap: looks at the oldest entries only
            return False
        return self.block_of(source_ip, now) is not None

    def blocked_sources(self, now: float) -> list[SourceBlocked]:
        """Blocks in force at ``now``, soonest to end first (for status pages and the CLI)."""
        self._expire(now)
        active = [b for b in self._blocks.values() if b.blocked_until > now]
        return sorted(active, key=lambda b: b.blocked_until)

    @property
    def tracked_sources(self) -> int:
        """How many sources have failure histories, successes or blocks held in memory."""
        return len(self._failures.keys() | self._successes.keys() | self._blocks.keys())

    # ---- updates

    def record_failure(self, source_ip: str, now: float) -> bool:
        """Count one failed authentication; True when this failure starts a block.

        Returns False for exempt sources and for sources already blocked (their requests
        should have been dropped before authentication).
        """
        if self.is_exempt(source_ip) or self.is_blocked(source_ip, now):
            return False
        if self.on_failure is not None:
            self.on_failure(source_ip, now)
        key = self.source_key(source_ip)
        history = self._failures.pop(key, None)
        if history is None:
            history = deque(maxlen=self.max_failures)
        history.append(now)
        if len(history) < self.max_failures or now - history[0] > self.window:
            self._failures[key] = history  # re-inserted last: most recently active
            _drop_oldest(self._failures, self.max_sources)
            return False
        self._blocks.pop(key, None)  # an expired block still listed: keep the table in order
        self._blocks[key] = SourceBlocked(
            source=key,
            blocked_at=now,
            blocked_until=now + self.block_for,
            failures=len(history),
            window=self.window,
            last_success_at=self._successes.get(key),
        )
        _drop_oldest(self._blocks, self.max_sources)
        if self.on_block is not None:
            self.on_block(self._blocks[key])
        return True

    def impose(self, source: str, seconds: float, now: float) -> None:
        """Block ``source`` (a source key) for ``seconds``: a block another process's guard
        decided (serve --sip-workers)."""
        self._failures.pop(source, None)
        self._blocks.pop(source, None)
        self._blocks[source] = SourceBlocked(
            source=source, blocked_at=now, blocked_until=now + seconds,
            failures=self.max_failures, window=self.window,
            last_success_at=self._successes.get(source),
        )
        _drop_oldest(self._blocks, self.max_sources)

    def record_success(self, source_ip: str, now: float) -> None:
        """Note a successful authentication (kept only to explain a later block)."""
        if self.is_exempt(source_ip):
            return
        self._expire(now)
        key = self.source_key(source_ip)
        self._successes.pop(key, None)
        self._successes[key] = now
        _drop_oldest(self._successes, self.max_sources)

    # ---- memory

    def _expire(self, now: float) -> None:
        """Forget what can no longer matter; each table is ordered oldest first."""
        while self._failures:
            key, history = next(iter(self._failures.items()))
            if now - history[-1] <= self.window:
                break
            del self._failures[key]
        while self._blocks:
            key, block = next(iter(self._blocks.items()))
            if block.blocked_until > now:
                break
            del self._blocks[key]
        horizon = max(self.window, self.block_for)
        while self._successes:
            key, at = next(iter(self._successes.items()))
            if now - at <= horizon:
                break
            del self._successes[key]


def _drop_oldest(table: OrderedDict[str, _V], cap: int) -> None:
    while len(table) > cap:
        table.popitem(last=False)


def _parse_exempt(exempt: frozenset[str]) -> tuple[IPNetwork, ...]:
    """Exempt entries as networks: "127.0.0.1", "::1", "192.0.2.0/24" are all accepted."""
    networks: list[IPNetwork] = []
    for entry in sorted(exempt):
        try:
            networks.append(ipaddress.ip_network(entry.strip().strip("[]"), strict=False))
        except ValueError:
            raise ValueError(
                f"auth failure guard: exempt entry {entry!r} is not an IP address or network; "
                "write e.g. 127.0.0.1, ::1 or 192.0.2.0/24"
            ) from None
    return tuple(networks)
