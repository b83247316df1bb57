"""``KBBOT_CONFIG``: several knowledgebases in one bot, and which channel asks which.

Without a file the environment configures one knowledgebase exactly as before (:func:`single`). With one
(``KBBOT_CONFIG``, else ``./kbbot.toml`` when it exists), each ``[knowledgebases.NAME]`` table becomes that
knowledgebase's own :class:`Settings`: the environment's settings minus every knowledgebase-specific one, plus
the table's. Secrets are never written in the file: ``api_token = "env:NAME"`` reads ``NAME`` from the
environment. Every mistake is one :class:`ConfigError` line naming the file, the table and the key::

    [knowledgebases.engineering]
    backend = "perfectwiki"
    api_token = "env:PW_ENG_TOKEN"

    [routes]
    default = "engineering"
    slack = { "C0ENG0001" = "engineering" }
    discord = { "123456789012345678" = "engineering" }
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kbbot.config import Settings, validation_problems
from kbbot.errors import ConfigError
from kbbot.store.namespace import fingerprint

DEFAULT_FILE = Path("kbbot.toml")
#: The name of the one knowledgebase the environment configures (no file).
ENV_NAME = "default"
SECRET_PREFIX = "env:"  # noqa: S105  (the marker of a secret reference, not a secret)
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")

#: Table key → Settings field, per backend (and for all). Nothing else is accepted in a table.
_COMMON = {
    "backend": "kb_backend",
    "save_tags": "save_default_tags",
    "page_max_chars": "page_max_chars",
    "cache_ttl_seconds": "cache_ttl_seconds",
    "cache_max_entries": "cache_max_entries",
    "quota_probe_seconds": "quota_probe_seconds",
    "search_min_relevance": "search_min_relevance",
    "ai_user_limit": "ai_user_limit",
    "ai_channel_daily_limit": "ai_channel_daily_limit",
    "index_refresh_seconds": "index_refresh_seconds",
    "redis_prefix": "redis_prefix",
}
_BY_BACKEND = {
    "perfectwiki": {
        "api_token": "perfectwiki_api_token",
        "base_url": "perfectwiki_base_url",
        "page_url_template": "perfectwiki_page_url_template",
        "rate_per_second": "perfectwiki_rate_per_second",
        "rate_per_minute": "perfectwiki_rate_per_minute",
        "ai_quota_monthly": "perfectwiki_ai_quota_monthly",
    },
    "mathub": {
        "api_key": "mathub_api_key",
        "base_url": "mathub_base_url",
        "project": "mathub_project",
        "page_url_template": "mathub_page_url_template",
        "writes_per_minute": "mathub_writes_per_minute",
    },
    "local": {"folder": "local_kb_dir"},
}
_SECRETS = frozenset({"api_token", "api_key"})
#: Settings that belong to one knowledgebase: never inherited from the environment by a table.
_OWN_FIELDS = frozenset(
    {"kb_backend", "redis_prefix"} | {f for keys in _BY_BACKEND.values() for f in keys.values()}
) - {"perfectwiki_ai_quota_monthly"}  # the plan's quota: PERFECTWIKI_AI_QUOTA_MONTHLY unless a table sets its own


@dataclass(frozen=True)
class Routes:
    """Which knowledgebase answers where: Slack channel ids, Discord channel/parent/guild ids, else ``default``."""

    default: str
    slack: Mapping[str, str] = field(default_factory=dict)
    discord: Mapping[str, str] = field(default_factory=dict)

    def targets(self) -> list[tuple[str, str]]:
        """(where, knowledgebase) for every route, for `kbbot check`."""
        return [
            ("routes.default", self.default),
            *((f"routes.slack.{k}", v) for k, v in self.slack.items()),
            *((f"routes.discord.{k}", v) for k, v in self.discord.items()),
        ]


@dataclass(frozen=True)
class Knowledgebases:
    """Every knowledgebase by name (file order) with its own settings, and the routes."""

    settings: Mapping[str, Settings]
    routes: Routes
    #: The file they came from; None: the environment's one knowledgebase.
    source: Path | None = None

    @property
    def named(self) -> bool:
        """From a file: answers, `/kb status` and metrics name the knowledgebase."""
        return self.source is not None

    def pick(self, name: str | None) -> str:
        """``--kb NAME`` (None: the default route). Raises ConfigError for a name that is not configured."""
        if name is None:
            return self.routes.default
        if name not in self.settings:
            where = f"in {self.source}" if self.source else "(no KBBOT_CONFIG file: the one knowledgebase is 'default')"
            raise ConfigError(f"--kb {name}: no knowledgebase of that name {where}; there are: {self.listing()}")
        return name

    def listing(self) -> str:
        return ", ".join(self.settings)

    def secrets(self) -> list[str]:
        return sorted({secret for s in self.settings.values() for secret in s.secrets()})

    def placeholders(self, settings: Settings) -> list[str]:
        """What still holds a template's placeholder (``replace-me``, ``example.com``), for `kbbot check`, never
        the values: the environment variables of ``settings`` (the bot's), and with a file each table's keys
        (``knowledgebases.NAME.KEY``, also for a secret its ``env:`` reference reads)."""
        if not self.named:
            return settings.placeholders()
        own = {f.upper() for f in _OWN_FIELDS}
        keys = {field.upper(): key for keys in (_COMMON, *_BY_BACKEND.values()) for key, field in keys.items()}
        found = [env for env in settings.placeholders() if env not in own]
        for name, kb in self.settings.items():
            found += [f"knowledgebases.{name}.{keys[env]}" for env in kb.placeholders() if env in own]
        return found


def single(settings: Settings) -> Knowledgebases:
    """The environment's one knowledgebase, as before there were files."""
    return Knowledgebases({ENV_NAME: settings}, Routes(default=ENV_NAME))


def config_path(settings: Settings) -> Path | None:
    """``KBBOT_CONFIG``, else ``./kbbot.toml`` when it exists, else None."""
    if settings.kbbot_config is not None:
        return settings.kbbot_config
    return DEFAULT_FILE if DEFAULT_FILE.is_file() else None


def load_knowledgebases(settings: Settings, environ: Mapping[str, str]) -> Knowledgebases:
    """The knowledgebases ``settings`` (and the file they name) configure; ``environ`` resolves ``env:`` secrets."""
    path = config_path(settings)
    if path is None:
        return single(settings)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"KBBOT_CONFIG {path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"KBBOT_CONFIG {path}: not UTF-8 text") from None
    return parse_knowledgebases(text, settings, environ, source=path)


def parse_knowledgebases(text: str, base: Settings, environ: Mapping[str, str], *, source: Path) -> Knowledgebases:
    """Validate a KBBOT_CONFIG file's text into :class:`Knowledgebases`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The message carries "(at line N, column M)".
        raise ConfigError(f"KBBOT_CONFIG {source}: not valid TOML: {exc}") from None
    problem = _Problems(source)
    problem.unknown(data, {"knowledgebases", "routes"}, "")
    tables = data.get("knowledgebases")
    if not isinstance(tables, dict) or not tables:
        raise problem("needs at least one [knowledgebases.NAME] table")
    settings: dict[str, Settings] = {}
    for name, table in tables.items():
        where = f"knowledgebases.{name}"
        if not _NAME.match(name):
            raise problem(f"[{where}]: a name is 1–40 letters, digits, '-' or '_'")
        if not isinstance(table, dict):
            raise problem(f"{where} must be a table ([{where}])")
        settings[name] = _knowledgebase(name, table, base, environ, problem)
    _one_quota_per_token(settings, problem)
    routes = _routes(data.get("routes", {}), settings, problem)
    return Knowledgebases(settings, routes, source)


def _one_quota_per_token(settings: Mapping[str, Settings], problem: _Problems) -> None:
    """Tables on one Perfect Wiki token draw on its one monthly AI quota and share its one 402 breaker: they
    must not disagree about the quota or about how often the breaker probes it."""
    firsts: dict[str, tuple[str, Settings]] = {}
    for name, s in settings.items():
        if s.backend != "perfectwiki":
            continue
        first, other = firsts.setdefault(fingerprint(s.perfectwiki_api_token), (name, s))
        for key in ("ai_quota_monthly", "quota_probe_seconds"):
            field_name = _BY_BACKEND["perfectwiki"].get(key) or _COMMON[key]
            if getattr(other, field_name) != getattr(s, field_name):
                raise problem(
                    f"[knowledgebases.{first}] and [knowledgebases.{name}] use one token, so one AI quota: "
                    f"give them the same {key}"
                )


class _Problems:
    """Builds the one-line errors, all starting with the file's name."""

    def __init__(self, source: Path) -> None:
        self.source = source

    def __call__(self, message: str) -> ConfigError:
        return ConfigError(f"KBBOT_CONFIG {self.source}: {message}")

    def unknown(self, table: Mapping[str, Any], allowed: set[str] | frozenset[str], where: str) -> None:
        extra = [key for key in table if key not in allowed]
        if extra:
            place = f"[{where}] " if where else ""
            raise self(f"{place}unknown key {extra[0]!r} (known: {', '.join(sorted(allowed))})")


def _knowledgebase(
    name: str, table: dict[str, Any], base: Settings, environ: Mapping[str, str], problem: _Problems
) -> Settings:
    where = f"knowledgebases.{name}"
    backend = table.get("backend")
    if "backend" not in table:
        raise problem(f'[{where}] needs backend = "perfectwiki", "mathub" or "local"')
    if backend not in _BY_BACKEND:
        raise problem(f"[{where}] backend = {backend!r}: unknown backend (use perfectwiki, mathub or local)")
    keys = {**_COMMON, **_BY_BACKEND[backend]}
    problem.unknown(table, set(keys), where)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key in _SECRETS:
            value = _secret(value, f"{where}.{key}", environ, problem)
        elif key == "folder" and isinstance(value, str):
            value = problem.source.parent / Path(value).expanduser()  # relative to the file, not to the cwd
        elif key == "save_tags" and isinstance(value, list):
            value = tuple(str(tag) for tag in value)
        values[keys[key]] = value
    # Every field given explicitly: validation would otherwise fill the missing ones from the environment
    # (another table's token must never leak in from PERFECTWIKI_API_TOKEN).
    inherited = {k: v for k, v in base.model_dump().items() if k not in _OWN_FIELDS}
    inherited.update({f: Settings.model_fields[f].default for f in _OWN_FIELDS})
    if base.redis_prefix and "redis_prefix" not in values:
        # REDIS_PREFIX names the bot; each of its knowledgebases still needs its own keys under it.
        values["redis_prefix"] = f"{base.redis_prefix}.{name}"
    values["kbbot_data_dir"] = base.kbbot_data_dir / "knowledgebases" / name
    try:
        return Settings.model_validate({**inherited, **values})
    except ValidationError as exc:
        raise problem(f"[{where}] {_describe(exc, keys)}") from None


def _secret(value: Any, where: str, environ: Mapping[str, str], problem: _Problems) -> str:
    if not isinstance(value, str) or not value.startswith(SECRET_PREFIX):
        # Not even a hint of the value in the message: it may be a real token pasted by mistake.
        raise problem(f'{where}: write "env:NAME" and put the secret in the environment variable NAME, never inline')
    variable = value.removeprefix(SECRET_PREFIX).strip()
    secret = environ.get(variable, "").strip()
    if not variable or not secret:
        raise problem(f"{where}: environment variable {variable or '(no name)'} is not set")
    return secret


def _describe(exc: ValidationError, keys: Mapping[str, str]) -> str:
    by_field = {f: k for k, f in keys.items()}
    problems = []
    for name, message in validation_problems(exc):
        if name is not None:
            problems.append(f"{by_field.get(name, name)}: {message}")
        else:
            # Settings' own cross-field messages speak of environment variables; name the table's keys.
            message = message.replace("PERFECTWIKI_API_TOKEN", "api_token").replace("MATHUB_API_KEY", "api_key")
            message = message.replace("MATHUB_BASE_URL", "base_url").replace("MATHUB_PROJECT", "project")
            problems.append(message.replace("KB_BACKEND=", "backend = "))
    return "; ".join(problems)


def _routes(raw: Any, settings: Mapping[str, Settings], problem: _Problems) -> Routes:
    if not isinstance(raw, dict):
        raise problem("routes must be a table ([routes])")
    problem.unknown(raw, {"default", "slack", "discord"}, "routes")
    names = ", ".join(settings)

    def target(where: str, value: Any) -> str:
        if not isinstance(value, str) or value not in settings:
            raise problem(f"{where} = {value!r}: no knowledgebase of that name (there are: {names})")
        return value

    default = target("routes.default", raw.get("default", next(iter(settings))))
    platforms: dict[str, dict[str, str]] = {}
    for platform, id_pattern in (("slack", r"^[A-Z0-9]{9,11}$"), ("discord", r"^[0-9]{15,21}$")):
        table = raw.get(platform, {})
        if not isinstance(table, dict):
            raise problem(f"routes.{platform} must be a table of id = \"knowledgebase\"")
        for place, value in table.items():
            kind = "a Slack channel id like C0123ABCD" if platform == "slack" else "a Discord channel or server id"
            if not re.match(id_pattern, place):
                raise problem(f"routes.{platform}.{place}: not {kind}")
            target(f"routes.{platform}.{place}", value)
        platforms[platform] = dict(table)
    return Routes(default=default, slack=platforms["slack"], discord=platforms["discord"])
