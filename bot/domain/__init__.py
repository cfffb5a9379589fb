"""The domain: what a verification request is and what may happen to it. No Slack, HTTP or SQL.

* ``model``       a request (its operation, approval and items), states, transitions, actions
* ``outcomes``    what a provider call (or its absence) came to: one class per case
* ``views``       the provider's per-domain view, read beside a request and after its call
* ``inputs``      validating what a person typed (an address, a reason), free of Slack's markup
* ``refusals``    why a person may not do something, as codes the Block Kit layer puts in words
* ``correlation`` the fields every log line of one request carries
* ``ports``       what the domain needs of the store, the provider, roles and delivery
* ``service``     the application service (``Approvals``), one module a concern: ``core``,
  ``queries``, ``execution`` (an item's claim, call and outcome), ``approval`` (the request's
  approval) and ``sweeps`` (what happens without a click)

``import-linter`` (pyproject.toml) keeps Slack, HTTP and database packages out of this package.
"""
