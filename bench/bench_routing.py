"""Routing decision time for a 50-node flow with a caller lookup stand-in: p50/p99.

What it measures: for each simulated inbound call, (1) the caller lookup stand-in (a dict of
100,000 numbers -> CallerFacts, the in-memory shape the engine would cache) plus
``build_context``, and ``shield.start_call`` on a 50-node flow whose first decision walks
~25 instant nodes (hours, conditions, variables) before the first action; (2) each following
``advance`` with an outcome (menu key, no answer, ...). Goal: p99 < 100 us per decision.

Run: ``python bench/bench_routing.py [--calls 20000]``. Prints numbers; asserts nothing
(tests never assert on speed). It must never touch the network or the database.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import time
import timeit
from datetime import UTC, datetime, timedelta
from typing import Any

from frontdesk.routing.actions import MenuAction, Outcome, RingAction, Step
from frontdesk.routing.context import CallerFacts, OpenRequest, build_context
from frontdesk.routing.directory import StaticDirectory
from frontdesk.routing.evaluate import advance
from frontdesk.routing.model import FlowDocument
from frontdesk.routing.shield import start_call
from frontdesk.routing.validate import check_flow


def directory() -> StaticDirectory:
    extensions = {f"{100 + i}": f"Person {i}" for i in range(60)}
    return StaticDirectory.build(
        extensions,
        owners={n: i for i, n in enumerate(extensions)},
        groups={"sales": ["110", "111", "112", "113"], "support": ["120", "121", "122"]},
        roles={"office_manager": ["101"], "service_manager": ["102"],
               "service_coordinator": ["103"], "technician": ["150", "151", "152"]},
    )  # fmt: skip


def fifty_node_flow() -> FlowDocument:
    """start -> hours -> 10 checks (VIP, emergency, contact, request, campaign variables)
    -> 12 variable sets -> main menu (4 choices) -> submenus -> rings/queues -> voicemails."""
    nodes: dict[str, Any] = {"start": {"type": "start", "next": "hours"}}
    nodes["hours"] = {"type": "hours", "schedule": "office", "open": "vip", "closed": "closed-msg",
                      "holiday": "closed-msg"}  # fmt: skip
    checks = ["vip", "emergency", "known-contact", "open-request", "co-worker"]
    chain = [f"c{i}" for i in range(10)]
    nodes["vip"] = {"type": "condition", "test": "vip", "then": "ring-om", "otherwise": chain[0]}
    for i, name in enumerate(chain):
        nxt = chain[i + 1] if i + 1 < len(chain) else "s0"
        test = checks[i % len(checks)] if i < 5 else "variable"
        extra = {"variable": f"campaign{i}", "equals": "spring"} if test == "variable" else {}
        nodes[name] = {"type": "condition", "test": test, "then": nxt, "otherwise": nxt, **extra}
    for i in range(12):
        nxt = f"s{i + 1}" if i < 11 else "main-menu"
        nodes[f"s{i}"] = {"type": "set", "variable": f"v{i}", "value": str(i), "next": nxt}
    nodes["main-menu"] = {"type": "menu", "prompt": "main", "choices": {"1": "sales-menu",
                          "2": "support-menu", "3": "ring-om", "0": "ring-om"},
                          "no_input": "ring-om", "invalid": "ring-om",
                          "invalid_prompt": "wrong-key", "no_input_prompt": "no-key"}  # fmt: skip
    for team in ("sales", "support"):
        nodes[f"{team}-menu"] = {"type": "menu", "prompt": team,
                                 "choices": {"1": f"{team}-queue", "2": f"{team}-ring"},
                                 "no_input": f"{team}-queue"}  # fmt: skip
        nodes[f"{team}-queue"] = {"type": "queue", "group": team, "max_wait": 60,
                                  "no_answer": f"{team}-vm"}  # fmt: skip
        nodes[f"{team}-ring"] = {"type": "ring", "targets": [f"group:{team}"],
                                 "strategy": "sequential", "no_answer": f"{team}-vm"}  # fmt: skip
        nodes[f"{team}-vm"] = {"type": "voicemail", "mailbox": "102"}
    nodes["ring-om"] = {
        "type": "ring",
        "targets": ["role:office_manager"],
        "no_answer": "ring-team",
    }
    nodes["ring-team"] = {"type": "ring", "targets": ["role:service_manager",
                          "role:service_coordinator"], "no_answer": "vm"}  # fmt: skip
    nodes["vm"] = {"type": "voicemail", "mailbox": "role:service_manager"}
    nodes["closed-msg"] = {"type": "play", "message": "closed", "next": "after-vm"}
    nodes["after-vm"] = {"type": "voicemail", "mailbox": "102", "greeting": "closed"}
    free = [(menu, key) for menu in ("main-menu", "sales-menu", "support-menu")
            for key in "3456789*#" if key not in nodes[menu]["choices"]]  # fmt: skip
    for i in range(len(nodes), 50):  # pad to 50 with transfers the menus offer
        menu, key = free.pop(0)
        nodes[f"x{i}"] = {"type": "transfer", "number": "+4930123456"}
        nodes[menu]["choices"][key] = f"x{i}"
    return check_flow(
        {
            "name": "bench",
            "timezone": "America/New_York",
            "schedules": {"office": {"weekly": {d: ["00:00-24:00"] for d in
                                                ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
                                     "holidays": {"country": "US"}}},
            "messages": {"main": "Main menu.", "sales": "Sales.", "support": "Support.",
                         "closed": "We are closed.", "wrong-key": "Not a choice.",
                         "no-key": "We did not hear a key."},
            "nodes": nodes,
        },
        directory(),
    )  # fmt: skip


def caller_table(size: int) -> dict[str, CallerFacts]:
    """The caller lookup stand-in: numbers -> what tickets would report."""
    table = {}
    for i in range(size):
        request = OpenRequest(f"SR-{i}", "Printer", assignee_user_id=50, working_now=i % 2 == 0)
        table[f"+1212555{i:04d}" if i < 10_000 else f"+1646{i:07d}"] = CallerFacts(
            contact_id=str(i), contact_name=f"Contact {i}", company_id=str(i // 10),
            open_requests=(request,) if i % 3 == 0 else (),
        )  # fmt: skip
    return table


def _percentiles(samples: list[int]) -> str:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2] / 1000
    p99 = ordered[int(len(ordered) * 0.99)] / 1000
    return (f"p50 {p50:7.1f} us   p99 {p99:7.1f} us   max {ordered[-1] / 1000:8.1f} us   "
            f"mean {statistics.fmean(ordered) / 1000:6.1f} us   n={len(ordered)}")  # fmt: skip


def _outcome(step: Step, rng: random.Random) -> Outcome | str:
    if isinstance(step.action, MenuAction):
        return rng.choice(["1", "2", "3", "timeout", "9"])
    if isinstance(step.action, RingAction):
        return rng.choice(["no_answer", "no_answer", "busy", Outcome.answered("101")])
    return rng.choice(["no_answer", "timeout", Outcome.answered("110")])


def run(calls: int) -> None:
    flow, people, callers = fifty_node_flow(), directory(), caller_table(100_000)
    numbers = list(callers)
    gc.collect()
    gc.freeze()  # the long-lived tables leave the collector's view, as a server does at start
    rng = random.Random(7)
    first: list[int] = []
    later: list[int] = []
    moment = datetime(2026, 12, 22, 15, 0, tzinfo=UTC)
    for i in range(calls + 2000):
        caller = rng.choice(numbers) if i % 4 else "+19175550000"  # a quarter are unknown
        to = "150" if i % 5 == 0 else None
        now = moment + timedelta(seconds=i)
        t0 = time.perf_counter_ns()
        facts = callers.get(caller, CallerFacts())
        ctx = build_context(caller=caller, directory=people, dialled_extension=to, facts=facts,
                            round_robin_turn=i)  # fmt: skip
        step = start_call(flow, ctx, now)
        t1 = time.perf_counter_ns()
        steps = []
        while not step.done:
            outcome = _outcome(step, rng)
            t2 = time.perf_counter_ns()
            step = advance(flow, step.state, outcome, ctx, now)
            steps.append(time.perf_counter_ns() - t2)
        if i >= 2000:  # warm-up done
            first.append(t1 - t0)
            later.extend(steps)
    print(f"first decision (lookup + context + start_call): {_percentiles(first)}")
    print(f"later decisions (advance with an outcome):       {_percentiles(later)}")
    print(f"all decisions:                                   {_percentiles(first + later)}")


def calibration() -> str:
    """How fast this machine is right now (the same loop on another machine compares)."""
    best = min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"calibration: sum(range(1000)) takes {best * 1e6:.1f} us; load average {load:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--no-gc", action="store_true", help="Disable the garbage collector.")
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}; 50-node flow, "
          f"100,000 known numbers, {args.calls} calls")  # fmt: skip
    print(calibration())
    if args.no_gc:
        gc.disable()
    run(args.calls)
    print(calibration())


if __name__ == "__main__":
    main()
