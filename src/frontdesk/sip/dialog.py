"""SIP dialogs (RFC 3261 §12): the state two user agents share after an INVITE, and the
requests sent inside it (BYE, re-INVITE, ACK for 2xx, INFO...).

A `Dialog` is built from the INVITE and its response, on the UAS side (`from_uas`) or the UAC
side (`from_uac`). `request()` builds an in-dialog request with the right Request-URI, Route
set, tags and CSeq; the caller sends it. The peer to send to is the one the dialog was formed
with (where the phone's INVITE/REGISTER came from), which keeps phones behind NAT reachable.
No I/O, no clock.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from frontdesk.sip.headers import Headers
from frontdesk.sip.message import Request, Response
from frontdesk.sip.peer import Peer
from frontdesk.sip.uri import NameAddr


def new_call_id() -> str:
    return secrets.token_hex(12)


@dataclass(slots=True)
class Dialog:
    """One side's view of a dialog."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # name-addr text for From (without tag)
    remote_uri: str  # name-addr text for To (without tag)
    remote_target: str  # Request-URI for in-dialog requests (the peer's Contact)
    peer: Peer  # where in-dialog requests go
    local_contact: str
    via_host: str
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = 1
    remote_cseq: int | None = None

    @classmethod
    def from_uas(cls, invite: Request, response: Response, local_contact: str,
                 via_host: str, peer: Peer) -> Dialog:
        """The dialog our 1xx/2xx with To-tag created for a received INVITE."""
        to = response.to
        frm = invite.from_
        contacts = invite.contacts
        target = str(contacts[0].uri) if contacts else str(frm.uri)
        return cls(
            call_id=invite.call_id,
            local_tag=to.tag or "",
            remote_tag=frm.tag or "",
            local_uri=_without_tag(to),
            remote_uri=_without_tag(frm),
            remote_target=target,
            peer=peer,
            local_contact=local_contact,
            via_host=via_host,
            route_set=invite.headers.values("Record-Route"),
            local_cseq=0,
            remote_cseq=invite.cseq.number,
        )

    @classmethod
    def from_uac(cls, invite: Request, response: Response, local_contact: str,
                 via_host: str, peer: Peer) -> Dialog:
        """The dialog a received 1xx/2xx with To-tag created for an INVITE we sent."""
        contacts = response.contacts
        target = str(contacts[0].uri) if contacts else invite.uri
        return cls(
            call_id=invite.call_id,
            local_tag=invite.from_tag or "",
            remote_tag=response.to_tag or "",
            local_uri=_without_tag(invite.from_),
            remote_uri=_without_tag(response.to),
            remote_target=target,
            peer=peer,
            local_contact=local_contact,
            via_host=via_host,
            route_set=list(reversed(response.headers.values("Record-Route"))),
            local_cseq=invite.cseq.number,
        )

    def update_target(self, message: Request | Response) -> None:
        """A target refresh (re-INVITE or its 2xx) may change the remote Contact."""
        contacts = message.contacts
        if contacts:
            self.remote_target = str(contacts[0].uri)

    def request(self, method: str, branch: str, body: bytes = b"",
                content_type: str | None = None, cseq: int | None = None) -> Request:
        """An in-dialog request. ACK and CANCEL reuse ``cseq``; others take the next one."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        h = Headers()
        h.add("Via", f"SIP/2.0/{self.peer.transport.upper()} {self.via_host};branch={branch};rport")
        h.add("Max-Forwards", "70")
        for route in self.route_set:
            h.add("Route", route)
        h.add("From", f"{self.local_uri};tag={self.local_tag}")
        h.add("To", f"{self.remote_uri};tag={self.remote_tag}")
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{cseq} {method}")
        if method not in ("ACK", "CANCEL", "BYE"):
            h.add("Contact", self.local_contact)
        if body:
            h.add("Content-Type", content_type or "application/sdp")
        return Request(method, self.remote_target, h, body)

    def accepts(self, request: Request) -> bool:
        """Check the remote CSeq of an in-dialog request (RFC 3261 §12.2.2) and record it."""
        number = request.cseq.number
        if request.method in ("ACK", "CANCEL"):
            return True
        if self.remote_cseq is not None and number <= self.remote_cseq:
            return False
        self.remote_cseq = number
        return True


def _without_tag(addr: NameAddr) -> str:
    params = {k: v for k, v in addr.params.items() if k.lower() != "tag"}
    return str(NameAddr(addr.uri, addr.display_name, params))
