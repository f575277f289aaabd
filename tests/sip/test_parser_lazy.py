"""The plain-form shortcuts of the value parsers agree with the general parsers.

`NameAddr.parse`, `Via.parse`, `SipURI.parse` and `parse_params` first try one anchored
pattern for the forms phones send and build the value from the match; `is_plain_address`,
`is_plain_sip_uri` and `check_via_line` let the message parser accept such values without
building them. Two claims are fuzzed here against the general parsers:

* whatever a shortcut accepts, the general parser accepts too, with an equal value
  (same fields, same parameter order, same text when written back);
* wherever the outcome differs from a shortcut's, the general parser decides, so errors and
  their messages are the general parser's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frontdesk.sip.errors import SipParseError
from frontdesk.sip.headers import CSeq, Via, check_via_line, split_list
from frontdesk.sip.uri import (
    NameAddr,
    SipURI,
    _parse_params_general,
    address_tag,
    is_plain_address,
    is_plain_sip_uri,
    is_token,
    parse_params,
)

NOISE = ["<", ">", '"', ";", ",", " ", "\t", "=", "@", ":", "\\", "?", "\x00", "ü", "[", "]"]


def outcome(parse: Callable[[str], Any], text: str) -> tuple[Any, ...]:
    """What a parser makes of ``text``: the value and how it writes back, or the error."""
    try:
        value = parse(text)
    except SipParseError as e:
        return ("error", e.reason)
    params = getattr(value, "params", None)
    uri = getattr(value, "uri", None)
    return (
        value,
        str(value),
        list(params.items()) if params is not None else None,
        list(uri.params.items()) if uri is not None else None,
    )


@st.composite
def spliced(draw: st.DrawFn, parts: dict[str, list[str]]) -> str:
    """One option per part, sometimes with a character of noise spliced in."""
    chosen = [draw(st.sampled_from(options)) for options in parts.values()]
    if draw(st.booleans()):
        text = "".join(chosen)
        pos = draw(st.integers(0, len(text)))
        return text[:pos] + draw(st.sampled_from(NOISE)) + text[pos:]
    return "".join(chosen)


def either(parts: dict[str, list[str]]) -> st.SearchStrategy[str]:
    """Grammar-shaped texts, or short random texts over the characters that matter."""
    alphabet = st.sampled_from([*NOISE, "a", "b", "1", "5", ".", "-", "s", "i", "p", "%", "'"])
    return st.one_of(spliced(parts), st.text(alphabet, max_size=24))


# --- URI ----------------------------------------------------------------------------------
USER = ["", "alice@", "sipp@", "%41b@", "a;b=c@", "a,b@", "a:pw@", "@", "a b@", "ü@", "a?x@"]
HOST = ["127.0.0.1", "h.example.com", "[2001:db8::1]", "", "h_x", "[::g]", "a@b"]
PORT = ["", ":5060", ":1", ":0", ":65535", ":65536", ":99999", ":05060", ":", ":x"]
URI_PARAMS = [
    "",
    ";lr",
    ";transport=udp;lr",
    ";;",
    ";x=",
    ";x=[::1]",
    ";x=a:b",
    ';x="q"',
    "; x",
    ";a=b=c",
    ";=",
    ";maddr=1.2.3.4",
]
URI = {
    "scheme": ["sip:", "sips:", "SIP:", "tel:", "sip"],
    "user": USER,
    "host": HOST,
    "port": PORT,
    "params": URI_PARAMS,
    "headers": ["", "", "?Subject=hi", "?"],
}


@settings(max_examples=800, deadline=None)
@given(either(URI))
def test_uri_shortcut_agrees_with_the_general_parser(text: str) -> None:
    assert outcome(SipURI.parse, text) == outcome(SipURI._parse_general, text)
    if is_plain_sip_uri(text):
        uri = SipURI._parse_general(text)
        assert uri.headers is None and uri.opaque is None


# --- name-addr / addr-spec --------------------------------------------------------------
ADDRESS = {
    "display": [
        "",
        "",
        "sipp ",
        "Bob  Smith\t",
        '"Al" ',
        '"A\\"l"',
        '"a<b>;," ',
        '"open ',
        "Jürgen ",
        "a,b ",
        " ",
        '"" ',
    ],
    "open": ["<", "<", ""],
    "scheme": ["sip:", "sip:", "sips:", "SIP:", "tel:"],
    "user": USER,
    "host": HOST,
    "port": PORT,
    "uri_params": URI_PARAMS,
    "close": [">", ">", ""],
    "params": [
        "",
        ";tag=abc",
        ";tag=1-2.3;x",
        ";TAG=1;tag=2",
        ";tag=2;TAG=1",
        ";tag=",
        "; tag=x",
        ";;",
        ";a=b=c",
        " ;tag=1",
        ';x="a;b"',
        ";expires=300",
        " junk",
        ";received=[::1]",
    ],
}


@st.composite
def plain_addresses(draw: st.DrawFn) -> str:
    """Valid addresses with many header parameters (tags in every case, repeated, bare)."""
    names = st.sampled_from(["tag", "TAG", "Tag", "lr", "expires", "x"])
    values = st.sampled_from(["", "=a", "=b", "=1-2", "=[::1]"])
    params = "".join(f";{n}{v}" for n, v in draw(st.lists(st.tuples(names, values), max_size=5)))
    uri = draw(st.sampled_from(["sip:a@b", "sips:u%41@127.0.0.1:5060", "sip:[::1]"]))
    if draw(st.booleans()):
        return f"{uri}{params}"
    display = draw(st.sampled_from(["", "Bob ", '"A \\"b" ']))
    return f"{display}<{uri}{draw(st.sampled_from(['', ';lr', ';tag=u']))}>{params}"


ADDRESSES = st.one_of(either(ADDRESS), plain_addresses())


@settings(max_examples=2000, deadline=None)
@given(ADDRESSES)
def test_address_shortcut_agrees_with_the_general_parser(text: str) -> None:
    fast = outcome(NameAddr.parse, text)
    assert fast == outcome(NameAddr._parse_general, text)
    if is_plain_address(text):
        assert fast[0] != "error"


@settings(max_examples=1000, deadline=None)
@given(ADDRESSES)
def test_address_tag_agrees_with_the_general_parser(text: str) -> None:
    def general(t: str) -> str | None:
        return NameAddr._parse_general(t).tag

    assert outcome(address_tag, text) == outcome(general, text)


@pytest.mark.parametrize(
    "text",
    [
        "sipp <sip:sipp@127.0.0.1:5261>;tag=1234T",
        '"Phone 1" <sip:1@acme.test>;tag=abc',
        "<sip:bench@127.0.0.1:5080>",
        "<sips:[2001:db8::1]:5061;transport=tls;lr>;tag=x;expires=60",
        "sip:bob@example.com;tag=t9",
        "sip:127.0.0.1",
    ],
)
def test_the_forms_phones_send_take_the_shortcut(text: str) -> None:
    """If these ever stop being plain, the shortcut silently stops paying off."""
    assert is_plain_address(text)


@pytest.mark.parametrize(
    "text",
    [
        "sip:a,b@example.com;tag=1",  # ',' in an addr-spec must be in <>
        "<sip:a@b:0>",  # port out of range
        "<sip:a@b>junk",
        '"open <sip:a@b>',
        "a,b <sip:a@b>",
        "<sip:a@b>;tag=",
        "<sip:a@b>;;tag=1",
    ],
)
def test_texts_the_general_parser_refuses_are_not_plain(text: str) -> None:
    assert not is_plain_address(text)
    with pytest.raises(SipParseError):
        NameAddr._parse_general(text)


# --- parameters -----------------------------------------------------------------------------
PARAMS = {
    "lead": ["", ";", " ; ", ";;"],
    "first": ["a", "branch=z9hG4bK1", "x=[::1]", "x=a:b", "", "a b", "=", "a=", 'c="x;y"'],
    "rest": ["", ";lr", ";rport", ";received=1.2.3.4", ";", ";=1", ";a=b=c", "; a = 1"],
}


@settings(max_examples=800, deadline=None)
@given(either(PARAMS))
def test_params_shortcut_agrees_with_the_general_parser(text: str) -> None:
    def fast(t: str) -> list[tuple[str, str | None]]:
        return list(parse_params(t, "t").items())

    def general(t: str) -> list[tuple[str, str | None]]:
        return list(_parse_params_general(t, "t").items())

    assert outcome(fast, text) == outcome(general, text)


# --- Via --------------------------------------------------------------------------------------
VIA = {
    "proto": [
        "SIP/2.0/",
        "SIP/2.0/",
        "SIP / 2.0 / ",
        "sip/2.0/",
        "SIP/2.0",
        "HTTP/1.1/",
        "SIP/2.0//",
        "SIP/3.0/",
    ],
    "transport": ["UDP", "UDP", "tcp", "TLS", "U,D", "", "WS"],
    "sep": [" ", " ", "  ", "\t", ""],
    "host": HOST,
    "port": [*PORT, " : 5060"],
    "params": [
        "",
        ";branch=z9hG4bK-1-0",
        ";branch=z9hG4bKx;rport",
        ";rport;received=1.2.3.4",
        ";;",
        ";branch=",
        "; branch = x",
        ';x="a"',
        ";maddr=[::1]",
        ";x=a:b",
        ";",
    ],
}


@settings(max_examples=1000, deadline=None)
@given(either(VIA))
def test_via_shortcut_agrees_with_the_general_parser(text: str) -> None:
    assert outcome(Via.parse, text) == outcome(Via._parse_general, text)


@settings(max_examples=500, deadline=None)
@given(st.lists(either(VIA), min_size=1, max_size=3), st.sampled_from([", ", ",", " , ", ", , "]))
def test_via_line_check_agrees_with_parsing_every_value(values: list[str], comma: str) -> None:
    line = comma.join(values)

    def eager(text: str) -> list[Via]:
        return [Via._parse_general(v) for v in split_list(text)]

    expected = outcome(eager, line)
    try:
        check_via_line(line)
    except SipParseError as e:
        assert expected == ("error", e.reason)
    else:
        assert expected[0] != "error"


# --- CSeq -------------------------------------------------------------------------------------
_OLD_CSEQ_RE = re.compile(r"[ \t]*([0-9]{1,10})[ \t]+([^ \t]+)[ \t]*\Z")


def old_cseq(text: str) -> CSeq:
    """CSeq.parse as it was before the method check moved into the pattern."""
    m = _OLD_CSEQ_RE.match(text)
    if not m or not is_token(m.group(2)):
        raise SipParseError(f"bad CSeq {text!r}: expected 'number METHOD'")
    number = int(m.group(1))
    if number >= 2**31:
        raise SipParseError(f"bad CSeq {text!r}: sequence number must be below 2**31")
    return CSeq(number, m.group(2))


CSEQ = {
    "lead": ["", " ", "\t"],
    "number": ["1", "0009", "2147483647", "2147483648", "99999999999", "-1", "", "²"],
    "sep": [" ", " \t ", ""],
    "method": ["INVITE", "BYE", "IN VITE", "<BYE>", "", "ü", "REGISTER"],
    "trail": ["", " ", "\t", " x"],
}


@settings(max_examples=500, deadline=None)
@given(either(CSEQ))
def test_cseq_agrees_with_the_previous_parser(text: str) -> None:
    assert outcome(CSeq.parse, text) == outcome(old_cseq, text)
