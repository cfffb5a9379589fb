"""The command line: sandbox, manifest and --help, as a person runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.slack.manifest import build_manifest

REPO = Path(__file__).resolve().parents[2]
SETTING_NAMES = (
    "SLACK_",
    "HOSTUP_",
    "APPROVERS",
    "REQUESTERS",
    "APPROVAL_CHANNEL",
    "ALLOW_SELF_APPROVAL",
    "REQUEST_TTL",
    "DATABASE_URL",
    "PORT",
    "POLICY_FILE",
    "APPROVALS_REQUIRED",
    "REMIND_EVERY",
)


def run(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` in a fresh directory with no settings and no proxy."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(SETTING_NAMES) and "proxy" not in k.lower()
    }
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_sandbox_plays_the_whole_flow(tmp_path):
    """With no settings and no network, `sandbox` plays request, approval, provider call and
    thread reply, prints the channel as a person reads it, exits 0 and leaves no files."""
    result = run(["sandbox"], tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "/verify-email alice@example.com" in out
    assert "[ Approve ]  [ Reject ]" in out  # the request with its buttons
    assert "clicks [ Approve ]" in out  # who clicked what
    assert "state: succeeded" in out  # the final state
    assert "Cleared domains (1):* `example.com`" in out  # the thread reply
    assert "Clients notified (1):* `3704`" in out
    assert "<@" not in out and "&lt;" not in out  # read as a person sees it
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "shown", "state"),
    [
        (["--reject"], "Rejected by @ana (approver)", "rejected"),
        (["--approvals", "2"], "1 of 2 approvals: @ana (approver)", "succeeded"),
        (["--cancel"], "Cancelled by @sam (support)", "cancelled"),
        (["--provider-error", "400"], "HTTP 400 BAD_REQUEST", "failed"),
        (["--provider-error", "timeout"], "may or may not", "unknown"),
        (
            ["--email", "bob@shop.example.org", "--domains", "3"],
            "shop2.shop.example.org",
            "succeeded",
        ),
    ],
)
def test_sandbox_outcomes(tmp_path, args, shown, state):
    """Options pick the email, reject or cancel instead, need two approvals, or make the
    provider fail; each outcome shows."""
    result = run(["sandbox", *args], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert shown in result.stdout
    assert f"state {state} (expected {state})" in result.stdout


@pytest.mark.parametrize(
    ("args", "clicked", "answer"),
    [
        (["--approvals", "2"], "clicks [ Approve ] on the Home tab", "Your approval is recorded"),
        (["--cancel"], "clicks [ Cancel request ] there", "You cancelled your request"),
    ],
)
def test_sandbox_shows_the_home_tab(tmp_path, args, clicked, answer):
    """--home shows the approver's queue (or the requester's list) with its buttons, the click
    made there answered by DM, and the requester's Home tab at the end."""
    result = run(["sandbox", "--home", *args], tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "opens the bot's Home tab" in out and "YOUR REQUESTS, LAST 30 DAYS (1)" in out
    if "--cancel" in args:
        assert "[ Cancel request ]" in out.split("clicks [ Cancel request ] there")[0]
    else:
        assert "WAITING FOR YOUR APPROVAL (1)" in out
    said = out.split(clicked)[1].splitlines()[1]  # the line under the click's heading
    assert said.startswith("Only @") and "in the bot's DM:" in said and answer in said, said
    final_home = out.rsplit("opens the bot's Home tab", 1)[1]
    if "--cancel" in args:
        assert "Cancelled" in final_home
    else:
        assert "*Cleared*, approved by @ana (approver) and @lee (approver)" in final_home


@pytest.mark.parametrize(
    ("args", "line", "after"),
    [
        (
            ["--provider-state", "pending"],
            "Provider: *pending* (checked",
            "Provider now: already *verified*",
        ),
        (["--provider-state", "verified"], "approving may change nothing", "Provider now"),
        (["--provider-state", "no-scope"], "needs read:domains", "could not read"),
        (["--provider-state", "not-found"], "the provider has no domain", "could not read"),
        (
            ["--provider-state", "pending", "--provider-error", "timeout"],
            "Provider: *pending*",
            "the call most likely took effect",
        ),
    ],
)
def test_sandbox_shows_the_providers_view(tmp_path, args, line, after):
    """--provider-state sets what the provider's view reads beside the request (or how reading
    it fails); the thread shows the read-back after the call, and the request goes ahead."""
    result = run(["sandbox", *args], tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    request, thread = out.split("…and in its thread")
    assert line in request.split("clicks [ Approve ]")[0]
    assert after in thread
    assert "provider view calls:" in out and "Provider view of" not in out + result.stderr


def test_sandbox_keeps_store_only_when_asked(tmp_path):
    """--database keeps the store, holding the request and its audit log."""
    result = run(["sandbox", "--database", "kept.db"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "kept.db").exists()
    from bot.store import open_store

    with open_store(f"sqlite:///{tmp_path / 'kept.db'}") as store:
        (request,) = store.list_requests()
        assert request.state.value == "succeeded"
        assert [e.action for e in store.audit_log(request.id)] == [
            "create",
            "lookup",
            "approve",
            "provider_success",
            "readback",  # read after the outcome, outside the claim
        ]


def test_sandbox_rejects_bad_email(tmp_path):
    """A bad --email is refused with a message, not a traceback."""
    result = run(["sandbox", "--email", "nope"], tmp_path)
    assert result.returncode == 2
    assert "--email" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "shown", "state", "calls"),
    [
        ([], "Verification email *resent* for `example.com`", "succeeded", 1),
        (["--provider-error", "400"], "HTTP 400 invalid_request", "failed", 1),
        (["--provider-error", "429"], "HTTP 429 rate_limited", "failed", 3),
        (["--provider-error", "timeout"], "cannot show whether the email went out", "unknown", 1),
    ],
)
def test_sandbox_resends(tmp_path, args, shown, state, calls):
    """--operation resend chooses the resend in the form (the stand-in's domain allows it),
    and the Result line counts the provider's resend calls, not confirm calls; --provider-error
    makes the resend action fail in its own way (429 retried, a timeout unknown)."""
    result = run(["sandbox", "--operation", "resend", *args], tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "chooses “Resend the verification email”" in out
    assert "*Action:* Resend the verification email" in out
    assert shown in out.split("…and in its thread")[1]
    assert f"state {state} (expected {state}); provider resend calls: {calls};" in out
    assert "confirm calls" not in out


def test_sandbox_refuses_a_provider_error_the_resend_does_not_have(tmp_path):
    """--provider-error 503 has no counterpart in the resend action: said, exit 2."""
    result = run(["sandbox", "--operation", "resend", "--provider-error", "503"], tmp_path)
    assert result.returncode == 2
    assert "--provider-error 503: the resend action has no such mode" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "calls"),
    [([], "provider confirm calls: 5"), (["--operation", "resend"], "provider resend calls: 5")],
)
def test_sandbox_bulk_plays_an_approved_batch(tmp_path, args, calls):
    """--bulk N asks for one request of N generated emails, both approvers click Approve on
    its message (the quorum of a bulk request is two), the runner calls every email once and
    the channel shows how the batch ended (its message, its one thread reply, the DMs)."""
    result = run(["sandbox", "--bulk", "5", *args], tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "@sam (support) asks for 5 emails in one request" in out
    assert "alice1@example.com, alice2@shop1.example.com, alice3@shop2.example.com and 2" in out
    assert "[ Approve ]" in out.split("#email-approvals: the request")[1]
    assert "@ana (approver) clicks [ Approve ]" in out
    assert "the request, one approval in" in out
    assert "@lee (approver) clicks [ Approve ]" in out
    assert "5 emails called in" in out
    assert len(out.split("…and in its thread")[1].split("── Direct messages")[0].split("│ ")) > 1
    assert f"state succeeded (expected succeeded); items: 5 succeeded; {calls};" in out
    assert "<@" not in out and "&lt;" not in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--bulk", "0"], "--bulk: from 1 to 1000 emails"),
        (["--bulk", "1001"], "--bulk: from 1 to 1000 emails"),
        (["--bulk", "3", "--reject"], "--reject is for a single request"),
        (["--bulk", "3", "--cancel"], "--cancel is for a single request"),
        (["--bulk", "3", "--home"], "--home is for a single request"),
        (["--bulk", "3", "--provider-error", "500"], "--provider-error is for a single request"),
        (["--bulk", "3", "--provider-state", "verified"], "--provider-state is for one request"),
    ],
)
def test_sandbox_bulk_refuses_what_it_does_not_play(tmp_path, args, said):
    """--bulk outside 1..BULK_MAX, or with an option only a single request plays (a rejection,
    a cancel, the Home tab, a provider error or view), is refused with a sentence, exit 2,
    before anything starts."""
    result = run(["sandbox", *args], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert said in result.stdout
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


POLICY = """\
[default]
operations = ["confirm"]
reason_pattern = '^(TICKET|ZD)-\\d+'

[[rule]]
name = "vip"
domains = ["*.bank.example"]
approvals_required = 2

[[rule]]
name = "resend-is-routine"
domains = ["example.com"]
operations = ["resend"]
requesters = ["S0SUPPORT"]
approvals_required = 0
"""


def test_sandbox_policy_runs_a_routine_resend_by_itself(tmp_path):
    """--policy: a rule with approvals_required 0 runs the request by itself: the message
    names the rule, nobody clicks, the thread and the requester's DM say it was approved by
    the rule, and the email is resent once."""
    (tmp_path / "policy.toml").write_text(POLICY)
    result = run(["sandbox", "--operation", "resend", "--policy", "policy.toml"], tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Rule *resend-is-routine*" in out
    assert "Nobody clicks: rule resend-is-routine approves it by itself" in out
    assert "clicks [ Approve ]" not in out
    assert "Approved by rule *resend-is-routine*. Verification email *resent*" in out
    assert "state succeeded (expected succeeded); provider resend calls: 1;" in out


def test_sandbox_policy_rule_decides_the_quorum(tmp_path):
    """--policy: the rule that matches the domain decides how many approve (vip: 2, shown as
    the approvers' group by name), whatever --approvals says."""
    (tmp_path / "policy.toml").write_text(POLICY)
    result = run(["sandbox", "--policy", "policy.toml", "--email", "a@x.bank.example"], tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Rule *vip*: 2 approvers from @approvers" in out
    assert "1 of 2 approvals: @ana (approver)" in out
    assert "@lee (approver) clicks [ Approve ]" in out
    assert "state succeeded (expected succeeded); provider confirm calls: 1;" in out


@pytest.mark.parametrize(
    ("args", "field", "words"),
    [
        (["--reason", "because"], "the reason", "must match the pattern ^(TICKET|ZD)-\\d+"),
        (
            ["--operation", "resend", "--email", "a@example.org"],
            "what should happen",
            "do not allow that",
        ),
    ],
)
def test_sandbox_policy_refusal_is_the_forms_field_error(tmp_path, args, field, words):
    """--policy: a reason that fails the rule's pattern, or an operation the rule does not
    allow, is the form's error under that field, printed; exit 1, nothing posted."""
    (tmp_path / "policy.toml").write_text(POLICY)
    result = run(["sandbox", "--policy", "policy.toml", *args], tmp_path)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert f"The form refused it, under {field}: " in out and words in out
    assert "#email-approvals: the request" not in out and "Result" not in out


def test_sandbox_bad_policy_file(tmp_path):
    """--policy naming a file the bot cannot use: its line and reason, exit 2, no traceback."""
    (tmp_path / "bad.toml").write_text('[default]\napprovals_required = "two"\n')
    result = run(["sandbox", "--policy", "bad.toml"], tmp_path)
    assert result.returncode == 2
    assert result.stdout.startswith("--policy: bad.toml line 2: ")
    assert "Traceback" not in result.stderr


def test_sandbox_workflow_plays_a_step_run_to_its_outputs(tmp_path):
    """--workflow: a workflow runs the step with the options' inputs for the requester, the
    request it makes is posted saying it came through a Workflow Builder step, the approver
    approves, the thread shows the result, and the run completes once with the outputs a
    workflow branches on; exit 0 and no files left."""
    result = run(["sandbox", "--workflow"], tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "A workflow runs the step “Verify email with approval”" in out
    assert (
        "with inputs email=alice@example.com, reason=TICKET-1234: customer cannot receive mail, "
        "requested_by=@sam (support), operation=confirm"
    ) in out
    assert "/verify-email" not in out and "A form opens" not in out
    request = out.split("#email-approvals: the request")[1]
    assert "from @sam (support) through a Workflow Builder step" in request
    assert "[ Approve ]  [ Reject ]" in request
    assert "@ana (approver) clicks [ Approve ]" in out
    assert "Cleared domains (1):* `example.com`" in out.split("…and in its thread")[1]
    completed = out.split("The step's run completed: ")[1].splitlines()[0]
    assert completed.startswith("state=succeeded, decided_by=@ana (approver), ")
    assert "cleared_domains=example.com, clients_notified=3704, provider_request_id=" in completed
    assert "request_link=https://" in completed and completed.endswith("retries=0")
    assert "step run ended succeeded (expected succeeded); completions: 1;" in out
    assert "<@" not in out and "&lt;" not in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "completed", "shown"),
    [
        (
            ["--reject"],
            "state=rejected, decided_by=@ana (approver), request_link=https://",
            "note=Not verified with the customer yet",
        ),
        (["--cancel"], "state=cancelled, decided_by=@sam (support), request_link=", "retries=0"),
        (
            ["--approvals", "2"],
            "state=succeeded, decided_by=@lee (approver), cleared_domains=example.com",
            "1 of 2 approvals: @ana (approver)",
        ),
        (
            ["--provider-error", "400"],
            "state=failed, decided_by=@ana (approver), provider_request_id=",
            "HTTP 400 BAD_REQUEST",
        ),
        (
            ["--provider-error", "timeout"],
            "state=succeeded, decided_by=@lee (approver), cleared_domains=example.com",
            "retries=1",
        ),
    ],
)
def test_sandbox_workflow_outcomes(tmp_path, args, completed, shown):
    """--workflow with --reject, --cancel, --approvals 2 or --provider-error: the request is
    decided as for the command's, and the run completes once with that state and who decided
    it. An outcome nobody knows (timeout) completes nothing, even after a sweep, until an
    approver's Retry; the run then completes with the retried call's outcome."""
    result = run(["sandbox", "--workflow", *args], tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    line = out.split("The step's run completed: ")[1].splitlines()[0]
    assert line.startswith(completed), line
    assert shown in out
    assert "; completions: 1;" in out
    if "timeout" in args:
        waiting, retried = out.split("@lee (approver) clicks [ Retry ] in the thread")
        assert "The step's run is still running" in waiting
        assert "The step's run completed" not in waiting
        assert "retries=1" in retried and "provider confirm calls: 2" in retried


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--email", "not-an-email"], "That does not look like an email address"),
        (
            ["--policy", "policy.toml", "--reason", "because"],
            "The reason must match the pattern ^(TICKET|ZD)-\\d+",
        ),
    ],
)
def test_sandbox_workflow_run_whose_request_cannot_be_made_fails(tmp_path, args, words):
    """A step run whose request cannot be made (not an address: the sandbox does not refuse it
    itself, the bot does; a reason the rules refuse) fails with the words the command would
    use; nothing is posted, no request is stored, exit 1 as for the form's refusal."""
    (tmp_path / "policy.toml").write_text(POLICY)
    result = run(["sandbox", "--workflow", *args], tmp_path)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert f"The step's run failed: {words}" in out
    assert "#email-approvals: the request" not in out
    assert "step run ended failed; requests made: 0;" in out
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--bulk", "3"], "--workflow plays one step run, which makes one request; --bulk is"),
        (["--home"], "--home is for a request made with the command"),
        (["--operation", "resend", "--provider-error", "503"], "the resend action has no such"),
    ],
)
def test_sandbox_workflow_refuses_what_it_does_not_play(tmp_path, args, said):
    """--workflow with --bulk (a step makes one request) or --home (the Home tab is the
    command's request's), or a provider error the resend does not have, is refused with a
    sentence, exit 2, before anything starts."""
    result = run(["sandbox", "--workflow", *args], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert said in result.stdout
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_manifest_with_url(tmp_path):
    """`manifest --url` prints the HTTP manifest with that URL in both places."""
    result = run(["manifest", "--url", "https://bot.acme.io"], tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest == build_manifest("https://bot.acme.io", False)
    assert manifest["settings"]["interactivity"]["request_url"] == (
        "https://bot.acme.io/slack/events"
    )
    assert manifest["features"]["slash_commands"][0]["url"] == "https://bot.acme.io/slack/events"


def test_manifest_socket_mode(tmp_path):
    """`manifest --socket-mode` prints the Socket Mode manifest."""
    result = run(["manifest", "--socket-mode"], tmp_path)
    manifest = json.loads(result.stdout)
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest == build_manifest(None, True)


def test_manifest_bad_url(tmp_path):
    """A URL Slack cannot call is refused with a one-line reason."""
    result = run(["manifest", "--url", "http://bot.acme.io"], tmp_path)
    assert result.returncode == 2
    assert "https" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command",
    [[], ["serve"], ["sandbox"], ["check"], ["audit"], ["manifest"], ["policy", "explain"]],
)
def test_every_command_has_help(tmp_path, command):
    """Every command answers --help with a description, and exits 0."""
    result = run([*command, "--help"], tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m bot")
    assert len(result.stdout.splitlines()) > 4


def test_audit_export_from_the_command_line(tmp_path):
    """`audit` reads DATABASE_URL from the environment or .env and writes CSV or JSON."""
    assert run(["sandbox", "--database", "kept.db"], tmp_path).returncode == 0
    assert (
        run(
            ["sandbox", "--database", "kept.db", "--email", "b@example.org", "--reject"], tmp_path
        ).returncode
        == 0
    )
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite:///kept.db\n")
    result = run(["audit"], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("request_id,requested_at,requester,email")
    assert len(lines) == 3
    assert any(",approved," in line and "succeeded" in line for line in lines)
    assert any(",rejected," in line for line in lines)
    result = run(["audit", "--format", "json", "--since", "2000-01-01", "-o", "out.json"], tmp_path)
    assert result.returncode == 0, result.stderr
    records = json.loads((tmp_path / "out.json").read_text())
    assert {r["state"] for r in records} == {"succeeded", "rejected"}
    assert all(r["history"][0]["action"] == "create" for r in records)
    bad = run(["audit", "--since", "yesterday"], tmp_path)
    assert bad.returncode == 2
    assert "not a date" in bad.stderr


def test_check_says_what_it_waits_for(tmp_path):
    """`check` prints one line per check on stdout and, on stderr, what each slow step waits
    for; against services that are not there it fails, naming the settings, with no secret."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (tmp_path / ".env").write_text(
        "SLACK_BOT_TOKEN=xoxb-cli-secret-token\nSLACK_SIGNING_SECRET=cli-signing-secret\n"
        "HOSTUP_API_KEY=cli-provider-secret\nAPPROVERS=U0ANN\nAPPROVAL_CHANNEL=C0OPS\n"
        f"SLACK_API_URL=http://127.0.0.1:{port}/api/\nHOSTUP_API_URL=http://127.0.0.1:{port}/api\n"
        "DATABASE_URL=sqlite:///bot.db\n"
    )
    result = run(["check", "--timeout", "2"], tmp_path)
    assert result.returncode == 1
    assert f"… asking Slack at http://127.0.0.1:{port}/api/" in result.stderr
    assert "… asking the provider at" in result.stderr
    assert "FAIL  SLACK_API_URL" in result.stdout
    assert "FAIL  HOSTUP_API_URL" in result.stdout
    for secret in ("xoxb-cli-secret-token", "cli-signing-secret", "cli-provider-secret"):
        assert secret not in result.stdout + result.stderr
    assert not (tmp_path / "bot.db").exists()


def test_policy_explain_from_the_command_line(tmp_path):
    """`policy explain` reads POLICY_FILE and APPROVERS from .env, prints the deciding rule and
    exits 0; a bad file prints its "PATH line N: reason" on stderr and exits 2."""
    (tmp_path / "policy.toml").write_text(
        '[[rule]]\nname = "banks"\ndomains = ["*.bank.example"]\napprovals_required = 2\n'
    )
    (tmp_path / ".env").write_text("POLICY_FILE=policy.toml\nAPPROVERS=U0ANN,U0BEA\n")
    result = run(["policy", "explain", "ann@a.bank.example"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Decides: rule banks (line 1)" in result.stdout
    assert "Approvers: U0ANN, U0BEA" in result.stdout
    (tmp_path / "policy.toml").write_text('[[rule]]\nname = "banks"\ndomain = ["x"]\n')
    bad = run(["policy", "explain", "ann@a.bank.example"], tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.startswith("policy.toml line 3: rule banks: unknown key 'domain'")
    assert bad.stdout == ""
