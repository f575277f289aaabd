"""The data of third-party call control (`pbx.callcontrol`): the caller's seat in a call
being moved, a re-bridge in progress and its result, a re-INVITE we send, and the SDP answer
that declines an unwanted offer.

Data and pure helpers only: nothing here sends SIP, keeps time or touches sockets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from frontdesk.pbx.calls import BLeg, Call
from frontdesk.pbx.directory import TenantInfo
from frontdesk.sip.dialog import Dialog, new_call_id
from frontdesk.sip.message import Request, Response
from frontdesk.sip.transaction import ServerTransaction, new_tag


@dataclass(frozen=True, slots=True)
class CallerSeat:
    """The caller's side of a call being moved: our (UAS) dialog with the caller and what
    the CDR says about the call so far."""

    id: str  # the CDR id
    tenant: TenantInfo
    caller: str
    caller_name: str
    callee: str  # what the caller dialled
    a_tx: ServerTransaction
    a_invite: Request
    dialog: Dialog
    started: float
    answered_at: float


def declining_answer(offer: bytes) -> bytes:
    """An SDP answer that declines every stream of ``offer`` (port 0), b"" for no offer."""
    lines = offer.decode("utf-8", "replace").splitlines()
    media = [line.split() for line in lines if line.startswith("m=")]
    if not media:
        return b""
    out = ["v=0", "o=- 0 0 IN IP4 0.0.0.0", "s=-", "c=IN IP4 0.0.0.0", "t=0 0"]
    for parts in media:
        if len(parts) >= 4:
            out.append(f"{parts[0]} 0 {parts[2]} {parts[3]}")
    return ("\r\n".join(out) + "\r\n").encode()


def seat_of(call: Call) -> CallerSeat:
    """The caller's seat of a call bridged through the B2BUA."""
    assert call.a_dialog is not None, "only an answered call has a caller dialog"
    return CallerSeat(
        call.id,
        call.tenant,
        call.caller,
        call.caller_name,
        call.callee,
        call.a_tx,
        call.a_invite,
        call.a_dialog,
        call.started,
        call.answered_at if call.answered_at is not None else call.started,
    )


@dataclass(frozen=True, slots=True)
class RebridgeResult:
    """How a re-bridge ended: 200 connected (``answered_by`` the extension's AOR), else the
    failure code (486 busy, 480 no answer, 487 the caller left, 488/4xx/5xx failed)."""

    status: int
    answered_by: str | None = None
    reason: str = ""

    @property
    def connected(self) -> bool:
        return self.status == 200

    @property
    def outcome(self) -> str:
        """The flow's word for it: answered, busy, no_answer or failed."""
        if self.status == 200:
            return "answered"
        if self.status in (486, 600):
            return "busy"
        if self.status in (408, 480, 487):
            return "no_answer"
        return "failed"


@dataclass(eq=False)
class ReInvite:
    """A re-INVITE we send on a dialog, retried on 491 until it gets a final answer."""

    dialog: Dialog
    body: bytes
    on_answer: Callable[[Response | None, int, float], None]
    owner: bool = False  # we generated the dialog's Call-ID (longer glare back-off)
    owner_id: str = ""  # the CDR id of the call it belongs to
    attempts: int = 0
    request: Request | None = None
    timer: int | None = None
    done: bool = False


@dataclass(eq=False)
class Rebridge:
    """One caller being connected to a new destination."""

    id: str
    seat: CallerSeat
    target: str
    on_done: Callable[[Rebridge, RebridgeResult, float], None]
    call: Call | None  # the B2BUA call when the caller is bridged to a phone now
    b_call_id: str = field(default_factory=new_call_id)
    b_from_tag: str = field(default_factory=new_tag)
    legs: list[BLeg] = field(default_factory=list)
    state: str = "ringing"  # ringing, reinviting, connected, failed, aborted
    winner: BLeg | None = None
    offer: Response | None = None
    reinvite: ReInvite | None = None
    timer: int | None = None
    result: RebridgeResult | None = None
    #: called when the new phone answered, before the caller is re-INVITEd: whoever sends
    #: the caller media now must stop (a phone's jitter buffer would take a stale packet
    #: after the switch as the sequence to follow and drop the new phone's audio)
    on_answered: Callable[[Rebridge, float], None] | None = None
    released_old: bool = False  # the old callee got its BYE already
    #: extra headers for the INVITEs to the new callee (a transfer's Referred-By, RFC 3892)
    headers: tuple[tuple[str, str], ...] = ()
