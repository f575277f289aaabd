"""An extension's call out through a SIP trunk is reported to Zammad's CTI as an outbound
call: a real `frontdesk serve` with the tickets office (helpdesk receiver with a Zammad CTI
endpoint), a trunk added with `frontdesk trunk add` while it runs, a real baresip phone on
extension 101 dialling 9 + a national number, and SIPp as the carrier at 127.0.0.2 that
challenges (401) and answers. Zammad must get newCall, answer and hangup for the call, each
with direction=out, from 101 to the E.164 number, newCall naming the calling user."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import parse_qs

import pytest
from integration_kit import SCENARIOS, wait_for
from test_trunks_live import CARRIER_IP, _carrier_port
from tickets_live_kit import Office, office_fixture, receiver_fixture  # noqa: F401

from peers import BaresipPhone
from peers.sipp import start_sipp

pytestmark = [pytest.mark.peers, pytest.mark.timeout(150)]

ZAMMAD = "/api/v1/cti/t0ken"


def test_a_call_out_through_the_trunk_reaches_zammad_as_outbound(
        office: Office, baresip_phone: Callable[..., BaresipPhone]) -> None:
    fd = office.fd
    port = _carrier_port()
    fd.cli("trunk", "add", "carrier", "--host", CARRIER_IP, "--port", str(port),
           "--username", "acme-trunk", "--password", "carrier-pw", "--source", CARRIER_IP,
           "--dial-rule", "9", "--caller-id", "+15551230000",
           "--data", str(fd.data_dir), *fd._db_args())
    time.sleep(3)  # the running server reloads its configuration snapshot every 2 s
    rita = office.phone(baresip_phone, "101", answermode="manual")
    with start_sipp(SCENARIOS / "trunk_carrier_uas_auth.xml", None, local_port=port, calls=1,
                    timeout=25, keys={"user": "acme-trunk", "password": "carrier-pw"},
                    extra_args=["-i", CARRIER_IP]) as carrier:
        rita.dial(f"sip:92125550147@127.0.0.1:{fd.sip_port}")
        rita.wait_event("CALL_ESTABLISHED", timeout=15)
        time.sleep(1)
        rita.hangup()
        result = carrier.wait()
    assert result.ok, result.describe()

    def forms() -> list[dict[str, list[str]]] | None:
        got = [parse_qs(r.body.decode()) for r in office.hooks.received if r.path == ZAMMAD]
        return got if len(got) >= 3 else None

    got = wait_for("newCall, answer and hangup at Zammad", forms, timeout=30)
    assert sorted(f["event"][0] for f in got) == ["answer", "hangup", "newCall"]
    assert {f["direction"][0] for f in got} == {"out"}
    assert {f["from"][0] for f in got} == {"101"}
    assert all(f["to"][0].endswith("12125550147") for f in got), got
    [new_call] = [f for f in got if f["event"][0] == "newCall"]
    assert new_call.get("user[]"), new_call  # the calling user, as Zammad matches users
