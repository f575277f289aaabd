"""Digest parameter lists: the regex reader of the plain form agrees with the full reader.

``_parse_plain_params`` answers the usual header with a few regex matches and must give
exactly what the character-by-character ``_parse_params_full`` gives, or decline (None) so
the full reader runs and names the error. Fuzzed with hypothesis over lists that mix plain
and awkward forms (escapes, control characters, stray spaces and commas, missing '=')."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frontdesk.sip.auth_params import (
    AuthParseError,
    _parse_params_full,
    _parse_plain_params,
    digest_params,
)

SIPP = (
    'username="bench",realm="auth.frontdesk.test",cnonce="6b8b4567",nc=00000001,qop=auth,'
    'uri="sip:127.0.0.1:5157",nonce="AAAAAAAUhmY26lboymVu-0K9QzS-MqrTu-C9dHCOIsA",'
    'response="e9f11220d061ea6e6f3c9d59eda3b2a0",algorithm=MD5,opaque="db028614"'
)
BARESIP = (
    'username="101", realm="acme.test", nonce="abc", uri="sip:acme.test", '
    'response="0123", cnonce="x", qop=auth, nc=00000001, algorithm=SHA-256'
)


@pytest.mark.parametrize("text", [SIPP, BARESIP, " a=b ,, c=\"d e\t\" ,", ""])
def test_phone_headers_take_the_plain_path_with_the_same_result(text: str) -> None:
    plain = _parse_plain_params(text)
    assert plain is not None
    assert plain == _parse_params_full(text)


@pytest.mark.parametrize(
    "text",
    ['a="x\\"y"', 'a="x', "a=", "a b=c", 'a="x"b', "a=b c", "=b", 'a="\x01"', "a=\"é\"x"],
)
def test_awkward_or_broken_lists_go_to_the_full_reader(text: str) -> None:
    assert _parse_plain_params(text) is None


def test_errors_still_name_the_problem() -> None:
    with pytest.raises(AuthParseError, match='parameter "nonce" has no "=value"'):
        digest_params('Digest username="a", nonce')


_NAME = st.text("abcXYZ09-.!%*_+`'~", min_size=0, max_size=4)
_VALUE = st.one_of(
    st.text("aZ09:@;/.-_~[]!#$&()*+=?", max_size=6),
    # quoted: also escapes, quotes, commas, tabs, control and non-ASCII characters
    st.builds(lambda t: f'"{t}"', st.text(st.sampled_from('ab \\"\t\x01\x7f,=é'), max_size=6)),
    st.builds(lambda t: f'"{t}"', st.text(max_size=6)),
)
_SPACE = st.sampled_from(["", " ", "\t", "  "])
_SEP = st.sampled_from([",", ", ", " ,", ",,", " ", ""])


@st.composite
def param_lists(draw: st.DrawFn) -> str:
    parts = [draw(_SPACE)]
    for _ in range(draw(st.integers(0, 5))):
        eq = draw(st.sampled_from(["=", " = ", "=", ""]))
        parts += [draw(_NAME), eq, draw(_VALUE), draw(_SPACE), draw(_SEP)]
    return "".join(parts)


@settings(max_examples=600, deadline=None)
@given(param_lists())
def test_plain_reader_agrees_with_the_full_reader(text: str) -> None:
    plain = _parse_plain_params(text)
    try:
        full = _parse_params_full(text)
    except AuthParseError:
        assert plain is None, (text, plain)
        return
    assert plain is None or plain == full, (text, plain, full)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_plain_reader_never_accepts_what_the_full_reader_refuses(text: str) -> None:
    plain = _parse_plain_params(text)
    try:
        full = _parse_params_full(text)
    except AuthParseError:
        assert plain is None, (text, plain)
        return
    assert plain is None or plain == full
