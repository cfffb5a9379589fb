"""The soak's quick run (benchmarks/soak.py --quick): 200 requests' worth of people against a
real `python -m bot`, with the stand-ins failing at random, and no violation at the end.

Not a performance test: it checks promises (no request stuck executing, no provider call
beyond the approvals and Retries, every message showing its stored state, every owed reply
and DM sent, legal audit chains, one export row per request), which the soak itself checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROXY_VARIABLES = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"}


@pytest.mark.timeout(600)
def test_quick_soak_finds_no_violation(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--quick", "--json", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["violations"] == []
    assert figures["requests"] == figures["flows"] == 200
    assert sum(figures["provider_faults"].values()) > 0  # faults were injected
    assert sum(figures["slack_faults"].values()) > 0
    assert figures["replies_delivered"] == figures["replies_owed"] > 0
    assert "violations               0" in result.stdout
