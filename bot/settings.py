"""The one Settings class: the only place the environment (and `.env`) is read."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.database_url import URL_FORMS, is_postgres_url
from bot.domain.inputs import EVERYONE as EVERYONE
from bot.domain.inputs import GROUP_ID_RE as GROUP_ID_RE
from bot.domain.inputs import USER_ID_RE as USER_ID_RE

CHANNEL_ID_RE = re.compile(r"^[CG][A-Z0-9]{2,}$")


class SettingsError(Exception):
    """Settings that cannot start the bot; ``problems`` names each setting and what is wrong."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _id_list(value: object, *, allow_everyone: bool) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list | tuple):
        items = [str(part).strip() for part in value]
    else:
        raise ValueError("must be a comma-separated list of Slack IDs")
    items = [item for item in items if item]
    bad = []
    for item in items:
        if item == EVERYONE and allow_everyone:
            continue
        if not (USER_ID_RE.match(item) or GROUP_ID_RE.match(item)):
            bad.append(item)
    if bad:
        shown = ", ".join(repr(b[:30]) for b in bad[:5])
        raise ValueError(
            f"{shown} is not a Slack user ID (U…/W…) or user-group ID (S…); "
            "roles are matched by ID, never by name"
        )
    # Keep order, drop duplicates.
    return tuple(dict.fromkeys(items))


class StoreSettings(BaseSettings):
    """Just the store's setting: for commands that only read the store (``audit``)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=True,
        extra="ignore",
        frozen=True,
        # `SLACK_SIGNING_SECRET=` (as .env.example ships it) means unset, not "an empty secret".
        env_ignore_empty=True,
    )

    DATABASE_URL: str = "sqlite:///verify-email.db"

    @field_validator("DATABASE_URL")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not (is_postgres_url(value) or value.split(":", 1)[0].lower() == "sqlite"):
            raise ValueError(f"must be {URL_FORMS}")
        return value


class PolicySettings(BaseSettings):
    """Just what ``policy explain`` reads: POLICY_FILE and the settings its [default] inherits
    (none required: without APPROVERS a [default] must name its own approvers)."""

    model_config = StoreSettings.model_config

    POLICY_FILE: str | None = None
    APPROVERS: Annotated[tuple[str, ...], NoDecode] = ()
    APPROVALS_REQUIRED: int = Field(default=1, ge=1, le=10)
    REMIND_EVERY: int = Field(default=1800, ge=0)

    @field_validator("POLICY_FILE", mode="before")
    @classmethod
    def _policy_file(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None  # blank means unset
        return value.strip() if isinstance(value, str) else value

    @field_validator("APPROVERS", mode="before")
    @classmethod
    def _approvers(cls, value: object) -> tuple[str, ...]:
        return _id_list(value, allow_everyone=False)


class Settings(StoreSettings):
    """Settings from the environment and `.env`. Names are a contract (README, Settings)."""

    SLACK_BOT_TOKEN: SecretStr
    # Declared before SLACK_SIGNING_SECRET: whether that one is required depends on this one.
    SLACK_APP_TOKEN: SecretStr | None = None
    SLACK_SIGNING_SECRET: Annotated[SecretStr | None, Field(validate_default=True)] = None
    SLACK_API_URL: str = "https://slack.com/api/"
    HOSTUP_API_KEY: SecretStr
    HOSTUP_API_URL: str = "https://cloud.hostup.se/api"
    HOSTUP_TIMEOUT: float = Field(default=15.0, gt=0, le=300)
    APPROVERS: Annotated[tuple[str, ...], NoDecode]
    REQUESTERS: Annotated[tuple[str, ...] | None, NoDecode] = None
    APPROVAL_CHANNEL: str
    ALLOW_SELF_APPROVAL: bool = False
    REQUEST_TTL: int = Field(default=86400, gt=0)
    PORT: int = Field(default=3000, ge=1, le=65535)
    # Distinct approvers (never the requester twice) needed before the provider is called.
    APPROVALS_REQUIRED: int = Field(default=1, ge=1, le=10)
    # Seconds between reminders to the approvers while a request is pending; 0 turns them off.
    REMIND_EVERY: int = Field(default=1800, ge=0)
    # Seconds a claim's lease runs (renewed before each further attempt): once it ran out the
    # maintenance round takes the call for interrupted (unknown, with Retry). 0: derived, one
    # attempt's deadline (HOSTUP_TIMEOUT) plus 10 s. It also bounds a claim made without a
    # lease (by a bot before leases; 0: the longest such a call could take plus 30 s). For
    # soaks and tests (the bot warns at start-up and `check` says so when it is short).
    INTERRUPTED_AFTER: int = Field(default=0, ge=0, le=86400)
    # text, or json: one object a line with the correlation fields (bot/logs.py).
    LOG_FORMAT: Literal["text", "json"] = "text"
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # A TOML file of approval rules per domain, operation and requester (bot/domain/policy.py);
    # unset: the settings above decide every request (APPROVERS, APPROVALS_REQUIRED, ...).
    POLICY_FILE: str | None = None
    # The language of the verification email a resend sends (the provider's ``lang``).
    RESEND_LANGUAGE: Literal["en", "sv"] = "en"
    # Bulk requests (/verify-email bulk): the most emails one may ask for; the provider calls a
    # second a running batch makes at most, across every replica, and at once; seconds between
    # updates of its message's progress.
    BULK_MAX: int = Field(default=1000, ge=1, le=5000)
    BULK_RATE: float = Field(default=5.0, gt=0, le=1000)
    BULK_CONCURRENCY: int = Field(default=4, ge=1, le=32)
    BULK_PROGRESS_EVERY: float = Field(default=5.0, ge=1, le=300)
    # GET /metrics and the counting behind it; false: neither (for a team that has no use
    # for them, and for the benchmark's comparison).
    METRICS: bool = True

    @field_validator("LOG_FORMAT", mode="before")
    @classmethod
    def _log_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("RESEND_LANGUAGE", mode="before")
    @classmethod
    def _language(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("POLICY_FILE", mode="before")
    @classmethod
    def _policy_file(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None  # blank means unset
        return value.strip() if isinstance(value, str) else value

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _log_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def secrets(self) -> list[str]:
        """Every secret value set, for the log redaction."""
        values = [self.SLACK_BOT_TOKEN, self.SLACK_APP_TOKEN, self.SLACK_SIGNING_SECRET]
        return [v.get_secret_value() for v in (*values, self.HOSTUP_API_KEY) if v is not None]

    @field_validator("APPROVERS", mode="before")
    @classmethod
    def _approvers(cls, value: object) -> tuple[str, ...]:
        ids = _id_list(value, allow_everyone=False)
        if not ids:
            raise ValueError("must name at least one Slack user ID or user-group ID")
        return ids

    @field_validator("REQUESTERS", mode="before")
    @classmethod
    def _requesters(cls, value: object) -> tuple[str, ...] | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return _id_list(value, allow_everyone=True)

    @field_validator("APPROVAL_CHANNEL")
    @classmethod
    def _channel(cls, value: str) -> str:
        value = value.strip()
        if not CHANNEL_ID_RE.match(value):
            raise ValueError("must be a channel ID such as C0123ABCD (not a #name)")
        return value

    @field_validator("SLACK_API_URL", "HOSTUP_API_URL")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an http(s) URL")
        if parts.username is not None or parts.password is not None:
            # It would be logged at start-up and shown when the service cannot be reached.
            raise ValueError(
                "must not carry a user name or password; secrets go in their own settings"
            )
        return value

    @field_validator("SLACK_API_URL")
    @classmethod
    def _slack_url_slash(cls, value: str) -> str:
        # slack_sdk joins base_url + method name, so the base must end in a slash.
        return value if value.endswith("/") else value + "/"

    @field_validator("SLACK_BOT_TOKEN")
    @classmethod
    def _bot_token(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return value

    @field_validator("SLACK_APP_TOKEN")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return value

    @field_validator("HOSTUP_API_KEY")
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("SLACK_SIGNING_SECRET")
    @classmethod
    def _signing_secret_in_http_mode(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            value = None  # blank means unset, as for SLACK_APP_TOKEN
        app_token_ok = "SLACK_APP_TOKEN" in info.data
        if value is None and app_token_ok and info.data["SLACK_APP_TOKEN"] is None:
            raise ValueError("is required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)")
        return value

    @property
    def socket_mode(self) -> bool:
        return self.SLACK_APP_TOKEN is not None

    @property
    def request_ttl(self) -> timedelta:
        return timedelta(seconds=self.REQUEST_TTL)

    @property
    def requesters(self) -> tuple[str, ...]:
        """Who may ask: REQUESTERS when set, else the approvers."""
        return self.REQUESTERS if self.REQUESTERS is not None else self.APPROVERS


def load_settings(**overrides: object) -> Settings:
    """Build Settings, turning validation errors into a SettingsError naming every setting.

    The messages never include the values given: a value may be a secret.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None


def load_store_settings(**overrides: object) -> StoreSettings:
    """Only DATABASE_URL, for commands that need nothing else."""
    try:
        return StoreSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None


def load_policy_settings(**overrides: object) -> PolicySettings:
    """POLICY_FILE, APPROVERS, APPROVALS_REQUIRED and REMIND_EVERY, for ``policy explain``."""
    try:
        return PolicySettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None


def describe_errors(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        name = ".".join(str(part) for part in error["loc"] if part != "__root__")
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            problems.append(f"{name}: is required but not set")
        elif name:
            problems.append(f"{name}: {message}")
        else:
            problems.append(message)
    return problems
