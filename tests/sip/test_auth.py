"""Tests for frontdesk.sip.auth: known answers, client/server round trips, nonces, replay, parsing."""

from __future__ import annotations

import base64
import contextlib
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import frontdesk.sip.auth as auth_module
from frontdesk.sip.auth import (
    AuthParseError,
    AuthReason,
    AuthResult,
    DigestAuthenticator,
    DigestCredentials,
    build_authorization,
    compute_ha1,
    compute_response,
    parse_challenge,
    parse_credentials,
)

SECRET = b"frontdesk-test-secret-0123456789"
REALM = "pbx.example.com"
URI = "sip:pbx.example.com"
T0 = 1_700_000_000.0
PASSWORDS = {"alice": "correct horse", "bob": 'pa"ss\\word, with comma'}


def lookup(username: str, algorithm: str) -> str | None:
    password = PASSWORDS.get(username)
    return None if password is None else compute_ha1(username, REALM, password, algorithm)


def make_auth(**kwargs: object) -> DigestAuthenticator:
    return DigestAuthenticator(SECRET, **kwargs)  # type: ignore[arg-type]


def challenge_for(auth: DigestAuthenticator, algorithm: str, now: float = T0) -> str:
    return next(v for v in auth.challenge(REALM, now) if f"algorithm={algorithm}," in v)


def answer(
    challenge: str,
    username: str = "alice",
    password: str | None = None,
    nc: int = 1,
    method: str = "REGISTER",
) -> DigestCredentials:
    password = PASSWORDS.get(username, "x") if password is None else password
    value = build_authorization(challenge, method, URI, username, password, "0a4f113b", nc)
    credentials = parse_credentials(value)
    assert credentials is not None
    return credentials


def check(auth: DigestAuthenticator, credentials: DigestCredentials, now: float = T0) -> AuthResult:
    return auth.verify(credentials, "REGISTER", REALM, now, lookup)


# ---------------------------------------------------------------- known-answer vectors

RFC2617_AUTHORIZATION = """Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41\"""".replace("\n", "\r\n")

RFC7616_AUTHORIZATION = """Digest username="Mufasa",
       realm="http-auth@example.org",
       uri="/dir/index.html",
       algorithm=SHA-256,
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       nc=00000001,
       cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
       qop=auth,
       response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""""


def expected_response(creds: DigestCredentials, password: str, method: str) -> str:
    ha1 = compute_ha1(creds.username, creds.realm, password, creds.algorithm)
    return compute_response(
        ha1, method, creds.uri, creds.nonce, creds.algorithm, creds.qop, creds.nc, creds.cnonce
    )


def test_rfc2617_md5_example_folded_header() -> None:
    creds = parse_credentials(RFC2617_AUTHORIZATION)
    assert creds is not None
    assert (creds.username, creds.realm, creds.algorithm) == ("Mufasa", "testrealm@host.com", "MD5")
    assert (creds.qop, creds.nc, creds.cnonce, creds.nonce_count) == (
        "auth",
        "00000001",
        "0a4f113b",
        1,
    )
    assert expected_response(creds, "Circle Of Life", "GET") == creds.response
    assert creds.response == "6629fae49393a05397450978507c4ef1"


def test_rfc7616_sha256_example() -> None:
    creds = parse_credentials(RFC7616_AUTHORIZATION)
    assert creds is not None and creds.algorithm == "SHA-256"
    assert expected_response(creds, "Circle of Life", "GET") == creds.response
    assert creds.response == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"


def test_rfc7616_md5_example_same_challenge() -> None:
    md5 = parse_credentials(RFC7616_AUTHORIZATION.replace("algorithm=SHA-256,", ""))
    assert md5 is not None and md5.algorithm == "MD5"
    assert expected_response(md5, "Circle of Life", "GET") == "8ca523f5e9506fed4657c9700eebdbec"


def test_compute_ha1_rejects_unknown_algorithm_with_the_choices() -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        compute_ha1("alice", REALM, "pw", "SHA-512-256")
    assert compute_ha1("a", "r", "p", "sha-256") == compute_ha1("a", "r", "p", "SHA-256")


# ---------------------------------------------------------------- challenges


def test_challenge_offers_sha256_then_md5_with_all_parameters() -> None:
    values = make_auth().challenge(REALM, T0)
    assert [v.split("algorithm=")[1].split(",")[0] for v in values] == ["SHA-256", "MD5"]
    parsed = [parse_challenge(v) for v in values]
    for challenge in parsed:
        assert challenge is not None
        assert challenge.realm == REALM
        assert challenge.qop_options == ("auth",)
        assert challenge.opaque and challenge.nonce
        assert challenge.stale is False
    assert parsed[0] is not None and parsed[1] is not None
    assert parsed[0].nonce == parsed[1].nonce  # one nonce, the client picks one algorithm


def test_challenge_stale_flag_and_md5_only_configuration() -> None:
    values = make_auth(algorithms=["md5"]).challenge(REALM, T0, stale=True)
    assert len(values) == 1
    challenge = parse_challenge(values[0])
    assert challenge is not None and challenge.stale and challenge.algorithm == "MD5"


def test_nonces_are_fresh_each_time() -> None:
    auth = make_auth()
    nonces = {parse_challenge(auth.challenge(REALM, T0)[0]).nonce for _ in range(50)}  # type: ignore[union-attr]
    assert len(nonces) == 50


def test_constructor_refuses_weak_secret_and_bad_algorithms() -> None:
    with pytest.raises(ValueError, match="16 random bytes"):
        DigestAuthenticator(b"short")
    with pytest.raises(ValueError, match="MD5"):
        DigestAuthenticator(SECRET, algorithms=["SHA-1"])
    with pytest.raises(ValueError):
        DigestAuthenticator(SECRET, nonce_lifetime=0)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
@pytest.mark.parametrize("username", ["alice", "bob"])
def test_round_trip_build_authorization_then_verify(algorithm: str, username: str) -> None:
    auth = make_auth()
    result = check(auth, answer(challenge_for(auth, algorithm), username))
    assert result == AuthResult(True, AuthReason.OK, username, False, algorithm)
    assert not result.failed_attempt


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_round_trip_without_qop_rfc2069(algorithm: str) -> None:
    auth = make_auth()
    challenge = challenge_for(auth, algorithm).replace(', qop="auth"', "")
    creds = answer(challenge)
    assert creds.qop is None and creds.nc is None
    assert check(auth, creds).ok
    assert check(auth, creds, T0 + 100).ok  # no nonce count: accepted until expiry
    late = check(auth, creds, T0 + 301)
    assert (late.ok, late.reason, late.stale) == (False, AuthReason.STALE_NONCE, True)
    strict = make_auth(accept_without_qop=False)
    assert check(strict, answer(challenge)).reason is AuthReason.UNSUPPORTED_QOP


def test_nonce_from_one_instance_verifies_on_another_with_same_secret() -> None:
    creds = answer(challenge_for(make_auth(), "SHA-256"))
    assert check(make_auth(), creds, T0 + 5).ok
    other = DigestAuthenticator(b"another-secret-0123456789abcdef")
    assert check(other, creds).reason is AuthReason.BAD_NONCE
    assert check(other, answer(challenge_for(make_auth(), "MD5"), "alice", "guess")).failed_attempt


def test_digest_uri_checked_against_request_uri_when_given() -> None:
    auth = make_auth()
    creds = answer(challenge_for(auth, "MD5"))
    ok = auth.verify(creds, "REGISTER", REALM, T0, lookup, request_uri=URI)
    assert ok.ok
    creds2 = answer(challenge_for(auth, "MD5"))
    bad = auth.verify(creds2, "REGISTER", REALM, T0, lookup, request_uri="sip:other.example.com")
    assert bad.reason is AuthReason.URI_MISMATCH and bad.failed_attempt


def test_method_is_part_of_the_digest() -> None:
    auth = make_auth()
    creds = answer(challenge_for(auth, "SHA-256"), method="INVITE")
    assert check(auth, creds).reason is AuthReason.BAD_RESPONSE


# ---------------------------------------------------------------- refusals


@pytest.mark.skipif(
    not auth_module.__file__.endswith(".py"),
    reason="frontdesk.sip.auth is compiled (mypyc): calls inside it do not go through the "
    "module attribute this test patches; the pure-Python run checks it",
)
def test_unknown_user_and_wrong_password_look_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = auth_module.compute_response

    def counting(ha1: str, *args: str | None) -> str:
        calls.append(ha1)
        return real(ha1, *args)  # type: ignore[arg-type]

    auth = make_auth()
    alice_guess = answer(challenge_for(auth, "SHA-256"), "alice", "wrong")
    mallory_guess = answer(challenge_for(auth, "SHA-256"), "mallory", "wrong")
    monkeypatch.setattr(auth_module, "compute_response", counting)
    wrong = check(auth, alice_guess)
    unknown = check(auth, mallory_guess)
    assert (wrong.reason, unknown.reason) == (AuthReason.BAD_RESPONSE, AuthReason.UNKNOWN_USER)
    outward = [(r.ok, r.stale, r.failed_attempt) for r in (wrong, unknown)]
    assert outward == [(False, False, True)] * 2
    # The same work was done: one response computed per verification, with HA1s of equal size.
    assert len(calls) == 2 and len(calls[0]) == len(calls[1]) == 64


def test_expired_nonce_with_right_password_is_stale_not_a_failure() -> None:
    auth = make_auth(nonce_lifetime=300)
    creds = answer(challenge_for(auth, "SHA-256"))
    result = check(auth, creds, T0 + 300.5)
    assert (result.ok, result.reason, result.stale, result.failed_attempt) == (
        False,
        AuthReason.STALE_NONCE,
        True,
        False,
    )
    assert check(make_auth(), answer(challenge_for(auth, "SHA-256")), T0 + 299).ok


def test_expired_nonce_with_wrong_password_is_not_stale() -> None:
    auth = make_auth()
    result = check(auth, answer(challenge_for(auth, "MD5"), "alice", "guess"), T0 + 1000)
    assert (result.reason, result.stale) == (AuthReason.BAD_RESPONSE, False)
    unknown = check(auth, answer(challenge_for(auth, "MD5"), "nobody"), T0 + 1000)
    assert (unknown.reason, unknown.stale) == (AuthReason.UNKNOWN_USER, False)


def _with_nonce(creds: DigestCredentials, nonce: str, password: str) -> DigestCredentials:
    """Credentials for another nonce, answered correctly (only the nonce is wrong)."""
    moved = dataclasses.replace(creds, nonce=nonce)
    return dataclasses.replace(moved, response=expected_response(moved, password, "REGISTER"))


def test_forged_or_tampered_nonce_is_bad_nonce() -> None:
    auth = make_auth()
    creds = answer(challenge_for(auth, "SHA-256"))
    raw = bytearray(base64.urlsafe_b64decode(creds.nonce + "="))
    raw[0] ^= 0x01  # move the timestamp: the MAC no longer matches
    tampered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    for nonce in (tampered, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "", creds.nonce + "A"):
        guess = _with_nonce(creds, nonce, "a guess")
        result = check(auth, guess)
        assert (result.ok, result.reason, result.stale, result.failed_attempt) == (
            False,
            AuthReason.BAD_NONCE,
            False,
            True,
        )
        unknown = check(auth, dataclasses.replace(guess, username="mallory"))
        assert (unknown.reason, unknown.stale) == (AuthReason.BAD_NONCE, False)


def test_foreign_nonce_with_right_password_is_stale_so_phones_survive_a_secret_change() -> None:
    before_restart = DigestAuthenticator(b"the-secret-before-the-restart!!")
    creds = answer(challenge_for(before_restart, "SHA-256"))
    result = check(make_auth(), creds)
    assert (result.ok, result.reason, result.stale, result.failed_attempt) == (
        False,
        AuthReason.BAD_NONCE,
        True,
        False,
    )
    made_up = _with_nonce(creds, "any-nonce-at-all", "correct horse")
    assert check(make_auth(), made_up).stale  # the digest is right: nothing is revealed


def test_non_canonical_base64_spelling_of_a_nonce_is_refused() -> None:
    auth = make_auth()
    creds = answer(challenge_for(auth, "SHA-256"))
    last = creds.nonce[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = creds.nonce[:-1] + alphabet[alphabet.index(last) ^ 1]  # same bytes, spare bits set
    assert base64.urlsafe_b64decode(twin + "=") == base64.urlsafe_b64decode(creds.nonce + "=")
    assert check(auth, _with_nonce(creds, twin, "correct horse")).reason is AuthReason.BAD_NONCE


def test_nonce_is_bound_to_its_realm() -> None:
    auth = make_auth()
    other_realm = auth.challenge("other.example.com", T0)[0]
    nonce = parse_challenge(other_realm).nonce  # type: ignore[union-attr]
    creds = answer(challenge_for(auth, "SHA-256"))
    assert check(auth, _with_nonce(creds, nonce, "correct horse")).reason is AuthReason.BAD_NONCE


def test_nonce_from_the_future_beyond_clock_skew_is_bad() -> None:
    auth = make_auth(max_clock_skew=30)
    creds = answer(challenge_for(auth, "SHA-256", now=T0 + 60))
    assert check(auth, creds, T0).reason is AuthReason.BAD_NONCE
    creds2 = answer(challenge_for(auth, "SHA-256", now=T0 + 10))
    assert check(auth, creds2, T0).ok


def test_wrong_realm_algorithm_opaque() -> None:
    auth = make_auth(algorithms=["MD5"])
    creds = answer(challenge_for(make_auth(), "SHA-256"))
    assert check(auth, creds).reason is AuthReason.UNSUPPORTED_ALGORITHM
    md5 = answer(challenge_for(auth, "MD5"))
    assert auth.verify(md5, "REGISTER", "elsewhere", T0, lookup).reason is AuthReason.WRONG_REALM
    bad_opaque = dataclasses.replace(md5, opaque="not-ours")
    assert check(auth, bad_opaque).reason is AuthReason.BAD_OPAQUE
    no_opaque = dataclasses.replace(md5, opaque=None)
    assert check(auth, no_opaque).ok  # some phones omit opaque; the nonce is what counts
    sess = dataclasses.replace(md5, algorithm="MD5-sess")
    assert check(auth, sess).reason is AuthReason.UNSUPPORTED_ALGORITHM


def test_auth_int_is_refused() -> None:
    auth = make_auth()
    creds = answer(challenge_for(auth, "MD5"))
    auth_int = dataclasses.replace(creds, qop="auth-int")
    assert check(auth, auth_int).reason is AuthReason.UNSUPPORTED_QOP


# ---------------------------------------------------------------- nonce count


def test_nonce_count_must_increase() -> None:
    auth = make_auth()
    challenge = challenge_for(auth, "SHA-256")
    assert check(auth, answer(challenge, nc=1)).ok
    replay = check(auth, answer(challenge, nc=1), T0 + 1)
    assert (replay.ok, replay.reason, replay.stale) == (False, AuthReason.REPLAY, True)
    assert check(auth, answer(challenge, nc=2), T0 + 2).ok
    assert check(auth, answer(challenge, nc=7), T0 + 3).ok
    assert check(auth, answer(challenge, nc=5), T0 + 4).reason is AuthReason.REPLAY
    assert check(auth, answer(challenge, nc=8), T0 + 5).ok


def test_failed_guess_cannot_poison_the_nonce_count() -> None:
    auth = make_auth()
    challenge = challenge_for(auth, "SHA-256")
    forged = check(auth, answer(challenge, "alice", "guess", nc=0xFFFFFF))
    assert forged.reason is AuthReason.BAD_RESPONSE
    assert check(auth, answer(challenge, nc=1)).ok


def test_nonce_count_zero_is_refused() -> None:
    auth = make_auth()
    creds = answer(challenge_for(auth, "MD5"))
    zero = dataclasses.replace(creds, nc="00000000")
    zero = _with_nonce(zero, zero.nonce, "correct horse")  # a correct response for nc=0
    assert check(auth, zero).reason is AuthReason.REPLAY


def test_nonce_table_is_bounded_and_dropped_nonces_become_stale() -> None:
    auth = make_auth(max_tracked_nonces=3)
    challenges = [challenge_for(auth, "MD5", T0 + i) for i in range(5)]
    for i, challenge in enumerate(challenges):
        assert check(auth, answer(challenge, nc=1), T0 + 10 + i).ok
    assert auth.tracked_nonces == 3
    # The first two were dropped for room: a replay of them must not be accepted as new.
    for challenge in challenges[:2]:
        result = check(auth, answer(challenge, nc=1), T0 + 20)
        assert (result.ok, result.reason, result.stale) == (False, AuthReason.STALE_NONCE, True)
    assert check(auth, answer(challenges[4], nc=2), T0 + 20).ok


def test_nonce_table_forgets_expired_nonces() -> None:
    auth = make_auth(nonce_lifetime=60)
    for i in range(10):
        assert check(auth, answer(challenge_for(auth, "MD5", T0 + i)), T0 + i).ok
    assert auth.tracked_nonces == 10
    assert check(auth, answer(challenge_for(auth, "MD5", T0 + 200)), T0 + 200).ok
    assert auth.tracked_nonces == 1


# ---------------------------------------------------------------- parsing


def test_parse_quoted_strings_with_escaped_quotes_and_commas() -> None:
    value = (
        'dIgEsT  username = "a\\"b, c\\\\d" ,realm="pbx.example.com",\tnonce="n,o",'
        ' uri="sip:x, y", response="00", qop="auth", nc=0000000a, cnonce="c\\"", opaque=""'
        ", x-vendor=thing"
    )
    creds = parse_credentials(value)
    assert creds is not None
    assert creds.username == 'a"b, c\\d'
    assert (creds.nonce, creds.uri, creds.cnonce, creds.opaque) == ("n,o", "sip:x, y", 'c"', "")
    assert (creds.qop, creds.nonce_count, creds.algorithm) == ("auth", 10, "MD5")
    assert creds.extra == (("x-vendor", "thing"),)


def test_parse_tolerates_folded_lines_and_empty_list_elements() -> None:
    value = 'Digest username="u",\r\n\trealm="r" ,, nonce="n",\n uri="s", response="00",'
    creds = parse_credentials(value)
    assert creds is not None and (creds.username, creds.realm, creds.qop) == ("u", "r", None)


def test_rfc4475_regaut01_unknown_scheme_returns_none() -> None:
    # RFC 4475 regaut01: "Authorization: NoOneKnowsThisScheme opaque-data=here"
    assert parse_credentials("NoOneKnowsThisScheme opaque-data=here") is None
    assert parse_credentials("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==") is None
    assert parse_challenge('Bearer realm="x"') is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ('"Digest" username="u"', "scheme"),
        ('Digest username="u", realm="r", nonce="n", uri="s"', '"response"'),
        ('Digest username="u", username="v"', "twice"),
        ('Digest username="u', "closing double quote"),
        ("Digest username", '"=value"'),
        ("Digest username=", "no value"),
        ('Digest username="u" realm="r"', "separated by commas"),
        ('Digest username="u", realm="r", nonce="n", uri="s", response="0", qop=auth', '"nc"'),
        (
            'Digest username="u", realm="r", nonce="n", uri="s", response="0", qop=auth, '
            'nc=xyz, cnonce="c"',
            "hexadecimal",
        ),
        ('Digest username="a\x00b"', "control character"),
        ('Digest username="u"\r\nrealm="r"', "line break"),
        ('Digest username="\\é"', "backslash"),
        ("Digest =x", "parameter name"),
    ],
)
def test_malformed_digest_raises_a_clear_error(value: str, message: str) -> None:
    with pytest.raises(AuthParseError, match=message.replace("(", r"\(")):
        parse_credentials(value)


def test_parse_challenge_reads_qop_list_and_stale() -> None:
    challenge = parse_challenge(
        'Digest realm="atlanta.com", domain="sip:ss1.carrier.com", qop="auth,auth-int", '
        'nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=md5'
    )
    assert challenge is not None
    assert challenge.qop_options == ("auth", "auth-int")
    assert (challenge.stale, challenge.algorithm, challenge.opaque) == (False, "MD5", "")
    assert challenge.extra == (("domain", "sip:ss1.carrier.com"),)
    with pytest.raises(AuthParseError, match='"nonce"'):
        parse_challenge('Digest realm="x"')


def test_build_authorization_refuses_what_it_cannot_answer() -> None:
    with pytest.raises(AuthParseError, match="only the Digest scheme"):
        build_authorization('Basic realm="x"', "INVITE", URI, "u", "p", "c")
    with pytest.raises(AuthParseError, match="SHA-512-256"):
        build_authorization(
            'Digest realm="x", nonce="n", algorithm=SHA-512-256', "INVITE", URI, "u", "p", "c"
        )
    with pytest.raises(AuthParseError, match='only qop "auth"'):
        build_authorization(
            'Digest realm="x", nonce="n", qop="auth-int"', "INVITE", URI, "u", "p", "c"
        )
    with pytest.raises(ValueError, match="line break"):
        build_authorization('Digest realm="x", nonce="n"', "INVITE", URI, "u\r\nX: y", "p", "c")


# ---------------------------------------------------------------- fuzzing

_PIECES = st.sampled_from(
    [
        '"',
        "\\",
        ",",
        "=",
        " ",
        "\t",
        "\r\n ",
        "\r",
        "\n",
        "username",
        "realm",
        "nonce",
        "uri",
        "response",
        "qop",
        "auth",
        "nc",
        "00000001",
        "cnonce",
        "algorithm",
        "SHA-256",
        "é",
        "\x00",
        "\ud800",
        "x",
    ]
)


@settings(max_examples=500)
@given(st.text())
def test_fuzz_parse_credentials_only_raises_auth_parse_error(value: str) -> None:
    for parse in (parse_credentials, parse_challenge):
        with contextlib.suppress(AuthParseError):
            parse(value)


@settings(max_examples=1000)
@given(st.lists(_PIECES, max_size=40).map("".join))
def test_fuzz_structured_digest_values(rest: str) -> None:
    for parse in (parse_credentials, parse_challenge):
        with contextlib.suppress(AuthParseError):
            parse("Digest " + rest)


_HEADER_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from('"\\, \t='), max_size=20
)


@settings(max_examples=200, deadline=None)
@given(username=_HEADER_TEXT, password=st.text(max_size=20), nc=st.integers(1, 0xFFFFFFFF))
def test_fuzz_round_trip_any_username_and_password(username: str, password: str, nc: int) -> None:
    auth = make_auth()
    challenge = challenge_for(auth, "SHA-256")
    value = build_authorization(challenge, "REGISTER", URI, username, password, 'cn"once', nc)
    creds = parse_credentials(value)
    assert creds is not None and creds.username == username and creds.nonce_count == nc

    def lookup_one(name: str, algorithm: str) -> str | None:
        return compute_ha1(username, REALM, password, algorithm) if name == username else None

    assert auth.verify(creds, "REGISTER", REALM, T0, lookup_one).ok
