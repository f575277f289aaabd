"""Message-waiting indication: SUBSCRIBE/NOTIFY for the message-summary event (RFC 3842 on
RFC 6665), and unsolicited NOTIFY to phones that did not subscribe.

A phone subscribes to its own mailbox (Request-URI ``sip:102@domain`` or the voicemail
number ``sip:*97@domain``), authenticated like any request; the subscription lives in a
dialog with an expiry (``Expires`` is capped at one hour, below a minute is answered 423).
Every accepted SUBSCRIBE, refresh and change of the mailbox sends a NOTIFY whose
``application/simple-message-summary`` body says ``Messages-Waiting: yes|no`` and
``Voice-Message: new/old (0/0)``; an expiry, an unsubscribe (``Expires: 0``) or a NOTIFY the
phone answers 481 ends the subscription. When a mailbox changes, registered phones of that
extension without a subscription get an out-of-dialog NOTIFY, so their lamp follows too.

Synchronous and sans-I/O like the engine it sits in: requests go through the transaction
layer; `mailbox_changed` (called from asyncio code) ends with ``wakeup()``. The counts come
from a callback; this module never touches the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from frontdesk.pbx.directory import TenantInfo
from frontdesk.sip.dialog import Dialog, new_call_id
from frontdesk.sip.headers import Headers
from frontdesk.sip.message import Request, make_response
from frontdesk.sip.peer import Peer
from frontdesk.sip.transaction import ClientTransaction, ServerTransaction, new_branch, new_tag

if TYPE_CHECKING:
    from frontdesk.pbx.engine import SipEngine

log = logging.getLogger("frontdesk.mwi")

EVENT = "message-summary"
CONTENT_TYPE = "application/simple-message-summary"
MAX_EXPIRES = 3600
MIN_EXPIRES = 60
DEFAULT_EXPIRES = 3600

Counts = Callable[[int, str], "tuple[int, int] | None"]  # (tenant, mailbox) -> (new, old)


def summary_body(new: int, old: int, account: str) -> bytes:
    """The RFC 3842 message-summary body for ``new`` unheard and ``old`` heard messages."""
    waiting = "yes" if new else "no"
    return (
        f"Messages-Waiting: {waiting}\r\nMessage-Account: {account}\r\n"
        f"Voice-Message: {new}/{old} (0/0)\r\n"
    ).encode()


@dataclass(eq=False)
class Subscription:
    tenant: TenantInfo
    mailbox: str
    dialog: Dialog
    expires_at: float
    timer: int | None = None


class MwiNotifier:
    """All message-summary subscriptions of one engine."""

    def __init__(
        self,
        engine: SipEngine,
        counts: Counts,
        *,
        voicemail_number: str = "*97",
        now: Callable[[], float] | None = None,
    ) -> None:
        self.engine = engine
        self.tx = engine.tx
        self.counts = counts
        self.voicemail_number = voicemail_number
        self.now = now or (lambda: 0.0)
        self.wakeup: Callable[[], None] = lambda: None
        self.subscriptions: dict[tuple[str, str], Subscription] = {}
        self._notifies: dict[str, Subscription | None] = {}
        self.sent = 0

    # --- SUBSCRIBE ----------------------------------------------------------------------
    def on_subscribe(self, stx: ServerTransaction, req: Request, source: Peer, now: float) -> None:
        """A SUBSCRIBE outside a dialog (the engine's checks have passed)."""
        engine = self.engine
        if (req.headers.get("Event") or "").split(";")[0].strip().lower() != EVENT:
            self._reply(stx, req, 489, now, headers=(("Allow-Events", EVENT),))
            return
        if not _accepts_summary(req):
            self._reply(stx, req, 406, now, headers=(("Accept", CONTENT_TYPE),))
            return
        tenant = engine.directory.tenant_for_host(req.ruri.host)
        if tenant is None:
            self._reply(stx, req, 404, now, reason="Not Found (unknown domain)")
            return
        if engine._trusted(tenant, source):
            subscriber = req.from_.uri.user or ""
        else:
            cred = engine._authenticate(stx, req, tenant, source, now)
            if cred is None:
                return
            subscriber = cred.extension_number
        target = req.ruri.user or ""
        mailbox = subscriber if target == self.voicemail_number else target
        if self.counts(tenant.id, mailbox) is None:
            self._reply(stx, req, 404, now, reason="Not Found (no mailbox)")
            return
        if mailbox != subscriber:
            self._reply(
                stx,
                req,
                403,
                now,
                reason=f"Forbidden (extension {subscriber[:32]} may not watch {mailbox[:32]})",
            )
            return
        expires = self._expires(stx, req, now)
        if expires is None:
            return
        tag = new_tag()
        resp = make_response(req, 200, to_tag=tag)
        resp.headers.add("Expires", str(expires))
        contact = engine.calls.contact(stx.peer)
        resp.headers.add("Contact", contact)
        self.tx.send_response(stx, resp, now)
        dialog = Dialog.from_uas(req, resp, contact, engine.calls.via_host, stx.peer)
        sub = Subscription(tenant, mailbox, dialog, now + expires)
        log.info(
            "extension %s subscribed to message-waiting for mailbox %s (%d s)",
            subscriber,
            mailbox,
            expires,
        )
        if expires == 0:
            self._notify(sub, now, terminated="timeout")
            return
        self.subscriptions[(dialog.call_id, tag)] = sub
        self._schedule_expiry(sub)
        self._notify(sub, now)

    def _expires(self, stx: ServerTransaction, req: Request, now: float) -> int | None:
        text = (req.headers.get("Expires") or str(DEFAULT_EXPIRES)).strip()
        if not text.isdigit():
            self._reply(stx, req, 400, now, reason="Bad Request (Expires is not a number)")
            return None
        expires = min(int(text), MAX_EXPIRES)
        if 0 < expires < MIN_EXPIRES:
            self._reply(stx, req, 423, now, headers=(("Min-Expires", str(MIN_EXPIRES)),))
            return None
        return expires

    def on_in_dialog(self, stx: ServerTransaction, req: Request, now: float) -> bool:
        """A refresh or unsubscribe inside one of our subscription dialogs."""
        key = (req.call_id, req.to_tag or "")
        sub = self.subscriptions.get(key)
        if sub is None:
            return False
        if req.method != "SUBSCRIBE" or not sub.dialog.accepts(req):
            status = 500 if req.method == "SUBSCRIBE" else 405
            self._reply(stx, req, status, now, to_tag=None)
            return True
        expires = self._expires(stx, req, now)
        if expires is None:
            return True
        resp = make_response(req, 200)
        resp.headers.add("Expires", str(expires))
        resp.headers.add("Contact", sub.dialog.local_contact)
        self.tx.send_response(stx, resp, now)
        sub.dialog.update_target(req)
        if expires == 0:
            self._end(sub, now, "timeout")
            return True
        sub.expires_at = now + expires
        self._schedule_expiry(sub)
        self._notify(sub, now)
        return True

    def _schedule_expiry(self, sub: Subscription) -> None:
        timers = self.engine.timers
        timers.cancel(sub.timer)
        sub.timer = timers.add(sub.expires_at, self._expired, sub)

    def _expired(self, sub: Subscription, now: float) -> None:
        sub.timer = None
        if now >= sub.expires_at:
            log.info("message-waiting subscription for mailbox %s expired", sub.mailbox)
            self._end(sub, now, "timeout")

    def _end(self, sub: Subscription, now: float, reason: str) -> None:
        self.engine.timers.cancel(sub.timer)
        self.subscriptions.pop((sub.dialog.call_id, sub.dialog.local_tag), None)
        self._notify(sub, now, terminated=reason)

    # --- NOTIFY -------------------------------------------------------------------------
    def _account(self, tenant: TenantInfo) -> str:
        return f"sip:{self.voicemail_number}@{tenant.sip_domain}"

    def _notify(self, sub: Subscription, now: float, terminated: str | None = None) -> None:
        counts = self.counts(sub.tenant.id, sub.mailbox) or (0, 0)
        body = summary_body(*counts, self._account(sub.tenant))
        req = sub.dialog.request("NOTIFY", new_branch(), body, CONTENT_TYPE)
        req.headers.add("Event", EVENT)
        if terminated is not None:
            state = f"terminated;reason={terminated}"
        else:
            state = f"active;expires={max(0, int(sub.expires_at - now))}"
        req.headers.add("Subscription-State", state)
        ctx = self.tx.send_request(req, sub.dialog.peer, now)
        self._notifies[ctx.id] = sub if terminated is None else None
        self.sent += 1

    def mailbox_changed(self, tenant_id: int, mailbox: str) -> int:
        """NOTIFY every subscriber of ``mailbox`` and every registered phone of that extension
        that has no subscription; returns how many NOTIFYs were queued."""
        now = self.now()
        sent = 0
        subscribed: set[str] = set()
        for sub in list(self.subscriptions.values()):
            if sub.tenant.id == tenant_id and sub.mailbox == mailbox:
                self._notify(sub, now)
                subscribed.add(sub.dialog.remote_target)
                sent += 1
        tenant = self.engine.directory.tenants.get(tenant_id)
        if tenant is not None:
            for binding in self.engine.location.lookup(tenant_id, mailbox, now):
                if binding.reachable and binding.contact_uri not in subscribed:
                    self._unsolicited(tenant, mailbox, binding.contact_uri, binding.peer, now)
                    sent += 1
        if sent:
            self.wakeup()
        return sent

    def _unsolicited(
        self, tenant: TenantInfo, mailbox: str, contact: str, peer: Peer, now: float
    ) -> None:
        counts = self.counts(tenant.id, mailbox) or (0, 0)
        h = Headers()
        h.add(
            "Via",
            f"SIP/2.0/{peer.transport.upper()} {self.engine.calls.via_host};"
            f"branch={new_branch()};rport",
        )
        h.add("Max-Forwards", "70")
        h.add("From", f"<{self._account(tenant)}>;tag={new_tag()}")
        h.add("To", f"<sip:{mailbox}@{tenant.sip_domain}>")
        h.add("Call-ID", new_call_id())
        h.add("CSeq", "1 NOTIFY")
        h.add("Contact", self.engine.calls.contact(peer))
        h.add("Event", EVENT)
        h.add("Subscription-State", "active")
        h.add("Content-Type", CONTENT_TYPE)
        body = summary_body(*counts, self._account(tenant))
        ctx = self.tx.send_request(Request("NOTIFY", contact, h, body), peer, now)
        self._notifies[ctx.id] = None
        self.sent += 1

    def on_response(self, ctx: ClientTransaction, status: int, now: float) -> bool:
        if ctx.id not in self._notifies:
            return False
        if status < 200:
            return True
        sub = self._notifies.pop(ctx.id)
        if sub is not None and status in (
            404,
            405,
            408,
            410,
            416,
            480,
            481,
            482,
            483,
            484,
            485,
            489,
            501,
            604,
        ):
            log.info(
                "phone answered %d to a message-waiting NOTIFY for mailbox %s; subscription ended",
                status,
                sub.mailbox,
            )
            self.engine.timers.cancel(sub.timer)
            self.subscriptions.pop((sub.dialog.call_id, sub.dialog.local_tag), None)
        return True

    def on_timeout(self, ctx: ClientTransaction, now: float) -> bool:
        if ctx.id not in self._notifies:
            return False
        sub = self._notifies.pop(ctx.id)
        if sub is not None:
            log.info(
                "no answer to a message-waiting NOTIFY for mailbox %s; subscription ended",
                sub.mailbox,
            )
            self.engine.timers.cancel(sub.timer)
            self.subscriptions.pop((sub.dialog.call_id, sub.dialog.local_tag), None)
        return True

    def _reply(
        self,
        stx: ServerTransaction,
        req: Request,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        to_tag: str | None = "new",
    ) -> None:
        resp = make_response(req, status, reason, to_tag=new_tag() if to_tag == "new" else None)
        for name, value in headers:
            resp.headers.add(name, value)
        self.tx.send_response(stx, resp, now)


def _accepts_summary(req: Request) -> bool:
    accept = req.headers.values("Accept")
    if not accept:
        return True
    kinds = {a.split(";")[0].strip().lower() for a in accept}
    return bool(kinds & {CONTENT_TYPE, "application/*", "*/*"})
