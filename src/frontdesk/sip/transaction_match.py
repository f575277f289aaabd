"""How a message finds its transaction, and the few messages the layer builds itself.

* `TopVia`: the top Via value read with string operations only (the parser has already
  validated every Via; unusual spellings fall back to `Via.parse`).
* Keys: a request matches a server transaction by (branch, sent-by, method) with ACK
  counted as INVITE (RFC 3261 §17.2.3); without a magic-cookie branch (RFC 2543 peers,
  RFC 4475 §3.2.1 "badbranch") by (Request-URI, From tag, Call-ID, CSeq number, method, top
  Via), the To tag checked after the lookup. A response matches a client transaction by
  (branch, CSeq method) (§17.1.3).
* `rewrite_top_via`: RFC 3261 §18.2.1 ``received`` and RFC 3581 ``rport`` on the top Via.
* `make_non2xx_ack` (§17.1.1.3), `make_cancel` (§9.1), `new_branch`, `new_tag`.

This module never does I/O and never reads a clock.
"""

from __future__ import annotations

import secrets

from frontdesk.sip.errors import LocalProtocolError, RemoteProtocolError, SipParseError
from frontdesk.sip.headers import MAGIC_COOKIE, Headers, Via, split_list
from frontdesk.sip.message import Message, Request, Response
from frontdesk.sip.peer import Peer
from frontdesk.sip.uri import NameAddr, parse_params

_LWS = (" ", "\t")


class _RandomPool:
    """Cryptographically random 64-bit hex tokens, drawn from the OS 512 at a time so the
    hot path does not make one getrandom() system call per tag or branch."""

    __slots__ = ("_tokens",)

    def __init__(self) -> None:
        self._tokens: list[str] = []

    def take(self) -> str:
        if not self._tokens:
            raw = secrets.token_hex(8 * 512)
            self._tokens = [raw[i : i + 16] for i in range(0, len(raw), 16)]
        return self._tokens.pop()


_pool = _RandomPool()


def new_branch() -> str:
    """A fresh RFC 3261 branch: the magic cookie and 64 random bits."""
    return MAGIC_COOKIE + _pool.take()


def new_tag() -> str:
    """A fresh From/To tag (64 cryptographically random bits, RFC 3261 §19.3)."""
    return _pool.take()


class TopVia:
    """The parts of the top Via value the transaction layer reads."""

    __slots__ = ("branch", "host", "params", "sent_by", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        head, semi, ptext = text.partition(";")
        parts = head.split()
        if len(parts) == 2 and parts[0].count("/") == 2:
            sent_by = parts[1].lower()
        else:  # LWS inside the protocol or around ':' — let the full grammar decide
            via = Via.parse(text)
            port = f":{via.port}" if via.port is not None else ""
            sent_by = f"{via.host}{port}".lower()
        self.sent_by = sent_by
        if sent_by.startswith("["):
            self.host = sent_by[: sent_by.find("]") + 1]
        else:
            self.host = sent_by.partition(":")[0]
        params: dict[str, str | None] = {}
        if semi:
            if '"' in ptext or " " in ptext or "\t" in ptext:
                for name, value in parse_params(ptext, f"Via {text!r}").items():
                    params[name.lower()] = value
            else:
                for item in ptext.split(";"):
                    name, eq, value = item.partition("=")
                    params[name.lower()] = value if eq else None
        self.params = params
        self.branch = params.get("branch")

    @property
    def rfc3261(self) -> bool:
        """True for a branch that starts with the magic cookie and has more after it."""
        b = self.branch
        return b is not None and len(b) > len(MAGIC_COOKIE) and b.startswith(MAGIC_COOKIE)


def top_via_text(headers: Headers) -> str:
    """The first value of the first Via header line."""
    line = headers.get("Via")
    if line is None:
        raise SipParseError("missing Via")
    if "," not in line:
        return line
    return split_list(line)[0]


def top_via(message: Message) -> TopVia:
    try:
        return TopVia(top_via_text(message.headers))
    except (IndexError, ValueError) as e:
        raise SipParseError(f"bad top Via: {e}") from e


def cseq_parts(message: Message) -> tuple[str, str]:
    """(number, method) of CSeq as text."""
    value = message.headers.get("CSeq")
    parts = value.split() if value is not None else []
    if len(parts) != 2:
        raise SipParseError(f"bad CSeq {value!r}")
    return parts[0], parts[1]


def tag_of(message: Message, name: str) -> str:
    """The tag parameter of From or To ("" when there is none)."""
    value = message.headers.get(name)
    if value is None:
        raise SipParseError(f"missing {name}")
    if ";" not in value:
        return ""
    return NameAddr.parse(value).tag or ""


def server_key(request: Request, via: TopVia, method: str) -> tuple[str, ...]:
    """The server-transaction key of ``request`` as if its method were ``method``."""
    if via.rfc3261:
        assert via.branch is not None
        return (via.branch, via.sent_by, method)
    return (
        request.uri,
        tag_of(request, "From"),
        request.call_id,
        cseq_parts(request)[0],
        method,
        via.text,
    )


def client_key(response: Response) -> tuple[str, str]:
    """(branch, CSeq method) of a response: the client transaction it belongs to."""
    via = top_via(response)
    if via.branch is None:
        raise SipParseError("response without a Via branch")
    return via.branch, cseq_parts(response)[1]


def ack_key(message: Message) -> tuple[str, int, str]:
    """(Call-ID, CSeq number, From tag): how an ACK for a 2xx finds its INVITE transaction."""
    return (message.call_id, int(cseq_parts(message)[0]), tag_of(message, "From"))


def rewrite_top_via(request: Request, via: TopVia, source: Peer) -> None:
    """Add ``received`` / fill ``rport`` on the top Via (RFC 3261 §18.2.1, RFC 3581 §4).

    ``received`` is added when the sent-by host is not the source address, and always when
    the request asked for ``rport`` (RFC 3581 requires both then). Only the top Via value
    changes; every other header keeps its bytes.
    """
    host = via.host[1:-1] if via.host.startswith("[") else via.host
    params = via.params
    wants_rport = "rport" in params and params["rport"] is None
    if host == source.host.lower() and not wants_rport:
        return
    text = via.text
    if '"' in text:  # quoted parameter values: rebuild through the full grammar
        full = Via.parse(text)
        full.params = {k: v for k, v in full.params.items() if k.lower() != "received"}
        if wants_rport:
            full.params = {
                k: (str(source.port) if k.lower() == "rport" else v) for k, v in full.params.items()
            }
        full.params["received"] = source.host
        new_top = str(full)
    elif not wants_rport and "received" not in params:
        new_top = f"{text};received={source.host}"
    else:
        kept = []
        for piece in text.split(";"):
            low = piece.strip(" \t").lower()
            if low == "received" or low.startswith(("received=", "received ")):
                continue
            kept.append(f"rport={source.port}" if wants_rport and low == "rport" else piece)
        kept.append(f"received={source.host}")
        new_top = ";".join(kept)
    headers = request.headers
    lines = headers.get_all("Via")
    if len(lines) == 1 and "," not in lines[0]:
        headers.set("Via", new_top)  # the common case: one Via line with one value, in place
    else:
        request.headers = _replace_top_via(headers, new_top)


def _replace_top_via(headers: Headers, new_top: str) -> Headers:
    """A copy of ``headers`` with the first Via value replaced and every other byte kept."""
    items = list(headers)
    for i, (name, value) in enumerate(items):
        if name.lower() == "via":
            rest = ""
            if "," in value:
                first = split_list(value)[0]
                rest = value[value.index(first) + len(first) :]
            items[i] = (name, new_top + rest)
            break
    return Headers(items)


def make_non2xx_ack(invite: Request, response: Response) -> Request:
    """The ACK a client INVITE transaction sends for a 3xx-6xx (RFC 3261 §17.1.1.3)."""
    headers = Headers()
    headers.add("Via", top_via_text(invite.headers))
    headers.add("Max-Forwards", "70")
    for name, value in invite.headers:
        if name in ("Route", "From", "Call-ID"):
            headers.add(name, value)
    headers.add("To", response.headers.get("To") or "")
    headers.add("CSeq", f"{cseq_parts(invite)[0]} ACK")
    return Request("ACK", invite.uri, headers)


def make_cancel(invite: Request) -> Request:
    """A CANCEL for ``invite`` (RFC 3261 §9.1): same Request-URI, Call-ID, From, To, CSeq
    number and top Via (so the same branch), and the same Route set."""
    if invite.method != "INVITE":
        raise LocalProtocolError(f"make_cancel needs an INVITE, not {invite.method}")
    headers = Headers()
    headers.add("Via", top_via_text(invite.headers))
    headers.add("Max-Forwards", "70")
    for name, value in invite.headers:
        if name in ("Route", "From", "To", "Call-ID"):
            headers.add(name, value)
    headers.add("CSeq", f"{cseq_parts(invite)[0]} CANCEL")
    return Request("CANCEL", invite.uri, headers)


def check_outgoing_branch(request: Request) -> str:
    """The branch of a request the TU sends; it must carry an RFC 3261 branch."""
    try:
        via = top_via(request)
    except RemoteProtocolError as e:
        raise LocalProtocolError(f"{request.method} to send has no usable top Via: {e}") from e
    if not via.rfc3261 or via.branch is None:
        raise LocalProtocolError(
            f"{request.method} to send needs a top Via with a z9hG4bK branch "
            f"(use new_branch()), got {via.text!r}"
        )
    return via.branch
