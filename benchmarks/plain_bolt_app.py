"""The benchmark's peer: the plain Bolt app most teams would write first, for the same flow.

Bolt's defaults throughout: ``App(token=..., signing_secret=...)`` (5 listener threads), served
by ``app.start(port)`` (Bolt's built-in ``http.server`` development server), roles read from
Slack on every check, the provider called synchronously in the Approve listener. The flow is the
bot's: ``/verify-email EMAIL`` opens a modal; submitting it posts a message with Approve and
Reject buttons in APPROVAL_CHANNEL; Approve calls the provider, replies in the thread and updates
the message.

Two lines differ from what such a team would write, both so that the benchmark can run it
against local stand-ins: the Web API base URL comes from SLACK_API_URL (``WebClient(base_url)``,
as ``App(token=...)`` would build it otherwise), and the development server binds 127.0.0.1
instead of every interface. Run: ``python benchmarks/plain_bolt_app.py`` with the bot's settings
in the environment (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_API_URL, HOSTUP_API_URL,
HOSTUP_API_KEY, APPROVERS, REQUESTERS, APPROVAL_CHANNEL, PORT).
"""

import json
import os
from http.server import HTTPServer

import httpx
import slack_bolt.app.app
from slack_bolt import App
from slack_sdk import WebClient

# The IDs this app defines; benchmarks/run.py drives the app with the same ones.
COMMAND = "/verify-email"
REQUEST_VIEW = "request_view"
EMAIL_BLOCK = "email"
REASON_BLOCK = "reason"
APPROVE_ACTION = "approve"
REJECT_ACTION = "reject"

CHANNEL = os.environ["APPROVAL_CHANNEL"]
APPROVERS = os.environ["APPROVERS"].split(",")
REQUESTERS = os.environ.get("REQUESTERS", os.environ["APPROVERS"]).split(",")
PROVIDER_URL = os.environ.get("HOSTUP_API_URL", "https://cloud.hostup.se/api")
PROVIDER_KEY = os.environ["HOSTUP_API_KEY"]

app = App(
    client=WebClient(
        token=os.environ["SLACK_BOT_TOKEN"],
        base_url=os.environ.get("SLACK_API_URL", "https://slack.com/api/"),
    ),
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
)


def allowed(client, user_id, entries):
    for entry in entries:
        if entry == user_id:
            return True
        if (
            entry.startswith("S")
            and user_id in client.usergroups_users_list(usergroup=entry)["users"]
        ):
            return True
    return False


def request_blocks(email, requester, reason, status, buttons):
    blocks = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*Email verification request* from <@{requester}>\n"
                f"*Email:* `{email}`\n*Reason:* {reason}",
            },
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"state: {status}"}]},
    ]
    if buttons:
        value = json.dumps({"email": email, "requester": requester, "reason": reason})
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": APPROVE_ACTION,
                        "text": {"type": "plain_text", "text": "Approve"},
                        "style": "primary",
                        "value": value,
                        "confirm": {
                            "title": {"type": "plain_text", "text": "Are you sure?"},
                            "text": {"type": "mrkdwn", "text": f"Clear `{email}`?"},
                            "confirm": {"type": "plain_text", "text": "Approve"},
                            "deny": {"type": "plain_text", "text": "Cancel"},
                        },
                    },
                    {
                        "type": "button",
                        "action_id": REJECT_ACTION,
                        "text": {"type": "plain_text", "text": "Reject"},
                        "style": "danger",
                        "value": value,
                    },
                ],
            }
        )
    return blocks


@app.command(COMMAND)
def open_form(ack, body, client, respond):
    ack()
    if not allowed(client, body["user_id"], REQUESTERS):
        respond("Sorry, you are not allowed to ask for this.")
        return
    client.views_open(
        trigger_id=body["trigger_id"],
        view={
            "type": "modal",
            "callback_id": REQUEST_VIEW,
            "title": {"type": "plain_text", "text": "Verify email"},
            "submit": {"type": "plain_text", "text": "Ask for approval"},
            "blocks": [
                {
                    "type": "input",
                    "block_id": EMAIL_BLOCK,
                    "label": {"type": "plain_text", "text": "Email"},
                    "element": {
                        "type": "plain_text_input",
                        "action_id": EMAIL_BLOCK,
                        "initial_value": body.get("text", "").strip(),
                    },
                },
                {
                    "type": "input",
                    "block_id": REASON_BLOCK,
                    "label": {"type": "plain_text", "text": "Reason or ticket"},
                    "element": {"type": "plain_text_input", "action_id": REASON_BLOCK},
                },
            ],
        },
    )


@app.view(REQUEST_VIEW)
def submitted(ack, body, view, client):
    ack()
    values = view["state"]["values"]
    email = values[EMAIL_BLOCK][EMAIL_BLOCK]["value"]
    reason = values[REASON_BLOCK][REASON_BLOCK]["value"]
    requester = body["user"]["id"]
    client.chat_postMessage(
        channel=CHANNEL,
        text=f"Email verification request for {email}",
        blocks=request_blocks(email, requester, reason, "pending", buttons=True),
    )


@app.action(APPROVE_ACTION)
def approve(ack, body, action, client, respond):
    ack()
    user_id = body["user"]["id"]
    if not allowed(client, user_id, APPROVERS):
        respond("Only approvers can approve.", replace_original=False)
        return
    request = json.loads(action["value"])
    response = httpx.post(
        f"{PROVIDER_URL}/email-verification/confirmed",
        json={"email": request["email"], "approved": "yes"},
        headers={"X-API-Key": PROVIDER_KEY},
        timeout=15,
    )
    result = response.json()
    ok = response.status_code == 200 and result.get("success")
    if ok:
        data = result["data"]
        reply = (
            f"Approved by <@{user_id}>: {data['message']}. "
            f"Cleared: {', '.join(data['clearedDomains'])}. "
            f"Clients notified: {', '.join(map(str, data['clientsNotified']))}. "
            f"Request id: {result['requestId']}"
        )
    else:
        reply = f"The provider said {response.status_code}: {result}"
    channel = body["channel"]["id"]
    ts = body["message"]["ts"]
    client.chat_postMessage(channel=channel, thread_ts=ts, text=reply)
    status = "succeeded" if ok else "failed"
    client.chat_update(
        channel=channel,
        ts=ts,
        text=f"Email verification request for {request['email']}: {status}",
        blocks=request_blocks(
            request["email"], request["requester"], request["reason"], status, buttons=False
        ),
    )


@app.action(REJECT_ACTION)
def reject(ack, body, action, client, respond):
    ack()
    user_id = body["user"]["id"]
    if not allowed(client, user_id, APPROVERS):
        respond("Only approvers can reject.", replace_original=False)
        return
    request = json.loads(action["value"])
    client.chat_update(
        channel=body["channel"]["id"],
        ts=body["message"]["ts"],
        text=f"Email verification request for {request['email']}: rejected",
        blocks=request_blocks(
            request["email"], request["requester"], request["reason"], "rejected", buttons=False
        ),
    )


class LoopbackHTTPServer(HTTPServer):
    """Bolt's development server, bound to 127.0.0.1 rather than 0.0.0.0 (benchmark only)."""

    def __init__(self, server_address, handler):
        super().__init__(("127.0.0.1", server_address[1]), handler)


if __name__ == "__main__":
    # Bolt's development server imports HTTPServer by name (not re-exported, and this one
    # takes a narrower constructor): swap in the loopback one.
    slack_bolt.app.app.HTTPServer = LoopbackHTTPServer  # type: ignore[attr-defined,assignment]
    app.start(port=int(os.environ.get("PORT", "3000")))
