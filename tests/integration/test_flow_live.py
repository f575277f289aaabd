"""A call to the main number walks the tenant's published flow through real phones:
the office manager's phone rings and is not answered, the flow moves on after its timeout,
the service manager's phone answers, and the CDR records the path taken; the front-desk
routine's whole shape (office manager, then the service team, nobody answers, the service
manager's voicemail takes the caller's message); the demo out of the box, where a call
nobody answers reaches the service manager's greeting; a menu whose invalid-choice prompt the
caller hears after a wrong key; a tenant without a main number whose technician is still
shielded; and a ring group that changes its members while the server runs."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from frontdesk_proc import FrontdeskProcess
from integration_kit import registered_baresip

from peers import BaresipPhone, best_correlation, pad_silence, silence_wav, speech_wav
from peers.audio import concat_wavs, duration

pytestmark = [pytest.mark.peers, pytest.mark.timeout(120)]

FLOW = """\
name: front-desk
title: Live test front desk (no business hours, so the test does not depend on the time)
timezone: UTC
nodes:
  start: {type: start, next: ring-om}
  ring-om: {type: ring, targets: ["101"], timeout: 5, no_answer: ring-team, busy: ring-team}
  ring-team: {type: ring, targets: ["102", "103"], timeout: 15, no_answer: goodbye, busy: goodbye}
  goodbye: {type: hangup}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FrontdeskProcess]:
    fd = FrontdeskProcess(tmp_path / "fd")
    fd.init_demo()
    (tmp_path / "flow.yaml").write_text(FLOW)
    fd.cli("flow", "publish", "--file", str(tmp_path / "flow.yaml"), "--actor", "test",
           "--data", str(fd.data_dir))
    fd.start()
    yield fd
    fd.stop()
    assert "Traceback" not in fd.log_tail(10_000), fd.log_tail(80)


def test_main_number_rings_office_manager_then_service_team(
    server: FrontdeskProcess, baresip_phone: Callable[..., BaresipPhone]
) -> None:
    office = registered_baresip(baresip_phone, server, "101", answermode="manual")
    service = registered_baresip(baresip_phone, server, "102", answermode="auto")
    caller = registered_baresip(baresip_phone, server, "202")

    caller.dial(f"sip:100@127.0.0.1:{server.sip_port}")
    office.wait_event("CALL_INCOMING", timeout=10)
    started = time.monotonic()
    office.wait_event("CALL_CLOSED", timeout=15)  # cancelled when its 5 s are up
    assert time.monotonic() - started >= 3.5
    service.wait_event("CALL_ESTABLISHED", timeout=10)
    caller.wait_event("CALL_ESTABLISHED", timeout=10)
    time.sleep(1)
    caller.hangup()
    service.wait_event("CALL_CLOSED", timeout=10)

    deadline = time.monotonic() + 5
    while True:
        done = [c for c in server.cdrs() if c["disposition"] == "answered"]
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert done, server.cdrs()
    cdr = done[0]
    assert (cdr["caller"], cdr["callee"], cdr["callee_answered_by"]) == ("202", "100", "102")
    with sqlite3.connect(server.data_dir / "frontdesk.db") as db:
        path, extra = db.execute("select path, extra from cdrs where id = ?",
                                 (cdr["id"],)).fetchone()
    nodes = [step["node"] for step in json.loads(path)]
    assert nodes[:3] == ["start", "ring-om", "ring-om"], nodes  # rang, nobody answered
    assert "ring-team" in nodes and json.loads(extra)["flow"] == "front-desk"


GROUP_FLOW = """\
name: front-desk
timezone: UTC
nodes:
  start: {type: start, next: ring-team}
  ring-team: {type: ring, targets: ["group:team"], timeout: 20, no_answer: goodbye, busy: goodbye}
  goodbye: {type: hangup}
"""


def _set_team(fd: FrontdeskProcess, numbers: tuple[str, ...], create: bool = False) -> None:
    """Who is in group "team", written to the server's database by another process (as the
    API or CLI would): the running server must notice it by itself."""
    from sqlalchemy import delete, select

    from frontdesk.org.model import GroupMember, UserGroup
    from frontdesk.store.db import Database, sqlite_url
    from frontdesk.store.models import Extension

    db = Database(sqlite_url(fd.data_dir))
    try:
        with db.session() as s:
            tenant_id = s.scalar(select(Extension.tenant_id).where(Extension.number == "102"))
            if create:
                s.add(UserGroup(tenant_id=tenant_id, name="team", display_name="Team",
                                features=[], has_mailbox=False))  # fmt: skip
                s.flush()
            group = s.scalar(select(UserGroup.id).where(UserGroup.name == "team"))
            s.execute(delete(GroupMember).where(GroupMember.group_id == group))
            for number in numbers:
                user = s.scalar(select(Extension.user_id).where(Extension.number == number))
                s.add(GroupMember(group_id=group, user_id=user))
    finally:
        db.engine.dispose()


def test_a_ring_group_rings_its_new_members_after_a_membership_change(
    tmp_path: Path, baresip_phone: Callable[..., BaresipPhone]
) -> None:
    """The group's membership changes while the server runs (no restart, no other change):
    within seconds the next call to the main number rings the new member, not the old one."""
    fd = FrontdeskProcess(tmp_path / "fd")
    fd.init_demo()
    _set_team(fd, ("102",), create=True)
    (tmp_path / "flow.yaml").write_text(GROUP_FLOW)
    fd.cli("flow", "publish", "--file", str(tmp_path / "flow.yaml"), "--actor", "test",
           "--data", str(fd.data_dir))  # fmt: skip
    fd.start()
    try:
        old = registered_baresip(baresip_phone, fd, "102", answermode="manual")
        new = registered_baresip(baresip_phone, fd, "103", answermode="auto")
        caller = registered_baresip(baresip_phone, fd, "202")
        caller.dial(f"sip:100@127.0.0.1:{fd.sip_port}")
        old.wait_event("CALL_INCOMING", timeout=10)
        caller.hangup()
        old.wait_event("CALL_CLOSED", timeout=10)

        _set_team(fd, ("103",))
        deadline = time.monotonic() + 15
        while "configuration changed" not in fd.log_tail(200):
            assert time.monotonic() < deadline, "the server did not reload:\n" + fd.log_tail()
            time.sleep(0.2)
        caller.dial(f"sip:100@127.0.0.1:{fd.sip_port}")
        new.wait_event("CALL_ESTABLISHED", timeout=10)
        caller.wait_event("CALL_ESTABLISHED", timeout=10)
        assert old.event_types().count("CALL_INCOMING") == 1  # only the first call rang it
        caller.hangup()
        new.wait_event("CALL_CLOSED", timeout=10)
    finally:
        fd.stop()
    assert "Traceback" not in fd.log_tail(10_000), fd.log_tail(80)


FRONT_DESK = """\
name: front-desk
title: the front-desk routine's shape, 5 s per ring step (no business hours, so the test does
  not depend on the time of day; the hours are covered by tests/routing)
timezone: UTC
nodes:
  start: {type: start, next: ring-office-manager}
  ring-office-manager:
    {type: ring, targets: ["101"], timeout: 5, no_answer: ring-service-team, busy: ring-service-team}
  ring-service-team:
    {type: ring, targets: ["102", "103"], timeout: 5, no_answer: voicemail, busy: voicemail}
  voicemail: {type: voicemail, mailbox: "role:service_manager", greeting: standard}
"""


def test_nobody_answers_so_the_front_desk_routine_ends_in_voicemail(
    tmp_path: Path, baresip_phone: Callable[..., BaresipPhone]
) -> None:
    """Real ringing and no-answer timeouts on three phones, then the service manager's
    mailbox — the one `init --demo` made — answers the caller (never answered before: no
    earlier prompt), plays the standard greeting and stores what the caller says
    (correlation with the spoken words)."""
    fd = FrontdeskProcess(tmp_path / "fd")
    fd.init_demo()
    greeting = tmp_path / "greeting.wav"
    fd.cli("voicemail", "greeting", "render", "102", "--out", str(greeting),
           "--data", str(fd.data_dir))  # fmt: skip
    (tmp_path / "flow.yaml").write_text(FRONT_DESK)
    fd.cli("flow", "publish", "--file", str(tmp_path / "flow.yaml"), "--actor", "test",
           "--data", str(fd.data_dir))  # fmt: skip
    fd.start(extra_env={"FRONTDESK_RTP_PORTS": "0", "FRONTDESK_MEDIA_TIMEOUT": "20"})
    words = speech_wav(tmp_path / "words.wav", "Hello, this is Hank from Globex, our printer "
                       "is broken again, please call me back this afternoon.")  # fmt: skip
    lead = duration(greeting) + 3.0  # counted from the voicemail's answer
    said = concat_wavs(tmp_path / "caller.wav", silence_wav(tmp_path / "lead.wav", lead),
                       pad_silence(words, tmp_path / "tail.wav", after=30.0))  # fmt: skip
    try:
        staff = {n: registered_baresip(baresip_phone, fd, n, answermode="manual")
                 for n in ("101", "102", "103")}
        caller = registered_baresip(baresip_phone, fd, "202", audio_file=said)
        caller.dial(f"sip:100@127.0.0.1:{fd.sip_port}")
        staff["101"].wait_event("CALL_INCOMING", timeout=10)
        started = time.monotonic()
        staff["101"].wait_event("CALL_CLOSED", timeout=10)  # its 5 s are up
        for number in ("102", "103"):  # then the team together
            staff[number].wait_event("CALL_INCOMING", timeout=5)
        for number in ("102", "103"):
            staff[number].wait_event("CALL_CLOSED", timeout=10)
        assert time.monotonic() - started >= 3.5  # the team rang for its own timeout
        caller.wait_event("CALL_ESTABLISHED", timeout=10)  # the mailbox answers
        time.sleep(lead + duration(words) + 1.0)
        caller.hangup()
        caller.wait_event("CALL_CLOSED", timeout=10)
        deadline = time.monotonic() + 10
        while not (found := json.loads(
                fd.cli("voicemail", "list", "--json", "--data", str(fd.data_dir)).stdout)):
            assert time.monotonic() < deadline, "no message stored:\n" + fd.log_tail()
            time.sleep(0.3)  # fmt: skip
        message = tmp_path / "message.wav"
        fd.cli("voicemail", "export", found[0]["id"], str(message), "--data", str(fd.data_dir))
        heard = caller.last_recording().heard
        scores = (best_correlation(heard, greeting), best_correlation(message, words))
        print(f"front desk to voicemail: greeting heard {scores[0]:.3f}, message {scores[1]:.3f}")
        assert min(scores) >= 0.9, scores
        assert all(e.count("CALL_ESTABLISHED") == 0
                   for e in (p.event_types() for p in staff.values()))  # fmt: skip
        (cdr,) = fd.cdrs()
        with sqlite3.connect(fd.data_dir / "frontdesk.db") as db:
            (path,) = db.execute("select path from cdrs where id = ?", (cdr["id"],)).fetchone()
        nodes = [step["node"] for step in json.loads(path)]
        assert nodes[0] == "start" and nodes[-1] == "voicemail", nodes
        assert nodes.index("ring-office-manager") < nodes.index("ring-service-team"), nodes
        assert cdr["callee_answered_by"] == "frontdesk" and cdr["ended_at"], cdr
    finally:
        fd.stop()
    assert "Traceback" not in fd.log_tail(10_000), fd.log_tail(80)


def test_out_of_the_box_a_call_nobody_answers_reaches_the_service_managers_greeting(
    tmp_path: Path, baresip_phone: Callable[..., BaresipPhone]
) -> None:
    """`init --demo` and nothing else: the built-in front-desk flow and the demo's own
    mailboxes. No staff phone is registered, so at any hour the call to the main number ends
    in the service manager's mailbox (after the after-hours message when the office is
    closed) and the caller hears its standard greeting (by correlation)."""
    from frontdesk.media.prompts import PromptLibrary
    from frontdesk.routing.templates import AFTER_HOURS_MESSAGE

    fd = FrontdeskProcess(tmp_path / "fd")
    fd.init_demo()
    greeting = tmp_path / "greeting.wav"
    fd.cli("voicemail", "greeting", "render", "102", "--out", str(greeting),
           "--data", str(fd.data_dir))  # fmt: skip
    closed = PromptLibrary(tmp_path / "refs").render(AFTER_HOURS_MESSAGE)
    fd.start(extra_env={"FRONTDESK_RTP_PORTS": "0"})
    try:
        caller = registered_baresip(baresip_phone, fd, "202",
                                    audio_file=silence_wav(tmp_path / "quiet.wav", 60.0))  # fmt: skip
        caller.dial(f"sip:100@127.0.0.1:{fd.sip_port}")
        caller.wait_event("CALL_ESTABLISHED", timeout=10)
        time.sleep(duration(closed) + duration(greeting) + 2.0)
        caller.hangup()
        caller.wait_event("CALL_CLOSED", timeout=10)
        heard = caller.last_recording().heard
        deadline = time.monotonic() + 5
        while not (ended := [c for c in fd.cdrs() if c["ended_at"]]):
            assert time.monotonic() < deadline, fd.cdrs()
            time.sleep(0.2)
        with sqlite3.connect(fd.data_dir / "frontdesk.db") as db:
            (path,) = db.execute("select path from cdrs where id = ?",
                                 (ended[0]["id"],)).fetchone()  # fmt: skip
        nodes = [step["node"] for step in json.loads(path)]
        assert nodes[-1] in ("voicemail-service-manager", "voicemail-after-hours"), nodes
        references = [greeting] + ([closed] if nodes[-1] == "voicemail-after-hours" else [])
        scores = [best_correlation(heard, wav) for wav in references]
        print(f"demo main number, {nodes[-1]}: " + ", ".join(f"{x:.3f}" for x in scores))
        assert min(scores) >= 0.9, (nodes, scores)
        assert ended[0]["callee_answered_by"] == "frontdesk", ended[0]
    finally:
        fd.stop()
    assert "Traceback" not in fd.log_tail(10_000), fd.log_tail(80)


WRONG_KEY = "Sorry, that is not one of the choices."
NO_KEY = "We did not hear a key. Let us try once more."
MENU_FLOW = f"""\
name: front-desk
timezone: UTC
messages:
  menu: "For the service manager, press one."
  wrong-key: "{WRONG_KEY}"
  no-key: "{NO_KEY}"
nodes:
  start: {{type: start, next: choose}}
  choose:
    type: menu
    prompt: menu
    choices: {{"1": ring-sm}}
    timeout: 10
    retries: 1
    invalid_prompt: wrong-key
    no_input_prompt: no-key
    no_input: bye
    invalid: bye
  ring-sm: {{type: ring, targets: ["102"], timeout: 10, no_answer: bye, busy: bye}}
  bye: {{type: hangup}}
"""


def test_a_wrong_key_at_a_menu_hears_the_invalid_choice_prompt(
    tmp_path: Path, baresip_phone: Callable[..., BaresipPhone]
) -> None:
    """baresip presses 9 (RFC 4733) while the menu speaks: it hears the invalid-choice
    message (the espeak-ng rendering, by correlation) and not the no-input one."""
    from frontdesk.media.prompts import PromptLibrary

    fd = FrontdeskProcess(tmp_path / "fd")
    fd.init_demo()
    (tmp_path / "flow.yaml").write_text(MENU_FLOW)
    fd.cli("flow", "publish", "--file", str(tmp_path / "flow.yaml"), "--actor", "test",
           "--data", str(fd.data_dir))  # fmt: skip
    fd.start(extra_env={"FRONTDESK_RTP_PORTS": "0"})
    library = PromptLibrary(tmp_path / "refs")
    wrong, no_key = library.render(WRONG_KEY), library.render(NO_KEY)
    try:
        caller = registered_baresip(baresip_phone, fd, "202",
                                    audio_file=silence_wav(tmp_path / "quiet.wav", 40.0))  # fmt: skip
        caller.dial(f"sip:100@127.0.0.1:{fd.sip_port}")
        caller.wait_event("CALL_ESTABLISHED", timeout=10)
        time.sleep(1.5)  # the menu is speaking
        caller.send_dtmf("9")
        time.sleep(duration(wrong) + 2.5)
        caller.hangup()
        caller.wait_event("CALL_CLOSED", timeout=10)
        heard = caller.last_recording().heard
        scores = (best_correlation(heard, wrong), best_correlation(heard, no_key))
        print(f"menu after a wrong key: invalid prompt {scores[0]:.3f}, no-input {scores[1]:.3f}")
        assert scores[0] >= 0.9 and scores[1] < 0.5, scores
        deadline = time.monotonic() + 5
        while not (ended := [c for c in fd.cdrs() if c["ended_at"]]):
            assert time.monotonic() < deadline, fd.cdrs()
            time.sleep(0.2)
        with sqlite3.connect(fd.data_dir / "frontdesk.db") as db:
            (path,) = db.execute("select path from cdrs where id = ?",
                                 (ended[0]["id"],)).fetchone()  # fmt: skip
        notes = [step.get("note", "") for step in json.loads(path)]
        assert any("caller pressed 9, not a choice; asking again" in n for n in notes), notes
        assert any(n.startswith('saying "wrong-key", then menu') for n in notes), notes
    finally:
        fd.stop()
    assert "Traceback" not in fd.log_tail(10_000), fd.log_tail(80)


SHIELD_FLOW = """\
name: front-desk
timezone: UTC
nodes:
  start: {type: start, next: ring-om}
  ring-om: {type: ring, targets: ["101"], timeout: 10, no_answer: bye, busy: bye}
  bye: {type: hangup}
"""


def test_a_tenant_without_a_main_number_still_shields_its_technician(
    tmp_path: Path, baresip_phone: Callable[..., BaresipPhone]
) -> None:
    """main_number switched off: an unknown outside caller dialling technician 201 enters
    the published flow (the office manager answers), 201 never rings, and the CDR says so."""
    from sqlalchemy import select

    from frontdesk.store import repo
    from frontdesk.store.db import Database, sqlite_url
    from frontdesk.store.models import Cdr

    fd = FrontdeskProcess(tmp_path / "fd")
    fd.init_demo()
    (tmp_path / "flow.yaml").write_text(SHIELD_FLOW)
    fd.cli("flow", "publish", "--file", str(tmp_path / "flow.yaml"), "--actor", "test",
           "--data", str(fd.data_dir))  # fmt: skip
    db = Database(sqlite_url(fd.data_dir))
    with db.session() as s:
        tenant = repo.get_tenant_by_slug(s, "demo")
        assert tenant is not None
        tenant.settings = {**(tenant.settings or {}), "main_number": "",
                           "allow_unauthenticated_loopback": True}  # fmt: skip
    fd.start(extra_env={"FRONTDESK_RTP_PORTS": "0"})
    try:
        office = registered_baresip(baresip_phone, fd, "101", answermode="auto")
        technician = registered_baresip(baresip_phone, fd, "201", answermode="manual")
        stranger = baresip_phone("+13125550142", domain=f"127.0.0.1:{fd.sip_port}",
                                 register=False)  # fmt: skip
        stranger.dial(f"sip:201@127.0.0.1:{fd.sip_port}")
        office.wait_event("CALL_ESTABLISHED", timeout=15)
        stranger.wait_event("CALL_ESTABLISHED", timeout=10)
        time.sleep(0.5)
        stranger.hangup()
        office.wait_event("CALL_CLOSED", timeout=10)
        assert "CALL_INCOMING" not in technician.event_types()
        deadline = time.monotonic() + 10
        while True:
            with db.session() as s:
                row = s.scalar(select(Cdr).where(Cdr.callee == "201", Cdr.ended_at.is_not(None)))
                extra = dict(row.extra or {}) if row is not None else None
                answered_by = row.callee_answered_by if row is not None else None
            if extra is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert extra is not None, fd.cdrs()
        assert answered_by == "101"
        shield = extra["shield"]
        assert shield["decision"] == "shielded", shield
        assert shield["reason"] == "shielded: unknown caller +13125550142", shield
        assert shield["entered"].endswith("(the tenant has no main number)"), shield
    finally:
        db.close()
        fd.stop()
    assert "Traceback" not in fd.log_tail(10_000), fd.log_tail(80)
