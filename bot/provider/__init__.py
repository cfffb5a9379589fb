"""The provider edge: HostUp's API. :mod:`bot.provider.client` (``HostupClient``, the Provider
port) composes :mod:`.confirm` (v1: confirm, status), :mod:`.view` (v2: the per-domain view),
:mod:`.transport` (the httpx client, each attempt bounded by a wall-clock deadline),
:mod:`.failures` (the one classifier of failures) and :mod:`.reading` (untrusted answers)."""
