"""Generic fixtures for every test: free ports and real phones (see tests/peers/).

What it is for: ``tmp_port`` (a free UDP port on 127.0.0.1 per call), and factories that
start baresip / linphonec phones and always stop them after the test, printing their log
tails (pytest shows them when the test fails).

What it must never do: hold feature-specific fixtures (those live next to their tests),
or start anything a test did not ask for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from peers import BaresipPhone, LinphonePhone, free_udp_port


@pytest.fixture
def tmp_port() -> Callable[[], int]:
    """Call it for a free UDP port on 127.0.0.1: ``port = tmp_port()`` (never the same twice)."""
    return free_udp_port


def _stop_all(kind: str, phones: list[Any]) -> None:
    """Stop every phone (one failing stop must not leave the others running), then print tails."""
    errors = []
    for phone in phones:
        try:
            phone.stop()
        except Exception as exc:  # keep stopping the rest
            errors.append(f"{kind} {phone.user}: stop failed: {exc!r}")
    for phone in phones:
        print(f"\n--- {kind} {phone.user} ({phone.uri}) log tail ---\n{phone.log_tail(60)}")
    assert not errors, "\n".join(errors)


@pytest.fixture
def baresip_phone(tmp_path: Path) -> Iterator[Callable[..., BaresipPhone]]:
    """Factory: ``alice = baresip_phone("alice", audio_file=wav, answermode="auto")``.

    Takes BaresipPhone's keyword arguments; the phone is started, and stopped after the test.
    """
    phones: list[BaresipPhone] = []

    def make(user: str = "phone", **options: Any) -> BaresipPhone:
        phone = BaresipPhone(tmp_path / f"baresip-{len(phones)}-{user}", user, **options)
        phones.append(phone)
        return phone.start()

    yield make
    _stop_all("baresip", phones)


@pytest.fixture
def linphone_phone(tmp_path: Path) -> Iterator[Callable[..., LinphonePhone]]:
    """Factory: ``carol = linphone_phone("carol", play_file=wav, proxy="sip:127.0.0.1:5060")``."""
    phones: list[LinphonePhone] = []

    def make(user: str = "carol", **options: Any) -> LinphonePhone:
        phone = LinphonePhone(tmp_path / f"linphone-{len(phones)}-{user}", user, **options)
        phones.append(phone)
        return phone.start()

    yield make
    _stop_all("linphonec", phones)
