"""The domain: what a verification request is and what may happen to it. No Slack, HTTP or SQL.

* ``model``     the request, its states and legal transitions, the audit's actions
* ``outcomes``  what a provider call (or its absence) came to: one class per case, serialised here
* ``inputs``    validating what a person typed (an address, a reason), free of Slack's markup
* ``refusals``  why a person may not do something, as codes the Block Kit layer puts in words
* ``ports``     what the domain needs of the store, the provider, roles and delivery
* ``service``   the application service: one method per decision

``import-linter`` (pyproject.toml) keeps Slack, HTTP and database packages out of this package.
"""
