"""The data of a transfer asked by a phone's REFER (`pbx.transfer`): the Refer-To target
(RFC 3515, with an RFC 5589 Replaces for an attended transfer), a transfer in progress, and
the message/sipfrag line of the implicit subscription's NOTIFYs.

Data and pure helpers only: nothing here sends SIP, keeps time or touches sockets. A bad
Refer-To raises `ReferToError` whose text goes into a 400 reason phrase.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from frontdesk.pbx.calls import Call
from frontdesk.sip.dialog import Dialog
from frontdesk.sip.errors import SipParseError
from frontdesk.sip.message import REASONS
from frontdesk.sip.uri import NameAddr, is_digits

#: how long the implicit subscription of a REFER lasts at most (RFC 3515 §2.4.4)
SUBSCRIPTION_SECONDS = 60


class ReferToError(ValueError):
    """The Refer-To of a REFER cannot be used; the message says why (for a 400)."""


@dataclass(frozen=True, slots=True)
class ReferTarget:
    """Where a REFER sends the other party: a number (the URI's user part), the host it
    names (None for a bare number), and the dialog an attended transfer replaces."""

    number: str
    host: str | None
    replaces: tuple[str, str, str] | None = None  # (call-id, to-tag, from-tag)


def parse_refer_to(values: list[str]) -> ReferTarget:
    """The target of a REFER's Refer-To header(s); exactly one is required."""
    if not values:
        raise ReferToError("Refer-To is missing")
    if len(values) > 1:
        raise ReferToError("more than one Refer-To")
    text = values[0].strip()
    if is_digits(text, 32):  # a bare number, as some phones send it
        return ReferTarget(text, None)
    try:
        uri = NameAddr.parse(text).uri
    except SipParseError as exc:
        raise ReferToError(f"Refer-To is not a SIP URI ({exc.reason[:60]})") from exc
    if uri.scheme not in ("sip", "sips") or not uri.user:
        raise ReferToError("Refer-To must be a sip: URI with a number (sip:102@host)")
    replaces = _replaces(uri.headers) if uri.headers else None
    return ReferTarget(uri.user, uri.host_no_brackets, replaces)


def _replaces(headers: str) -> tuple[str, str, str] | None:
    """The Replaces of a Refer-To's URI headers (``?Replaces=callid%3Bto-tag%3D..``)."""
    for item in headers.split("&"):
        name, _, value = item.partition("=")
        if name.strip().lower() != "replaces":
            continue
        parts = unquote(value).split(";")
        params = dict(p.strip().partition("=")[::2] for p in parts[1:])
        call_id = parts[0].strip()
        to_tag, from_tag = params.get("to-tag", ""), params.get("from-tag", "")
        if not call_id or not to_tag or not from_tag:
            raise ReferToError("Replaces needs a Call-ID, a to-tag and a from-tag")
        return call_id, to_tag, from_tag
    return None


def sipfrag(status: int) -> bytes:
    """The message/sipfrag body of a NOTIFY that reports ``status`` (RFC 3515 §2.4.5)."""
    return f"SIP/2.0 {status} {REASONS.get(status, 'Unknown')}\r\n".encode()


@dataclass(eq=False)
class Transfer:
    """One transfer asked by REFER on ``call``: its transferee is the call's 'a' side (the
    call is turned around first when the transferor was the caller)."""

    call: Call
    kind: str  # blind or attended
    transferor: str  # the extension that pressed Transfer
    dialog: Dialog  # our dialog with the transferor, where the NOTIFYs go
    target: str  # the number the transferee is sent to
    entry: dict[str, Any] = field(default_factory=dict)  # the CDR note (extra.call_control)
    rebridge: Any = None  # the pbx.callcontrol.Rebridge moving the transferee (blind)
    final: int | None = None  # the status of the last NOTIFY, once sent
    gone: bool = False  # the transferor hung up (or its subscription is gone)
    calls: list[Call] = field(default_factory=list)  # every call it holds (attended: 2)
