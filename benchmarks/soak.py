"""A fault-injecting soak: many people's worth of requests against a real ``python -m bot``,
with the stand-ins failing at random (reproducibly, from the seed); then checks, from the
stand-ins' records and the store, that nothing was lost or doubled.

    .venv/bin/python benchmarks/soak.py [--flows N] [--seed S] [--json PATH] [--quick]

This is a first slice of the soak issue 13 asks for: one replica on SQLite; faults from the
provider (4xx, 5xx, 429, HTML, wrong shapes, hangs, broken connections) and from Slack (429s
and errors on posts and updates). Replicas on PostgreSQL, kill -9 and whole outages are not
in it yet. It prints a table and exits 1 when any check finds a violation.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from run import (
    BOT,
    AppProcess,
    base_env,
    free_port,
)  # the benchmark's harness; puts bot/ on the path

from bot import ids
from bot.audit import export
from bot.domain.model import STAYING_ACTIONS, TRANSITIONS, VIEW_ACTIONS, Action, State
from bot.standins.driver import Driver, HttpTransport
from bot.standins.provider import MODES, FakeProvider, Response
from bot.standins.slack import FakeSlack
from bot.standins.world import (
    APPROVER,
    APPROVER_GROUP,
    BOT_TOKEN,
    CHANNEL,
    PROVIDER_KEY,
    REQUESTER,
    REQUESTER_GROUP,
    SIGNING_SECRET,
)
from bot.store import open_store

SECOND_APPROVER = "U0APPROVER2"
PROVIDER_FAULTS = (
    "bad_request",
    "forbidden",
    "rate_limited",
    "server_error",
    "bad_gateway",
    "unavailable",
    "wrong_shape",
    "not_successful",
    "close_after_read",
    "hang",
)
SLACK_FAULTS = (("ratelimited", 429), ("internal_error", 200), ("fatal_error", 500))
SETTLE_SECONDS = 120.0
CLAIMS = frozenset({Action.APPROVE, Action.RETRY})


@dataclass
class Tally:
    flows: int = 0
    provider_faults: Counter[str] = field(default_factory=Counter)
    slack_faults: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, counter: Counter[str], key: str) -> None:
        with self.lock:
            counter[key] += 1


def person(
    driver: Driver, provider: FakeProvider, slack: FakeSlack, rng: random.Random, n: int, t: Tally
) -> None:
    """One request's people: the requester asks; then a decision, a fault maybe before it."""
    email = f"soak{n}@example.com"
    message = driver.ask(REQUESTER, email, reason=f"SOAK-{n}")
    if rng.random() < 0.15:
        error, status = rng.choice(SLACK_FAULTS)
        method = rng.choice(("chat.postMessage", "chat.update"))
        slack.fail_next(method, error, status=status, retry_after=0)
        t.count(t.slack_faults, f"{method} {error}")
    roll = rng.random()
    if roll < 0.1:
        driver.reject(APPROVER, message, reason="soak")
        t.count(t.actions, "reject")
        return
    if roll < 0.2:
        dm = next(
            (
                m
                for m in slack.messages(REQUESTER)
                if ids.CANCEL_ACTION in json.dumps(m) and f"`{email}`" in m.get("text", "")
            ),
            None,
        )
        if dm is not None:
            driver.click(REQUESTER, dm, ids.CANCEL_ACTION, channel=slack.dm_channel(REQUESTER))
            t.count(t.actions, "cancel")
            return
    if rng.random() < 0.3:
        fault = rng.choice(PROVIDER_FAULTS)
        provider.enqueue(Response.hang(8) if fault == "hang" else MODES[fault]())
        t.count(t.provider_faults, fault)
    clickers = [APPROVER] if rng.random() < 0.7 else [APPROVER, APPROVER, SECOND_APPROVER]
    for who in clickers:
        driver.approve(who, message)
        t.count(t.actions, "approve click")


def check(database_url: str, slack: FakeSlack, provider: FakeProvider) -> dict[str, Any]:
    """Every promise, from the stand-ins' records and the store; the violations found."""
    violations: list[str] = []
    # A call answered 429 did nothing (the client tries again after Retry-After): the promise
    # is about calls that may have acted.
    confirms = Counter(
        c["json"]["email"].lower()
        for c in provider.calls
        if c["path"].endswith("/confirmed") and c["status"] != 429
    )
    owed = delivered = duplicated = 0
    states: Counter[str] = Counter()
    with open_store(database_url) as store:
        requests = store.list_requests()
        for request in requests:
            states[request.state.value] += 1
            trail = store.audit_log(request.id)
            if request.state is State.EXECUTING:
                violations.append(f"{request.id} is stuck executing")
            claims = sum(1 for e in trail if e.action in CLAIMS)
            if confirms[request.email.lower()] > claims:
                violations.append(
                    f"{request.id}: {confirms[request.email.lower()]} provider calls for "
                    f"{claims} approvals or retries"
                )
            for before, after in zip(trail, trail[1:], strict=False):
                legal = (
                    after.from_state is after.to_state
                    if after.action in VIEW_ACTIONS or after.action in STAYING_ACTIONS
                    else after.to_state in TRANSITIONS[before.to_state]
                )
                if after.from_state is not before.to_state or not legal:
                    violations.append(f"{request.id}: illegal step {after.action}")
            shown = slack.message(CHANNEL, request.message_ts) if request.message_ts else None
            if shown is None or f"state: {request.state.value}" not in json.dumps(shown):
                violations.append(f"{request.id}: the message does not show {request.state}")
            if request.state in (State.SUCCEEDED, State.FAILED, State.UNKNOWN):
                owed += 1
                replies = slack.messages(CHANNEL, request.message_ts) if request.message_ts else []
                if replies:
                    delivered += 1
                else:
                    violations.append(f"{request.id}: no thread reply")
        dms = Counter(
            m.get("text", "").split("`")[1]
            for m in slack.messages(REQUESTER)
            if "Your request for `" in m.get("text", "")
        )
        for request in requests:
            if request.state in (State.SUCCEEDED, State.FAILED, State.UNKNOWN, State.REJECTED):
                got = dms[request.email]
                if got == 0:
                    violations.append(f"{request.id}: the requester got no outcome DM")
                duplicated += max(0, got - 1)
        out = io.StringIO()
        rows = export(store, out)
        if rows != len(requests):
            violations.append(f"the audit export has {rows} rows for {len(requests)} requests")
    return {
        "requests": len(requests),
        "states": dict(states),
        "provider_calls": sum(confirms.values()),
        "replies_owed": owed,
        "replies_delivered": delivered,
        "outcome_dms_duplicated": duplicated,
        "violations": violations,
    }


def settle(database_url: str, deadline: float) -> float:
    """Wait for the store to settle: nothing executing, nothing left in the outbox."""
    started = time.monotonic()
    with open_store(database_url) as store:
        while time.monotonic() < deadline:
            if not store.list_requests(frozenset({State.EXECUTING})) and not store.outbox_entries():
                return time.monotonic() - started
            time.sleep(0.5)  # polling the store of a live process until it is done
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=2000, help="requests (default 2000)")
    parser.add_argument("--seed", type=int, default=1, help="the faults' random seed")
    parser.add_argument("--quick", action="store_true", help="200 flows")
    parser.add_argument("--people", type=int, default=8, help="people at once (default 8)")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = parser.parse_args(argv)
    flows = 200 if args.quick else args.flows
    rng = random.Random(args.seed)
    tally = Tally(flows=flows)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="verify-email-soak-") as tmp,
        FakeSlack(bot_token=BOT_TOKEN) as slack,
        FakeProvider(PROVIDER_KEY) as provider,
    ):
        slack.add_channel(CHANNEL, name="email-approvals")
        slack.set_usergroup(APPROVER_GROUP, [APPROVER, SECOND_APPROVER])
        slack.set_usergroup(REQUESTER_GROUP, [REQUESTER])
        database_url = f"sqlite:///{Path(tmp) / 'soak.db'}"
        env = base_env() | {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.api_url,
            "HOSTUP_API_KEY": PROVIDER_KEY,
            "HOSTUP_API_URL": provider.url,
            "HOSTUP_TIMEOUT": "2",
            "APPROVERS": APPROVER_GROUP,
            "REQUESTERS": REQUESTER_GROUP,
            "APPROVAL_CHANNEL": CHANNEL,
            "DATABASE_URL": database_url,
            "PORT": str(free_port()),
            "REMIND_EVERY": "0",
        }
        app = AppProcess(BOT, env, Path(tmp), "soak")
        app.wait_serving()
        driver = Driver(
            slack,
            HttpTransport(f"http://127.0.0.1:{app.port}/slack/events", SIGNING_SECRET),
            CHANNEL,
            timeout=60,
        )
        seeds = [rng.randrange(2**32) for _ in range(flows)]
        failures: list[str] = []
        with ThreadPoolExecutor(max_workers=args.people) as people:
            futures = [
                people.submit(person, driver, provider, slack, random.Random(s), n, tally)
                for n, s in enumerate(seeds)
            ]
            for future in futures:
                try:
                    future.result()
                except (RuntimeError, TimeoutError) as exc:
                    failures.append(str(exc)[:200])
        settled = settle(database_url, time.monotonic() + SETTLE_SECONDS)
        result = check(database_url, slack, provider)
        app.proc.terminate()
        app.proc.wait(timeout=30)
    result |= {
        "flows": flows,
        "seed": args.seed,
        "provider_faults": dict(tally.provider_faults),
        "slack_faults": dict(tally.slack_faults),
        "actions": dict(tally.actions),
        "people_errors": failures,
        "settle_seconds": round(settled, 1),
        "run_seconds": round(time.monotonic() - started, 1),
    }
    for key in (
        "flows",
        "seed",
        "requests",
        "states",
        "provider_faults",
        "slack_faults",
        "actions",
        "provider_calls",
        "replies_owed",
        "replies_delivered",
        "outcome_dms_duplicated",
        "settle_seconds",
        "run_seconds",
    ):
        print(f"{key:24} {result[key]}")
    print(f"{'violations':24} {len(result['violations'])}")
    for violation in result["violations"][:50]:
        print(f"  - {violation}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 1 if result["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
