"""Reading Digest header values (RFC 7616 §3.3-3.4, RFC 7235 auth-param lists).

Split out of ``auth.py``: the scheme, then ``name=token`` / ``name="quoted string"`` pairs
separated by commas. The usual plain form is read with a few regex matches; anything else
(escapes, odd spacing, errors) goes through the character-by-character reader, which names
what is wrong. Pure functions on strings: never touches the network, the clock or secrets.
"""

from __future__ import annotations

import re

_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_WS = " \t"
_FOLD = re.compile(r"[ \t]*\r?\n[ \t]+")


class AuthParseError(ValueError):
    """The peer sent a Digest header value we cannot read (answer 400, or re-challenge)."""


def excerpt(text: str, at: int) -> str:
    return repr(text[at : at + 24])


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _read_token(text: str, i: int) -> int:
    while i < len(text) and text[i] in _TOKEN_CHARS:
        i += 1
    return i


def _read_quoted(text: str, i: int, name: str) -> tuple[str, int]:
    """Read the quoted-string starting at text[i] == '"'; return (unescaped, next index)."""
    out: list[str] = []
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == '"':
            return "".join(out), j + 1
        if c == "\\":
            if j + 1 >= len(text) or ord(text[j + 1]) > 0x7F:
                raise AuthParseError(
                    f'parameter "{name}": a backslash must escape one ASCII character'
                )
            out.append(text[j + 1])
            j += 2
            continue
        code = ord(c)
        if (code < 0x20 and c != "\t") or code == 0x7F or 0xD800 <= code <= 0xDFFF:
            raise AuthParseError(
                f'parameter "{name}": control character or invalid UTF-8 {c!r} in quoted '
                "string (escape it with a backslash, or remove it)"
            )
        out.append(c)
        j += 1
    raise AuthParseError(f'parameter "{name}": quoted string has no closing double quote')


def _read_unquoted(text: str, i: int, name: str) -> tuple[str, int]:
    j = i
    while j < len(text) and 0x21 <= ord(text[j]) <= 0x7E and text[j] not in ',"\\':
        j += 1
    if j == i:
        raise AuthParseError(
            f'parameter "{name}" has no value at {excerpt(text, i)}; '
            "write a token or a quoted string after '='"
        )
    return text[i:j], j


# The usual auth-param list (what phones send): name=token or name="text" (no backslash,
# no control characters) separated by commas. Anything else goes to the full parser.
_PLAIN_SEPARATORS = re.compile(r"[ \t,]*+")
_PLAIN_PARAM = re.compile(
    r"([A-Za-z0-9.!%*_+`'~-]++)[ \t]*+=[ \t]*+"
    r'(?:"([^"\\\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]*+)"|([\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]++))'
    r"[ \t]*+(?:,|\Z)"
)


def _parse_plain_params(text: str) -> list[tuple[str, str]] | None:
    """``_parse_params`` for the plain form with a few regex matches; None if not plain."""
    params: list[tuple[str, str]] = []
    separators, param = _PLAIN_SEPARATORS.match, _PLAIN_PARAM.match
    i, end = 0, len(text)
    while True:
        i = separators(text, i).end()  # type: ignore[union-attr]  # matches ''
        if i >= end:
            return params
        m = param(text, i)
        if m is None:
            return None
        name, quoted, token = m.groups()
        params.append((name.lower(), token if quoted is None else quoted))
        i = m.end()


def _parse_params(text: str) -> list[tuple[str, str]]:
    """auth-param *(COMMA auth-param); empty list elements are tolerated (RFC 7230 #rule)."""
    plain = _parse_plain_params(text)
    return plain if plain is not None else _parse_params_full(text)


def _parse_params_full(text: str) -> list[tuple[str, str]]:
    """``_parse_params`` for any input, character by character, with the precise errors."""
    params: list[tuple[str, str]] = []
    i = 0
    while True:
        i = _skip_ws(text, i)
        if i >= len(text):
            return params
        if text[i] == ",":
            i += 1
            continue
        end = _read_token(text, i)
        if end == i:
            raise AuthParseError(f"expected a parameter name at {excerpt(text, i)}")
        name = text[i:end].lower()
        i = _skip_ws(text, end)
        if i >= len(text) or text[i] != "=":
            raise AuthParseError(f'parameter "{name}" has no "=value"')
        i = _skip_ws(text, i + 1)
        if i < len(text) and text[i] == '"':
            value, i = _read_quoted(text, i, name)
        else:
            value, i = _read_unquoted(text, i, name)
        params.append((name, value))
        i = _skip_ws(text, i)
        if i < len(text) and text[i] != ",":
            raise AuthParseError(
                f'unexpected {excerpt(text, i)} after parameter "{name}"; '
                "parameters must be separated by commas"
            )


def split_scheme(value: str) -> tuple[str, str]:
    """Return (scheme, rest) after unfolding; raise AuthParseError if there is no scheme."""
    text = _FOLD.sub(" ", value).strip(_WS)
    if "\r" in text or "\n" in text:
        raise AuthParseError("line break inside the header value that is not a folded line")
    if not text:
        raise AuthParseError("empty header value: expected 'Digest' followed by parameters")
    end = _read_token(text, 0)
    if end == 0 or (end < len(text) and text[end] not in _WS):
        raise AuthParseError(f"expected an authentication scheme at {excerpt(text, 0)}")
    return text[:end], text[end:]


def digest_params(value: str) -> dict[str, str] | None:
    """Parameters of a Digest value as a dict, or None for another scheme."""
    scheme, rest = split_scheme(value)
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    for name, param_value in _parse_params(rest):
        if name in params:
            raise AuthParseError(f'parameter "{name}" appears twice')
        params[name] = param_value
    return params
