"""The media endpoint answers calls itself: SDP answer (PCMU/PCMA, telephone-event), 488 for
no common codec, delayed offer, BYE both ways, CANCEL after answer, no ACK, a caller who
sends no audio, garbage RTP, and callers handed over when an extension does not answer."""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from media_kit import Rig, SoftPhone

from frontdesk.media.prompts import Prompt
from frontdesk.media.rtp import encode_frames
from frontdesk.media.wav import peak
from frontdesk.pbx.echo import EchoService
from frontdesk.pbx.endpoint import CallScript, MediaCall
from frontdesk.pbx.location import Binding
from frontdesk.sip.message import Request, Response
from frontdesk.sip.peer import Peer

pytestmark = pytest.mark.timeout(60)
TONE = struct.pack("<4000h", *(int(9000 * math.sin(i / 5.0)) for i in range(4000)))


class Scripted:
    """A service answering ``number`` (and unanswered calls to ``unanswered``) with ``script``."""

    def __init__(self, script: CallScript, number: str = "*50", unanswered: str = "") -> None:
        self.script, self.number, self.unanswered = script, number, unanswered

    def script_for(self, tenant: Any, dialled: str, caller: str) -> CallScript | None:
        return self.script if dialled == self.number else None

    def script_for_unanswered(self, tenant: Any, callee: str) -> CallScript | None:
        return self.script if callee == self.unanswered else None


def run(
    test: Callable[[Rig], Awaitable[None]],
    services: list[Any] | None = None,
    numbers: dict[str, str] | None = None,
) -> Rig:
    async def main() -> Rig:
        rig = Rig(numbers)
        rig.endpoint.services.extend(services if services is not None else [EchoService()])
        try:
            await test(rig)
        finally:
            await rig.close()
        return rig

    return asyncio.run(main())


async def play_beep(call: MediaCall) -> None:
    assert call.session is not None
    await call.session.play(Prompt("tone", TONE))


def test_echo_returns_audio_and_digits_then_the_caller_hangs_up() -> None:
    async def test(rig: Rig) -> None:
        phone = SoftPhone(rig, "101", 6001)
        resp = await phone.connect("*43")
        assert resp.status == 200 and b"a=rtpmap:0 PCMU/8000" in resp.body
        assert b"telephone-event/8000" in resp.body and b"m=audio" in resp.body
        digits: list[str] = []
        assert phone.stream is not None
        phone.stream.on_dtmf = digits.append
        phone.stream.play(encode_frames(TONE, "PCMU"))
        phone.stream.send_dtmf("12#")
        await phone.wait_for(lambda: len(digits) == 3, 3.0)
        assert digits == ["1", "2", "#"]
        assert peak(bytes(phone.heard)) > 6000  # our own tone came back
        phone.hangup()
        ok = await phone.wait_for(
            lambda: [
                m for m in phone.messages if isinstance(m, Response) and m.cseq.method == "BYE"
            ]
        )
        assert ok[0].status == 200
        await phone.wait_for(lambda: not rig.endpoint.by_invite)
        await phone.close()
        final = rig.cdrs[-1]
        assert (final["disposition"], final["hangup_side"], final["callee"]) == (
            "answered",
            "caller",
            "*43",
        )
        assert not phone.requests("BYE")  # the caller ended it: no BYE back

    run(test)


@pytest.mark.parametrize(("formats", "codec"), [("8 0 101", "PCMA"), ("8", "PCMA"), ("0", "PCMU")])
def test_the_answer_picks_a_g711_codec_the_caller_offered(formats: str, codec: str) -> None:
    async def test(rig: Rig) -> None:
        phone = SoftPhone(rig, "101", 6002, formats)
        resp = await phone.connect("*43")
        assert resp.status == 200 and f"{codec}/8000".encode() in resp.body
        assert (b"telephone-event" in resp.body) == ("101" in formats)
        phone.hangup()
        await phone.close()

    run(test)


def test_an_offer_without_a_common_codec_gets_488_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def test(rig: Rig) -> None:
        phone = SoftPhone(rig, "101", 6003, "18 9")
        resp = await phone.connect("*43")
        assert resp.status == 488
        warning = resp.headers.get("Warning") or ""
        assert warning.startswith("305 ") and "G729" in warning and "PCMU" in warning
        await phone.close()
        assert rig.cdrs[-1]["sip_code"] == 488 and rig.cdrs[-1]["disposition"] == "failed"

    with caplog.at_level(logging.WARNING):
        run(test)
    assert "refused with 488: no common audio codec" in caplog.text


def test_the_endpoint_hangs_up_when_its_script_ends() -> None:
    async def test(rig: Rig) -> None:
        phone = SoftPhone(rig, "101", 6004)
        await phone.connect("*50")
        bye = (await phone.wait_for(lambda: phone.requests("BYE"), 3.0))[0]
        phone.answer_request(bye)
        assert peak(bytes(phone.heard)) > 6000
        await phone.close()
        assert rig.cdrs[-1]["hangup_side"] == "system"

    run(test, [Scripted(play_beep)])


def test_a_caller_who_sends_no_audio_is_hung_up_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def test(rig: Rig) -> None:
        phone = SoftPhone(rig, "101", 6005)
        phone.call("*43")
        resp = await phone.wait_for(phone.final)
        phone.ack(resp)  # ...but never any RTP
        await phone.wait_for(lambda: phone.requests("BYE"), 6.0)
        await phone.close()

    with caplog.at_level(logging.WARNING):
        run(test)
    assert "no RTP from the caller for 3 s (since it answered" in caplog.text


def test_delayed_offer_is_answered_in_the_ack() -> None:
    async def test(rig: Rig) -> None:
        phone = SoftPhone(rig, "101", 6006)
        phone.call("*43", body=b"")
        resp = await phone.wait_for(phone.final)
        assert resp.status == 200 and b"PCMU/8000" in resp.body and b"PCMA/8000" in resp.body
        phone.ack(resp, body=phone.sdp())
        await phone.start_media(resp)
        assert phone.stream is not None
        phone.stream.play(encode_frames(TONE, "PCMU"))
        await phone.wait_for(lambda: peak(bytes(phone.heard)) > 6000, 3.0)
        phone.hangup()
        await phone.close()

    run(test)


def test_cancel_after_the_answer_changes_nothing() -> None:
    async def test(rig: Rig) -> None:
        phone = SoftPhone(rig, "101", 6007)
        await phone.connect("*43")
        invite = phone.invite
        assert invite is not None
        raw = (
            f"CANCEL {invite.uri} SIP/2.0\r\nVia: {invite.headers.get('Via')}\r\n"
            f"Max-Forwards: 70\r\nFrom: {invite.headers.get('From')}\r\n"
            f"To: {invite.headers.get('To')}\r\nCall-ID: {invite.call_id}\r\n"
            "CSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        rig.send(raw, phone.peer)
        ok = await phone.wait_for(
            lambda: [
                m for m in phone.messages if isinstance(m, Response) and m.cseq.method == "CANCEL"
            ]
        )
        assert ok[0].status == 200 and rig.endpoint.by_invite
        phone.hangup()
        await phone.close()

    run(test)


def test_no_ack_ends_the_call(caplog: pytest.LogCaptureFixture) -> None:
    async def test(rig: Rig) -> None:
        rig.engine.tx.t1 = 0.03  # Timer L = 64*T1 = 1.9 s, before the no-media watchdog
        phone = SoftPhone(rig, "101", 6008)
        phone.call("*43")
        await phone.wait_for(phone.final)
        await phone.wait_for(lambda: not rig.endpoint.by_invite, 6.0)
        await phone.close()

    with caplog.at_level(logging.WARNING):
        run(test)
    assert "no ACK for our 200 OK" in caplog.text


def test_garbage_rtp_is_logged_and_the_call_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def test(rig: Rig) -> None:
        phone = SoftPhone(rig, "101", 6009)
        resp = await phone.connect("*43")
        port = int(resp.body.split(b"m=audio ")[1].split()[0])
        assert phone.stream is not None
        phone.stream.play(encode_frames(TONE, "PCMU"))
        await asyncio.sleep(0.1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as junk:
            junk.sendto(b"\xff" * 50, ("127.0.0.1", port))
        phone.stream._sender.send_raw(34, b"\x00" * 100, 0, addr=phone.stream.remote)  # type: ignore[union-attr]
        await asyncio.sleep(0.3)
        assert rig.endpoint.by_invite and peak(bytes(phone.heard)) > 6000
        phone.hangup()
        await phone.close()

    with caplog.at_level(logging.INFO):
        run(test)
    assert "not RTP" in caplog.text and "payload type 34" in caplog.text


def test_an_unregistered_extension_goes_to_its_service() -> None:
    async def test(rig: Rig) -> None:
        phone = SoftPhone(rig, "101", 6010)
        resp = await phone.connect("102")
        assert resp.status == 200
        await phone.wait_for(lambda: phone.requests("BYE"), 3.0)
        await phone.close()

    run(test, [Scripted(play_beep, unanswered="102")], {"101": "A", "102": "B"})


def test_a_ringing_extension_that_does_not_answer_goes_to_its_service() -> None:
    async def test(rig: Rig) -> None:
        callee = Peer("udp", "127.0.0.1", 6099)
        rig.location.save(
            Binding(1, "102", "sip:102@127.0.0.1:6099", callee, rig.now() + 300, "reg-1", 1), 5
        )
        phone = SoftPhone(rig, "101", 6011)
        phone.call("102")
        fork = await phone.wait_for(
            lambda: [m for m in rig.inbox.get(6099, []) if isinstance(m, Request)]
        )
        rig.send(_ringing(fork[0]), callee)
        ringing = await phone.wait_for(
            lambda: [m for m in phone.messages if isinstance(m, Response) and m.status == 180]
        )
        resp = await phone.wait_for(phone.final, 8.0)  # ring timeout 5 s, then voicemail
        assert resp.status == 200 and resp.to.tag == ringing[0].to.tag
        phone.ack(resp)
        await phone.start_media(resp)
        await phone.wait_for(lambda: phone.requests("BYE"), 3.0)
        cancels = [m for m in rig.inbox[6099] if isinstance(m, Request) and m.method == "CANCEL"]
        assert cancels, "the unanswered phone must stop ringing"
        await phone.close()
        ids = {c["id"] for c in rig.cdrs}
        assert len(ids) == 1 and rig.cdrs[-1]["callee_answered_by"] == "frontdesk"

    run(test, [Scripted(play_beep, unanswered="102")], {"101": "A", "102": "B"})


def _ringing(invite: Request) -> bytes:
    from frontdesk.sip.message import make_response

    return bytes(make_response(invite, 180, to_tag="ring1"))
