"""The echo test number (default ``*43``): what the caller says comes back, and every digit
pressed comes back as an RFC 4733 telephone-event — a check of the audio path and of DTMF
in both directions that needs no second person.

A `MediaService` for `pbx.endpoint`; it never touches SIP or the database.
"""

from __future__ import annotations

import asyncio
from collections import deque

from frontdesk.media.rtp import CODECS
from frontdesk.pbx.directory import TenantInfo
from frontdesk.pbx.endpoint import CallScript, MediaCall

ECHO_NUMBER = "*43"
MAX_SECONDS = 600.0
DELAY_FRAMES = 50  # at most one second of audio waits to be echoed


class EchoService:
    def __init__(self, number: str = ECHO_NUMBER) -> None:
        self.number = number

    def script_for(self, tenant: TenantInfo, dialled: str, caller: str) -> CallScript | None:
        return echo if dialled == self.number else None

    def script_for_unanswered(self, tenant: TenantInfo, callee: str) -> CallScript | None:
        return None


async def echo(call: MediaCall) -> None:
    session = call.session
    assert session is not None
    stream = session.stream
    codec = CODECS[stream.codec]
    pending: deque[bytes] = deque(maxlen=DELAY_FRAMES)
    stream.on_audio = lambda pcm, ts: pending.append(codec.encode(pcm))
    stream.source = lambda: pending.popleft() if pending else None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MAX_SECONDS
    while (left := deadline - loop.time()) > 0:
        digit = await session.collect(1, timeout=left, terminators="")
        if digit and stream.params.dtmf_payload_type is not None:
            stream.send_dtmf(digit)
