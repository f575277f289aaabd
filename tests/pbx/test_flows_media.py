"""Play and menu nodes on live calls, with the SIP engine in memory and real RTP on loopback
(tests/media/media_kit.py): our media answers the caller and plays the prompt; a busy ring
step lets the flow go on in the same session; the next ring step re-bridges the caller
(delayed-offer INVITE, re-INVITE with the callee's offer, ACK with the caller's answer);
the caller hanging up while the target rings CANCELs it; glare during the re-bridge."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "media"))

from inmemory import with_main_number
from media_kit import Rig, SoftPhone

from frontdesk.media.prompts import PromptLibrary
from frontdesk.media.wav import peak
from frontdesk.pbx.callcontrol_live import LiveCallControl
from frontdesk.pbx.flows import TenantRouting
from frontdesk.pbx.location import Binding
from frontdesk.routing.directory import StaticDirectory
from frontdesk.routing.model import FlowDocument
from frontdesk.sip.message import Request, Response, make_response
from frontdesk.sip.peer import Peer

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(
        not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox"
    ),
]

FLOW = """
name: front-desk
timezone: UTC
messages: {welcome: "Welcome to Acme."}
nodes:
  start: {type: start, next: welcome}
  welcome: {type: play, message: welcome, next: ring-sm}
  ring-sm: {type: ring, targets: ["102"], timeout: 10, no_answer: ring-sc, busy: ring-sc}
  ring-sc: {type: ring, targets: ["103"], timeout: 10, no_answer: bye, busy: bye}
  bye: {type: hangup}
"""
NAMES = {"101": "Caller", "102": "Service Manager", "103": "Service Coordinator"}


def office(rig: Rig, data: Path) -> None:
    d = rig.engine.directory
    with_main_number(d)
    flow = FlowDocument.model_validate(yaml.safe_load(FLOW))
    d.routing[1] = TenantRouting(flow, StaticDirectory.build(NAMES, roles={}, mailboxes=[]))
    rig.engine.flows.media.prompts = PromptLibrary(data)
    rig.engine.flows.media.control = LiveCallControl(rig.engine, rig.endpoint, rig.flush)
    for number in ("102", "103"):
        peer = Peer("udp", "127.0.0.1", PORTS[number])
        binding = Binding(
            1,
            number,
            f"sip:{number}@127.0.0.1:{peer.port}",
            peer,
            rig.now() + 300,
            f"reg-{number}",
            1,
        )
        rig.location.save(binding, 5)


PORTS = {"102": 6102, "103": 6103}


def run(test: Callable[[Rig], Awaitable[None]], data: Path) -> Rig:
    async def main() -> Rig:
        rig = Rig(NAMES)
        office(rig, data)
        try:
            await test(rig)
        finally:
            await rig.close()
        return rig

    return asyncio.run(main())


def got(rig: Rig, number: str, method: str) -> list[Request]:
    return [
        m for m in rig.inbox.get(PORTS[number], []) if isinstance(m, Request) and m.method == method
    ]


async def wait(phone: SoftPhone, check: Callable[[], object], timeout: float = 5.0) -> object:
    return await phone.wait_for(check, timeout)


def reply(
    rig: Rig, to: Peer, req: Request, status: int, body: bytes = b"", tag: str = "callee"
) -> None:
    resp = make_response(req, status, to_tag=tag, body=body)
    resp.headers.add("Contact", f"<sip:x@127.0.0.1:{to.port}>")
    if body:
        resp.headers.add("Content-Type", "application/sdp")
    rig.send(resp, to)


def reinvites(caller: SoftPhone) -> list[Request]:
    seen: dict[str, Request] = {}
    for r in caller.requests("INVITE"):
        seen.setdefault(r.top_via.branch or "", r)
    return list(seen.values())


def test_busy_then_the_next_ring_step_is_connected(tmp_path: Path) -> None:
    async def test(rig: Rig) -> None:
        caller = SoftPhone(rig, "101", 6101)
        coordinator = SoftPhone(rig, "103", 6103)
        ok = await caller.connect("100")
        assert ok.status == 200 and ok.body  # our media answered
        sm_invite = (await wait(caller, lambda: got(rig, "102", "INVITE"), 8))[0]  # type: ignore[index]
        assert sm_invite.body == b""  # delayed offer
        assert peak(bytes(caller.heard)) > 1000  # the prompt was played first
        reply(rig, Peer("udp", "127.0.0.1", 6102), sm_invite, 486)
        sc_invite = (await wait(caller, lambda: got(rig, "103", "INVITE")))[0]  # type: ignore[index]
        offer = coordinator.sdp()
        reply(rig, coordinator.peer, sc_invite, 200, offer)
        re = (await wait(caller, lambda: reinvites(caller)))[0]  # type: ignore[index]
        assert re.body == offer and re.call_id == ok.call_id
        answer = caller.sdp()
        reply(rig, caller.peer, re, 200, answer, tag=caller.invite.from_.tag or "")  # type: ignore[union-attr]
        acks = await wait(caller, lambda: got(rig, "103", "ACK"))
        assert acks[0].body == answer  # type: ignore[index]
        assert caller.requests("ACK")  # our ACK of the caller's 200
        record = rig.cdrs[-1]
        assert record["callee_answered_by"] == "103" and record["ended_at"] is None
        nodes = [s["node"] for s in record["path"]]
        assert nodes[:2] == ["start", "welcome"] and "ring-sc" in nodes
        caller.hangup()
        await wait(caller, lambda: got(rig, "103", "BYE"))
        final = rig.cdrs[-1]
        assert final["id"] == record["id"] and final["hangup_side"] == "caller"
        assert final["disposition"] == "answered" and final["ended_at"] is not None
        assert not caller.requests("BYE")  # the caller hung up: no BYE from us

    run(test, tmp_path)


def test_caller_hangs_up_while_the_target_rings(tmp_path: Path) -> None:
    async def test(rig: Rig) -> None:
        caller = SoftPhone(rig, "101", 6101)
        await caller.connect("100")
        invite = (await wait(caller, lambda: got(rig, "102", "INVITE"), 8))[0]  # type: ignore[index]
        sm = Peer("udp", "127.0.0.1", 6102)
        reply(rig, sm, invite, 180)
        caller.hangup()
        cancel = (await wait(caller, lambda: got(rig, "102", "CANCEL")))[0]  # type: ignore[index]
        reply(rig, sm, cancel, 200)
        reply(rig, sm, invite, 487)
        await wait(caller, lambda: rig.cdrs and rig.cdrs[-1]["ended_at"])
        final = rig.cdrs[-1]
        assert final["hangup_side"] == "caller" and final["callee_answered_by"] == "frontdesk"
        assert not got(rig, "103", "INVITE")  # the flow did not go on without a caller

    run(test, tmp_path)


def test_glare_while_the_caller_is_re_invited(tmp_path: Path) -> None:
    async def test(rig: Rig) -> None:
        caller = SoftPhone(rig, "101", 6101)
        manager = SoftPhone(rig, "102", 6102)
        await caller.connect("100")
        invite = (await wait(caller, lambda: got(rig, "102", "INVITE"), 8))[0]  # type: ignore[index]
        offer = manager.sdp()
        reply(rig, manager.peer, invite, 200, offer)
        first = (await wait(caller, lambda: reinvites(caller)))[0]  # type: ignore[index]
        # the caller's own re-INVITE crosses ours: 491 for it
        caller.in_dialog("INVITE", caller.sdp(), "application/sdp")
        mine = [
            m
            for m in caller.messages
            if isinstance(m, Response)
            and m.cseq.method == "INVITE"
            and m.cseq.number == caller.cseq
        ]
        assert [m.status for m in mine if m.status >= 200] == [491]
        reply(rig, caller.peer, first, 491, tag=caller.invite.from_.tag or "")  # type: ignore[union-attr]
        again = await wait(caller, lambda: len(reinvites(caller)) > 1 and reinvites(caller), 3)
        second = again[1]  # type: ignore[index]
        assert second.body == offer and second.cseq.number > first.cseq.number
        reply(rig, caller.peer, second, 200, caller.sdp(), tag=caller.invite.from_.tag or "")  # type: ignore[union-attr]
        acks = await wait(caller, lambda: got(rig, "102", "ACK"))
        assert acks[0].body == caller.sdp()  # type: ignore[index]

    run(test, tmp_path)


RING_FIRST = """
name: front-desk
timezone: UTC
messages: {sorry: "Sorry, nobody is free. Trying the coordinator."}
nodes:
  start: {type: start, next: ring-sm}
  ring-sm: {type: ring, targets: ["102"], timeout: 5, no_answer: sorry, busy: sorry}
  sorry: {type: play, message: sorry, next: ring-sc}
  ring-sc: {type: ring, targets: ["103"], timeout: 10, no_answer: bye, busy: bye}
  bye: {type: hangup}
"""


def test_a_prompt_after_a_ring_step_answers_the_ringing_caller(tmp_path: Path) -> None:
    async def test(rig: Rig) -> None:
        rig.engine.directory.routing[1].flow = FlowDocument.model_validate(
            yaml.safe_load(RING_FIRST)
        )
        caller = SoftPhone(rig, "101", 6101)
        coordinator = SoftPhone(rig, "103", 6103)
        caller.call("100")
        invite = (await wait(caller, lambda: got(rig, "102", "INVITE")))[0]  # type: ignore[index]
        assert invite.body == caller.sdp()  # the first ring step forks the caller's offer
        reply(rig, Peer("udp", "127.0.0.1", 6102), invite, 486)
        ok = await wait(caller, caller.final)
        assert ok.status == 200 and ok.body  # type: ignore[attr-defined]
        caller.ack(ok)  # type: ignore[arg-type]
        await caller.start_media(ok)  # type: ignore[arg-type]
        sc_invite = (await wait(caller, lambda: got(rig, "103", "INVITE"), 8))[0]  # type: ignore[index]
        assert peak(bytes(caller.heard)) > 1000  # heard "sorry ..." before
        reply(rig, coordinator.peer, sc_invite, 200, coordinator.sdp())
        re = (await wait(caller, lambda: reinvites(caller)))[0]  # type: ignore[index]
        reply(rig, caller.peer, re, 200, caller.sdp(), tag=caller.invite.from_.tag or "")  # type: ignore[union-attr]
        await wait(caller, lambda: got(rig, "103", "ACK"))
        ids = {r["id"] for r in rig.cdrs}
        assert len(ids) == 1  # one call, one record throughout
        record = rig.cdrs[-1]
        assert record["callee_answered_by"] == "103"
        assert [s["node"] for s in record["path"]][:3] == ["start", "ring-sm", "ring-sm"]

    run(test, tmp_path)


class Hold:
    """A service answering *60 with a script that only waits (a caller in a menu)."""

    def script_for(self, tenant: object, dialled: str, caller: str) -> object:
        async def run(call: object) -> None:
            await call.session.pause(30)  # type: ignore[attr-defined]

        return run if dialled == "*60" else None

    def script_for_unanswered(self, tenant: object, callee: str) -> None:
        return None


def test_call_control_transfers_a_caller_our_media_answered(tmp_path: Path) -> None:
    async def test(rig: Rig) -> None:
        rig.endpoint.services.append(Hold())
        control: LiveCallControl = rig.engine.flows.media.control
        caller = SoftPhone(rig, "101", 6101)
        manager = SoftPhone(rig, "102", 6102)
        ok = await caller.connect("*60")
        media = next(iter(rig.endpoint.by_dialog.values()))
        moving = asyncio.ensure_future(control.transfer(ok.call_id, "102", "dana@acme"))
        invite = (await wait(caller, lambda: got(rig, "102", "INVITE")))[0]  # type: ignore[index]
        assert invite.body == b""
        reply(rig, manager.peer, invite, 200, manager.sdp())
        re = (await wait(caller, lambda: reinvites(caller)))[0]  # type: ignore[index]
        reply(rig, caller.peer, re, 200, caller.sdp(), tag=caller.invite.from_.tag or "")  # type: ignore[union-attr]
        result = await asyncio.wait_for(moving, 5)
        assert result["status"] == "connected" and result["actor"] == "dana@acme"
        assert result["call"] == media.id
        await asyncio.wait_for(media.task, 5)  # our script stopped ...
        assert not caller.requests("BYE")  # ... without hanging up on the caller
        record = rig.cdrs[-1]
        assert record["id"] == media.id and record["callee_answered_by"] == "102"
        assert record["ended_at"] is None
        assert record["extra"]["call_control"][0]["status"] == "connected"
        caller.hangup()
        await wait(caller, lambda: got(rig, "102", "BYE"))
        assert rig.cdrs[-1]["ended_at"] is not None

    run(test, tmp_path)


GROUP = """
name: front-desk
timezone: UTC
messages: {welcome: "Welcome to Acme."}
nodes:
  start: {type: start, next: welcome}
  welcome: {type: play, message: welcome, next: ring-team}
  ring-team: {type: ring, targets: ["102", "103"], timeout: 10, no_answer: bye, busy: bye}
  bye: {type: hangup}
"""


def test_a_ring_group_after_a_prompt_forks_and_the_first_answer_wins(tmp_path: Path) -> None:
    async def test(rig: Rig) -> None:
        rig.engine.directory.routing[1].flow = FlowDocument.model_validate(yaml.safe_load(GROUP))
        caller = SoftPhone(rig, "101", 6101)
        coordinator = SoftPhone(rig, "103", 6103)
        await caller.connect("100")
        sm = (await wait(caller, lambda: got(rig, "102", "INVITE"), 8))[0]  # type: ignore[index]
        sc = (await wait(caller, lambda: got(rig, "103", "INVITE")))[0]  # type: ignore[index]
        assert sm.to.uri.user == sc.to.uri.user == "100"  # the number the caller dialled
        assert sm.call_id == sc.call_id and sm.body == sc.body == b""
        reply(rig, Peer("udp", "127.0.0.1", 6102), sm, 180)
        reply(rig, coordinator.peer, sc, 200, coordinator.sdp())
        await wait(caller, lambda: got(rig, "102", "CANCEL"))  # the other fork stops
        re = (await wait(caller, lambda: reinvites(caller)))[0]  # type: ignore[index]
        reply(rig, caller.peer, re, 200, caller.sdp(), tag=caller.invite.from_.tag or "")  # type: ignore[union-attr]
        await wait(caller, lambda: got(rig, "103", "ACK"))
        assert rig.cdrs[-1]["callee_answered_by"] == "103"

    run(test, tmp_path)


class Mailbox:
    """A stand-in mailbox 102 for to_voicemail: its script plays a tone, then waits."""

    def __init__(self) -> None:
        self.calls: list[object] = []

    def script_for(self, tenant: object, dialled: str, caller: str) -> None:
        return None

    def script_for_unanswered(self, tenant: object, callee: str) -> object:
        async def run(call: object) -> None:
            from frontdesk.media.prompts import tone

            self.calls.append(call)
            await call.session.play(tone(800.0, 500, 0.3))  # type: ignore[attr-defined]
            await call.session.pause(30)  # type: ignore[attr-defined]

        return run if callee == "102" else None


async def bridged(rig: Rig) -> tuple[SoftPhone, SoftPhone, Request]:
    """101 calls 103 directly; 103 answers: a bridged call."""
    caller = SoftPhone(rig, "101", 6101)
    tech = SoftPhone(rig, "103", 6103)
    caller.call("103")
    invite = (await wait(caller, lambda: got(rig, "103", "INVITE")))[0]  # type: ignore[index]
    reply(rig, tech.peer, invite, 200, tech.sdp())
    ok = await wait(caller, caller.final)
    caller.ack(ok)  # type: ignore[arg-type]
    return caller, tech, invite


@pytest.mark.parametrize("caller_says", [200, 488])
def test_to_voicemail_reinvites_the_caller_with_our_offer(tmp_path: Path, caller_says: int) -> None:
    async def test(rig: Rig) -> None:
        mailbox = Mailbox()
        rig.endpoint.services.append(mailbox)
        control: LiveCallControl = rig.engine.flows.media.control
        caller, _tech, _ = await bridged(rig)
        cdr_id = rig.cdrs[-1]["id"]
        moving = asyncio.ensure_future(control.to_voicemail(cdr_id, "102", "dana@acme"))
        offer = (await wait(caller, lambda: reinvites(caller)))[0]  # type: ignore[index]
        assert b"m=audio" in offer.body and b"PCMU" in offer.body  # our own offer
        body = caller.sdp() if caller_says == 200 else b""
        reply(rig, caller.peer, offer, caller_says, body, tag=caller.invite.from_.tag or "")  # type: ignore[union-attr]
        result = await asyncio.wait_for(moving, 5)
        if caller_says == 488:  # the caller stays with the technician
            assert result["status"] == "failed" and result["sip_code"] == 488
            assert not got(rig, "103", "BYE") and not mailbox.calls
            return
        assert result["status"] == "voicemail"
        await wait(caller, lambda: got(rig, "103", "BYE"))  # the technician is released
        assert caller.requests("ACK")  # our ACK of the caller's answer
        await caller.start_media(offer, sdp_of=offer.body)
        await wait(caller, lambda: peak(bytes(caller.heard)) > 1000)  # the mailbox speaks
        record = rig.cdrs[-1]
        assert record["id"] == cdr_id and record["callee_answered_by"] == "frontdesk"
        assert record["extra"]["call_control"][0]["action"] == "to_voicemail"

    run(test, tmp_path)


MENU_FLOW = """
name: front-desk
timezone: UTC
messages:
  menu: "Press one to reach the service manager."
  wrong-key: "Sorry, that is not one of the choices."
  silence: "We did not hear a key. Goodbye for now."
nodes:
  start: {type: start, next: menu}
  menu:
    type: menu
    prompt: menu
    choices: {"1": ring-sm}
    timeout: 8
    retries: 1
    invalid_prompt: wrong-key
    no_input_prompt: silence
    no_input: bye
    invalid: bye
  ring-sm: {type: ring, targets: ["102"], timeout: 10, no_answer: bye, busy: bye}
  bye: {type: hangup}
"""


def test_a_key_that_is_not_a_choice_hears_the_invalid_prompt(tmp_path: Path) -> None:
    """The caller presses 9 during the menu: the retry says the invalid-choice message (the
    espeak-ng rendering, checked by cross-correlation), not the no-input one, then asks again."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "peers"))
    from audio import best_correlation

    from frontdesk.media.wav import write_wav_atomic

    doc = FlowDocument.model_validate(yaml.safe_load(MENU_FLOW))
    library = PromptLibrary(tmp_path / "refs")

    async def test(rig: Rig) -> None:
        rig.engine.directory.routing[1].flow = doc
        caller = SoftPhone(rig, "101", 6101)
        ok = await caller.connect("100")
        assert ok.status == 200
        await wait(caller, lambda: peak(bytes(caller.heard)) > 1000, 8)  # the menu speaks
        mark = len(caller.heard)
        assert caller.stream is not None
        caller.stream.send_dtmf("9")
        wrong = library.render(doc.messages["wrong-key"])
        enough = mark + wrong.stat().st_size + 16000  # the apology and a second of the menu
        await wait(caller, lambda: len(caller.heard) > enough, 15)
        heard = write_wav_atomic(tmp_path / "heard.wav", bytes(caller.heard[mark:]))
        assert best_correlation(heard, wrong) > 0.8
        silence = library.render(doc.messages["silence"])
        assert best_correlation(heard, silence) < 0.5  # the other prompt was not said
        caller.hangup()
        await wait(caller, lambda: rig.cdrs and rig.cdrs[-1]["ended_at"], 5)
        notes = [s.get("note", "") for s in rig.cdrs[-1]["path"] if s["node"] == "menu"]
        assert any(n.startswith('saying "wrong-key", then menu') for n in notes), notes

    run(test, tmp_path)
