"""RFC 4475 torture messages at the parser level: one row per file, the outcome its section asks for.

Outcomes:
- ``OK``: parses, and the fields the section is about are right (checked per file below).
- ``REJECT_400`` / ``REJECT_505``: `SipParseError` with that status and a ``partial`` request
  (start line and headers), so the server can answer from its Via/Call-ID/CSeq.
- ``DROP``: a response the parser refuses; the caller drops it (nothing to answer).
- ``APP``: parses; the application layer (registrar, UAS, transaction layer) judges it later.
  The check asserts the parser keeps what that layer needs.

The files live in ``shared/conformance/rfc4475`` beside the repository; FRONTDESK_SHARED
overrides where ``shared`` is. A missing folder is a failure, never a skip.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from frontdesk.sip.errors import SipParseError
from frontdesk.sip.message import Request, Response, make_response, parse_message
from frontdesk.sip.uri import NameAddr

OK, APP, DROP, REJECT_400, REJECT_505 = "ok", "app", "drop", "reject-400", "reject-505"


def rfc4475_dir() -> Path:
    """The folder of torture messages; fails the test with the places looked at."""
    env = os.environ.get("FRONTDESK_SHARED")
    here = Path(__file__).resolve()
    candidates = [Path(env)] if env else []
    candidates += [parent / "shared" for parent in here.parents]
    candidates += [parent / ".." / "shared" for parent in here.parents]
    for shared in candidates:
        folder = shared / "conformance" / "rfc4475"
        if (folder / "MANIFEST.md").is_file():
            return folder.resolve()
    pytest.fail(
        "RFC 4475 messages not found: expected shared/conformance/rfc4475/MANIFEST.md beside "
        "the repository (e.g. /work/shared next to /work/main) or under FRONTDESK_SHARED; "
        f"looked in {[str(c) for c in candidates[:4]]}...",
        pytrace=False,
    )


def load(name: str) -> bytes:
    return (rfc4475_dir() / f"{name}.dat").read_bytes()


def request(name: str) -> Request:
    msg = parse_message(load(name))
    assert isinstance(msg, Request)
    return msg


def response(name: str) -> Response:
    msg = parse_message(load(name))
    assert isinstance(msg, Response)
    return msg


# --- 3.1.1 valid messages ---------------------------------------------------------------
def check_wsinv(m: Request) -> None:
    assert [(v.transport, v.host, v.branch) for v in m.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.uri == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    assert m.to.tag == "1918181833n" and m.to.uri.user == "vivekg"
    assert m.from_.display_text == 'J Rosenberg \\"' and m.from_.tag == "98asjd8"
    assert m.headers.get("Max-Forwards") == "0068"
    assert (m.cseq.number, m.cseq.method) == (9, "INVITE")
    assert m.headers.get("Subject") == ""
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (contact,) = m.contacts
    assert contact.display_text == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert len(m.body) == 150 and m.body.startswith(b"v=0\r\n")


def check_intmeth(m: Request) -> None:
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.method == method and m.cseq.method == method
    uri = m.ruri
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert m.to.display_text == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert "extensionHeader-!.%*+_`'~" in m.headers


def check_esc01(m: Request) -> None:
    assert m.uri == "sip:sips%3Auser%40example.com@example.net"  # kept escaped
    assert (m.ruri.user, m.ruri.host) == ("sips%3Auser%40example.com", "example.net")
    assert m.to.uri.user == "%75se%72" and m.from_.uri.user == "I%20have%20spaces"
    (contact,) = m.contacts
    assert contact.uri.params == {"%6C%72": None, "n%61me": "v%61lue%25%34%31"}


def check_escnull(m: Request) -> None:
    assert m.to.uri.user == "null-%00-null"
    assert [c.uri.user for c in m.contacts] == ["%00", "%00%00"]


def check_esc02(m: Request) -> None:
    assert m.method == "RE%47IST%45R"  # an extension method, not REGISTER
    assert m.to.display_name == '"%Z%45"'
    assert m.top_via.branch == "z9hG4bK209%fzsnel234"
    # "C%6Fntact" is an unknown header, not Contact
    assert [c.uri.user for c in m.contacts] == ["alias1", "alias3"]
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def check_lwsdisp(m: Request) -> None:
    assert m.from_.display_name == "caller" and m.from_.tag == "323"


def check_longreq(m: Request) -> None:
    vias = m.vias
    assert len(vias) == 34 and vias[0].host == "sip33.example.com"
    assert vias[-1].params["received"] == "192.0.2.5"
    assert vias[-1].branch is not None and len(vias[-1].branch) > 100
    assert m.to.display_text.startswith("I have a user name of extremeextreme")
    assert m.to.uri.port == 6000 and len(m.from_.tag or "") > 100
    assert len(m.call_id) > 100 and len(m.body) == 150


def check_dblreq(m: Request) -> None:
    assert m.method == "REGISTER" and m.body == b""  # the INVITE after it is ignored
    assert m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"


def check_semiuri(m: Request) -> None:
    uri = m.ruri
    assert (uri.user, uri.host, uri.params) == ("user;par=u%40example.net", "example.com", {})
    assert m.headers.values("Accept")[-1] == "message/sipfrag"


def check_transports(m: Request) -> None:
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def check_mpart01(m: Request) -> None:
    data = load("mpart01")
    sent_body = data[data.index(b"\r\n\r\n") + 4 :]
    assert len(sent_body) == 553 and m.body == sent_body  # byte for byte, binary part too
    assert m.content_type == "multipart/mixed"


def check_unreason(m: Response) -> None:
    assert m.status == 200
    assert m.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    assert len(m.body) == 154


def check_noreason(m: Response) -> None:
    assert (m.status, m.reason) == (100, "")


# --- 3.2 / 3.3 / 3.4: parse, judged later -----------------------------------------------
def check_badbranch(m: Request) -> None:
    assert m.top_via.branch == "z9hG4bK"  # the transaction layer decides (400 or RFC 2543)


def check_unkscm(m: Request) -> None:
    assert not m.ruri.is_sip and m.ruri.scheme == "nobodyKnowsThisScheme"  # UAS: 416


def check_novelsc(m: Request) -> None:
    assert m.ruri.scheme == "soap.beep" and not m.ruri.is_sip  # UAS: 416


def check_unksm2(m: Request) -> None:
    assert m.to.uri.scheme == "isbn" and m.from_.uri.scheme == "http"  # registrar: 400
    assert m.contacts[0].uri.scheme == "name"


def check_bext01(m: Request) -> None:
    assert m.headers.values("Require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert m.headers.values("Proxy-Require")[0] == "noProxiesSupportThis"  # UAS: 420


def check_invut(m: Request) -> None:
    assert m.content_type == "application/unknownformat" and len(m.body) == 40  # UAS: 415


def check_regaut01(m: Request) -> None:
    assert m.headers.get("Authorization") == "NoOneKnowsThisScheme opaque-data=here"  # 401


def check_bcast(m: Response) -> None:
    assert [v.host for v in m.vias] == ["192.0.2.198", "255.255.255.255"]


def check_zeromf(m: Request) -> None:
    assert m.headers.get("Max-Forwards") == "0"


def check_cparam01(m: Request) -> None:
    (contact,) = m.contacts  # addr-spec: ";unknownparam" belongs to the header
    assert contact.params == {"unknownparam": None} and contact.uri.params == {}


def check_cparam02(m: Request) -> None:
    (contact,) = m.contacts  # inside <>: a URI parameter
    assert contact.uri.params == {"unknownparam": None} and contact.params == {}


def check_regescrt(m: Request) -> None:
    (contact,) = m.contacts
    assert contact.uri.headers == "Route=%3Csip:sip.example.com%3E"


def check_regbadct(m: Request) -> None:
    value = m.headers.get("Contact")
    assert value == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    with pytest.raises(SipParseError):
        NameAddr.parse(value)  # the registrar answers 400
    with pytest.raises(SipParseError):
        m.contacts  # noqa: B018


def check_baddate(m: Request) -> None:
    assert m.headers.get("Date") == "Fri, 01 Jan 2010 16:00:00 EST"  # kept, never needed


def check_sdp01(m: Request) -> None:
    assert m.headers.values("Accept") == ["text/nobodyKnowsThis"]
    assert m.content_type == "application/sdp" and len(m.body) == 150


def check_inv2543(m: Request) -> None:
    assert m.top_via.branch is None and m.from_.tag is None
    assert "Max-Forwards" not in m.headers and "Content-Length" not in m.headers
    assert m.body.startswith(b"v=0") and len(m.body) == 105  # rest of the datagram


Check = Callable[..., None] | None

# file -> (RFC 4475 section, outcome, field check)
CASES: dict[str, tuple[str, str, Check]] = {
    "wsinv": ("3.1.1.1", OK, check_wsinv),
    "intmeth": ("3.1.1.2", OK, check_intmeth),
    "esc01": ("3.1.1.3", OK, check_esc01),
    "escnull": ("3.1.1.4", OK, check_escnull),
    "esc02": ("3.1.1.5", OK, check_esc02),
    "lwsdisp": ("3.1.1.6", OK, check_lwsdisp),
    "longreq": ("3.1.1.7", OK, check_longreq),
    "dblreq": ("3.1.1.8", OK, check_dblreq),
    "semiuri": ("3.1.1.9", OK, check_semiuri),
    "transports": ("3.1.1.10", OK, check_transports),
    "mpart01": ("3.1.1.11", OK, check_mpart01),
    "unreason": ("3.1.1.12", OK, check_unreason),
    "noreason": ("3.1.1.13", OK, check_noreason),
    "badinv01": ("3.1.2.1", REJECT_400, None),
    "clerr": ("3.1.2.2", REJECT_400, None),
    "ncl": ("3.1.2.3", REJECT_400, None),
    "scalar02": ("3.1.2.4", REJECT_400, None),
    "scalarlg": ("3.1.2.5", DROP, None),
    "quotbal": ("3.1.2.6", REJECT_400, None),
    "ltgtruri": ("3.1.2.7", REJECT_400, None),
    "lwsruri": ("3.1.2.8", REJECT_400, None),
    "lwsstart": ("3.1.2.9", REJECT_400, None),
    "trws": ("3.1.2.10", REJECT_400, None),
    "escruri": ("3.1.2.11", REJECT_400, None),
    "baddate": ("3.1.2.12", APP, check_baddate),  # "acceptable to reject", better to ignore
    "regbadct": ("3.1.2.13", APP, check_regbadct),
    "badaspec": ("3.1.2.14", REJECT_400, None),
    "baddn": ("3.1.2.15", REJECT_400, None),
    "badvers": ("3.1.2.16", REJECT_505, None),
    "mismatch01": ("3.1.2.17", REJECT_400, None),
    "mismatch02": ("3.1.2.18", REJECT_400, None),
    "bigcode": ("3.1.2.19", DROP, None),
    "badbranch": ("3.2.1", APP, check_badbranch),
    "insuf": ("3.3.1", REJECT_400, None),
    "unkscm": ("3.3.2", APP, check_unkscm),
    "novelsc": ("3.3.3", APP, check_novelsc),
    "unksm2": ("3.3.4", APP, check_unksm2),
    "bext01": ("3.3.5", APP, check_bext01),
    "invut": ("3.3.6", APP, check_invut),
    "regaut01": ("3.3.7", APP, check_regaut01),
    "multi01": ("3.3.8", REJECT_400, None),
    "mcl01": ("3.3.9", REJECT_400, None),
    "bcast": ("3.3.10", APP, check_bcast),
    "zeromf": ("3.3.11", APP, check_zeromf),
    "cparam01": ("3.3.12", APP, check_cparam01),
    "cparam02": ("3.3.13", APP, check_cparam02),
    "regescrt": ("3.3.14", APP, check_regescrt),
    "sdp01": ("3.3.15", APP, check_sdp01),
    "inv2543": ("3.4.1", APP, check_inv2543),
}


def test_every_file_in_the_folder_has_a_row() -> None:
    on_disk = {p.stem for p in rfc4475_dir().glob("*.dat")}
    assert on_disk == set(CASES), f"unclassified: {on_disk - set(CASES)}"
    assert len(CASES) == 49


@pytest.mark.parametrize("name", sorted(CASES))
def test_parser_outcome(name: str) -> None:
    section, outcome, check = CASES[name]
    data = load(name)
    if outcome in (OK, APP):
        msg = parse_message(data)
        assert check is not None, f"{name} ({section}) needs a field check"
        check(msg)
        return
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    err = info.value
    if outcome == DROP:
        assert data.startswith(b"SIP/2.0 ") and err.partial is None  # nothing to answer
        return
    assert err.status == (505 if outcome == REJECT_505 else 400), err.reason
    assert isinstance(err.partial, Request), f"{name}: a request must be answerable"
    answer = make_response(err.partial, err.status)  # what the server sends back
    assert answer.headers.get("Via") and answer.headers.get("CSeq")


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c[1] in (OK, APP)))
def test_accessors_never_raise_anything_else(name: str) -> None:
    """Every structured view of a message that parsed either works or says SipParseError."""
    msg = parse_message(load(name))
    for view in ("vias", "top_via", "from_", "to", "cseq", "contacts", "content_type"):
        try:
            getattr(msg, view)
        except SipParseError:
            assert (name, view) == ("regbadct", "contacts")


def test_rejections_name_the_problem() -> None:
    """The reason says what was wrong, so the 400 and the log line help the peer's owner."""
    expected = {
        "badinv01": "bad parameter",
        "clerr": "larger than the message body",
        "ncl": "bad Content-Length",
        "scalar02": "bad CSeq",
        "quotbal": "unterminated quoted string",
        "ltgtruri": "bad Request-URI",
        "escruri": "must not contain headers",
        "badaspec": "bad URI",
        "baddn": "display name",
        "mismatch01": "CSeq method does not match",
        "insuf": "missing required header",
        "multi01": "more than one",
        "mcl01": "more than one Content-Length",
    }
    for name, words in expected.items():
        with pytest.raises(SipParseError) as info:
            parse_message(load(name))
        assert words in info.value.reason, (name, info.value.reason)


def test_dblreq_over_a_stream_is_two_messages() -> None:
    """Over TCP the same octets frame as REGISTER then INVITE (each cut at its Content-Length;
    the INVITE's last 5 body octets then start a "message" that does not parse)."""
    from frontdesk.sip.framing import StreamFramer

    parts = StreamFramer().feed(load("dblreq"))
    first, second = (parse_message(p, stream=True) for p in parts[:2])
    assert isinstance(first, Request) and isinstance(second, Request)
    assert (first.method, second.method, len(second.body)) == ("REGISTER", "INVITE", 150)
