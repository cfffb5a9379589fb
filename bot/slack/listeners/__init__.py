"""Thin Bolt handlers: each is the decision a person's command, click or form asks for.

The table in ``bot.slack.app.ROUTES`` registers them: a button's handler wrapped in
``interactions.button``, a form's in ``interactions.form`` (which ack, read the request id and
word a refusal); the command and the Home event take Bolt's usual arguments. The Slack edge's
dependencies come from Bolt's context (``bot.slack.deps.deps_of``), where ``bot.slack.app``
puts them, so a test can call a handler with its own.
"""
