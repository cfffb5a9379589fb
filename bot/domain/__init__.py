"""The domain: what a verification request is and what may happen to it. No Slack, HTTP or SQL.

* ``model``     the request, its states and legal transitions, audit actions, Slack notices
* ``outcomes``  what a provider call (or its absence) came to: one class per case, serialised here
* ``inputs``    validating what a person typed (an address, a reason), free of Slack's markup
* ``refusals``  why a person may not do something, as codes the Block Kit layer puts in words
* ``service``   the application service: one method per decision, and the ports it needs

``import-linter`` (pyproject.toml) keeps Slack, HTTP and database packages out of this package.
"""
