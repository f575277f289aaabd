"""Serializer round trips: parse -> bytes -> parse keeps every structured field.

Inputs: every RFC 4475 message that parses, and messages captured from real phones
(tests/sip/fixtures, named after the peer).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from frontdesk.sip.errors import SipParseError
from frontdesk.sip.message import Request, Response, parse_message

FIXTURES = Path(__file__).parent / "fixtures"
RFC4475_VALID = [
    "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq",
    "semiuri", "transports", "mpart01", "unreason", "noreason", "badbranch", "unkscm",
    "novelsc", "unksm2", "bext01", "invut", "regaut01", "bcast", "zeromf", "cparam01",
    "cparam02", "regescrt", "sdp01", "inv2543", "regbadct", "baddate",
]  # fmt: skip
PHONES = sorted(p.name for p in FIXTURES.glob("*.txt"))


def rfc4475(name: str) -> bytes:
    env = os.environ.get("FRONTDESK_SHARED")
    roots = ([Path(env)] if env else []) + [
        p / ".." / "shared" for p in Path(__file__).resolve().parents
    ]
    for root in roots:
        path = root / "conformance" / "rfc4475" / f"{name}.dat"
        if path.is_file():
            return path.read_bytes()
    pytest.fail(f"RFC 4475 file {name}.dat not found beside the repository (shared/)")


def view(msg: Request | Response, name: str) -> Any:
    try:
        return getattr(msg, name)
    except SipParseError as e:  # e.g. regbadct's Contact: the same error both times
        return ("SipParseError", e.reason)


def structured(msg: Request | Response) -> dict[str, Any]:
    """Everything a layer above reads, as comparable values."""
    fields: dict[str, Any] = {
        "start": msg.start_line(),
        "headers": [h for h in msg.headers if h[0] != "Content-Length"],
        "body": msg.body,
        "call_id": msg.call_id,
        "content_type": msg.content_type,
    }
    for name in ("vias", "top_via", "cseq", "from_", "to", "contacts", "is_star_contact"):
        fields[name] = view(msg, name)
    if isinstance(msg, Request):
        fields["ruri"] = view(msg, "ruri")
    return fields


def round_trip(data: bytes) -> tuple[Request | Response, Request | Response]:
    first = parse_message(data)
    wire = bytes(first)
    second = parse_message(wire)
    assert parse_message(wire, stream=True) is not None  # also frames as a stream message
    return first, second


@pytest.mark.parametrize("name", RFC4475_VALID)
def test_rfc4475_round_trip(name: str) -> None:
    first, second = round_trip(rfc4475(name))
    assert structured(first) == structured(second)


@pytest.mark.parametrize("name", PHONES)
def test_phone_round_trip(name: str) -> None:
    first, second = round_trip((FIXTURES / name).read_bytes())
    assert structured(first) == structured(second)
    assert bytes(second) == bytes(first)  # our own output is a fixed point


@pytest.mark.parametrize("name", [n for n in PHONES if "baresip" in n])
def test_baresip_messages_come_back_byte_for_byte(name: str) -> None:
    """baresip writes canonical names and Content-Length last, exactly as we do."""
    data = (FIXTURES / name).read_bytes()
    assert bytes(parse_message(data)) == data


def test_linphone_register_gets_a_content_length() -> None:
    data = (FIXTURES / "register_linphone.txt").read_bytes()
    assert b"Content-Length" not in data
    wire = bytes(parse_message(data))
    assert wire.endswith(b"\r\nContent-Length: 0\r\n\r\n")


def test_ipv6_references_survive() -> None:
    msg = parse_message((FIXTURES / "register_baresip_ipv6.txt").read_bytes())
    via = msg.top_via
    assert (via.host, via.port, via.params["rport"]) == ("[2001:db8::10]", 5060, None)
    (contact,) = msg.contacts
    assert (contact.uri.host, contact.uri.port) == ("[2001:db8::10]", 5060)
    assert contact.uri.host_no_brackets == "2001:db8::10"
    assert isinstance(msg, Request) and msg.ruri.host == "[2001:db8::1]"
    second = parse_message(bytes(msg))
    assert second.top_via == via and second.contacts == [contact]


def test_linphone_instance_param_with_angle_brackets_in_quotes() -> None:
    msg = parse_message((FIXTURES / "invite_linphone.txt").read_bytes())
    (contact,) = msg.contacts
    assert contact.params["+sip.instance"] == '"<urn:uuid:b2ec2b3a-12e6-005c-90dc-ed097f9b6911>"'
    assert contact.params["expires"] == "300" and contact.uri.param("transport") == "udp"
    assert msg.headers.values("Supported") == ["replaces", "outbound", "gruu"]


def test_authorization_headers_are_kept_verbatim() -> None:
    reg = parse_message((FIXTURES / "register_baresip.txt").read_bytes())
    auth = reg.headers.get("Authorization") or ""
    assert auth.startswith('Digest username="alice", realm="frontdesk.test"')
    inv = parse_message((FIXTURES / "invite_linphone.txt").read_bytes())
    assert (inv.headers.get("Proxy-Authorization") or "").startswith('Digest realm="frontdesk')
    assert b"  uri=" in bytes(inv)  # linphone's double space survives the round trip
