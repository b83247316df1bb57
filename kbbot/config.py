"""Settings: every environment variable kbbot reads, read once at startup and passed in.

Only :func:`load_settings` and :func:`environment` (called by the one startup function in ``kbbot.cli``) touch
the environment; every other module receives a :class:`Settings` or the plain values it needs. Secrets are
``SecretStr`` so that they never show up in a repr, a log line or an error message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from platformdirs import user_data_dir
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from kbbot.errors import ConfigError

Backend = Literal["perfectwiki", "mathub", "local"]

#: Settings whose env var is a comma list ("a, b,c") rather than JSON.
CommaList = Annotated[tuple[str, ...], NoDecode]
CommaIntList = Annotated[tuple[int, ...], NoDecode]


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    """Every setting, with the default a fresh install should have. See ``.env.example``."""

    # env_ignore_empty: a blank variable in the environment is unset, so a value in .env still applies.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    # --- which knowledgebase -------------------------------------------------------------------
    #: A TOML file of several knowledgebases and their routes (kbbot.knowledgebases); unset: ./kbbot.toml when
    #: it exists, else the variables below configure the one knowledgebase.
    kbbot_config: Path | None = None
    kb_backend: Backend | None = None

    perfectwiki_api_token: SecretStr | None = None
    perfectwiki_base_url: str = "https://api.perfectwiki.xyz/api"
    perfectwiki_page_url_template: str | None = None
    #: Rate limits of the token (the API's defaults; enterprise plans may be higher).
    perfectwiki_rate_per_second: int = Field(10, ge=1)
    perfectwiki_rate_per_minute: int = Field(60, ge=1)

    mathub_api_key: SecretStr | None = None
    mathub_base_url: str | None = None
    mathub_project: str | None = None
    mathub_page_url_template: str | None = None
    mathub_writes_per_minute: int = Field(5, ge=1)

    local_kb_dir: Path | None = None
    #: Per-user by default (~/.local/share/kbbot on Linux), so the bot finds its saved pages and queued saves
    #: whatever directory it is started from.
    kbbot_data_dir: Path = Field(default_factory=lambda: Path(user_data_dir("kbbot", appauthor=False)))

    # --- the question pipeline -----------------------------------------------------------------
    cache_ttl_seconds: int = Field(21600, ge=0)
    cache_max_entries: int = Field(10000, ge=1)
    quota_probe_seconds: int = Field(3600, ge=1)
    question_max_chars: int = Field(2000, ge=10)
    request_timeout_seconds: float = Field(30.0, gt=0)
    index_refresh_seconds: int = Field(900, ge=0)
    #: Who ranks search results: SQLite FTS5 (built in) or tantivy (``pip install 'kbbot[tantivy]'``), which
    #: stays fast on wikis of tens of thousands of pages (see README, Performance).
    search_engine: Literal["sqlite", "tantivy"] = "sqlite"
    #: Search answers (no AI) below this relevance (0–1) say "I couldn't find this in the wiki" and link the
    #: pages that may be related; auto-answer channels stay quiet below the second, higher one. The defaults
    #: are kbbot.search.answerer's, calibrated on benchmarks/answers.
    search_min_relevance: float = Field(0.62, ge=0, le=1)
    auto_answer_min_relevance: float = Field(0.8, ge=0, le=1)
    #: Billed AI answers per person (``limits`` syntax, ``off`` for none); over it they get the search answer.
    ai_user_limit: str = "5/minute;40/day"
    #: Billed AI answers per channel and day (unset: no channel budget).
    ai_channel_daily_limit: int | None = Field(None, ge=1)

    # --- saving threads ------------------------------------------------------------------------
    save_default_tags: CommaList = ()
    page_max_chars: int = Field(400_000, ge=10_000)

    # --- shared state --------------------------------------------------------------------------
    redis_url: SecretStr | None = None
    #: Names this bot's keys in Redis (``kbbot:<REDIS_PREFIX>:…``); unset: derived from the knowledgebase.
    redis_prefix: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,64}$")

    # --- Slack ---------------------------------------------------------------------------------
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    # --- Discord -------------------------------------------------------------------------------
    discord_bot_token: SecretStr | None = None
    discord_guild_ids: CommaIntList = ()
    discord_save_roles: CommaList = ()
    discord_auto_channels: CommaIntList = ()
    discord_shard_count: int | None = Field(None, ge=1)
    #: Servers the bot serves (default: DISCORD_GUILD_IDS); in any other it answers nothing and leaves.
    discord_allowed_guilds: CommaIntList = ()
    #: /save-thread and "Save thread to wiki"; needs the privileged Message Content intent.
    discord_save_threads: bool = True
    #: When the portal's Message Content switch is off: false = run without saving, true = refuse to start.
    discord_require_message_content: bool = False
    #: Discord REST base (change only for testing: the gateway URL is then taken from its /gateway/bot).
    discord_api_url: str | None = None

    # --- knowledge gaps, AI quota, admin dashboard ------------------------------------------------
    #: Days question outcomes (what `kbbot gaps` and the dashboard show) are kept.
    gaps_retention_days: int = Field(90, ge=1, le=3650)
    #: Billed AI calls the Perfect Wiki plan allows a month: enables the run-out forecast and the 80 % warning.
    perfectwiki_ai_quota_monthly: int | None = Field(None, ge=1)
    #: Password of `GET /admin` (HTTP Basic, user `admin`); blank = no dashboard (404).
    kbbot_admin_token: SecretStr | None = None
    #: Slack user ids allowed to run `/kb gaps` (comma list); blank = nobody.
    slack_admin_users: CommaList = ()
    #: Weekly digest of the top gaps (Mondays, UTC), posted to this Slack channel id and/or Discord channel id.
    gaps_digest_slack_channel: str | None = None
    gaps_digest_discord_channel: int | None = Field(None, ge=1)

    # --- HTTP server, logging ------------------------------------------------------------------
    http_host: str = "127.0.0.1"
    http_port: int = Field(3000, ge=0, le=65535)
    #: Serve /readyz and /metrics on this port instead of HTTP_PORT (keep it internal); blank = on HTTP_PORT.
    ops_port: int | None = Field(None, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    #: SIGTERM → exit within this many seconds, everything included (orchestrators kill at 30 s).
    shutdown_grace_seconds: float = Field(20.0, ge=5, le=600)

    _split = field_validator(
        "save_default_tags",
        "discord_guild_ids",
        "discord_save_roles",
        "discord_auto_channels",
        "discord_allowed_guilds",
        "slack_admin_users",
        mode="before",
    )(_split_commas)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, values: Any) -> Any:
        # "KB_BACKEND=" (blank, as in a copied .env.example) means the default, exactly as if the line were
        # absent; whitespace-only counts as blank too (an invisible trailing space must not be an error).
        if isinstance(values, dict):
            return {k: v for k, v in values.items() if not (isinstance(v, str) and not v.strip())}
        return values

    @field_validator("perfectwiki_api_token", "mathub_api_key")
    @classmethod
    def _sendable_token(cls, value: SecretStr | None) -> SecretStr | None:
        # It travels in an HTTP header, which carries printable ASCII only: anything else (a stray space or
        # newline, a look-alike letter) would fail on every request, with an error that quotes the character.
        if value is not None and not all("!" <= char <= "~" for char in value.get_secret_value()):
            raise ValueError("contains a space, line break or non-ASCII character; copy the token again")
        return value

    @field_validator("ai_user_limit")
    @classmethod
    def _limit_syntax(cls, value: str) -> str:
        from kbbot.store.ai_budget import parse_limit

        try:
            parse_limit(value)
        except ValueError:
            raise ValueError("use e.g. 5/minute;40/day (or off)") from None
        return value

    @field_validator("gaps_digest_slack_channel")
    @classmethod
    def _slack_channel_id(cls, value: str | None) -> str | None:
        # People write the name they see ("#general"); the API needs the id, and pydantic's own message
        # would only quote the regular expression.
        if value is not None and not re.fullmatch(r"[CGD][A-Z0-9]{8,12}", value):
            raise ValueError(
                "needs the channel's id, like C0123ABCDE, not its name "
                "(Slack: channel name → About → Channel ID at the bottom)"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("perfectwiki_base_url", "mathub_base_url", "slack_api_url", "discord_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        # slack_sdk joins method names onto base_url and needs the trailing slash.
        return value + "/"

    @model_validator(mode="after")
    def _backend_has_credentials(self) -> Settings:
        backend = self.backend
        if backend == "perfectwiki" and self.perfectwiki_api_token is None:
            raise ValueError(
                "KB_BACKEND=perfectwiki needs PERFECTWIKI_API_TOKEN "
                "(Perfect Wiki admin panel → API Access → Generate API Key)"
            )
        if backend == "mathub":
            missing = [
                name
                for name, value in (
                    ("MATHUB_API_KEY", self.mathub_api_key),
                    ("MATHUB_BASE_URL", self.mathub_base_url),
                    ("MATHUB_PROJECT", self.mathub_project),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"KB_BACKEND=mathub needs {', '.join(missing)}")
        return self

    @property
    def backend(self) -> Backend:
        """The knowledgebase in use: KB_BACKEND, else the first one with credentials, else ``local``."""
        if self.kb_backend is not None:
            return self.kb_backend
        if self.perfectwiki_api_token is not None:
            return "perfectwiki"
        if self.mathub_api_key is not None:
            return "mathub"
        return "local"

    @property
    def discord_guild_allowlist(self) -> tuple[int, ...]:
        """The servers the Discord bot serves: DISCORD_ALLOWED_GUILDS, else DISCORD_GUILD_IDS; empty = any."""
        return self.discord_allowed_guilds or self.discord_guild_ids

    def secrets(self) -> list[str]:
        """Every configured secret value, so that log redaction can scrub them."""
        values = (
            self.perfectwiki_api_token,
            self.mathub_api_key,
            self.redis_url,
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.discord_bot_token,
            self.kbbot_admin_token,
        )
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


    def placeholders(self) -> list[str]:
        """Names of the variables still holding a template's placeholder (``replace-me``, ``xoxb-your-token``,
        ``https://your-mathub.com/…``), for ``kbbot check``. Never the values: a false alarm on a real token
        must not print it."""
        found = []
        for name, value in self:
            values = value if isinstance(value, tuple) else (value,)
            for item in values:
                text = item.get_secret_value() if isinstance(item, SecretStr) else item
                if isinstance(text, str) and looks_like_placeholder(text):
                    found.append(name.upper())
                    break
        return found


_PLACEHOLDER_WORDS = frozenset(
    {
        "changeme", "change-me", "change_me", "replaceme", "replace-me", "replace_me", "replace_this", "todo",
        "tbd", "fixme", "placeholder", "dummy", "secret", "token", "password", "none", "null",
    }
)
_PLACEHOLDER_PATTERN = re.compile(
    r"""(?ix)
    ^(?: x{3,} | \*{3,} | \.{3} | <[^>]*> | \{\{.*\}\} | \$\{[^}]*\} )$   # xxx, ***, ..., <token>, {{x}}, ${VAR}
    | (?: ^ | [-_/.:@] ) (?: your [-_]? | replace [-_] | change [-_] ) (?: me | this | here | token | key
        | secret | api | bot | signing | app | wiki | mathub | project | domain | company | workspace | team | host )
    | :// (?: [^/]* \. )? example \. (?: com | org | net ) (?: [:/] | $ )    # RFC 2606 example domains
    """
)


def looks_like_placeholder(value: str) -> bool:
    """Whether ``value`` is a template's stand-in rather than a real setting."""
    text = value.strip()
    return text.lower() in _PLACEHOLDER_WORDS or bool(_PLACEHOLDER_PATTERN.search(text))


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (and ``.env``) once. Raises :class:`ConfigError` naming the variable to fix."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except UnicodeDecodeError as exc:
        # pydantic-settings reads ./.env as UTF-8; a file saved as UTF-16 or Latin-1 was a traceback.
        raise ConfigError(
            f".env is not UTF-8 text (byte {exc.start}); save it as UTF-8 and run again"
        ) from None


def environment() -> dict[str, str]:
    """Where KBBOT_CONFIG's ``env:NAME`` secrets are looked up: the process environment over ``./.env``, the
    precedence every setting has, so a token kept in .env (as .env.example suggests) is found too."""
    from dotenv import dotenv_values

    merged = dict(os.environ)
    for name, value in dotenv_values(".env", encoding="utf-8").items():
        # As for settings, a blank variable in the environment does not hide the file's value.
        if value and not merged.get(name, "").strip():
            merged[name] = value
    return merged


def validation_problems(exc: ValidationError) -> Iterator[tuple[str | None, str]]:
    """What pydantic found wrong: each problem's field (None: a check across fields) and its message."""
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ()) if not str(part).isdigit()]
        yield (location[0] if location else None), str(error.get("msg", "invalid")).removeprefix("Value error, ")


def _describe(exc: ValidationError) -> str:
    problems = [
        f"{field.upper()}: {message} (fix it in the environment or .env)" if field else message
        for field, message in validation_problems(exc)
    ]
    return "invalid settings: " + "; ".join(problems)
