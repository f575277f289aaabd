"""What the transaction layer tells the transaction user (TU): frozen, past-tense events.

`frontdesk.sip.transaction.TransactionLayer.receive` and ``handle_timer`` return lists of
these; the TU (dialog / call engine) reacts with commands on the layer. Events carry the
objects they are about and nothing else; they never do I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from frontdesk.sip.message import Request, Response
from frontdesk.sip.peer import Peer
from frontdesk.sip.transaction_state import ClientTransaction, ServerTransaction


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request created ``transaction`` (for INVITE the layer already sent 100 Trying
    when ``auto_trying`` is on). The TU must answer with ``send_response``."""

    transaction: ServerTransaction
    request: Request
    source: Peer


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK for a 2xx (or one matching no transaction). ``transaction`` is the INVITE
    server transaction in Accepted whose 2xx it acknowledges (its retransmissions have
    stopped), or None."""

    request: Request
    source: Peer
    transaction: ServerTransaction | None


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """A CANCEL created its own ``transaction``. ``invite`` is the INVITE server transaction
    it cancels; when None the layer has already answered the CANCEL with 481. Otherwise the
    TU answers the CANCEL (200) and, if ``invite`` has no final response yet, the INVITE (487)."""

    transaction: ServerTransaction
    request: Request
    invite: ServerTransaction | None


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for ``transaction``: every provisional, the first final, and for INVITE every
    2xx (retransmissions and forks included; the TU ACKs each one)."""

    transaction: ClientTransaction
    response: Response


@dataclass(frozen=True, slots=True)
class StrayResponse:
    """A response that matches no client transaction (the TU may re-ACK a 2xx), or a 2xx
    that an INVITE client transaction in Completed cannot take (a fork answered after another
    fork's 3xx-6xx: the TU should ACK and BYE it)."""

    response: Response
    source: Peer


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """``timer`` fired: "B"/"F" (client: treat as 408), "H" (server: no ACK for a 3xx-6xx),
    "L" (server: the 2xx was never ACKed — the TU should send BYE)."""

    transaction: ServerTransaction | ClientTransaction
    timer: str


Event = (
    RequestReceived
    | AckReceived
    | CancelReceived
    | ResponseReceived
    | StrayResponse
    | TransactionTimedOut
)
