"""The calls Frontdesk answers itself, as its call scripts see them, and their call records.

`MediaCall` is one answered call (who, what was dialled, the dialog, the RTP stream and the
`MediaSession` a script plays and records on); `MediaService` is what answers calls (voicemail,
menus, the echo test); `CallScript` is the coroutine a service runs on a call. The CDR helpers
write the same record shape as the B2BUA (``pbx.calls``), under the same id when a call was
handed over. Data only: nothing here sends SIP or touches sockets.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from frontdesk.media.rtp import RtpStream, StreamParams
from frontdesk.media.session import MediaSession
from frontdesk.pbx.directory import TenantInfo
from frontdesk.sip.dialog import Dialog
from frontdesk.sip.message import Request
from frontdesk.sip.transaction import ServerTransaction

CallScript = Callable[["MediaCall"], Awaitable[None]]


class MediaService(Protocol):
    """Something that answers calls: says which script runs for a dialled number."""

    def script_for(self, tenant: TenantInfo, dialled: str, caller: str) -> CallScript | None:
        """The script for a call to ``dialled`` (None: not a number of this service)."""

    def script_for_unanswered(self, tenant: TenantInfo, callee: str) -> CallScript | None:
        """The script for a caller whose callee did not answer or is not registered."""


@dataclass(eq=False)
class MediaCall:
    """One call the endpoint answered; what a script sees (``session``, who, what)."""

    id: str
    tenant: TenantInfo
    caller: str
    caller_name: str
    dialled: str
    invite: Request
    stx: ServerTransaction
    dialog: Dialog
    script: CallScript
    started: float
    answered_at: float
    sockets: Any
    params: StreamParams | None = None  # None until the ACK brings the answer (delayed offer)
    session: MediaSession | None = None
    task: asyncio.Task[None] | None = None
    stream: RtpStream | None = None
    acked: bool = False
    ending: str | None = None  # why it ended before the script could be told
    peer_ended: bool = False  # the caller ended it (BYE, no ACK): no BYE from us
    sdp_version: int = 1
    sdp_session: str = field(default_factory=lambda: str(secrets.randbelow(10**9)))
    #: a blind transfer in progress: the final status the REFER's NOTIFYs report
    refer_outcome: asyncio.Future[int] | None = None

    @property
    def label(self) -> str:
        return f"{self.id[:8]} ({self.caller} -> {self.dialled})"


def cdr_record(
    call: MediaCall, wall: float, now: float, ended: bool, side: str | None
) -> dict[str, Any]:
    end = now if ended else None
    return {
        "id": call.id,
        "tenant_id": call.tenant.id,
        "call_id": call.invite.call_id,
        "caller": call.caller,
        "caller_name": call.caller_name or None,
        "callee": call.dialled,
        "callee_answered_by": "frontdesk",
        "started_at": call.started + wall,
        "answered_at": call.answered_at + wall,
        "ended_at": end + wall if end is not None else None,
        "disposition": "answered" if ended else None,
        "hangup_side": side,
        "duration": (end - call.started) if end is not None else 0.0,
        "billsec": (end - call.answered_at) if end is not None else 0.0,
        "sip_code": None,
    }


def failed_cdr_record(
    call_id: str,
    tenant_id: int,
    sip_call_id: str,
    caller: str,
    caller_name: str,
    dialled: str,
    status: int,
    wall: float,
) -> dict[str, Any]:
    return {
        "id": call_id,
        "tenant_id": tenant_id,
        "call_id": sip_call_id,
        "caller": caller,
        "caller_name": caller_name or None,
        "callee": dialled,
        "callee_answered_by": None,
        "started_at": wall,
        "answered_at": None,
        "ended_at": wall,
        "disposition": "failed",
        "hangup_side": "system",
        "duration": 0.0,
        "billsec": 0.0,
        "sip_code": status,
    }
