"""RFC 4475 torture messages against the live server: over UDP, over TCP written whole, and
over TCP one byte per write. Each file gets the answer its RFC section asks of a UAS /
registrar (table below), and afterwards the server is alive, answers OPTIONS, logged no
traceback and counts no internal error.

Reading the expectations:
- The messages address hosts such as example.com that are not a Frontdesk tenant: a
  REGISTER or INVITE for an unknown domain is answered 404 (RFC 3261 §10.3 step 1, §8.2.2.1),
  which is acceptable wherever the section only asks for "a response". OPTIONS are answered
  200 whatever the domain (§11.2). Checks a UAS makes on the request itself (§8.2.2-8.2.3:
  URI scheme 416, Require 420, Content-Type 415, Accept 406) come before the domain lookup,
  so those sections are checked exactly.
- Responses (unreason, noreason, scalarlg, bigcode, bcast) match no client transaction of
  ours and are dropped (RFC 3261 §18.1.2): nothing comes back.
- Over TCP, framing follows Content-Length (§18.3): clerr (Content-Length larger than the
  data) leaves the server waiting; ncl and mcl01 make framing impossible, so the connection
  is closed (RFC 4475 §3.1.2.3, §3.3.9); baddn as archived has no empty line ending its
  header, so the server waits until it comes and then answers 400; dblreq is two requests.
- Every response echoes the request's Call-ID and CSeq (§8.2.6.2); a 405 has an Allow that
  does not offer the refused method (§21.4.6); 420 names the unsupported extensions in
  Unsupported (§8.2.2.3); 401/407 carry a Digest challenge (§22.1).

Three pairs of files carry the same branch, sent-by and method (novelsc/unkscm,
cparam01/cparam02, escnull/regescrt): by RFC 3261 §17.2.3 the second of each is a
retransmission of the first, so over UDP (where a finished non-INVITE transaction lives on
for Timer J, 32 s) the second of each pair goes to a server that has not seen the first.
Each pass gets its own server for the same reason (the transaction key has no transport).

The REGISTER sections that ask for a registrar's judgement (3.1.2.13, 3.3.7, 3.3.12-3.3.14)
are also sent re-addressed to the demo tenant as extension 101 and authenticated, so the
registrar itself, not the unknown-domain check, answers.
"""

from __future__ import annotations

import re
import select
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from frontdesk_proc import FrontdeskProcess
from integration_kit import (
    ServerFactory,
    assert_healthy,
    known_bugs_as_xfail,
    log_size,
)
from sip_raw import (
    Exchange,
    SipResponse,
    TcpClient,
    UdpClient,
    branch,
    digest_answer,
    load_rfc4475,
    rfc4475_dir,
)

pytestmark = [pytest.mark.peers, pytest.mark.timeout(180)]

ANSWER_WINDOW = 6.0  # at most this long for an expected final response
SILENCE_WINDOW = 2.0  # this long without an answer counts as "dropped" / "waiting"


# --- expected outcomes -------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """Final response(s), every one with a status in ``statuses``."""

    statuses: frozenset[int]


@dataclass(frozen=True)
class Silent:
    """Nothing comes back (and over TCP the connection stays open)."""


@dataclass(frozen=True)
class Closes:
    """Over TCP: the server closes the connection (a 400 before that is fine)."""


@dataclass(frozen=True)
class WaitsThen:
    """Over TCP: nothing until ``more`` is sent, then a final response in ``statuses``."""

    more: bytes
    statuses: frozenset[int]


Outcome = Answer | Silent | Closes | WaitsThen


def answer(*statuses: int) -> Answer:
    return Answer(frozenset(statuses))


UNKNOWN_DOMAIN_INVITE = answer(404, 407, 480)  # unknown domain, auth first, or nobody there
UNKNOWN_DOMAIN_REGISTER = answer(401, 404)
OPTIONS_ANSWER = answer(200, 404, 401, 407, 480)


@dataclass(frozen=True)
class Case:
    section: str
    udp: Outcome
    tcp: Outcome | None = None  # None: as over UDP
    check: Callable[[Exchange], None] | None = None
    note: str = ""


def _vias_echoed(count: int) -> Callable[[Exchange], None]:
    def check(ex: Exchange) -> None:
        for r in ex.finals:
            vias = sum(len(v.split(",")) for v in r.values("Via"))
            assert vias == count, f"{r}: {vias} Via values, the request had {count}"
    return check


def _unsupported_named(ex: Exchange) -> None:
    for r in ex.finals:
        names = {o.strip() for v in r.values("Unsupported") for o in v.split(",")}
        # Require is the UAS's business; Proxy-Require is for proxies only (§8.2.2.3)
        assert names == {"nothingSupportsThis", "nothingSupportsThisEither"}, r.raw


def _accept_offered(ex: Exchange) -> None:
    for r in ex.finals:
        assert "application/sdp" in (r.get("Accept") or ""), r.raw


def _dblreq_stream(ex: Exchange) -> None:
    methods = {r.cseq_method for r in ex.finals}
    assert methods == {"REGISTER", "INVITE"}, ex.responses  # over TCP it is two requests


def _dblreq_datagram(ex: Exchange) -> None:
    assert {r.cseq_method for r in ex.responses} == {"REGISTER"}, ex.responses


REJECT = answer(400)
CASES: dict[str, Case] = {
    # 3.1.1 valid messages: a real answer, never 400 or 5xx
    "wsinv": Case("3.1.1.1", answer(481, 404, 407), check=_vias_echoed(3),
                  note="To has a tag: a mid-dialog INVITE for no dialog we know -> 481"),
    "intmeth": Case("3.1.1.2", answer(501, 405), note="unknown method"),
    "esc01": Case("3.1.1.3", UNKNOWN_DOMAIN_INVITE),
    "escnull": Case("3.1.1.4", UNKNOWN_DOMAIN_REGISTER),
    "esc02": Case("3.1.1.5", answer(501, 405), note="RE%47IST%45R is not REGISTER"),
    "lwsdisp": Case("3.1.1.6", OPTIONS_ANSWER),
    "longreq": Case("3.1.1.7", UNKNOWN_DOMAIN_INVITE, check=_vias_echoed(34)),
    "dblreq": Case("3.1.1.8", UNKNOWN_DOMAIN_REGISTER, answer(401, 404, 407, 480),
                   check=None, note="UDP: the INVITE after the REGISTER is ignored"),
    "semiuri": Case("3.1.1.9", OPTIONS_ANSWER),
    "transports": Case("3.1.1.10", OPTIONS_ANSWER, check=_vias_echoed(5)),
    "mpart01": Case("3.1.1.11", answer(200, 202, 404, 405, 407, 415, 501),
                    note="out-of-dialog MESSAGE is not offered"),
    "unreason": Case("3.1.1.12", Silent()),
    "noreason": Case("3.1.1.13", Silent()),
    # 3.1.2 invalid messages: 400 (505 for the version), or nothing for responses
    "badinv01": Case("3.1.2.1", REJECT),
    "clerr": Case("3.1.2.2", REJECT, Silent(), note="TCP: waits for the rest of the body"),
    "ncl": Case("3.1.2.3", REJECT, Closes()),
    "scalar02": Case("3.1.2.4", REJECT),
    "scalarlg": Case("3.1.2.5", Silent()),
    "quotbal": Case("3.1.2.6", REJECT),
    "ltgtruri": Case("3.1.2.7", REJECT),
    "lwsruri": Case("3.1.2.8", REJECT),
    "lwsstart": Case("3.1.2.9", REJECT),
    "trws": Case("3.1.2.10", REJECT),
    "escruri": Case("3.1.2.11", REJECT),
    "baddate": Case("3.1.2.12", answer(400, 404, 407, 480),
                    note="rejecting or ignoring the bad Date are both acceptable"),
    "regbadct": Case("3.1.2.13", answer(400, 404), note="see also the re-addressed test"),
    "badaspec": Case("3.1.2.14", REJECT),
    "baddn": Case("3.1.2.15", REJECT, WaitsThen(b"\r\n", frozenset({400}))),
    "badvers": Case("3.1.2.16", answer(505)),
    "mismatch01": Case("3.1.2.17", REJECT),
    "mismatch02": Case("3.1.2.18", answer(400, 501)),
    "bigcode": Case("3.1.2.19", Silent()),
    # 3.2 transaction layer
    "badbranch": Case("3.2.1", answer(200, 400, 404, 401, 407),
                      note="branch is only the magic cookie: RFC 2543 matching or 400"),
    # 3.3 application layer
    "insuf": Case("3.3.1", REJECT),
    "unkscm": Case("3.3.2", answer(416)),
    "novelsc": Case("3.3.3", answer(416)),
    "unksm2": Case("3.3.4", answer(400, 404, 416)),
    "bext01": Case("3.3.5", answer(420), check=_unsupported_named),
    "invut": Case("3.3.6", answer(415), check=_accept_offered),
    "regaut01": Case("3.3.7", answer(401, 404), note="see also the re-addressed test"),
    "multi01": Case("3.3.8", REJECT),
    "mcl01": Case("3.3.9", REJECT, Closes()),
    "bcast": Case("3.3.10", Silent()),
    "zeromf": Case("3.3.11", answer(200, 483), note="an endpoint answers; a proxy says 483"),
    "cparam01": Case("3.3.12", UNKNOWN_DOMAIN_REGISTER),
    "cparam02": Case("3.3.13", UNKNOWN_DOMAIN_REGISTER),
    "regescrt": Case("3.3.14", UNKNOWN_DOMAIN_REGISTER),
    "sdp01": Case("3.3.15", answer(406), check=_accept_offered),
    # 3.4 backward compatibility
    "inv2543": Case("3.4.1", answer(400, 404, 407, 480)),
}
SAME_TRANSACTION_AS_EARLIER = ("unkscm", "cparam02", "regescrt")  # see module docstring


def test_every_torture_message_has_an_expectation() -> None:
    assert {p.stem for p in rfc4475_dir().glob("*.dat")} == set(CASES)


# --- sending -----------------------------------------------------------------------------
@dataclass
class Sent:
    name: str
    outcome: Outcome
    client: UdpClient | TcpClient
    sent_at: float
    exchange: Exchange = field(default_factory=Exchange)
    more_sent: bool = False
    before_more: list[SipResponse] = field(default_factory=list)  # WaitsThen: must be empty


def _outcome(name: str, transport: str) -> Outcome:
    case = CASES[name]
    return case.udp if transport == "udp" or case.tcp is None else case.tcp


def _send_all(port: int, names: list[str], transport: str) -> list[Sent]:
    sent = []
    for name in names:
        data = load_rfc4475(name)
        client: UdpClient | TcpClient
        if transport == "udp":
            client = UdpClient(port)
            client.send(data)
        else:
            client = TcpClient(port)
            if transport == "tcp-bytes":
                client.send_bytewise(data)
            else:
                client.send(data)
        sent.append(Sent(name, _outcome(name, transport), client, time.monotonic()))
    return sent


def _settled(s: Sent, now: float) -> bool:
    waited = now - s.sent_at
    if waited >= ANSWER_WINDOW or s.exchange.closed:
        return True
    if isinstance(s.outcome, Answer):
        return bool(s.exchange.finals) and waited >= 0.3
    if isinstance(s.outcome, WaitsThen) and s.more_sent:
        return bool(s.exchange.finals)
    return waited >= SILENCE_WINDOW


def _collect(sent: list[Sent]) -> None:
    """Read every socket until each message has what it waits for, or its window passed."""
    while True:
        now = time.monotonic()
        for s in sent:  # a stream that must wait first gets the rest once it has waited
            if (isinstance(s.outcome, WaitsThen) and not s.more_sent
                    and now - s.sent_at >= SILENCE_WINDOW):
                s.before_more = list(s.exchange.responses)
                s.client.send(s.outcome.more)
                s.more_sent, s.sent_at = True, now
        pending = [s for s in sent if not _settled(s, now)]
        if not pending:
            return
        ready, _, _ = select.select([s.client.sock for s in pending], [], [], 0.1)
        for s in pending:
            if s.client.sock in ready:
                got = s.client.read_ready()
                s.exchange.responses += got.responses
                s.exchange.closed = got.closed


def _call_ids(data: bytes) -> set[str]:
    """Call-IDs anywhere in the file (dblreq holds a second request after the first)."""
    text = data.decode("utf-8", "replace")
    return {m.strip() for m in re.findall(r"(?im)^(?:call-id|i)[ \t]*:(.*?)\r?$", text)}


def _judge(s: Sent) -> list[str]:
    """What is wrong with the server's answer to one file (empty: as its section says)."""
    case, ex, out = CASES[s.name], s.exchange, s.outcome
    where = f"{s.name} (RFC 4475 §{case.section}) {ex.responses} closed={ex.closed}"
    problems = []
    if isinstance(out, Answer):
        if not ex.finals:
            problems.append(f"{where}: no final response, expected one of {sorted(out.statuses)}")
        bad = [r for r in ex.finals if r.status not in out.statuses]
        if bad:
            problems.append(f"{where}: expected {sorted(out.statuses)}")
    elif isinstance(out, Silent):
        if ex.responses or ex.closed:
            problems.append(f"{where}: expected no answer and an open connection")
    elif isinstance(out, Closes):
        if not ex.closed or any(r.status != 400 for r in ex.responses):
            problems.append(f"{where}: expected the connection closed (a 400 first is fine)")
    elif isinstance(out, WaitsThen):
        if s.before_more:
            problems.append(f"{where}: answered before the message was complete")
        if [r.status for r in ex.finals] != sorted(out.statuses):
            problems.append(f"{where}: expected {sorted(out.statuses)} once complete")
    problems += _invariants(s)
    if case.check is not None and not problems:
        try:
            case.check(ex)
        except AssertionError as e:
            problems.append(f"{where}: {e}")
    return problems


def _invariants(s: Sent) -> list[str]:
    """What every response must do (RFC 3261 §8.2.6.2, §20.5, §21.4.6, §22.1)."""
    data = load_rfc4475(s.name)
    call_ids = _call_ids(data)
    problems = []
    for r in s.exchange.responses:
        where = f"{s.name}: {r}"
        if call_ids and r.call_id not in call_ids:
            problems.append(f"{where}: Call-ID {r.call_id!r} not the request's {call_ids}")
        if r.status == 405:
            allow = {m.strip() for v in r.values("Allow") for m in v.split(",")}
            method = data.split(b" ", 1)[0].decode()
            if not allow or method in allow:
                problems.append(f"{where}: 405 must offer other methods in Allow, got {allow}")
        if r.status == 420 and not r.values("Unsupported"):
            problems.append(f"{where}: 420 without Unsupported")
        challenge = {401: "WWW-Authenticate", 407: "Proxy-Authenticate"}.get(r.status)
        if challenge and not (r.get(challenge) or "").startswith("Digest "):
            problems.append(f"{where}: no Digest {challenge}")
    return problems


# --- the passes --------------------------------------------------------------------------
PASSES = {"udp": "udp", "udp-retransmission-pairs": "udp", "tcp": "tcp",
          "tcp-bytes": "tcp-bytes"}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FrontdeskProcess]]:
    """One fresh server per pass, started together."""
    factory = ServerFactory(tmp_path_factory.mktemp("rfc4475"))
    try:
        made = {name: factory(start=False) for name in PASSES}
        factory.start_all(list(made.values()))
        yield made
    finally:
        factory.stop_all()


def _files(pass_name: str) -> list[str]:
    if pass_name == "udp-retransmission-pairs":
        return list(SAME_TRANSACTION_AS_EARLIER)
    if pass_name == "udp":
        return [n for n in sorted(CASES) if n not in SAME_TRANSACTION_AS_EARLIER]
    return sorted(CASES)


@pytest.mark.parametrize("pass_name", list(PASSES))
def test_torture_messages(servers: dict[str, FrontdeskProcess], pass_name: str) -> None:
    fd = servers[pass_name]
    mark = log_size(fd)
    with known_bugs_as_xfail(fd, mark):
        sent = _send_all(fd.sip_port, _files(pass_name), PASSES[pass_name])
        try:
            _collect(sent)
        finally:
            for s in sent:
                s.client.close()
        problems = [p for s in sent for p in _judge(s)]
        assert not problems, "\n".join(problems)
        if pass_name == "udp":
            _dblreq_datagram(next(s for s in sent if s.name == "dblreq").exchange)
        elif pass_name.startswith("tcp"):
            _dblreq_stream(next(s for s in sent if s.name == "dblreq").exchange)
        assert_healthy(fd, mark)


# --- the registrar's own judgement (re-addressed to the demo tenant) ----------------------
def _readdress(name: str, user: str, cseq_step: int = 0) -> bytes:
    """The file's REGISTER sent to our registrar as ``user``: Request-URI, To and From name
    127.0.0.1 (the default tenant), a fresh branch; Contact and the rest stay as archived."""
    data = load_rfc4475(name)
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    method, _, version = lines[0].split(b" ")
    lines[0] = b" ".join((method, b"sip:127.0.0.1", version))
    for i, line in enumerate(lines[1:], 1):
        name_ = line.split(b":", 1)[0].strip().lower()
        if name_ in (b"to", b"t", b"from", b"f"):
            lines[i] = re.sub(rb"sip:[^@\s;>]+@[^\s;>]+", b"sip:" + user.encode() + b"@127.0.0.1",
                              line, count=1)
        elif name_ in (b"via", b"v"):
            lines[i] = re.sub(rb"branch=[^;\s,]+", b"branch=" + branch().encode(), line, count=1)
        elif name_ == b"cseq":
            number, meth = line.split(b":", 1)[1].split()
            lines[i] = b"CSeq: %d %s" % (int(number) + cseq_step, meth)
    return b"\r\n".join(lines) + sep + body


def _register(fd: FrontdeskProcess, name: str, user: str = "101") -> tuple[Exchange, Exchange]:
    """Send the re-addressed REGISTER, then answer the challenge; both exchanges."""
    with UdpClient(fd.sip_port) as client:
        first = client.request(_readdress(name, user))
        challenges = [r.get("WWW-Authenticate") for r in first.finals if r.status == 401]
        assert challenges and challenges[0], f"{name}: no 401 challenge: {first.responses}"
        auth = digest_answer(challenges[0], method="REGISTER", uri="sip:127.0.0.1", user=user,
                             password=fd.password(user))
        signed = _readdress(name, user, cseq_step=1).replace(
            b"\r\n\r\n", f"\r\nAuthorization: {auth}\r\n\r\n".encode(), 1)
        return first, client.request(signed)


def _contacts(ex: Exchange) -> list[str]:
    return [c.strip() for r in ex.finals for v in r.values("Contact") for c in v.split(",")]


def test_registrar_judges_the_register_sections(servers: dict[str, FrontdeskProcess]) -> None:
    fd = servers["udp-retransmission-pairs"]  # fresh branches: no transaction in common
    mark = log_size(fd)
    # §3.3.7: an unknown Authorization scheme is ignored; the registrar challenges (401)
    with UdpClient(fd.sip_port) as client:
        ex = client.request(_readdress("regaut01", "101"))
    assert [r.status for r in ex.finals] == [401], ex.responses
    assert (ex.finals[0].get("WWW-Authenticate") or "").startswith("Digest "), ex.finals[0].raw
    # §3.1.2.13: Contact with '?' outside <> is unparseable: 400, and nothing is bound
    _, ex = _register(fd, "regbadct")
    assert [r.status for r in ex.finals] == [400], ex.responses
    # §3.3.12: ';unknownparam' outside <> is a Contact parameter, not part of the URI
    _, ex = _register(fd, "cparam01")
    assert [r.status for r in ex.finals] == [200], ex.responses
    bound = _contacts(ex)
    assert any(c.startswith("<sip:+19725552222@gw1.example.net>") for c in bound), bound
    # §3.3.13: inside <> it is a URI parameter and stays part of the registered URI
    _, ex = _register(fd, "cparam02")
    assert [r.status for r in ex.finals] == [200], ex.responses
    bound = _contacts(ex)
    assert any(c.startswith("<sip:+19725552222@gw1.example.net;unknownparam>") for c in bound)
    # §3.3.14: an escaped header in the Contact URI is kept as registered
    _, ex = _register(fd, "regescrt")
    assert [r.status for r in ex.finals] == [200], ex.responses
    bound = _contacts(ex)
    assert any(c.startswith("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>")
               for c in bound), bound
    assert len(bound) == 3, bound  # cparam01, cparam02 and regescrt; regbadct bound nothing
    assert_healthy(fd, mark)
