"""Phone numbers to E.164: national and international forms, bad input named with a fix."""

from __future__ import annotations

import pytest

from frontdesk.tickets.errors import InvalidValue, PhoneNumberError
from frontdesk.tickets.numbers import caller_e164, caller_user_part, display, normalize


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+1 212 555 0100", "US", "+12125550100"),
        ("(212) 555-0100", "US", "+12125550100"),
        ("212.555.0100", "us", "+12125550100"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("0049 30 901820", "DE", "+4930901820"),
        ("030 901820", "DE", "+4930901820"),
    ],
)
def test_normalize_reads_national_and_international_forms(raw: str, region: str, e164: str) -> None:
    assert normalize(raw, region) == e164


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("abc", "it is not a phone number"),
        ("+999 1234", "country code"),
        ("555-0100", "not a valid number"),
        ("", "empty"),
        ("   ", "empty"),
        ("101", "not a valid number"),
    ],
)
def test_normalize_refuses_bad_numbers_naming_input_and_fix(raw: str, words: str) -> None:
    with pytest.raises(PhoneNumberError) as caught:
        normalize(raw, "US", field="numbers[0]")
    message = str(caught.value)
    assert words in message
    assert "international form" in message  # the fix
    if raw.strip():
        assert repr(raw) in message  # the input
    assert caught.value.field == "numbers[0]"


def test_unknown_region_is_refused_with_the_setting_named() -> None:
    with pytest.raises(InvalidValue, match="phone_region"):
        normalize("212 555 0100", "XX")


@pytest.mark.parametrize(
    ("caller", "user_part"),
    [
        ("+12125550100", "+12125550100"),
        ("sip:+12125550100@trunk.example;user=phone", "+12125550100"),
        ('"Ann Lee" <sip:2125550100@10.0.0.1:5060>;tag=x', "2125550100"),
        ("tel:+442079460958", "+442079460958"),
        ("sip:101@acme.example", "101"),
        ("anonymous", "anonymous"),
    ],
)
def test_caller_user_part(caller: str, user_part: str) -> None:
    assert caller_user_part(caller) == user_part


@pytest.mark.parametrize(
    ("caller", "e164"),
    [
        ("sip:+12125550100@trunk", "+12125550100"),
        ("2125550100", "+12125550100"),
        ("12125550100", "+12125550100"),
        ("anonymous", None),
        ("", None),
        ("101", None),
        ("sip:alice@example.com", None),
    ],
)
def test_caller_e164_is_lenient_and_never_raises(caller: str, e164: str | None) -> None:
    assert caller_e164(caller, "US") == e164


def test_display_is_international() -> None:
    assert display("+12125550100") == "+1 212-555-0100"
