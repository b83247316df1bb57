"""Logging setup: text or JSON lines, a request id per handled event, and secrets scrubbed from every line.

Redaction happens where every record is born (the log record factory) and again in our handler's filter, so
it covers records from every logger (ours, httpx, slack_sdk, discord.py, aiohttp) and every handler, and it
scrubs the final text: the formatted message with its arguments, the exception traceback and the stack. A
record leaves the factory with its arguments already merged, so no handler can fail formatting it and dump
the raw arguments to stderr. Besides every configured secret (``Settings.secrets()``)
it removes things that look like credentials even when they are not configured here: ``Bearer …`` headers,
Slack ``xox?-``/``xapp-`` tokens, Discord bot tokens and passwords in ``scheme://user:password@host`` URLs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any, Literal
from urllib.parse import quote

REDACTED = "[REDACTED]"

#: The id of the event being handled (Slack event_id, Discord interaction id, or a fresh one); asyncio tasks
#: inherit it, so every line logged while answering one question carries the same id.
request_id_var: ContextVar[str | None] = ContextVar("kbbot_request_id", default=None)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    (re.compile(r"\bxox[a-z]-[A-Za-z0-9-]{6,}"), REDACTED),
    (re.compile(r"\bxapp-[A-Za-z0-9-]{6,}"), REDACTED),
    # Discord bot tokens: base64(user id) . timestamp . HMAC
    (re.compile(r"\b[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,40}\b"), REDACTED),
    # user:password@ in URLs (REDIS_URL, proxies)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@"), rf"\1{REDACTED}@"),
    # Slack response_url / incoming webhook secrets: hooks.slack.com/commands/T…/123/<secret> (also actions,
    # services, workflows), plain or URL-encoded (a form body); anyone holding one can post as the app.
    (
        re.compile(r"(?i)((?:/|%2F)(?:commands|actions|services|workflows|triggers)(?:/|%2F)[A-Z0-9_]+"
                   r"(?:/|%2F)[A-Z0-9_]+(?:/|%2F))[A-Za-z0-9_-]+"),
        rf"\1{REDACTED}",
    ),
    # ...and whatever URL a "response_url" key or parameter holds, whatever its shape.
    (re.compile(r"""(response_url\\?["']?\s*(?:[:=]|=>)\s*\\?["']?)[^"'\\&\s,}]+"""), rf"\1{REDACTED}"),
)

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and goes into JSON output.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message", "asctime", "request_id", "rid", "_kbbot_scrubbed"
}


class Redactor:
    """Replaces every secret value (and its URL-encoded form) and every credential-looking pattern."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            variants.add(secret)
            variants.add(quote(secret, safe=""))
            variants.add(json.dumps(secret)[1:-1])  # as it appears inside a JSON string
        # Longest first, so a secret containing another secret is removed whole.
        ordered = sorted(variants, key=len, reverse=True)
        self._secrets = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None

    def __call__(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(REDACTED, text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


def scrub(record: logging.LogRecord, redact: Redactor) -> None:
    """Merge the arguments into the message and redact message, traceback, stack and string extras."""
    if not hasattr(record, "request_id"):
        record.request_id = request_id_var.get()
    if getattr(record, "_kbbot_scrubbed", None) is redact:
        return
    try:
        message = record.getMessage()
    except Exception:  # a bad format string must not hide the line, nor leak its arguments raw
        message = f"{record.msg!s} (unformattable log arguments)"
    record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    for name, value in list(vars(record).items()):
        if name not in _STANDARD_ATTRS and isinstance(value, str):
            setattr(record, name, redact(value))
    record._kbbot_scrubbed = redact


class RedactingFilter(logging.Filter):
    """Scrubs a record in place before our formatter sees it; also stamps the current request id."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        scrub(record, self._redact)
        return True


def _install_record_factory(redact: Redactor) -> None:
    current = logging.getLogRecordFactory()
    base = getattr(current, "_kbbot_base", current)  # re-setup replaces our wrapper, never stacks it

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        scrub(record, redact)
        return record

    factory._kbbot_base = base  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extra fields, exception."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self._redact = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRS and name not in data:
                data[name] = value if isinstance(value, int | float | bool | type(None)) else str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = record.stack_info
        # Belt and braces: extras stringified above never went through the filter's str() check.
        return self._redact(json.dumps(data, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    """``time level logger [request id] message``; the request id is left out when there is none."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(rid)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None) or request_id_var.get()
        record.rid = f" [{rid}]" if rid else ""
        return super().format(record)


def setup_logging(
    level: str = "INFO",
    fmt: Literal["text", "json"] = "text",
    secrets: Iterable[str] = (),
    *,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Configure the root logger once at startup. Returns the handler (tests read its stream).

    Replaces earlier handlers on the root logger, so calling it twice does not double every line.
    """
    redactor = Redactor(secrets)
    _install_record_factory(redactor)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(RedactingFilter(redactor))
    handler.setFormatter(JsonFormatter(redactor) if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_kbbot", False):
            root.removeHandler(old)
    handler._kbbot = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries that log request headers at DEBUG stay at INFO unless asked for explicitly.
    for noisy in ("httpx", "httpcore", "hpack", "websockets", "discord.gateway", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
    # slack_sdk says "A retry handler found: …" at INFO on every retried call; kbbot logs its own line per retry
    # (adapters/slack/service.py), so theirs only shows at LOG_LEVEL=DEBUG.
    for retrying in ("slack_sdk.web", "slack_sdk.webhook"):
        logging.getLogger(retrying).setLevel(logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING)
    logging.captureWarnings(True)
    return handler


def new_request_id() -> str:
    return uuid.uuid4().hex[:12]


@contextlib.contextmanager
def request_context(request_id: str | None = None) -> Iterator[str]:
    """Tag every log line inside the block (and tasks it starts) with ``request_id`` (a fresh one if None).

    Adapters wrap the handling of one platform event: ``with request_context(event_id): ...``.
    """
    rid = _clean_id(request_id) if request_id else new_request_id()
    token = request_id_var.set(rid)
    try:
        yield rid
    finally:
        request_id_var.reset(token)


def _clean_id(value: str) -> str:
    # Platform ids are short ASCII; anything else (newlines, huge strings) must not forge or bloat log lines.
    cleaned = re.sub(r"[^A-Za-z0-9_.:-]", "", value)[:64]
    return cleaned or new_request_id()
