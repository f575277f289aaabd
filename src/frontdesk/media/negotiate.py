"""SDP offer/answer for Frontdesk's own media endpoint (RFC 3264), on top of `sip.sdp`.

`answer_offer` answers a caller's offer with one G.711 codec (the caller's preferred of PCMU
and PCMA) and telephone-event when offered, and says what the RTP stream must do
(`StreamParams`): codec, payload types, and where to send. `make_offer` writes our offer for an INVITE that came
without one (delayed offer, answered in the ACK), and `params_from_answer` reads that
answer. A peer's bad SDP raises `SdpParseError` (answer 400) or `NoCommonCodec` (answer
488), whose messages say what was offered and what we support.

Pure functions: no I/O, no clock; session ids and versions come from the caller.
"""

from __future__ import annotations

from frontdesk.media.rtp import StreamParams
from frontdesk.sip.sdp import (
    TELEPHONE_EVENT,
    Connection,
    Media,
    NoCommonCodec,
    Origin,
    RtpMap,
    SdpParseError,
    SessionDescription,
    build_answer,
)

SUPPORTED_CODECS = ("PCMU", "PCMA")
OUR_DTMF_PT = 101
STATIC_PT = {"PCMU": 0, "PCMA": 8}

__all__ = [
    "SUPPORTED_CODECS",
    "NoCommonCodec",
    "SdpParseError",
    "answer_offer",
    "make_offer",
    "params_from_answer",
]


def answer_offer(
    offer_body: bytes, *, local_ip: str, local_port: int, session_id: str, version: int = 1
) -> tuple[bytes, StreamParams]:
    """Our SDP answer to ``offer_body`` and the stream it sets up."""
    offer = SessionDescription.parse(offer_body)
    answer = build_answer(
        offer,
        _caller_order(offer),
        local_ip=local_ip,
        local_port=local_port,
        session_id=session_id,
        session_version=version,
    )
    for index, media in enumerate(answer.media):
        if media.port == 0:
            continue
        offered = offer.media[index]
        connection = offer.connection_for(offered)
        if connection is None:  # build_answer accepted it, so the parser guaranteed one
            raise SdpParseError("the offered audio stream has no c= line")
        remote = (connection.address.split("/")[0], offered.port)
        return bytes(answer), _params(media, remote)
    raise NoCommonCodec("no audio stream could be answered")


def _caller_order(offer: SessionDescription) -> tuple[str, ...]:
    """Our codecs in the order the caller prefers them (RFC 3264 §6.1), ours for the rest."""
    for media in offer.media:
        if media.media == "audio" and media.port != 0:
            rtpmaps = media.rtpmaps
            named = [rtpmaps[f].encoding.upper() for f in media.formats if f in rtpmaps]
            ordered = [c for c in dict.fromkeys(named) if c in SUPPORTED_CODECS]
            return tuple(ordered + [c for c in SUPPORTED_CODECS if c not in ordered])
    return SUPPORTED_CODECS


def make_offer(*, local_ip: str, local_port: int, session_id: str, version: int = 1) -> bytes:
    """Our offer: PCMU, PCMA and telephone-event/8000 on one sendrecv audio stream."""
    formats = [str(STATIC_PT[c]) for c in SUPPORTED_CODECS] + [str(OUR_DTMF_PT)]
    attributes: list[tuple[str, str | None]] = [
        ("rtpmap", str(RtpMap(STATIC_PT[c], c, 8000))) for c in SUPPORTED_CODECS
    ]
    attributes += [
        ("rtpmap", str(RtpMap(OUR_DTMF_PT, TELEPHONE_EVENT, 8000))),
        ("fmtp", f"{OUR_DTMF_PT} 0-15"),
        ("ptime", "20"),
        ("sendrecv", None),
    ]
    offer = SessionDescription(
        Origin("frontdesk", session_id, str(version), "IN", _addrtype(local_ip), local_ip),
        connection=Connection.for_address(local_ip),
        media=[Media("audio", local_port, "RTP/AVP", formats, attributes=attributes)],
    )
    return bytes(offer)


def params_from_answer(answer_body: bytes) -> StreamParams:
    """The stream a peer's answer to `make_offer` selected (its first accepted audio)."""
    answer = SessionDescription.parse(answer_body)
    for media in answer.media:
        if media.media != "audio" or media.port == 0:
            continue
        connection = answer.connection_for(media)
        if connection is None:
            raise SdpParseError("the answered audio stream has no c= line")
        return _params(media, (connection.address.split("/")[0], media.port))
    raise NoCommonCodec("the answer accepted no audio stream (all ports are 0)")


def _params(media: Media, remote: tuple[str, int]) -> StreamParams:
    rtpmaps = media.rtpmaps
    codec_pt: int | None = None
    codec = ""
    dtmf_pt: int | None = None
    for fmt in media.formats:
        rtpmap = rtpmaps.get(fmt)
        if rtpmap is None:
            continue
        if rtpmap.is_codec(TELEPHONE_EVENT):
            dtmf_pt = dtmf_pt if dtmf_pt is not None else rtpmap.payload_type
        elif (
            codec_pt is None
            and rtpmap.encoding.upper() in SUPPORTED_CODECS
            and rtpmap.clock_rate == 8000
        ):
            codec_pt, codec = rtpmap.payload_type, rtpmap.encoding.upper()
    if codec_pt is None:
        offered = ", ".join(f"{m.encoding}/{m.clock_rate}" for m in rtpmaps.values()) or "none"
        raise NoCommonCodec(
            f"no common audio codec: the SDP has {offered}; we support "
            f"{', '.join(SUPPORTED_CODECS)}"
        )
    return StreamParams(codec, codec_pt, dtmf_pt, remote)


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"
