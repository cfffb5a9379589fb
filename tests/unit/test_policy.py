"""The approval policy (bot/domain/policy.py): every key, every refusal with its line,
inheritance, first match, globs, the operations' meaning, the hash, and what check and explain
print of it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.model import Operation, RuleTerms
from bot.domain.policy import (
    Policy,
    PolicyError,
    load_policy,
    parse_policy,
    reason_matches,
)

CONFIRM, RESEND = Operation.CONFIRM, Operation.RESEND

# The example of issue 20, as the README shows it.
EXAMPLE = """\
[default]
approvers = ["S0SUPPORTLEADS"]        # else APPROVERS
approvals_required = 1
operations = ["confirm", "resend"]
reason_pattern = '^(TICKET|ZD)-\\d+'   # optional: the reason must match

[[rule]]
name = "vip-customers"
domains = ["*.bank.example", "vip.example"]   # globs on the normalised domain
approvers = ["S0SENIOR"]
approvals_required = 2

[[rule]]
name = "resend-is-routine"
operations = ["resend"]
requesters = ["S0SUPPORT"]
approvals_required = 0                # approved by the rule itself: runs at once, audited
"""

SETTINGS = {"approvers": ("U0SETTING",), "approvals_required": 1, "remind_every": 1800}


def parse(text: str, **overrides: object) -> Policy:
    return parse_policy(text, "policy.toml", **{**SETTINGS, **overrides})  # type: ignore[arg-type]


def refusal(text: str, **overrides: object) -> str:
    with pytest.raises(PolicyError) as caught:
        parse(text, **overrides)
    return str(caught.value)


def listed(user: str, ids: Sequence[str]) -> bool:
    return user in ids or "*" in ids


def decide(policy: Policy, domain: str, operation: Operation = CONFIRM, requester: str = "U0A"):
    return policy.decide(domain=domain, operation=operation, requester=requester, is_among=listed)


# ------------------------------------------------------------------------------- parsing


def test_the_issue_example_parses_and_describes_itself() -> None:
    """The issue's example gives two rules in file order and a [default]; describe() is one line
    per rule with its line, its match keys and its terms, as check lists them."""
    policy = parse(EXAMPLE)
    assert [rule.name for rule in policy.rules] == ["vip-customers", "resend-is-routine"]
    assert policy.source == "policy.toml"
    assert policy.describe() == (
        "vip-customers (line 7): domains *.bank.example, vip.example -> 2 approvals from "
        "S0SENIOR; reason must match ^(TICKET|ZD)-\\d+; reminders every 1800 s",
        "resend-is-routine (line 13): operations resend; requesters S0SUPPORT -> approved by "
        "the rule itself (0 approvals); reason must match ^(TICKET|ZD)-\\d+",
        "default (line 1): every other request; operations confirm, resend -> 1 approval from "
        "S0SUPPORTLEADS; reason must match ^(TICKET|ZD)-\\d+; reminders every 1800 s",
    )
    assert policy.warnings() == ()


def test_every_key_is_accepted() -> None:
    """Each key of [default], [[rule]] and [bulk] is read into the rule it belongs to."""
    policy = parse(
        """
[default]
approvers = ["U0ANN", "S0LEADS", "*"]
approvals_required = 3
operations = ["confirm"]
reason_pattern = "ZD-"
remind_every = 600
escalate_after = 7200
escalate_to = ["W0BOSS"]

[[rule]]
name = "all_keys-1"
domains = ["*.Shop.example"]
operations = ["resend", "confirm"]
requesters = ["U0SAM", "S0SUPPORT"]
approvers = ["U0BEA"]
approvals_required = 0
reason_pattern = "T-[0-9]+"
remind_every = 0
escalate_after = 60
escalate_to = ["S0ONCALL"]

[bulk]
approvals_required = 4
"""
    )
    default, rule = policy.default, policy.rules[0]
    assert default.approvers == ("U0ANN", "S0LEADS", "*")
    assert (default.approvals_required, default.remind_every) == (3, 600)
    assert default.operations == (CONFIRM,)
    assert default.reason_pattern == "ZD-"
    assert (default.escalate_after, default.escalate_to) == (7200, ("W0BOSS",))
    assert rule.name == "all_keys-1"
    assert rule.line == 11
    assert rule.domains == ("*.shop.example",)  # lower-cased
    assert rule.operations == (CONFIRM, RESEND)  # in Operation's order
    assert rule.requesters == ("U0SAM", "S0SUPPORT")
    assert (rule.approvers, rule.approvals_required, rule.remind_every) == (("U0BEA",), 0, 0)
    assert rule.reason_pattern == "T-[0-9]+"
    assert (rule.escalate_after, rule.escalate_to) == (60, ("S0ONCALL",))
    assert policy.bulk_approvals_required == 4


def test_an_empty_file_is_the_settings() -> None:
    """A file with nothing in it: the [default] is the settings' (both operations), no rules,
    [bulk] approvals 2; the hash is the empty file's."""
    policy = parse("")
    assert policy.rules == ()
    assert policy.default.approvers == ("U0SETTING",)
    assert policy.default.approvals_required == 1
    assert policy.default.remind_every == 1800
    assert policy.default.operations == (CONFIRM, RESEND)
    assert policy.default.line == 0
    assert policy.bulk_approvals_required == 2
    assert policy.policy_hash == hashlib.sha256(b"").hexdigest()[:12]


BAD = [
    # (file, line, what the reason says)
    (
        "[default]\napprovals_required = true\n",
        2,
        "approvals_required: must be a whole number from 0 to 10, not true",
    ),
    ("[default]\napprovals_required = 11\n", 2, "from 0 to 10, not 11"),
    ("[default]\napprovals_required = -1\n", 2, "from 0 to 10, not -1"),
    ('[default]\napprovals_required = "2"\n', 2, 'from 0 to 10, not "2"'),
    ("[default]\napprovals_required = 1.5\n", 2, "from 0 to 10, not 1.5"),
    ("[default]\nremind_every = -5\n", 2, "remind_every: must be a whole number of seconds"),
    ("[default]\nremind_every = 1.5\n", 2, "remind_every: must be a whole number of seconds"),
    (
        '[default]\nescalate_after = 0\nescalate_to = ["U0B"]\n',
        2,
        "escalate_after: must be a whole number of seconds above 0, not 0",
    ),
    ("[default]\n\nescalate_after = 60\n", 3, "escalate_after: needs escalate_to"),
    ('[default]\nescalate_to = ["U0B"]\n', 2, "escalate_to: needs escalate_after"),
    ("[default]\nescalate_after = 60\nescalate_to = []\n", 3, "escalate_to: must list at least"),
    ("[default]\noperations = []\n", 2, "operations: must list at least one"),
    ('[default]\noperations = ["delete"]\n', 2, '"delete" is not an operation'),
    ('[default]\noperations = "confirm"\n', 2, "operations: must be a list"),
    (
        '[default]\nreason_pattern = "(ZD"\n',
        2,
        "reason_pattern: is not a valid regular expression (missing )",
    ),
    ("[default]\nreason_pattern = 5\n", 2, "reason_pattern: must be a string"),
    (
        '[default]\nreason_pattern = "[[a]"\n',
        2,
        "reason_pattern: is not a valid regular expression (Possible nested set",
    ),
    ('[default]\napprovers = ["alice"]\n', 2, '"alice" is not a Slack user ID'),
    ('[default]\napprovers = ["@senior"]\n', 2, "roles are matched by ID, never by name"),
    ('[default]\napprovers = "U0ANN"\n', 2, "approvers: must be a list of Slack IDs"),
    ("[default]\napprovers = []\n", 2, "approvers: must list at least one"),
    ('[default]\napprover = ["U0ANN"]\n', 2, "[default]: unknown key 'approver'"),
    ('[default]\ndomains = ["a.example"]\n', 2, "[default]: unknown key 'domains'"),
    ('[[rule]]\nname = "a"\ndomains = []\n', 3, "rule a domains: must list at least one"),
    ('[[rule]]\nname = "a"\ndomains = [""]\n', 3, '"" is not a domain glob'),
    ('[[rule]]\nname = "a"\ndomains = ["a b.example"]\n', 3, "is not a domain glob"),
    ('[[rule]]\nname = "a"\ndomains = ["ann@a.example"]\n', 3, "is not a domain glob"),
    ('[[rule]]\nname = "a"\ndomains = [3]\n', 3, "3 is not a domain glob"),
    ('[[rule]]\nname = "a"\nrequesters = ["#support"]\n', 3, '"#support" is not a Slack'),
    ('[[rule]]\nname = "a"\nrequester = ["U0A"]\n', 3, "rule a: unknown key 'requester'"),
    ('[[rule]]\ndomains = ["a.example"]\n', 1, "rule #1 has no name"),
    ('[[rule]]\nname = "Bad Name"\n', 2, 'rule #1: name "Bad Name" must be a short slug'),
    ('[[rule]]\nname = "default"\n', 2, "not 'default'"),
    ("[[rule]]\nname = 7\n", 2, "name 7 must be a short slug"),
    (
        '[[rule]]\nname = "a"\n\n[[rule]]\nname = "a"\n',
        5,
        "rule name 'a' is used twice (first on line 1)",
    ),
    (
        '[[rule]]\nname = "a"\napprovals_required = 2\nescalate_after = 5\n',
        4,
        "rule a escalate_after: needs escalate_to",
    ),
    ('[rules]\nname = "a"\n', 1, "unknown table or key 'rules'"),
    ('approvers = ["U0A"]\n', 1, "unknown table or key 'approvers'"),
    ('[rule]\nname = "a"\n', 1, "rule must be tables [[rule]]"),
    ('[[default]]\napprovers = ["U0A"]\n', 1, "default must be a table [default]"),
    ("[bulk]\napprovals_required = 11\n", 2, "[bulk] approvals_required: must be a whole"),
    ("[bulk]\nquorum = 2\n", 2, "[bulk]: unknown key 'quorum'"),
    ("[default.extra]\nx = 1\n", 1, "[default]: unknown key 'extra'"),
]


@pytest.mark.parametrize(("text", "line", "reason"), BAD)
def test_each_bad_value_is_refused_naming_its_line(text: str, line: int, reason: str) -> None:
    """Each kind of bad value, unknown key or table is a PolicyError "PATH line N: reason",
    with N the line of the key at fault (or of its table's header)."""
    message = refusal(text)
    assert message.startswith(f"policy.toml line {line}: "), message
    assert reason in message, message


def test_default_without_approvers_needs_the_setting() -> None:
    """A [default] that names no approvers inherits APPROVERS; with APPROVERS unset (explain
    without it) a rule that needs approvals is refused, saying what to set."""
    assert "APPROVERS is not set" in refusal("[default]\napprovals_required = 1\n", approvers=())
    assert parse("[default]\napprovals_required = 0\n", approvers=()).default.approvers == ()


def test_the_line_is_found_past_multiline_strings_and_arrays() -> None:
    """Text inside a multi-line string or array that looks like a key or a header is not taken
    for one: the error names the line of the real key."""
    text = '''\
[default]
reason_pattern = """
[default]
approvals_required = 99
"""
approvers = [
  "U0ANN",  # [[rule]]
  "S0LEADS",
]

[[rule]]
name = "second"
'domains' = [
  "*.example",
]
approvals_required = 99
'''
    message = refusal(text)
    assert message.startswith("policy.toml line 16: rule second approvals_required"), message


def test_a_toml_syntax_error_keeps_tomllibs_line_and_column() -> None:
    """A file that is not TOML: tomllib's own line and column, in the same "PATH line N:"
    form; an error at the end of the file names its last line."""
    message = refusal("[default]\napprovals_required = = 2\n")
    assert message.startswith("policy.toml line 2: not valid TOML: "), message
    assert "(column 22)" in message
    message = refusal("[default]\napprovers = [\n")
    assert message.startswith("policy.toml line 2: not valid TOML:"), message


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    """Bytes that are not UTF-8: the line they stand on."""
    path = tmp_path / "p.toml"
    path.write_bytes(b"[default]\n# caf\xe9\n")
    with pytest.raises(PolicyError, match=r"p\.toml line 2: is not UTF-8 text"):
        load_policy(str(path), **SETTINGS)  # type: ignore[arg-type]


def test_a_missing_file_is_named_without_a_line(tmp_path: Path) -> None:
    """A file that cannot be read: "PATH: cannot read the file (why)"."""
    path = tmp_path / "nope.toml"
    with pytest.raises(PolicyError) as caught:
        load_policy(str(path), **SETTINGS)  # type: ignore[arg-type]
    assert str(caught.value) == f"{path}: cannot read the file (No such file or directory)"
    assert caught.value.line is None


def test_load_policy_reads_the_file_and_hashes_its_bytes(tmp_path: Path) -> None:
    """load_policy parses the file at the path and names it as the source; the hash is the
    first 12 hex digits of the SHA-256 of its bytes, so any change, a comment too, changes it."""
    path = tmp_path / "policy.toml"
    path.write_text(EXAMPLE)
    policy = load_policy(str(path), **SETTINGS)  # type: ignore[arg-type]
    assert policy.source == str(path)
    assert policy.policy_hash == hashlib.sha256(EXAMPLE.encode()).hexdigest()[:12]
    assert len(policy.policy_hash) == 12
    assert parse(EXAMPLE + "# a comment\n").policy_hash != policy.policy_hash
    assert parse(EXAMPLE).policy_hash == policy.policy_hash


# ------------------------------------------------------------------------------- inheritance


def test_terms_are_inherited_from_default_and_default_from_the_settings() -> None:
    """A rule's left-out terms are the [default]'s; the [default]'s left-out terms are the
    settings' (APPROVERS, APPROVALS_REQUIRED, REMIND_EVERY); operations default to both."""
    policy = parse(
        """
[default]
reason_pattern = "^ZD-"
escalate_after = 900
escalate_to = ["U0BOSS"]

[[rule]]
name = "shops"
domains = ["*.shop.example"]
approvals_required = 2

[[rule]]
name = "no-pattern"
domains = ["free.example"]
reason_pattern = ""
escalate_after = 60
escalate_to = ["S0ONCALL"]
""",
        approvers=("U0X", "U0Y"),
        approvals_required=1,
        remind_every=300,
    )
    default = policy.default
    assert (default.approvers, default.approvals_required, default.remind_every) == (
        ("U0X", "U0Y"),
        1,
        300,
    )
    assert default.operations == (CONFIRM, RESEND)
    shops = policy.rule_named("shops")
    assert shops is not None
    assert shops.approvers == ("U0X", "U0Y")
    assert shops.approvals_required == 2
    assert (shops.remind_every, shops.reason_pattern) == (300, "^ZD-")
    assert (shops.escalate_after, shops.escalate_to) == (900, ("U0BOSS",))
    free = policy.rule_named("no-pattern")
    assert free is not None
    assert free.reason_pattern is None  # "" drops the [default]'s pattern
    assert (free.escalate_after, free.escalate_to) == (60, ("S0ONCALL",))
    assert policy.rule_named("default") is default
    assert policy.rule_named("nope") is None


def test_from_settings_is_todays_behaviour() -> None:
    """Without POLICY_FILE: one [default] of the settings, both operations allowed for anyone,
    no hash, no source."""
    policy = Policy.from_settings(approvers=["S0A"], approvals_required=2, remind_every=60)
    decision = decide(policy, "example.com", RESEND)
    assert decision.allowed and decision.rule is policy.default
    assert decision.terms == RuleTerms(
        name="default",
        policy_hash="",
        approvers=("S0A",),
        approvals_required=2,
        remind_every=60.0,
    )
    assert policy.allowed_operations(domain="x.example", requester="U0A", is_among=listed) == (
        CONFIRM,
        RESEND,
    )
    assert policy.source is None and policy.policy_hash == ""
    assert policy.describe() == (
        "default (settings): every other request; operations confirm, resend -> 2 approvals "
        "from S0A; reminders every 60 s",
    )


# ------------------------------------------------------------------------------- matching


def test_the_first_matching_rule_decides_and_why_names_each_rule_tried() -> None:
    """Rules are tried in file order and the first whose keys all match decides; a later rule
    that also matches never does. Decision.why has one line per rule tried; terms carry the
    rule's name and the policy's hash."""
    policy = parse(
        EXAMPLE
        + """
[[rule]]
name = "later-banks"
domains = ["*.bank.example"]
approvals_required = 5
"""
    )
    decision = decide(policy, "a.bank.example")
    assert decision.rule.name == "vip-customers"
    assert decision.allowed
    assert decision.terms.name == "vip-customers"
    assert decision.terms.policy_hash == policy.policy_hash
    assert decision.terms.approvals_required == 2
    assert decision.why == (
        "rule vip-customers: matches (domain a.bank.example matches *.bank.example; operation "
        "confirm; any requester): decides",
    )
    other = decide(policy, "example.com", RESEND, "U0A")
    assert other.rule.name == "default"
    assert other.why == (
        "rule vip-customers: domain example.com matches none of *.bank.example, vip.example",
        "rule resend-is-routine: requester U0A is not among S0SUPPORT",
        "rule later-banks: domain example.com matches none of *.bank.example",
        "no rule matched: [default] decides; resend is among its operations (confirm, resend)",
    )


def test_each_match_key_must_match() -> None:
    """domains, operations and requesters each narrow a rule; is_among is asked only once the
    domain and the operation matched (it may cost a Slack call)."""
    policy = parse(EXAMPLE)
    asked: list[tuple[str, tuple[str, ...]]] = []

    def is_among(user: str, ids: Sequence[str]) -> bool:
        asked.append((user, tuple(ids)))
        return user == "U0SUP"

    def rule(domain: str, op: Operation, user: str | None) -> str:
        return policy.decide(
            domain=domain, operation=op, requester=user, is_among=is_among
        ).rule.name

    assert rule("example.com", RESEND, "U0SUP") == "resend-is-routine"
    assert rule("example.com", RESEND, "U0OTHER") == "default"
    assert rule("example.com", CONFIRM, "U0SUP") == "default"  # operation does not match
    assert rule("example.com", RESEND, None) == "default"  # no requester: requesters cannot match
    assert asked == [("U0SUP", ("S0SUPPORT",)), ("U0OTHER", ("S0SUPPORT",))]
    assert rule("vip.example", RESEND, "U0SUP") == "vip-customers"


def test_a_rule_with_no_requester_given_says_so() -> None:
    """Without a requester, a rule with requesters does not match, and why says it was not
    given."""
    decision = parse(EXAMPLE).decide(
        domain="example.com", operation=RESEND, requester=None, is_among=listed
    )
    assert decision.why[1] == (
        "rule resend-is-routine: no requester given (it matches only S0SUPPORT)"
    )


@pytest.mark.parametrize(
    ("domain", "matches"),
    [
        ("a.bank.example", True),
        ("a.b.bank.example", True),  # * crosses dots
        ("A.Bank.Example", True),  # the domain is compared lower-case
        ("bank.example", False),  # *.x does not match x itself
        ("evilbank.example", False),
        ("vip.example", True),
        ("vip.example.org", False),  # a glob matches the whole domain
        ("a.bücher.example", True),  # its ASCII form matches xn--bcher-kva
        ("a.xn--bcher-kva.example", True),
    ],
)
def test_domain_globs(domain: str, matches: bool) -> None:
    """Globs match the whole normalised lower-case domain with fnmatchcase, in its Unicode or
    ASCII form: *.bank.example takes any subdomain of bank.example, not bank.example itself."""
    policy = parse(
        '[[rule]]\nname = "g"\n'
        'domains = ["*.BANK.example", "vip.example", "*.xn--bcher-kva.example"]\n'
    )
    assert (decide(policy, domain).rule.name == "g") is matches


def test_operations_narrow_a_rule_and_default_lists_what_may_be_asked() -> None:
    """In a rule, operations narrow what it matches (left out: the [default]'s); [default]'s
    operations are what may be asked when no rule matches. So a rule can allow resend where the
    [default] does not, and a rule inheriting [default]'s operations never takes resend."""
    policy = parse(
        """
[default]
approvers = ["U0LEAD"]
operations = ["confirm"]

[[rule]]
name = "banks"
domains = ["*.bank.example"]
approvals_required = 2

[[rule]]
name = "support-resends"
operations = ["resend"]
requesters = ["U0SUP"]
approvals_required = 0
"""
    )
    assert policy.rule_named("banks").operations == (CONFIRM,)  # type: ignore[union-attr]
    banks_resend = decide(policy, "a.bank.example", RESEND, "U0ANY")
    assert (banks_resend.rule.name, banks_resend.allowed) == ("default", False)
    assert banks_resend.why[-1] == (
        "no rule matched: [default] decides; resend is not among its operations (confirm)"
    )
    sup = decide(policy, "a.bank.example", RESEND, "U0SUP")
    assert (sup.rule.name, sup.allowed, sup.terms.approvals_required) == (
        "support-resends",
        True,
        0,
    )

    def allowed(domain: str, requester: str) -> tuple[Operation, ...]:
        return policy.allowed_operations(domain=domain, requester=requester, is_among=listed)

    assert allowed("a.bank.example", "U0SUP") == (CONFIRM, RESEND)
    assert allowed("a.bank.example", "U0ANY") == (CONFIRM,)
    assert allowed("example.com", "U0ANY") == (CONFIRM,)


def test_everyone_in_requesters_is_left_to_is_among() -> None:
    """ "*" in requesters is passed to is_among like any ID (the service admits only full
    members through it)."""
    policy = parse('[[rule]]\nname = "all"\nrequesters = ["*"]\napprovals_required = 3\n')
    assert decide(policy, "x.example").rule.name == "all"
    nobody = policy.decide(
        domain="x.example", operation=CONFIRM, requester="U0A", is_among=lambda u, ids: False
    )
    assert nobody.rule.name == "default"


# ------------------------------------------------------------------------------- warnings


def test_rules_after_a_match_everything_rule_are_warned_of() -> None:
    """A rule with no match key takes every request of its operations: the rules after it that
    it covers are named as never used (a warning, not an error); one with an operation it does
    not take is still reachable."""
    policy = parse(
        """
[default]
approvers = ["U0LEAD"]
operations = ["confirm"]

[[rule]]
name = "everything"
approvals_required = 2

[[rule]]
name = "banks"
domains = ["*.bank.example"]

[[rule]]
name = "resends"
operations = ["resend"]
"""
    )
    assert policy.warnings() == (
        "rule banks (line 10) is never used: rule everything before it matches every request of "
        "its operations (confirm)",
    )
    assert decide(policy, "a.bank.example").rule.name == "everything"


def test_escalation_without_approvals_is_warned_of() -> None:
    """escalate_after on a rule that needs no approvals never escalates: a warning."""
    policy = parse(
        '[[rule]]\nname = "auto"\ndomains = ["a.example"]\napprovals_required = 0\n'
        'escalate_after = 60\nescalate_to = ["U0B"]\n'
    )
    assert policy.warnings() == (
        "rule auto (line 1) sets escalate_after but needs no approvals: it never escalates",
    )


# ------------------------------------------------------------------------------- reasons


def test_reason_matches_searches_the_pattern() -> None:
    """reason_pattern is searched (re.search) in the reason: anchored patterns anchor; no
    pattern accepts any reason; it takes the terms or the pattern itself."""
    terms = decide(parse(EXAMPLE), "example.com").terms
    assert reason_matches(terms, "ZD-123 customer locked out")
    assert not reason_matches(terms, "customer ZD-123")  # ^ anchors it
    assert reason_matches("ZD-", "see ZD-1")
    assert reason_matches(None, "anything")
    assert reason_matches(RuleTerms("r", "", ("U0A",), 1), "anything")


# ------------------------------------------------------------------------------- property

IDS = ["U0A", "U0B", "S0G", "*"]
GLOBS = ["*.bank.example", "vip.example", "*.example", "a.*", "b.vip.example"]
DOMAINS = ["a.bank.example", "vip.example", "b.vip.example", "x.example", "bank.example"]
OPS = ["confirm", "resend"]
MEMBERS = {"S0G": {"U0B"}}

rule_strategy = st.fixed_dictionaries(
    {},
    optional={
        "domains": st.lists(st.sampled_from(GLOBS), min_size=1, max_size=3),
        "operations": st.lists(st.sampled_from(OPS), min_size=1, max_size=2),
        "requesters": st.lists(st.sampled_from(IDS), min_size=1, max_size=2),
        "approvals_required": st.integers(0, 10),
    },
)


def toml_list(values: list[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def reference(rules: list[dict], default_ops: list[str], domain: str, op: str, user: str):
    """The rule that decides, said plainly: the first whose given keys all hold."""
    for index, rule in enumerate(rules):
        if "domains" in rule and not any(fnmatchcase(domain, g) for g in rule["domains"]):
            continue
        if op not in rule.get("operations", default_ops):
            continue
        if "requesters" in rule and not (
            user in rule["requesters"]
            or "*" in rule["requesters"]
            or any(user in MEMBERS.get(g, ()) for g in rule["requesters"])
        ):
            continue
        return f"r{index}", True, rule.get("approvals_required", 1)
    return "default", op in default_ops, 1


@settings(max_examples=150, deadline=None)
@given(
    rules=st.lists(rule_strategy, max_size=5),
    default_ops=st.lists(st.sampled_from(OPS), min_size=1, max_size=2),
    domain=st.sampled_from(DOMAINS),
    op=st.sampled_from(OPS),
    user=st.sampled_from(["U0A", "U0B", "U0C"]),
)
def test_decide_agrees_with_a_plain_reference(rules, default_ops, domain, op, user) -> None:
    """Over generated rule lists, decide picks the rule a plain first-match reading of the
    file picks, allows what it allows, and carries its approvals (inherited when left out)."""
    text = f'[default]\napprovers = ["U0LEAD"]\noperations = {toml_list(default_ops)}\n'
    for index, rule in enumerate(rules):
        text += f'\n[[rule]]\nname = "r{index}"\n'
        for key in ("domains", "operations", "requesters"):
            if key in rule:
                text += f"{key} = {toml_list(rule[key])}\n"
        if "approvals_required" in rule:
            text += f"approvals_required = {rule['approvals_required']}\n"
    policy = parse(text)

    def is_among(member: str, ids: Sequence[str]) -> bool:
        return any(member == i or i == "*" or member in MEMBERS.get(i, ()) for i in ids)

    decision = policy.decide(
        domain=domain, operation=Operation(op), requester=user, is_among=is_among
    )
    name, allowed, approvals = reference(rules, default_ops, domain, op, user)
    assert (decision.rule.name, decision.allowed) == (name, allowed)
    assert decision.terms.approvals_required == approvals
    assert len(decision.why) == (len(rules) + 1 if name == "default" else int(name[1:]) + 1)
