"""Call events under concurrent calls: SIPp places 20 calls (up to 8 at once) from an outside
number to a SIPp phone registered as extension 103 (the service coordinator), through a real
`frontdesk serve`.

Checked: every call's ``call.started`` / ``call.answered`` / ``call.ended`` reach a real
WebSocket client in that order; the helpdesk receiver gets each of them once per call, signed,
with ``occurred_at`` in order (deliveries run concurrently, so arrival order is not
guaranteed — receivers order by ``occurred_at``); each call gets one screen pop for the user
of 103; Zammad gets newCall/answer/hangup per call; the endpoint that is down logs a failed
delivery for every event, nothing lost.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from integration_kit import SCENARIOS, phone_port, wait_for
from sip_raw import wait_bound
from tickets_live_kit import (  # noqa: F401  (*_fixture: the fixtures office, receiver)
    OUTSIDE,
    SECRET,
    Office,
    deliveries,
    endpoint_ids,
    office_fixture,
    receiver_fixture,
)

from frontdesk.tickets.webhooks import verify_signature
from peers.sipp import run_sipp, start_sipp

pytestmark = [pytest.mark.peers, pytest.mark.timeout(180)]

CALLS = 20
CALL_EVENTS = ("call.started", "call.answered", "call.ended")

REGISTER = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register from a trusted address">
  <send retrans="500"><![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:[service]@[remote_ip]>;tag=[pid]reg[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[service]@[local_ip]:[local_port]>
      Expires: 300
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>
</scenario>
"""

CALL = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="outside caller from a trusted address">
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:[caller]@[remote_ip]>;tag=[pid]out[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:[caller]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:[caller]@[remote_ip]>;tag=[pid]out[call_number]
      To: <sip:[service]@[remote_ip]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <pause milliseconds="500"/>
  <send retrans="500"><![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:[caller]@[remote_ip]>;tag=[pid]out[call_number]
      To: <sip:[service]@[remote_ip]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>
</scenario>
"""


def _calls_by_ref(messages: list[dict[str, Any]]) -> dict[str, list[str]]:
    by_ref: dict[str, list[str]] = defaultdict(list)
    for message in messages:
        if message["event"] in CALL_EVENTS:
            by_ref[message["data"]["call_id"]].append(message["event"])
    return by_ref


def test_concurrent_sipp_calls_keep_their_events_whole_and_in_order(
    office: Office, tmp_path: Path
) -> None:
    (tmp_path / "register.xml").write_text(REGISTER)
    (tmp_path / "call.xml").write_text(CALL)
    target = f"127.0.0.1:{office.fd.sip_port}"
    port = phone_port()
    registered = run_sipp(tmp_path / "register.xml", target, local_port=port, service="103")
    assert registered.ok, registered.describe()
    phone = start_sipp(SCENARIOS / "uas_answer.xml", None, local_port=port, calls=CALLS, timeout=90)
    assert wait_bound(port, "udp", 10.0), phone.stop().describe()
    seen: list[dict[str, Any]] = []
    with office.websocket("rita", "?events=call.*") as ws:
        result = run_sipp(
            tmp_path / "call.xml",
            target,
            calls=CALLS,
            rate=10,
            limit=8,
            timeout=90,
            service="103",
            keys={"caller": OUTSIDE},
        )
        assert result.ok and result.successful == CALLS, result.describe()

        def all_ended() -> bool:
            with contextlib.suppress(TimeoutError):
                seen.append(json.loads(ws.recv(timeout=1)))
            ended = [refs for refs in _calls_by_ref(seen).values() if "call.ended" in refs]
            return len(ended) >= CALLS

        wait_for("every call's events on the WebSocket", all_ended, timeout=30, interval=0)
    assert phone.wait(30).ok
    by_ref = _calls_by_ref(seen)
    assert len(by_ref) == CALLS
    assert all(events == list(CALL_EVENTS) for events in by_ref.values()), by_ref
    _check_helpdesk(office, set(by_ref))
    _check_zammad_and_down(office, set(by_ref))


def _check_helpdesk(office: Office, refs: set[str]) -> None:
    def complete() -> list[dict[str, Any]] | None:
        got = [r for r in office.hooks.received if r.path == "/hooks"]
        calls = [r for r in got if r.headers["x-frontdesk-event"] in CALL_EVENTS]
        return [json.loads(r.body) for r in got] if len(calls) >= 3 * CALLS else None

    envelopes = wait_for("every call event at the helpdesk", complete, timeout=30)
    for received in (r for r in office.hooks.received if r.path == "/hooks"):
        verify_signature(SECRET, received.headers["x-frontdesk-signature"], received.body)
    times: dict[str, dict[str, str]] = defaultdict(dict)
    pops: dict[str, int] = defaultdict(int)
    for envelope in envelopes:
        ref = envelope["data"]["call_id"]
        if envelope["event"] == "call.caller_identified":
            pops[ref] += 1
        elif envelope["event"] in CALL_EVENTS:
            assert envelope["event"] not in times[ref], f"{envelope['event']} twice for {ref}"
            times[ref][envelope["event"]] = envelope["occurred_at"]
    assert set(times) == refs and set(pops) == refs and set(pops.values()) == {1}
    for ref, at in times.items():
        assert at["call.started"] <= at["call.answered"] <= at["call.ended"], (ref, at)


def _check_zammad_and_down(office: Office, refs: set[str]) -> None:
    def forms() -> list[dict[str, list[str]]] | None:
        path = "/api/v1/cti/t0ken"
        got = [parse_qs(r.body.decode()) for r in office.hooks.received if r.path == path]
        return got if len(got) >= 3 * CALLS else None

    by_ref: dict[str, list[str]] = defaultdict(list)
    for form in wait_for("every call at Zammad", forms, timeout=30):
        by_ref[form["callId"][0]].append(form["event"][0])
    assert set(by_ref) == refs
    assert all(sorted(e) == ["answer", "hangup", "newCall"] for e in by_ref.values())
    ids = endpoint_ids(office)

    def settled() -> list[Any] | None:
        rows = deliveries(office)
        down = [d for d in rows if d.endpoint_id == ids["down"]]
        helpdesk = [d for d in rows if d.endpoint_id == ids["helpdesk"]]
        if len(down) == len(helpdesk) and all(d.status == "failed" for d in down):
            return rows
        return None

    rows = wait_for("the down endpoint's deliveries to fail", settled, timeout=60)
    down = {d.event_id for d in rows if d.endpoint_id == ids["down"]}
    assert down == {d.event_id for d in rows if d.endpoint_id == ids["helpdesk"]}
