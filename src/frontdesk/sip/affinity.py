"""Which SIP worker process owns a REGISTER: one process per address-of-record.

With ``frontdesk serve --sip-workers N`` the main process (index 0) reads the network and
N - 1 worker processes (1 .. N-1) handle the REGISTERs. Every REGISTER for one
address-of-record must be handled by the same worker, so that its bindings, CSeq order,
contact limit and digest nonce counts live in one place. The owner of extension ``user`` in
tenant ``tenant_id`` is ``1 + blake2b(b"tenant_id|user") % (N - 1)`` (the same number in every
process, unlike ``hash()``; not CRC-32, whose linearity gives the same low bit to "1|101" and
"2|101"); the tenant is found from the To URI's host by the caller (a SIP domain, or the
server's address). The main process owns none while its workers run: it has the network,
the calls and the API to serve, and a stall there would drop datagrams for everybody.

`register_target` reads the To URI's user and host straight from the bytes of a datagram,
without the parser, so a process can hand a REGISTER it does not own to its owner for a few
microseconds. It agrees with the parser for the plain form phones send; when it does not
(escaped characters, unusual spacing) the owner found from the parsed URI is the one that
counts. This module never does I/O.
"""

from __future__ import annotations

import hashlib
import re

# the To header of a request (full or compact name), then the first sip:/sips: URI in it
_TO_RE = re.compile(rb"\n(?:to|t)[ \t]*:([^\r\n]*)", re.IGNORECASE)
_URI_RE = re.compile(rb"sips?:(?:([^@>;:?\s]*)@)?([^>;:?\s]+)", re.IGNORECASE)


def register_target(data: bytes) -> tuple[str, str] | None:
    """(user, host lower-cased) of a REGISTER datagram's To URI, or None when ``data`` is not a REGISTER
    request or its To URI cannot be read this quickly (the parser then decides)."""
    if not data.startswith(b"REGISTER "):
        return None
    end = data.find(b"\r\n\r\n")
    head = data if end < 0 else data[:end]
    to = _TO_RE.search(head)
    if to is None:
        return None
    uri = _URI_RE.search(to.group(1))
    if uri is None:
        return None
    user = (uri.group(1) or b"").decode("utf-8", "surrogateescape")
    return user, uri.group(2).lower().decode("utf-8", "surrogateescape")


def owner(tenant_id: int, user: str, processes: int) -> int:
    """The index of the worker process (1 .. processes-1) that owns extension ``user`` of
    tenant ``tenant_id``; 0 (the main process) when there is no worker."""
    if processes <= 1:
        return 0
    memo_key = (tenant_id, user, processes)
    found = _memo.get(memo_key)
    if found is None:
        if len(_memo) >= _MEMO_SIZE:  # bounded: REGISTERs for many unknown users
            _memo.clear()
        key = f"{tenant_id}|{user}".encode("utf-8", "surrogateescape")
        digest = hashlib.blake2b(key, digest_size=4).digest()
        found = _memo[memo_key] = 1 + int.from_bytes(digest, "big") % (processes - 1)
    return found


# every REGISTER asks twice (raw bytes, then parsed): remember the answers
_MEMO_SIZE = 100_000
_memo: dict[tuple[int, str, int], int] = {}
