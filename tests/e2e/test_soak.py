"""The soak's quick run (benchmarks/soak.py --quick): 200 requests' worth of people against two
real `python -m bot` replicas sharing a throwaway PostgreSQL, with the stand-ins failing at
random (one trickling its headers), a minute-long Slack outage, replicas killed with SIGKILL in
the middle of provider calls and of deliveries, a replica paused (SIGSTOP) in a provider call
past its lease, and PostgreSQL restarted; four batches (bulk requests) among them, a replica
killed in the middle of a batch's call; eight Workflow Builder step runs among them (some
delivered twice, some refused); and no violation at the end.

Not a performance test: it checks promises (nothing left pending or executing, no provider call
beyond the approvals and Retries, no claim beyond the clicks, every message showing its stored
state, every owed reply and DM sent, legal audit chains, one export row per email; per email of
a batch: its trail replayed, no call beyond the runs naming it, one final reply and one DM per
finish; per step run: completed exactly once, as its request ended, or failed with the
command's words and no request), which the soak itself checks; this test checks that the faults
it claims were really injected and the batches and steps really ran.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROXY_VARIABLES = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_soak_over_two_replicas_finds_no_violation(tmp_path: Path) -> None:
    """The quick soak exits 0 with no violation: every flow, batch and step that may ask made
    one request, faults and kills of each kind were injected (a kill in a batch's call among
    them), no claim called the provider twice, the batches ran and finished, every step run
    was completed once (ok when it made its request, with an error when it could not), and
    every reply and DM owed was delivered."""
    out = tmp_path / "soak.json"
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--quick", "--json", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=880,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["violations"] == []
    assert (figures["backend"], figures["replicas"]) == ("postgres", 2)
    # One request per flow, and a form a paused replica finished after its person asked again
    # elsewhere (counted apart: left pending for its TTL, or run when its rule approves it).
    assert figures["requests"] == (
        figures["flows"]
        + figures["batches_asked"]
        + figures["step_requests"]
        + figures["stale_submissions"]
    )
    assert figures["flows"] == 200
    assert figures["batches"] == figures["batches_asked"] == 4
    assert sum(figures["provider_faults"].values()) > 0  # faults were injected
    assert any("outage" in fault for fault in figures["slack_faults"])
    assert any("timeout" in fault for fault in figures["slack_faults"])
    kills = figures["kills"]
    assert kills.get("kill in a provider call", 0) >= 1
    assert kills.get("kill in a Slack delivery", 0) >= 1
    assert kills.get("postgres restart", 0) >= 1
    # A replica paused (SIGSTOP) in a provider call past its lease, then resumed: its answer is
    # fenced (a late answer, or its claim was lost before it called again), never a second call.
    assert kills.get("pause in a provider call", 0) >= 1
    assert kills.get("kill in a batch call", 0) >= 1
    runs = figures["batch_runs"]
    assert runs["finishes"] >= figures["batches"]  # each batch's run ended, some twice (Retry)
    assert runs["provider calls (not 429)"] <= runs["runs (claims of an item)"]
    assert figures["provider_calls"] <= figures["claims"] + runs["runs (claims of an item)"]
    messages = figures["messages"]
    assert messages["thread replies delivered"] == messages["thread replies owed"] > 0
    assert messages["outcome DMs delivered"] == messages["outcome DMs owed"] > 0
    owed = messages["batch thread replies owed"]
    assert messages["batch thread replies delivered"] == owed == runs["finishes"]
    assert messages["batch outcome DMs delivered"] == messages["batch outcome DMs owed"] >= owed
    # The steps: 8 asked, one of them running a second time for its open email; each run
    # completed exactly once, ok when it made its request (one per run), with an error when it
    # could not (a non-requester, a bad address, an email with an open request).
    steps = figures["steps"]
    assert figures["steps_asked"] == 8
    assert steps["runs"] == 9
    assert steps.get("runs not completed once", 0) == 0
    assert steps["runs completed ok"] == steps["requests made"] == figures["step_requests"] == 6
    assert steps["runs completed with an error"] == 3
    assert steps["runs delivered twice"] >= 3 and steps["runs delivered twice at once"] >= 1
    assert steps["completions given up (outbox)"] == 0
    assert re.search(r"^violations +0$", result.stdout, re.MULTILINE)
