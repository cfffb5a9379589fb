"""The user-group checks: every group in APPROVERS and REQUESTERS resolves
(``usergroups.users.list``), APPROVALS_REQUIRED can be met, and the token may say who is a full
member (``users:read``)."""

from __future__ import annotations

from collections.abc import Sequence

from bot.cli.check.output import Report
from bot.cli.check.slack import Bot, Slack, SlackCallFailure, add_scope
from bot.settings import EVERYONE, GROUP_ID_RE, USER_ID_RE, Settings


def check_groups(report: Report, slack: Slack, bot: Bot, settings: Settings) -> None:
    roles: dict[str, list[str]] = {}
    for setting, entries in (
        ("APPROVERS", settings.APPROVERS),
        ("REQUESTERS", settings.REQUESTERS),
    ):
        for entry in entries or ():
            if GROUP_ID_RE.match(entry) and setting not in roles.setdefault(entry, []):
                roles[entry].append(setting)
    if not roles:
        report.ok("APPROVERS and REQUESTERS name no user groups (S…): nothing to resolve")
        check_quorum(report, settings, {e for e in settings.APPROVERS if USER_ID_RE.match(e)})
        return

    members: dict[str, int | None] = {}  # None: did not resolve
    member_ids: dict[str, set[str]] = {}
    failures: dict[str, SlackCallFailure] = {}
    for group_id in roles:
        try:
            response = slack.call(slack.client.usergroups_users_list, usergroup=group_id)
        except SlackCallFailure as failure:
            members[group_id], failures[group_id] = None, failure
            continue
        users = response.get("users")
        member_ids[group_id] = (
            {u for u in users if isinstance(u, str)} if isinstance(users, list) else set()
        )
        members[group_id] = len(member_ids[group_id])

    # Nobody can approve when no APPROVERS entry names a user and no approver group has anyone.
    nobody_approves = not any(USER_ID_RE.match(e) for e in settings.APPROVERS) and not any(
        members.get(e) for e in settings.APPROVERS
    )
    for group_id, in_settings in roles.items():
        subject = f"User group {group_id} in {' and '.join(in_settings)}"
        count = members[group_id]
        if count is None:
            report_group_failure(report, slack, bot, subject, failures[group_id])
        elif count > 0:
            report.ok(f"{subject} resolves: {count} member{'s' if count != 1 else ''}")
        elif "APPROVERS" in in_settings and nobody_approves:
            report.fail(
                subject,
                "it has no members, and no other APPROVERS entry names anyone, so nobody can "
                "approve a request",
                "add people to the group in Slack, or add approvers' user IDs (U…) to APPROVERS",
            )
        else:
            report.warn(f"{subject} has no members: nobody gets a role through it")
    approvers = {e for e in settings.APPROVERS if USER_ID_RE.match(e)}
    for entry in settings.APPROVERS:
        approvers |= member_ids.get(entry, set())
    unresolved = any(members.get(e, 0) is None for e in settings.APPROVERS)
    check_quorum(report, settings, approvers, unresolved=unresolved)


def check_quorum(
    report: Report, settings: Settings, approvers: set[str], *, unresolved: bool = False
) -> None:
    """APPROVALS_REQUIRED must not need more distinct approvers than APPROVERS names."""
    required = settings.APPROVALS_REQUIRED
    if required <= 1 or len(approvers) >= required:
        return
    found = f"APPROVERS resolves to {len(approvers)} distinct approver" + (
        "" if len(approvers) == 1 else "s"
    )
    if unresolved:
        report.warn(
            f"APPROVALS_REQUIRED is {required}, but {found} so far (a group did not resolve): "
            "requests may never be approved"
        )
        return
    report.fail(
        "APPROVALS_REQUIRED",
        f"{required} distinct approvers are needed, but {found}: no request could ever be approved",
        "lower APPROVALS_REQUIRED, or add people to APPROVERS (or to its user groups)",
    )


def check_member_lookups(
    report: Report, bot: Bot, settings: Settings, policy_ids: Sequence[str] = ()
) -> None:
    """``*`` and user groups admit only full members, which users.info (users:read) says:
    without the scope nobody gets a role through them (roles fail closed). ``policy_ids``:
    the IDs POLICY_FILE names (approvers, escalate_to, requesters), read the same way."""
    entries = (*settings.APPROVERS, *(settings.REQUESTERS or ()), *policy_ids)
    if not any(e == EVERYONE or GROUP_ID_RE.match(e) for e in entries):
        return
    if bot.scopes is None or "users:read" in bot.scopes:
        return
    report.fail(
        "SLACK_BOT_TOKEN",
        "lacks the users:read scope: users.info says who is a full member (not a guest, a bot, "
        "deactivated or another organisation's), so nobody gets a role through * or a user "
        "group without it",
        add_scope("users:read"),
    )


def report_group_failure(
    report: Report, slack: Slack, bot: Bot, subject: str, failure: SlackCallFailure
) -> None:
    if failure.kind != "api":
        slack.report_transport(report, failure, "usergroups.users.list")
    elif failure.error == "no_such_subteam":
        report.fail(
            subject,
            f"Slack knows no user group with this ID in workspace {bot.team}",
            "copy the group's ID (S…) from Slack (People → User groups → the group → ⋯ → Copy "
            "group ID); roles are matched by ID, never by @handle",
        )
    elif failure.error == "missing_scope":
        needed = failure.field("needed") or "usergroups:read"
        report.fail(
            subject,
            f"SLACK_BOT_TOKEN lacks the {needed} scope needed to list the group's members",
            add_scope(needed),
        )
    else:
        report.fail(
            subject,
            f"Slack answered usergroups.users.list with {failure.error}",
            "check the group ID (S…), or name the approvers' user IDs (U…) instead",
        )
