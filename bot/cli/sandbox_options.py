"""The options of ``python -m bot sandbox`` (bot/cli/sandbox.py plays them): what each one
offers, and the stand-in's failure each ``--provider-error`` choice scripts for the confirm and
for the resend."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.domain.model import Operation

DESCRIPTION = (
    "Play the whole flow offline: a request, the form, the approval (by one or two approvers; "
    "or a rejection, or the requester's cancel), the "
    "provider call and the threaded summary; or a bulk request (--bulk), or a Workflow Builder "
    "step's run to its outputs (--workflow). The real bot runs on loopback against built-in "
    "stand-ins for Slack and the provider, and the channel is printed as a person reads it."
)

# --provider-error choices: an HTTP status the provider answers with, or a way it misbehaves.
PROVIDER_ERRORS: dict[str, str] = {
    "400": "bad_request",
    "401": "unauthorized",
    "403": "forbidden",
    "404": "not_found",
    "429": "rate_limited",
    "500": "server_error",
    "502": "bad_gateway",
    "503": "unavailable",
    "html": "bad_gateway",
    "wrong-shape": "wrong_shape",
    "timeout": "hang",
    "disconnect": "close_after_read",
}
# The same choices for a resend (--operation resend): the stand-in's resend action's own modes
# (RESEND_MODES). 503 has none; 429's is sent with Retry-After 0 so the sandbox does not wait.
RESEND_ERRORS: dict[str, str] = {
    "400": "invalid_request",
    "401": "unauthorized",
    "403": "forbidden",
    "404": "not_found",
    "429": "rate_limited",
    "500": "server_error",
    "502": "bad_gateway",
    "html": "bad_gateway",
    "wrong-shape": "wrong_shape",
    "timeout": "hang",
    "disconnect": "close_after_read",
}
# What a resend error ends as: unknown once the request may have reached the provider and
# the email may have gone out (a 5xx, a 200 of the wrong shape, no answer); else failed.
RESEND_UNKNOWN = frozenset({"500", "502", "html", "wrong-shape", "timeout", "disconnect"})
SANDBOX_TIMEOUT = 1.0  # HOSTUP_TIMEOUT in the sandbox, so --provider-error timeout is quick
# BULK_RATE in the sandbox (--bulk): 1,000 emails in about 20 s rather than 200 at the default.
BULK_RATE = 50.0
BULK_MAX = 1000  # --bulk at most: BULK_MAX's default

# --provider-state choices: what the provider's per-domain view says of the domain, or how
# reading it fails (the request goes ahead either way).
PROVIDER_STATES = (
    "pending",
    "verified",
    "unverified",
    "expired",
    "unknown",
    "suspended",
    "not-found",
    "no-scope",
    "rate-limited",
    "timeout",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--email",
        default="alice@example.com",
        help="the address to ask about (default: alice@example.com)",
    )
    parser.add_argument(
        "--reason",
        default="TICKET-1234: customer cannot receive mail",
        help="the reason typed into the form",
    )
    parser.add_argument(
        "--operation",
        choices=[o.value for o in Operation],
        default=Operation.CONFIRM.value,
        help="what the form asks for: confirm (clear the stuck verification, the default) or "
        "resend (send the verification email again; the provider's view of the domain then "
        "allows it)",
    )
    parser.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="POLICY_FILE for the bot: the request message shows the rule that decided; a rule "
        "with approvals_required 0 runs the request by itself (nobody clicks); an operation or "
        "reason the rule refuses is the form's error (exit 1). The sandbox's approvers are "
        "U0APPROVER and U0APPROVER2 (group S0APPROVERS), its requester U0REQUESTER (group "
        "S0SUPPORT)",
    )
    decision = parser.add_mutually_exclusive_group()
    decision.add_argument(
        "--reject", action="store_true", help="the approver rejects instead of approving"
    )
    decision.add_argument(
        "--cancel",
        action="store_true",
        help="the requester cancels from the DM before anyone decides",
    )
    parser.add_argument(
        "--approvals",
        type=int,
        choices=(1, 2),
        default=1,
        metavar="N",
        help="APPROVALS_REQUIRED: 2 shows two approvers approving in turn (default: 1)",
    )
    parser.add_argument(
        "--home",
        action="store_true",
        help="show the app's Home tab: the approver's queue while the request waits (and the "
        "Approve, or the requester's Cancel, clicked there), and the requester's list at the end",
    )
    parser.add_argument(
        "--provider-error",
        choices=sorted(PROVIDER_ERRORS),
        metavar="ERROR",
        help="make the provider fail: an HTTP status (400, 401, 403, 404, 429, "
        "500, 502, 503), html, wrong-shape, timeout or disconnect. With --operation resend the "
        "resend action fails as documented: 400 invalid_request, 401 unauthorized, 403 "
        "forbidden, 404 not_found, 429 rate_limited (failed); 500 internal_error, 502 or html "
        "(a proxy's page), wrong-shape, timeout, disconnect (unknown: the email may have gone "
        "out); 503 has no resend counterpart",
    )
    parser.add_argument(
        "--provider-state",
        choices=PROVIDER_STATES,
        default="pending",
        metavar="STATE",
        help="what the provider's view of the domain reads beside the request: pending "
        "(default), verified, unverified, expired, unknown, suspended; or how reading it "
        "fails: not-found, no-scope, rate-limited, timeout",
    )
    parser.add_argument(
        "--domains",
        type=int,
        default=1,
        metavar="N",
        help="how many domains the provider says it cleared (default: 1)",
    )
    parser.add_argument(
        "--bulk",
        type=int,
        metavar="N",
        help=f"ask for one bulk request of N generated emails (from --email: alice1@example.com, "
        f"…, over up to three domains; 1 to {BULK_MAX}) with --operation and --reason, approve "
        f"it by the quorum (two approvers), run it at {BULK_RATE:g} calls a second and show the "
        "request message, its thread and the DMs",
    )
    parser.add_argument(
        "--workflow",
        action="store_true",
        help="a Workflow Builder step's run instead of the command: a workflow runs the step "
        "“Verify email with approval” with --email, --reason and --operation for the requester; "
        "the request is decided as with the options above (--approvals, --reject, --cancel, "
        "--provider-error: an outcome nobody knows is retried) and the outputs the run "
        "completes with are shown; a run whose request cannot be made (a bad --email, a --policy "
        "that refuses it) fails with the command's words (exit 1). Not with --bulk or --home",
    )
    parser.add_argument(
        "--database",
        type=Path,
        metavar="PATH",
        help="keep the store in this SQLite file (default: a temporary one, deleted afterwards)",
    )
    parser.add_argument("--verbose", action="store_true", help="show the bot's own log lines")
