"""verify-email bot: clear stuck email verifications from Slack, with a second person's approval."""

__version__ = "0.1.0"
