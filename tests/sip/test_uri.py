"""SIP URIs and name-addr values: what parses, what is refused, and round trips."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frontdesk.sip.errors import SipParseError
from frontdesk.sip.uri import NameAddr, SipURI, format_params, is_digits, is_token, parse_params


def test_sip_uri_parts() -> None:
    uri = SipURI.parse("sips:alice:pw@[2001:db8::1]:5061;transport=tcp;lr?Subject=hi")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips", "alice", "pw", "[2001:db8::1]", 5061
    )  # fmt: skip
    assert uri.params == {"transport": "tcp", "lr": None} and uri.headers == "Subject=hi"
    assert uri.param("TRANSPORT") == "tcp" and uri.has_param("Lr") and uri.param("x") is None
    assert uri.host_no_brackets == "2001:db8::1" and uri.is_sip
    assert str(uri) == "sips:alice:pw@[2001:db8::1]:5061;transport=tcp;lr?Subject=hi"
    assert SipURI.parse(str(uri)) == uri


def test_user_part_may_hold_semicolons_and_escapes() -> None:
    uri = SipURI.parse("sip:user;par=u%40example.net@example.com")
    assert (uri.user, uri.host, uri.params) == ("user;par=u%40example.net", "example.com", {})
    assert SipURI.parse("SIP:%00@h").scheme == "sip"


def test_other_schemes_are_opaque() -> None:
    tel = SipURI.parse("tel:+1-201-555-0123;phone-context=example.com")
    assert not tel.is_sip and tel.opaque == "+1-201-555-0123;phone-context=example.com"
    assert str(tel) == "tel:+1-201-555-0123;phone-context=example.com"


@pytest.mark.parametrize(
    "text",
    [
        "user@example.com", ":x", "1sip:a@b", "sip:", "sip:@host", "sip:a@", "sip:a@host:0",
        "sip:a@host:65536", "sip:a@ho st", "sip:a@host;;", "sip:a@host;p=\"x", "sip:a@[::g]",
        "sip:a@<host>", "sip:a\x00@host", "sip:a@host\x7f", "tel:", 'sip:"a"@h', "sip:a@h;=1",
    ],
)  # fmt: skip
def test_bad_uris(text: str) -> None:
    with pytest.raises(SipParseError):
        SipURI.parse(text)


def test_name_addr_forms() -> None:
    quoted = NameAddr.parse('"Alice \\"A\\" Smith" <sip:alice@example.com;transport=udp>;tag=1')
    assert quoted.display_text == 'Alice "A" Smith' and quoted.tag == "1"
    assert quoted.uri.params == {"transport": "udp"} and quoted.bracketed
    tokens = NameAddr.parse("Alice  Smith\t<sip:alice@example.com>")
    assert tokens.display_name == "Alice  Smith" and tokens.display_text == "Alice  Smith"
    utf8 = NameAddr.parse("Jürgen Müller <sip:jm@example.com>")  # unquoted, as phones send it
    assert utf8.display_text == "Jürgen Müller"
    bare = NameAddr.parse("sip:alice@example.com;tag=abc;expires=60")
    assert bare.uri.params == {} and bare.params == {"tag": "abc", "expires": "60"}
    assert not bare.bracketed and bare.param("TAG") == "abc"
    assert str(bare) == "<sip:alice@example.com>;tag=abc;expires=60"
    assert NameAddr.parse(str(quoted)) == quoted
    copy = quoted.copy()
    copy.uri.params["x"] = None
    copy.params["tag"] = "2"
    assert quoted.uri.params == {"transport": "udp"} and quoted.tag == "1"


@pytest.mark.parametrize(
    "text",
    [
        '"unterminated <sip:a@b>', "Bell, Alexander <sip:a@b>", '"q" sip:a@b', "<sip:a@b",
        "< sip:a@b >", "<sip:a@b>junk", "<sip:a@b>;;", "sip:a@b?x=1", "sip:a@b,c", "",
        '"a" "b" <sip:a@b>', "name <sip:a@b> extra", "Jürgen, Müller <sip:a@b>",
    ],
)  # fmt: skip
def test_bad_addresses(text: str) -> None:
    with pytest.raises(SipParseError):
        NameAddr.parse(text)


def test_params_and_tokens() -> None:
    assert parse_params(" ; a = 1 ; b ; c=\"x;y\" ; d=[2001:db8::1]", "t") == {
        "a": "1", "b": None, "c": '"x;y"', "d": "[2001:db8::1]"
    }  # fmt: skip
    assert format_params({"a": "1", "b": None}) == ";a=1;b"
    assert parse_params("", "t") == {}
    for bad in (";", "a=", "a b=1", 'a="x'):
        with pytest.raises(SipParseError):
            parse_params(bad, "t")
    assert is_token("abc-.!%*_+`'~") and not is_token("") and not is_token("a b")
    assert (
        is_digits("0068") and not is_digits("²") and not is_digits("") and not is_digits("1" * 11)
    )


PARTS = {
    "scheme": ["sip:", "sips:", "SIP:", "tel:", "sip"],
    "user": ["", "alice@", "%41b@", "a;b=c@", "a:pw@", "@", "a b@", "a?x@", "a,b@", "ü@"],
    "host": ["h.example.com", "127.0.0.1", "[2001:db8::1]", "", "h_x", "[::g]", "a@b"],
    "port": ["", ":5060", ":0", ":65536", ":", ":x"],
    "params": ["", ";lr", ";transport=udp;lr", ";;x", ";x=a@b", ";x=", ';x="q"', "; x", ";="],
    "headers": ["", "?Subject=hi", "?", "?a=b@c"],
}


@st.composite
def uri_texts(draw: st.DrawFn) -> str:
    parts = [draw(st.sampled_from(options)) for options in PARTS.values()]
    if draw(st.booleans()):  # sometimes splice in noise
        pos = draw(st.integers(0, len(parts)))
        parts.insert(pos, draw(st.sampled_from(["@", ";", ":", "?", " ", "\x00", "%", "<"])))
    return "".join(parts)


@settings(max_examples=1500, deadline=None)
@given(uri_texts())
def test_fast_path_agrees_with_the_general_parser(text: str) -> None:
    """SipURI.parse takes a regex shortcut for common URIs; it must never differ."""

    def outcome(parse: Callable[[str], SipURI]) -> SipURI | str:
        try:
            return parse(text)
        except SipParseError:
            return "error"

    assert outcome(SipURI.parse) == outcome(SipURI._parse_general)
