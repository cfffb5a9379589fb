"""Start-up against Slack: a refused token stops the bot at once; a Slack that is down or rate
limiting is waited out, so a replica restarted during an outage starts once Slack is back
(the soak found replicas exiting when restarted in the middle of a Slack outage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from doubles import Monotonic
from processes import make_workspace, run_once
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.cli.main import SLACK_START_BACKOFF, verify_slack_token


def slack_error(error: str, status: int) -> SlackApiError:
    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url="http://127.0.0.1/api/auth.test",
        req_args={},
        data={"ok": False, "error": error},
        headers={},
        status_code=status,
    )
    return SlackApiError(error, response)


def answers(*outcomes: BaseException | None) -> Any:
    """An auth.test that fails with each exception in turn (None: answers)."""
    queue = list(outcomes)

    def auth_test() -> dict[str, Any]:
        outcome = queue.pop(0)
        if outcome is not None:
            raise outcome
        return {"ok": True}

    return auth_test


def test_a_refused_token_stops_start_up_at_once() -> None:
    """invalid_auth is final: no waiting, and the reason names the setting."""
    clock = Monotonic()
    refused = verify_slack_token(
        answers(slack_error("invalid_auth", 200)), sleep=clock.sleep, clock=clock
    )
    assert refused == "Slack refused SLACK_BOT_TOKEN (invalid_auth)"
    assert clock.sleeps == []


def test_an_outage_is_waited_out_with_backoff() -> None:
    """503s, a 429 and a refused connection are tried again, with growing pauses, until
    Slack answers."""
    clock = Monotonic()
    refused = verify_slack_token(
        answers(
            slack_error("service_unavailable", 503),
            slack_error("ratelimited", 429),
            ConnectionRefusedError(111, "Connection refused"),
            None,
        ),
        sleep=clock.sleep,
        clock=clock,
    )
    assert refused is None
    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_an_outage_longer_than_the_wait_stops_start_up() -> None:
    """Past the wait, start-up stops, saying Slack could not be reached and how; the pauses
    never exceed the cap."""
    clock = Monotonic()
    refused = verify_slack_token(
        answers(*[slack_error("service_unavailable", 503)] * 50),
        wait=120,
        sleep=clock.sleep,
        clock=clock,
    )
    assert refused == "Slack could not be reached for 120 s (server_error: HTTP 503)"
    assert sum(clock.sleeps) <= 120
    assert max(clock.sleeps) <= SLACK_START_BACKOFF


def test_the_bot_starts_once_slack_is_back(tmp_path: Path) -> None:
    """A real process started while Slack answers auth.test with 503 serves once Slack
    answers, having logged why it waited."""
    with make_workspace(tmp_path) as ws:
        ws.slack.fail_next("auth.test", "service_unavailable", status=503, times=2)
        bot = ws.start(ws.env())
        assert len([c for c in ws.slack.calls_to("auth.test") if not c.ok]) == 2
        assert "Slack did not answer auth.test (server_error: HTTP 503)" in bot.stderr


def test_the_bot_exits_2_on_a_refused_token(tmp_path: Path) -> None:
    """A token Slack refuses stops start-up at once with exit code 2 and one clear line,
    without the token in it."""
    with make_workspace(tmp_path) as ws:
        ws.slack.fail_next("auth.test", "invalid_auth", times=1)
        result = run_once(ws.env(), tmp_path / "cwd")
    assert result.returncode == 2
    assert "cannot start: Slack refused SLACK_BOT_TOKEN (invalid_auth)" in result.stderr
    assert ws.slack.bot_token not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_a_bad_policy_file_stops_start_up_naming_its_line(tmp_path: Path) -> None:
    """POLICY_FILE with a rule whose approvals_required is out of range: the process exits 2
    before it opens anything, with one line naming the file, the line and the reason; Slack
    is never asked (the policy is read first)."""
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[default]\napprovers = ["U0LEAD"]\n\n[[rule]]\nname = "vip"\n'
        'domains = ["vip.example"]\napprovals_required = 11\n'
    )
    with make_workspace(tmp_path) as ws:
        result = run_once(ws.env(POLICY_FILE=str(policy)), tmp_path / "cwd")
        assert ws.slack.calls_to("auth.test") == []
    assert result.returncode == 2
    assert f"cannot start: {policy} line 7: rule vip approvals_required: must be" in result.stderr
    assert "Traceback" not in result.stderr
