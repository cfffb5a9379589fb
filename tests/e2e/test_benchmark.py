"""Smoke test of the benchmark (benchmarks/run.py): it runs to the end and writes its figures.

Not a performance test: CI times nothing. The bounds below only catch a benchmark that broke
(a figure missing, zero, or absurd); the figures themselves come from a full run on a known
machine and live in the README.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "benchmarks" / "run.py"
PROXY_VARIABLES = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"}
# Each key the issue promises, with loose bounds: (lowest, highest) sane value.
KEYS = {
    "slash_ack_p99_ms": (0.1, 3000.0),  # Slack gives up after 3 s
    "click_ack_p99_ms": (0.1, 3000.0),
    "ack_during_burst_ms": (0.1, 3000.0),
    "burst_seconds": (1.0, 120.0),  # the provider alone takes 1 s
    "baseline_burst_seconds": (1.0, 300.0),
    "baseline_ack_during_burst_ms": (0.1, 120_000.0),
    "slack_calls_per_flow": (3.0, 30.0),  # at least views.open, the post and its update
    "provider_calls_per_flow": (1.0, 10.0),  # at least the confirm call
    "startup_seconds": (0.01, 30.0),
    "rss_mb": (5.0, 2000.0),
}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_run_writes_every_figure(tmp_path: Path) -> None:
    """`python benchmarks/run.py --quick --json PATH` exits 0, prints the side-by-side table
    with a PASS or MISS per target, and writes every promised key with a plausible value."""
    out = tmp_path / "figures.json"
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    done = subprocess.run(  # noqa: S603 - our own interpreter and script, fixed argv
        [sys.executable, str(RUN), "--quick", "--json", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-5000:]}"
    assert "this bot" in done.stdout and "plain Bolt" in done.stdout, done.stdout
    verdicts = done.stdout.count("PASS") + done.stdout.count("MISS")
    assert verdicts >= 8, done.stdout  # one per target (the burst row carries two)

    figures = json.loads(out.read_text(encoding="utf-8"))
    for key, (low, high) in KEYS.items():
        value = figures[key]
        assert isinstance(value, int | float), (key, value)
        assert low <= value <= high, (key, value)
    assert figures["baseline"]["burst_seconds"] == figures["baseline_burst_seconds"]
    assert set(figures["targets"]) >= {"burst_seconds", "rss_mb", "startup_seconds"}
    assert list(tmp_path.iterdir()) == [out]  # nothing left behind in the working directory


BULK = ROOT / "benchmarks" / "bulk.py"
# The bulk benchmark's figures, with loose bounds (a smaller batch than the full run's).
BULK_KEYS = {
    "batch_seconds": (150 / 20 * 0.9, 120.0),  # the provider's pace alone: 150 at 20 a second
    "rate_limited_share": (0.0, 1.0),
    "slack_calls_batch": (3.0, 200.0),  # at least the post, an update and the final reply
    "slash_ack_p99_ms": (0.1, 3000.0),
    "click_ack_p99_ms": (0.1, 3000.0),
    "rss_mb": (5.0, 2000.0),
}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bulk_benchmark_runs_a_smaller_batch_and_writes_every_figure(tmp_path: Path) -> None:
    """`python benchmarks/bulk.py --emails 150 --json PATH` asks, approves and runs a batch
    through the real bot, exits 0 with a PASS or MISS per target, and writes every figure."""
    out = tmp_path / "bulk.json"
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    done = subprocess.run(  # noqa: S603 - our own interpreter and script, fixed argv
        [sys.executable, str(BULK), "--emails", "150", "--json", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-5000:]}"
    assert done.stdout.count("PASS") + done.stdout.count("MISS") == len(BULK_KEYS)
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert figures["items_by_state"] == {"succeeded": 150}
    assert figures["emails_cleared_twice"] == 0
    for key, (low, high) in BULK_KEYS.items():
        value = figures[key]
        assert isinstance(value, int | float), (key, value)
        assert low <= value <= high, (key, value)
