"""Self-service menus: prompt, DTMF with timeouts, retries with an "invalid choice" prompt,
the chosen branch handed back; menus leading to voicemail and to an extension (REFER)."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from media_kit import Rig, SoftPhone, configure

from frontdesk.cli import create_demo
from frontdesk.media.ivr import MenuError, MenuResult, MenuSpec, parse_branch, run_menu
from frontdesk.media.model import Menu, VoicemailMessage
from frontdesk.media.prompts import PromptLibrary
from frontdesk.media.rtp import encode_frames
from frontdesk.org.service import Change
from frontdesk.pbx.ivr import MenuService
from frontdesk.pbx.media_call import CallScript, MediaCall
from frontdesk.pbx.voicemail import VoicemailService
from frontdesk.store.db import Database, sqlite_url

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox"
    ),
]
MENU = MenuSpec(
    "main",
    "For sales press 1. For support press 2 1.",
    {"1": "extension:101", "21": "voicemail:102"},
    timeout=1.0,
    retries=1,
    default_branch="menu:500",
)


class MenuUnderTest:
    """Answers *60 with ``MENU`` and remembers the result."""

    def __init__(self, prompts: PromptLibrary) -> None:
        self.prompts = prompts
        self.results: list[MenuResult] = []

    def script_for(self, tenant: Any, dialled: str, caller: str) -> CallScript | None:
        async def run(call: MediaCall) -> None:
            assert call.session is not None
            self.results.append(await run_menu(call.session, MENU, self.prompts.speech))

        return run if dialled == "*60" else None

    def script_for_unanswered(self, tenant: Any, callee: str) -> CallScript | None:
        return None


async def dial_menu(rig: Rig, port: int, keys: list[tuple[float, str]]) -> SoftPhone:
    phone = SoftPhone(rig, "101", port)
    await phone.connect("*60")
    assert phone.stream is not None
    phone.stream.play(encode_frames(b"\x01\x00" * 8000 * 30, "PCMU"))  # keep RTP flowing
    for delay, digits in keys:
        await asyncio.sleep(delay)
        phone.stream.send_dtmf(digits)
    await phone.wait_for(lambda: phone.requests("BYE"), 20.0)
    await phone.close()
    return phone


@pytest.mark.parametrize(
    ("keys", "branch", "attempts", "wrong"),
    [
        ([(0.5, "1")], "extension:101", 1, ()),  # pressed during the prompt
        ([(0.5, "2"), (0.3, "1")], "voicemail:102", 1, ()),  # two-key choice
        ([(0.5, "7"), (4.5, "7")], "menu:500", 2, ("7",)),  # wrong twice -> default branch
        ([(0.5, "7"), (4.5, "1")], "extension:101", 2, ("7",)),  # wrong, then right on retry
        ([], "menu:500", 2, ()),  # silence: no-input prompt, retry, default
    ],
)
def test_the_menu_returns_the_chosen_branch(
    tmp_path: Path,
    keys: list[tuple[float, str]],
    branch: str,
    attempts: int,
    wrong: tuple[str, ...],
) -> None:
    async def main() -> MenuUnderTest:
        rig = Rig()
        menu = MenuUnderTest(PromptLibrary(tmp_path))
        rig.endpoint.services.append(menu)
        try:
            await dial_menu(rig, 7100, keys)
        finally:
            await rig.close()
        return menu

    [result] = asyncio.run(main()).results
    assert (result.branch, result.attempts, result.wrong[:1]) == (branch, attempts, wrong)


@pytest.mark.parametrize(
    ("choices", "problem"),
    [
        ({}, "has no choices"),
        ({"x": "hangup"}, "keypad digits"),
        ({"1": "queue:5"}, "must be one of"),
        ({"1": "extension:"}, "needs a target"),
    ],
)
def test_menu_definitions_are_checked(choices: dict[str, str], problem: str) -> None:
    with pytest.raises(MenuError, match=problem):
        MenuSpec("m", "prompt", choices)
    assert parse_branch("hangup") == ("hangup", "")


class Office:
    """Database with the demo tenant (its mailbox 102) and menu 500; services on a rig."""

    def __init__(self, rig: Rig, data: Path) -> None:
        self.db = Database(sqlite_url(data))
        self.db.migrate()
        create_demo(self.db)
        configure(
            self.db,
            Change("voicemail", "update", "settings", {"greeting_template": "Voicemail of {name}."}),
        )
        with self.db.session() as s:
            s.add(
                Menu(
                    tenant_id=1,
                    number="500",
                    name="Main menu",
                    choices={"1": "extension:103", "2": "voicemail:102"},
                    timeout_seconds=3.0,
                    retries=1,
                    prompt="For the coordinator press 1. To leave a message press 2.",
                    invalid_prompt="Sorry.",
                )
            )
        self.voicemail = VoicemailService(self.db, data, rig.endpoint)
        self.menus = MenuService(self.db, rig.endpoint, self.voicemail.prompts, self.voicemail)
        rig.endpoint.services.extend([self.voicemail, self.menus])


def office_run(tmp_path: Path, test: Any) -> None:
    async def main() -> None:
        rig = Rig({"101": "Office Manager", "102": "Service Manager", "103": "Coordinator"})
        office = Office(rig, tmp_path / "data")
        await office.voicemail.start()
        await office.menus.start()
        try:
            await test(rig, office)
        finally:
            await office.menus.close()
            await office.voicemail.close()
            await rig.close()

    asyncio.run(main())


def test_menu_branch_to_voicemail_stores_a_message(tmp_path: Path) -> None:
    async def test(rig: Rig, office: Office) -> None:
        phone = SoftPhone(rig, "101", 7110)
        await phone.connect("500")
        assert phone.stream is not None
        await asyncio.sleep(0.5)
        phone.stream.send_dtmf("2")
        await asyncio.sleep(3.5)  # "Voicemail of Service Manager." + tone
        tone = b"".join(
            int(6000 * ((i // 8) % 2 * 2 - 1)).to_bytes(2, "little", signed=True)
            for i in range(16000)
        )
        await asyncio.wait_for(phone.stream.play(encode_frames(tone, "PCMU")), 5)
        phone.hangup()
        await phone.wait_for(lambda: _messages(office), 5.0)
        await phone.close()

    office_run(tmp_path, test)


def _messages(office: Office) -> list[Any]:
    with office.db.session() as s:
        return list(s.query(VoicemailMessage))


def test_menu_branch_to_an_extension_transfers_the_caller(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def test(rig: Rig, office: Office) -> None:
        phone = SoftPhone(rig, "101", 7120)
        await phone.connect("500")
        assert phone.stream is not None
        await asyncio.sleep(0.5)
        phone.stream.send_dtmf("1")
        refer = (await phone.wait_for(lambda: phone.requests("REFER"), 6.0))[0]
        assert refer.headers.get("Refer-To") == "<sip:103@acme.test>"
        assert refer.headers.get("Referred-By") == "<sip:500@acme.test>"
        phone.answer_request(refer, 202)
        phone.in_dialog(
            "NOTIFY",
            b"SIP/2.0 200 OK\r\n",
            "message/sipfrag;version=2.0",
            "Event: refer\r\nSubscription-State: terminated;reason=noresource\r\n",
        )
        bye = (await phone.wait_for(lambda: phone.requests("BYE"), 5.0))[0]
        phone.answer_request(bye)
        await phone.close()

    with caplog.at_level(logging.INFO):
        office_run(tmp_path, test)
    assert "transferring the caller to 103" in caplog.text
    assert "caller chose 1 -> extension:103" in caplog.text
