"""What the Slack stand-in's tests (tests/integration/test_standins_*.py) share: the tokens
and signing secret of the FakeSlack they run, a request message with its Approve and Reject
buttons, and the request modal. No test module imports another.
"""

from __future__ import annotations

from typing import Any

BOT_TOKEN = "xoxb-test"
APP_TOKEN = "xapp-test"
SECRET = "signing-secret"

APPROVE_MESSAGE_BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "<@U1> asks to clear a@example.com"}},
    {
        "type": "actions",
        "block_id": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": "req-1",
            },
            {
                "type": "button",
                "action_id": "reject",
                "style": "danger",
                "text": {"type": "plain_text", "text": "Reject"},
                "value": "req-1",
            },
        ],
    },
]
MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "request_view",
    "title": {"type": "plain_text", "text": "Verify email"},
    "submit": {"type": "plain_text", "text": "Request"},
    "private_metadata": "C1",
    "blocks": [
        {
            "type": "input",
            "block_id": "email_block",
            "label": {"type": "plain_text", "text": "Email"},
            "element": {"type": "plain_text_input", "action_id": "email_input"},
        },
        {
            "type": "input",
            "block_id": "reason_block",
            "optional": True,
            "label": {"type": "plain_text", "text": "Reason"},
            "element": {"type": "plain_text_input", "action_id": "reason_input"},
        },
    ],
}
