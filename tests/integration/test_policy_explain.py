"""``python -m bot policy explain``: which rule decides a request and why, from the policy file
and the settings it inherits, without Slack or the provider (run in-process through main)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli.main import main
from bot.settings import PolicySettings, Settings

EXAMPLE = """\
[default]
approvers = ["S0SUPPORTLEADS"]
approvals_required = 1
operations = ["confirm"]
reason_pattern = '^(TICKET|ZD)-\\d+'

[[rule]]
name = "vip-customers"
domains = ["*.bank.example", "vip.example"]
approvers = ["S0SENIOR"]
approvals_required = 2
escalate_after = 3600
escalate_to = ["U0CTO"]

[[rule]]
name = "resend-is-routine"
operations = ["resend"]
requesters = ["U0SAM", "S0SUPPORT"]
approvals_required = 0
"""


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with no .env, and no setting leaking in from the developer's environment."""
    for name in {*Settings.model_fields, *PolicySettings.model_fields}:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policy.toml").write_text(EXAMPLE)
    return tmp_path


def explain(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["policy", "explain", *args])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_a_matching_rule_is_named_with_its_terms(capsys) -> None:
    """The rule that decides, each rule tried, whether the operation is allowed and every term
    (approvers, approvals, reason pattern, reminders, escalation); exit 0."""
    code, lines, err = explain(capsys, "Ann@A.Bank.Example", "--file", "policy.toml")
    assert (code, err) == (0, "")
    assert lines[0].startswith("Policy: policy.toml (hash ")
    assert lines[0].endswith("): 2 rules and [default]")
    assert lines[1:] == [
        "Request: confirm Ann@a.bank.example (domain a.bank.example) (no --requester: a rule "
        "with requesters cannot match)",
        "Rules tried, in order:",
        "  rule vip-customers: matches (domain a.bank.example matches *.bank.example; operation "
        "confirm; any requester): decides",
        "Decides: rule vip-customers (line 7)",
        "Allowed: yes, confirm may be asked under rule vip-customers",
        "Approvers: S0SENIOR",
        "Approvals required: 2",
        "Reason: must match ^(TICKET|ZD)-\\d+ (searched anywhere in the reason, as re.search "
        "does: anchor it with ^ for 'starts with')",
        "Reminders: every 1800 s",
        "Escalation: after 3600 s, also U0CTO may approve",
    ]


def test_a_listed_requester_gets_the_rule_itself(capsys) -> None:
    """A requester listed by ID matches: the auto-approved resend rule decides, nobody is
    asked."""
    code, lines, _ = explain(
        capsys,
        "bo@example.com",
        "--operation",
        "resend",
        "--requester",
        "U0SAM",
        "--file",
        "policy.toml",
    )
    assert code == 0
    assert "Decides: rule resend-is-routine (line 15)" in lines
    assert "Approvals required: 0: approved by the rule itself (runs at once, audited)" in lines
    assert "Reminders: none (nobody is asked)" in lines
    assert not [line for line in lines if line.startswith("Note:")]


def test_a_user_group_cannot_be_read_and_says_which_rule_would_decide(capsys) -> None:
    """A requester not listed by ID is treated as outside the rule's user group, and the
    output says the group cannot be read without Slack and which rule decides if they are in
    it; [default] does not allow resend here."""
    code, lines, _ = explain(
        capsys,
        "bo@example.com",
        "--operation",
        "resend",
        "--requester",
        "U0BO",
        "--file",
        "policy.toml",
    )
    assert code == 0
    assert "  rule resend-is-routine: requester U0BO is not among U0SAM, S0SUPPORT" in lines
    assert "Decides: [default] (line 1)" in lines
    assert (
        "Allowed: no, resend is not among the operations of [default] (confirm): the request "
        "form does not offer it"
    ) in lines
    assert lines[-1] == (
        "Note: S0SUPPORT is a user group, which explain cannot read without Slack: if U0BO is "
        "in it, rule resend-is-routine decides instead"
    )


def test_without_a_requester_a_requester_rule_is_pointed_out(capsys) -> None:
    """With no --requester, a rule that would match but for its requesters is named."""
    _, lines, _ = explain(
        capsys, "bo@example.com", "--operation", "resend", "--file", "policy.toml"
    )
    assert lines[-1] == (
        "Note: rule resend-is-routine matches only requesters U0SAM, S0SUPPORT: give "
        "--requester U… to see whether it decides instead"
    )


def test_policy_file_and_the_inherited_settings_come_from_the_environment(
    capsys, monkeypatch: pytest.MonkeyPatch, workdir: Path
) -> None:
    """Without --file, POLICY_FILE names the file; a [default] that leaves approvers,
    approvals and reminders out inherits APPROVERS, APPROVALS_REQUIRED and REMIND_EVERY; --file
    wins over POLICY_FILE."""
    (workdir / "small.toml").write_text('[[rule]]\nname = "x"\ndomains = ["x.example"]\n')
    monkeypatch.setenv("POLICY_FILE", "small.toml")
    monkeypatch.setenv("APPROVERS", "U0ANN,S0OPS")
    monkeypatch.setenv("APPROVALS_REQUIRED", "2")
    monkeypatch.setenv("REMIND_EVERY", "0")
    code, lines, _ = explain(capsys, "a@example.com")
    assert code == 0
    assert lines[0].startswith("Policy: small.toml (hash ")
    assert "Decides: [default] (from the settings)" in lines
    assert "Approvers: U0ANN, S0OPS" in lines
    assert "Approvals required: 2" in lines
    assert "Reminders: none" in lines
    _, lines, _ = explain(capsys, "a@vip.example", "--file", "policy.toml")
    assert "Decides: rule vip-customers (line 7)" in lines


def test_without_a_policy_file_the_settings_decide(capsys, monkeypatch) -> None:
    """No --file and no POLICY_FILE: the settings are the one [default], both operations
    allowed; APPROVERS may be unset (explain needs no Slack)."""
    code, lines, _ = explain(capsys, "a@example.com", "--operation", "resend")
    assert code == 0
    assert lines[0] == (
        "Policy: POLICY_FILE is not set: the settings decide every request (APPROVERS, "
        "APPROVALS_REQUIRED, REMIND_EVERY; both operations)"
    )
    assert "Decides: [default] (from the settings)" in lines
    assert "Allowed: yes, resend may be asked under [default]" in lines
    assert "Approvers: none (APPROVERS is not set)" in lines


def test_a_bad_file_prints_its_line_and_exits_2(capsys, workdir: Path) -> None:
    """A file the bot could not start with: the PolicyError line on stderr, exit 2."""
    (workdir / "bad.toml").write_text("[default]\napprovals_required = 12\n")
    code, lines, err = explain(capsys, "a@example.com", "--file", "bad.toml")
    assert (code, lines) == (2, [])
    assert err == (
        "bad.toml line 2: [default] approvals_required: must be a whole number from 0 to 10, "
        "not 12\n"
    )
    code, _, err = explain(capsys, "a@example.com", "--file", "missing.toml")
    assert code == 2
    assert err.startswith("missing.toml: cannot read the file")


def test_a_bad_email_or_setting_exits_2(capsys, monkeypatch) -> None:
    """The email is validated as the service does; a bad setting is named; exit 2 for both."""
    code, _, err = explain(capsys, "not-an-address", "--file", "policy.toml")
    assert code == 2
    assert err.startswith("policy explain: EMAIL: That does not look like an email address")
    monkeypatch.setenv("APPROVERS", "alice")
    code, _, err = explain(capsys, "a@example.com")
    assert code == 2
    assert err.startswith("policy explain: APPROVERS: 'alice' is not a Slack user ID")


def test_a_requester_must_be_a_user_id(capsys) -> None:
    """--requester takes a user ID (U…/W…): a group or a name is refused by argparse."""
    with pytest.raises(SystemExit) as exited:
        main(["policy", "explain", "a@example.com", "--requester", "S0SUPPORT"])
    assert exited.value.code == 2
    assert "not a Slack user ID (U…/W…)" in capsys.readouterr().err
