"""Registering with the carrier, in memory: a trunk with registration on sends REGISTER,
answers the carrier's 401 once with digest credentials the carrier verifies, refreshes
before the granted expiry, retries after a refusal or silence, and stops when the trunk is
removed from the snapshot. The clock moves by hand."""

from __future__ import annotations

import dataclasses

from inmemory import Net, make_directory
from test_trunks import CARRIER_PORT, REALM, TRUNK, Carrier

from frontdesk.pbx.trunk_register import RETRY
from frontdesk.sip.auth import compute_ha1, parse_credentials
from frontdesk.sip.message import Request, make_response

REGISTERING = dataclasses.replace(TRUNK, register=True)


def registers(carrier: Carrier) -> list[Request]:
    seen: dict[str, Request] = {}
    for m in carrier.received():
        if isinstance(m, Request) and m.method == "REGISTER":
            seen.setdefault(m.top_via.branch or "", m)
    return list(seen.values())


def grant(carrier: Carrier, req: Request, expires: int) -> None:
    resp = make_response(req, 200, to_tag="reg")
    resp.headers.add("Contact", f"{req.headers.get('Contact')};expires={expires}")
    carrier.net.send(resp, carrier.peer)


def started(trunk=REGISTERING) -> tuple[Net, Carrier]:  # type: ignore[no-untyped-def]
    net = Net(make_directory({"101": "pw101"}))
    net.directory.trunks = (trunk,)
    net.engine.trunks.registrar.start(net.now)
    net.deliver()
    return net, Carrier(net)


def test_register_answers_the_challenge_and_refreshes_before_expiry() -> None:
    net, carrier = started()
    [first] = registers(carrier)
    assert first.uri == f"sip:127.0.0.9:{CARRIER_PORT}" and first.to.uri.user == "acme-trunk"
    carrier.challenge(first)
    [_, signed] = registers(carrier)
    assert signed.cseq.number == first.cseq.number + 1 and signed.call_id == first.call_id
    creds = parse_credentials(signed.headers.get("Authorization") or "")
    assert creds is not None
    ha1 = compute_ha1("acme-trunk", REALM, "carrier-pw", creds.algorithm)
    assert carrier.auth.verify(creds, "REGISTER", REALM, net.now, lambda u, a: ha1).ok
    grant(carrier, signed, 40)
    [reg] = net.engine.trunks.registrar.registrations.values()
    assert reg.state == "registered"
    net.advance(19)
    assert len(registers(carrier)) == 2  # not yet: refresh at half of 40 s
    net.advance(2)
    assert len(registers(carrier)) == 3
    refresh = registers(carrier)[-1]
    assert refresh.call_id == first.call_id and refresh.cseq.number == signed.cseq.number + 1


def test_a_refusal_is_retried_later_and_a_second_challenge_is_not_looped() -> None:
    net, carrier = started()
    [first] = registers(carrier)
    carrier.challenge(first)
    [_, signed] = registers(carrier)
    carrier.challenge(signed)  # wrong password at the carrier: challenged again
    assert len(registers(carrier)) == 2
    [reg] = net.engine.trunks.registrar.registrations.values()
    assert reg.state == "failed" and reg.last_status == 401
    net.advance(RETRY + 1)
    assert len(registers(carrier)) == 3


def test_silence_is_retried_and_a_removed_trunk_stops_registering() -> None:
    net, carrier = started()
    net.advance(40)  # timer F: the carrier never answered
    [reg] = net.engine.trunks.registrar.registrations.values()
    assert reg.state == "failed"
    net.directory.trunks = ()
    net.advance(RETRY + 10)
    assert net.engine.trunks.registrar.registrations == {}
    sent = len(registers(carrier))
    net.advance(RETRY * 2)
    assert len(registers(carrier)) == sent


def test_a_trunk_without_registration_sends_nothing() -> None:
    net, carrier = started(TRUNK)
    net.advance(10)
    assert registers(carrier) == [] and net.inbox.get(CARRIER_PORT) is None
