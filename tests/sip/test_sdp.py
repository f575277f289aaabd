"""SDP model (RFC 4566) and offer/answer (RFC 3264) against real offers from baresip and linphone."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frontdesk.sip.message import parse_message
from frontdesk.sip.sdp import (
    Connection,
    Media,
    NoCommonCodec,
    RtpMap,
    SdpParseError,
    SessionDescription,
    build_answer,
)

FIXTURES = Path(__file__).parent / "fixtures"


def offer_from(fixture: str) -> bytes:
    """The SDP body of an INVITE a phone sent (tests/sip/fixtures)."""
    return parse_message((FIXTURES / fixture).read_bytes()).body


def sdp(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


HEAD = ("v=0", "o=- 1 1 IN IP4 192.0.2.9", "s=-", "c=IN IP4 192.0.2.9", "t=0 0")


def answer(body: bytes, **kw: Any) -> SessionDescription:
    offer = SessionDescription.parse(body)
    result = build_answer(offer, local_ip="192.0.2.5", local_port=30000, **kw)
    assert SessionDescription.parse(bytes(result)) == result  # the answer is valid SDP
    return result


@pytest.mark.parametrize(
    "fixture", ["invite_baresip.txt", "invite_linphone.txt", "invite_linphone_ipv6.txt"]
)
def test_real_offers_round_trip_byte_for_byte(fixture: str) -> None:
    body = offer_from(fixture)
    assert bytes(SessionDescription.parse(body)) == body


def test_baresip_offer_model() -> None:
    sd = SessionDescription.parse(offer_from("invite_baresip.txt"))
    assert (sd.origin.username, sd.origin.session_id, sd.origin.address) == (
        "-", "1580791995", "127.0.0.1"
    )  # fmt: skip
    assert sd.connection == Connection("127.0.0.1") and sd.attribute("tool") == "baresip 1.0.0"
    (audio,) = sd.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == (
        "audio", 20906, "RTP/AVP", ["0", "8", "101"]
    )  # fmt: skip
    assert audio.rtpmaps["101"] == RtpMap(101, "telephone-event", 8000)
    assert audio.fmtp("101") == "0-15" and audio.fmtp("0") is None
    assert audio.ptime == 20 and audio.direction == "sendrecv" and audio.has_attribute("rtcp-rsize")
    assert audio.attribute("ssrc") == "4076858484 cname:sip:alice@127.0.0.1"


def test_linphone_offer_model() -> None:
    sd = SessionDescription.parse(offer_from("invite_linphone.txt"))
    (audio,) = sd.media
    assert sd.session_name == "Talk" and audio.formats == ["0", "8", "96"]
    assert audio.rtpmaps["0"] == RtpMap(0, "PCMU", 8000)  # static, no rtpmap line
    assert audio.direction is None and sd.media_direction(audio) == "sendrecv"
    assert audio.ptime is None and sd.connection_for(audio) == Connection("127.0.0.1")
    v6 = SessionDescription.parse(offer_from("invite_linphone_ipv6.txt"))
    assert v6.connection_for(v6.media[0]) == Connection("2001:db8::20", "IP6")


def test_answer_to_baresip_keeps_payload_types_and_dtmf() -> None:
    ans = answer(offer_from("invite_baresip.txt"))
    (audio,) = ans.media
    assert (audio.port, audio.formats) == (30000, ["0", "101"])
    assert audio.rtpmaps == {
        "0": RtpMap(0, "PCMU", 8000),
        "101": RtpMap(101, "telephone-event", 8000),
    }
    assert audio.fmtp("101") == "0-15" and audio.ptime == 20 and audio.direction == "sendrecv"
    assert ans.connection == Connection("192.0.2.5") and ans.times == [("t", "0 0")]
    assert ans.origin.address == "192.0.2.5" and ans.origin.session_id == "1580791995"


def test_answer_to_linphone_prefers_our_codec_order() -> None:
    ans = answer(offer_from("invite_linphone.txt"), supported_codecs=("PCMA", "PCMU"))
    assert ans.media[0].formats == ["8", "96"]
    assert ans.media[0].rtpmaps["96"].encoding == "telephone-event"


def test_answer_keeps_m_line_order_and_rejects_other_streams() -> None:
    body = sdp(*HEAD, "m=video 5000 RTP/AVP 31", "m=audio 4000 RTP/AVP 18 0",
               "m=audio 4002 RTP/AVP 0", "m=application 9 UDP/BFCP *")  # fmt: skip
    ans = answer(body, session_id="42", session_version=3)
    assert [(m.media, m.port, m.formats) for m in ans.media] == [
        ("video", 0, ["31"]), ("audio", 30000, ["0"]), ("audio", 0, ["0"]),
        ("application", 0, ["*"]),
    ]  # fmt: skip
    assert str(ans.origin) == "frontdesk 42 3 IN IP4 192.0.2.5"
    assert "telephone-event" not in bytes(ans).decode()  # not offered, not answered


def test_dynamic_payload_type_for_pcmu_and_ipv6_answer() -> None:
    body = sdp(*HEAD, "m=audio 4000 RTP/AVP 96 97", "a=rtpmap:96 pcmu/8000",
               "a=rtpmap:97 telephone-event/8000", "a=fmtp:97 0-16")  # fmt: skip
    offer = SessionDescription.parse(body)
    ans = build_answer(offer, local_ip="2001:db8::5", local_port=40000)
    assert ans.media[0].formats == ["96", "97"] and ans.media[0].fmtp("97") == "0-16"
    assert bytes(ans).startswith(b"v=0\r\no=frontdesk 1 1 IN IP6 2001:db8::5\r\ns=-\r\n")
    assert ans.connection == Connection("2001:db8::5", "IP6")


@pytest.mark.parametrize(
    ("direction", "mirrored"),
    [("sendonly", "recvonly"), ("recvonly", "sendonly"), ("inactive", "inactive"),
     ("sendrecv", "sendrecv")],
)  # fmt: skip
def test_direction_is_mirrored(direction: str, mirrored: str) -> None:
    media_level = answer(sdp(*HEAD, "m=audio 4000 RTP/AVP 0", f"a={direction}"))
    session_level = answer(sdp(*HEAD, f"a={direction}", "m=audio 4000 RTP/AVP 0"))
    assert media_level.media[0].direction == session_level.media[0].direction == mirrored


@pytest.mark.parametrize(
    ("lines", "words"),
    [
        (("m=audio 4000 RTP/AVP 9 18", "a=rtpmap:9 G722/8000"), "offer has G722/8000, G729/8000"),
        (("m=video 4000 RTP/AVP 31",), "no audio stream"),
        (("m=audio 4000 RTP/SAVP 0",), "RTP/SAVP"),
        (("m=audio 0 RTP/AVP 0",), "no audio stream"),
        ((), "(media: none)"),
    ],
)
def test_no_common_codec_is_a_488_that_says_why(lines: tuple[str, ...], words: str) -> None:
    with pytest.raises(NoCommonCodec) as info:
        answer(sdp(*HEAD, *lines))
    assert info.value.status == 488 and words in info.value.reason


def test_rfc4475_bodies_parse_and_the_broken_one_does_not() -> None:
    wsinv_like = sdp(*HEAD, "m=audio 49217 RTP/AVP 0 12", "m=video 3227 RTP/AVP 31",
                     "a=rtpmap:31 LPC")  # fmt: skip
    sd = SessionDescription.parse(wsinv_like)
    assert [m.media for m in sd.media] == ["audio", "video"] and sd.media[1].attributes
    assert sd.media[1].rtpmaps == {}  # "31 LPC" has no clock rate: format unknown, not fatal
    with pytest.raises(SdpParseError, match="line 7"):
        SessionDescription.parse(wsinv_like.replace(b"m=video", b"m =video"))  # dblreq's


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "empty"),
        (sdp("o=- 1 1 IN IP4 h", "s=-", "t=0 0"), "v=0"),
        (sdp("v=0", "s=-", "t=0 0"), "before the o= line"),
        (sdp("v=0", "o=- 1 1 IN IP4 h", "t=0 0"), "no s= line"),
        (sdp("v=0", "o=- 1 1 IN IP4 h", "s=-"), "no t= line"),
        (sdp("v=0", "o=- x 1 IN IP4 h", "s=-", "t=0 0"), "numbers"),
        (sdp("v=0", "o=- 1 1 IN IP4", "s=-", "t=0 0"), "six fields"),
        (sdp("v=0", "o=- 1 1 IN IP4 h", "o=- 1 1 IN IP4 h", "s=-", "t=0 0"), "more than one o="),
        (sdp(*HEAD, "x=1"), "not '<letter>=<value>'"),
        (sdp(*HEAD, "m=audio 70000 RTP/AVP 0"), "port out of range"),
        (sdp(*HEAD, "m=audio ² RTP/AVP 0"), "port"),
        (sdp(*HEAD, "m=audio 4000 RTP/AVP"), "needs media"),
        (sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "s=again"), "not allowed in a media section"),
        (sdp(*HEAD[:3], "t=0 0", "m=audio 4000 RTP/AVP 0"), "no c= line"),
        (sdp(*HEAD, "c=IN IP4 x"), "more than one session-level c="),
        (sdp(*HEAD, "a=:x"), "bad attribute"),
    ],
)
def test_parse_errors_name_the_problem(body: bytes, words: str) -> None:
    with pytest.raises(SdpParseError, match=words) as info:
        SessionDescription.parse(body)
    assert info.value.status == 400


def test_full_session_round_trip_in_rfc4566_order() -> None:
    body = sdp("v=0", "o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5", "s=SDP Seminar",
               "i=A Seminar on the session description protocol",
               "u=http://www.example.com/seminars/sdp.pdf", "e=j.doe@example.com (Jane Doe)",
               "p=+1 617 555-6011", "c=IN IP4 224.2.17.12/127", "b=CT:128",
               "t=2873397496 2873404696", "r=7d 1h 0 25h", "z=2882844526 -1h", "k=prompt",
               "a=recvonly", "m=audio 49170/2 RTP/AVP 0", "i=voice", "c=IN IP4 224.2.17.13/127",
               "b=AS:64", "k=prompt", "a=ptime:30",
               "m=video 51372 RTP/AVP 99", "a=rtpmap:99 h263-1998/90000")  # fmt: skip
    sd = SessionDescription.parse(body)
    assert bytes(sd) == body
    audio = sd.media[0]
    assert (audio.port_count, audio.title, audio.ptime, sd.direction) == (
        2,
        "voice",
        30,
        "recvonly",
    )
    assert sd.times == [("t", "2873397496 2873404696"), ("r", "7d 1h 0 25h")]
    assert sd.media[1].rtpmaps["99"] == RtpMap(99, "h263-1998", 90000)


def test_rtpmap_values() -> None:
    assert RtpMap.parse("111 opus/48000/2") == RtpMap(111, "opus", 48000, 2)
    assert str(RtpMap(111, "opus", 48000, 2)) == "111 opus/48000/2"
    for bad in ("0 PCMU", "x PCMU/8000", "0 PCMU/8000/x", "0 PCMU/²"):
        with pytest.raises(SdpParseError):
            RtpMap.parse(bad)
    sd = SessionDescription.parse(sdp(*HEAD, "m=audio 1 RTP/AVP 0 96", "a=rtpmap:96 bad"))
    assert list(sd.media[0].rtpmaps) == ["0"]


def test_lf_only_bodies_are_read() -> None:
    sd = SessionDescription.parse(
        b"v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 h\nt=0 0\nm=audio 1 RTP/AVP 0\n"
    )
    assert sd.media == [Media("audio", 1, "RTP/AVP", ["0"])]


SDP_PIECES = [*HEAD, "m=audio 4000 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000",
              "a=fmtp:101 0-15", "a=sendonly", "m=video 0 RTP/AVP 31", "a=rtpmap:0 PCMU",
              "c=IN IP6 ::1", "m=audio x RTP/AVP", "b=AS:64", "a=ptime:²", "t=0", "r=1",
              "o=- 1 1 IN", "m=audio 1/2 RTP/SAVP 0", "a=rtpmap:8 PCMA/8000/1", "\x00", "=",
              "a=", "v=1"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(SDP_PIECES), max_size=14), st.binary(max_size=40))
def test_fuzz_parse_and_answer_raise_only_their_errors(pieces: list[str], noise: bytes) -> None:
    """Fuzz target: any body either parses (and round-trips) or raises SdpParseError, and
    answering a parsed offer either works or raises NoCommonCodec."""
    for body in (sdp(*pieces), sdp(*pieces) + noise, noise):
        try:
            offer = SessionDescription.parse(body)
        except SdpParseError:
            continue
        assert SessionDescription.parse(bytes(offer)) == offer
        for media in offer.media:
            media.rtpmaps, media.ptime, offer.connection_for(media)
        with contextlib.suppress(NoCommonCodec):
            build_answer(offer, local_ip="192.0.2.5", local_port=30000)
