"""A local stand-in for the Slack Web API, served over HTTP on 127.0.0.1.

`FakeSlack` answers the Web API methods the bot uses the way Slack answers them, so a real
`slack_sdk.WebClient(token, base_url=fake.api_url)` (and so a real Bolt app) can talk to it.
It also serves the `response_url`s it hands out, and records everything it was asked, so a
test or the sandbox can check what happened and print the channel as a person would read it.

Behaviour worth knowing:

* Tokens come from the `Authorization: Bearer` header or a `token` field. The bot token works
  for every method but `apps.connections.open`, which needs the app-level token (and the app
  token works for nothing else), as on Slack: `not_authed`, `invalid_auth`,
  `not_allowed_token_type`.
* Trigger ids come from `new_trigger_id()`; `views.open` / `views.push` accept each one once
  and within `trigger_ttl` seconds (3 on Slack): `invalid_trigger_id`, `exchanged_trigger_id`,
  `expired_trigger_id`.
* Messages and views (modals, the Home tab) are checked against Slack's main Block Kit rules
  (50 blocks a message, 100 a view, 3000 characters a section text, 2000 a button value, a
  block_id of at most 255 characters and unique within its message or view): a message that
  breaks one answers `invalid_blocks`, a view `invalid_arguments` (the error views.open,
  views.publish and views.update document), each with the problem in
  `response_metadata.messages`.
* Posting to a user ID (U…/W…) posts to the DM channel `dm_channel(user_id)` (D…). Channels
  registered with `add_channel(..., is_member=False)` answer `not_in_channel`; unregistered
  channels accept posts but `conversations.info` does not know them.
* `fail_next()` scripts failures (HTTP 429 with `Retry-After`, or `{"ok": false}` answers) and
  `set_delay()` adds latency to a method. `time_out_next()` answers a call too late, having
  done it or not; `outage()` makes every call answer HTTP 503 for a while; `in_flight()` names
  the client ports of the calls being answered (the soak finds the replica to kill by them).
* Scopes: the bot token is granted `scopes` (by default exactly the manifest's bot scopes,
  `bot.slack.manifest.BOT_SCOPES`; change them with `set_scopes()`). As on Slack, every answer to an
  authenticated call carries them in an `X-OAuth-Scopes` header (comma-separated), and a method
  whose scope is not granted answers `missing_scope` with `needed` and `provided` (and an
  `X-Accepted-OAuth-Scopes` header): `chat:write` for chat.postMessage / chat.update /
  chat.postEphemeral, `usergroups:read` for usergroups.users.list, `users:read` for
  users.info (every U…/W… id is a full member unless `set_user()` says otherwise),
  `channels:read` (or `groups:read` for a private channel) for conversations.info,
  `channels:history` (or `groups:history`) for conversations.history, `files:read` for
  files.info (and a file's url_private). `scopes=None` sends no
  header and checks no scope.
* Message metadata (`metadata: {event_type, event_payload}` on chat.postMessage) is kept with
  the message; `conversations.history` answers a channel's top-level messages newest first,
  within `oldest` / `latest` (exclusive unless `inclusive`), `limit` a page (default 100, at
  most 999) with Slack's `has_more` and `response_metadata.next_cursor` (`next_ts:<ts>`,
  base64), each message's metadata only with `include_all_metadata`, and `not_in_channel` for a
  channel registered with `is_member=False`.
* Files attached to a modal's Block Kit `file_input`: `add_file()` registers one a person
  uploaded (name, Slack's filetype, bytes, size) and returns its file object as Slack sends it
  in view_submission; `files.info` (scope `files:read`) answers it (`file_not_found`,
  `file_deleted` after `delete_file()`); its `url_private` and `url_private_download` (on this
  stand-in, `/files-pri/...`) serve its bytes to `Authorization: Bearer <bot token>` when the
  token has `files:read`: 401 without a token Slack knows, 403 for the app token or a bot token
  without the scope (or, after `set_download_refusal("login_page")`, Slack's HTML sign-in page
  with 200). `downloads` records each request; `set_delay`, `fail_next` and `in_flight` take
  `DOWNLOAD` as the method name.
* Custom steps (Workflow Builder): `run_function()` starts a run of a step and returns the
  `function_executed` event to deliver (with the run's own token, `bot_access_token`);
  `functions.completeSuccess` / `functions.completeError` end a run once, with the run's token
  or the bot token (`function_execution_not_found`, `execution_not_in_running_state`,
  `access_denied`, `parameter_validation_failed` against `define_function()`'s outputs); the
  run's token is revoked when the run ends and expires after `function_token_ttl`;
  `completions()` reads back what ended a run. See `functions`.

The stand-in is a package, a module a part (all put together in `fake.FakeSlack`):

* `fake`: `FakeSlack`, its start and stop, and how one call is answered
* `server`: the HTTP server and handler, and how a request's token and parameters are read
* `state`: the workspace and all the state (base of every part), the `Call` and
  `ResponseUrlPost` records, scripted failures
* `chat`, `views`, `conversations`, `directory`, `files`, `functions`: the Web API methods, by
  family (`files` also serves the file URLs, `functions` also starts step runs)
* `auth`: tokens and scopes; `faults`: failure injection; `limits`: the Block Kit rules
* `records`: reading back what happened (calls, messages, views, transcripts, waiting)

Import the names from here: `from bot.standins.slack import FakeSlack`.
"""

from bot.standins.slack.auth import APP_TOKEN_SCOPES
from bot.standins.slack.fake import FakeSlack
from bot.standins.slack.files import DOWNLOAD
from bot.standins.slack.records import WAIT_TIMEOUT
from bot.standins.slack.state import (
    DEFAULT_SCOPES,
    FUNCTION_TOKEN_TTL,
    Answer,
    Call,
    Completion,
    Download,
    FunctionExecution,
    Params,
    ResponseUrlPost,
)

__all__ = [
    "APP_TOKEN_SCOPES",
    "DEFAULT_SCOPES",
    "DOWNLOAD",
    "FUNCTION_TOKEN_TTL",
    "WAIT_TIMEOUT",
    "Answer",
    "Call",
    "Completion",
    "Download",
    "FakeSlack",
    "FunctionExecution",
    "Params",
    "ResponseUrlPost",
]
