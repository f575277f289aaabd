"""NAT keep-alive and reachability ("qualify") for registered phones.

A phone behind NAT registered from a public address and port that differs from its Contact.
Its NAT binding closes if nothing flows, so every ``interval`` seconds we send it an OPTIONS
over the same path (to where its REGISTER came from). Any response marks the binding
reachable; a timeout marks it unreachable, so calls do not wait on a phone that is gone until
it registers again. Phones reached directly (Contact = source) are left alone. No I/O here:
requests go through the transaction layer.
"""

from __future__ import annotations

from frontdesk.pbx.location import Binding, LocationService
from frontdesk.pbx.timers import Timers
from frontdesk.sip.dialog import new_call_id
from frontdesk.sip.headers import Headers
from frontdesk.sip.message import Request
from frontdesk.sip.transaction import ClientTransaction, TransactionLayer, new_branch, new_tag
from frontdesk.sip.uri import SipURI


class Qualifier:
    def __init__(
        self,
        tx: TransactionLayer,
        location: LocationService,
        timers: Timers,
        *,
        via_host: str,
        interval: float = 30.0,
    ) -> None:
        self.tx = tx
        self.location = location
        self.timers = timers
        self.via_host = via_host
        self.interval = interval
        self.pending: dict[str, Binding] = {}
        self.sent = 0

    def start(self, now: float) -> None:
        self.timers.add(now + self.interval, self._tick, None)

    def _tick(self, _subject: object, now: float) -> None:
        for binding in self.location.all():
            if binding.expires_at > now and behind_nat(binding):
                self._ping(binding, now)
        self.timers.add(now + self.interval, self._tick, None)

    def _ping(self, binding: Binding, now: float) -> None:
        h = Headers()
        h.add(
            "Via",
            f"SIP/2.0/{binding.peer.transport.upper()} {self.via_host};branch={new_branch()};rport",
        )
        h.add("Max-Forwards", "70")
        h.add("From", f"<sip:keepalive@{self.via_host}>;tag={new_tag()}")
        h.add("To", f"<{binding.contact_uri}>")
        h.add("Call-ID", new_call_id())
        h.add("CSeq", "1 OPTIONS")
        ctx = self.tx.send_request(Request("OPTIONS", binding.contact_uri, h), binding.peer, now)
        self.pending[ctx.id] = binding
        self.sent += 1

    def on_response(self, ctx: ClientTransaction, status: int) -> bool:
        """Any final response proves the path works; True if this was one of ours."""
        binding = self.pending.get(ctx.id)
        if binding is None:
            return False
        if status >= 200:
            del self.pending[ctx.id]
            binding.reachable = True
        return True

    def on_timeout(self, ctx: ClientTransaction) -> bool:
        binding = self.pending.pop(ctx.id, None)
        if binding is None:
            return False
        binding.reachable = False
        return True


def behind_nat(binding: Binding) -> bool:
    """True when the Contact is not where the REGISTER came from."""
    try:
        uri = SipURI.parse(binding.contact_uri)
    except Exception:
        return True
    port = uri.port or 5060
    return uri.host_no_brackets != binding.peer.host or port != binding.peer.port
