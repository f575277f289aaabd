"""Phone numbers in E.164, and the tenant settings the tickets layer reads.

``normalize()`` is for numbers people type in (contacts, companies, co-workers): it accepts
international (``+44 20 7946 0958``) and, with the tenant's ``phone_region``, national forms
(``(212) 555-0100``), and refuses anything that is not a valid number with
``PhoneNumberError`` naming the input and the fix. ``caller_e164()`` is for caller IDs
arriving on calls: it never raises (``anonymous``, ``101`` or a SIP URI without a number just
give None).

This module must never touch the database; it uses the ``phonenumbers`` library and nothing
else that does I/O.
"""

from __future__ import annotations

import re
from typing import Any

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

from frontdesk.store.models import Tenant
from frontdesk.tickets.errors import InvalidValue, PhoneNumberError

#: Tickets settings every tenant has (``Tenant.settings`` overrides them):
#: ``phone_region`` is the ISO 3166 country used for numbers written without a country code;
#: ``missed_call_requests`` makes every missed inbound call create or update a request;
#: ``voicemail_requests`` (``front_desk``, ``all`` or ``off``) and
#: ``voicemail_request_mailboxes`` say which voicemails do (``calls.voicemail_files_request``).
TICKETS_SETTING_DEFAULTS: dict[str, Any] = {
    "phone_region": "US",
    "missed_call_requests": False,
    "voicemail_requests": "front_desk",
    "voicemail_request_mailboxes": [],
}

_FIX = (
    "write it in international form (+<country code> <number>, e.g. +1 212 555 0100), "
    "or set the tenant's phone_region setting for national numbers"
)
_URI_SCHEME = re.compile(r"^(sips?|tel):", re.IGNORECASE)
_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "the country code is missing or unknown",
    NumberParseException.NOT_A_NUMBER: "it is not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "it is too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "it is too short",
    NumberParseException.TOO_LONG: "it is too long",
}


def tickets_setting(tenant: Tenant, key: str) -> Any:
    """A tickets setting of ``tenant``, falling back to ``TICKETS_SETTING_DEFAULTS``."""
    settings = tenant.settings or {}
    if key in settings:
        return settings[key]
    return TICKETS_SETTING_DEFAULTS[key]


def check_region(region: str) -> str:
    """``region`` upper-cased if phonenumbers knows it; else ``InvalidValue``."""
    upper = region.upper()
    if upper not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidValue(
            f"phone region {region!r} is not a known ISO 3166 country code: use e.g. "
            "'US', 'GB' or 'DE' in the tenant's phone_region setting",
            field="phone_region",
        )
    return upper


def normalize(raw: str, region: str = "US", *, field: str = "number") -> str:
    """``raw`` as an E.164 string (``+12125550100``); ``PhoneNumberError`` when invalid."""
    region = check_region(region)
    text = raw.strip()
    if not text:
        raise PhoneNumberError(f"phone number is empty: {_FIX}", field=field)
    try:
        parsed = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, str(exc))
        raise PhoneNumberError(
            f"phone number {raw!r} cannot be parsed ({reason}): {_FIX}", field=field
        ) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise PhoneNumberError(
            f"phone number {raw!r} is not a valid number (read as region {region}): {_FIX}",
            field=field,
        )
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


def caller_user_part(caller: str) -> str:
    """The number part of a caller ID: ``"sip:+1212...@host;user=phone"`` -> ``"+1212..."``.

    Accepts a bare number, a ``sip:``/``sips:``/``tel:`` URI, or a name-addr
    (``"Ann" <sip:101@pbx>``).
    """
    text = caller.strip()
    if "<" in text and ">" in text:
        text = text[text.index("<") + 1 : text.index(">")]
    text = _URI_SCHEME.sub("", text)
    text = text.split("@", 1)[0]
    return text.split(";", 1)[0].strip()


def caller_e164(caller: str, region: str = "US") -> str | None:
    """A caller ID as E.164 when it is a possible phone number, else None (never raises).

    Lenient on purpose: a caller ID the lookup cannot read is simply not matched.
    """
    user = caller_user_part(caller)
    if not user or not any(ch.isdigit() for ch in user):
        return None
    try:
        parsed = phonenumbers.parse(user, region.upper())
    except NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


def display(e164: str) -> str:
    """An E.164 number in international display form (``+1 212-555-0100``)."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except NumberParseException:
        return e164
    return phonenumbers.format_number(parsed, PhoneNumberFormat.INTERNATIONAL)
