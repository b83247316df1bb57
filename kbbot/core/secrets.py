"""Secrets never reach the wiki: tokens, keys and passwords in a thread are masked before its page is written.

Detection is detect-secrets' own regex detectors (AWS, GitHub, GitLab, Slack, Discord, Stripe, JWT, private
keys, passwords in URLs, npm, PyPI, OpenAI, SendGrid, Twilio, …) — its entropy and keyword detectors are left
out, because chat is full of hashes and the word "password" — plus the formats it does not know: Slack's newer
tokens (``xoxe-``, ``xoxe.xoxp-``, ``xapp-``, ``xoxc-``/``xoxd-``), Discord tokens of the current length,
GitHub fine-grained tokens, Google Cloud API keys and OAuth tokens, whole JWTs, and whole private key blocks
(the detector only finds their first line).

Slack export file links carry the exporter's access token as a query parameter (``…?t=xoxe-…``); that parameter
is removed outright (the link still opens for anyone signed in to Slack) rather than masked.

Every replacement is counted, so the page and the reply can say how many were masked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cache

from kbbot.core.models import Attachment, Thread, ThreadMessage

__all__ = ["MASK", "Masked", "mask_text", "mask_thread", "strip_link_tokens"]

#: What a secret is replaced with: plain text, readable in HTML and Markdown, never a link.
MASK = "[secret masked]"

#: detect-secrets modules whose detectors are pure token-format regexes (no keyword or entropy guessing).
#: Artifactory's is left out too: "AP" + 9 letters matches plain words in chat ("APACHEKAFKA").
_DETECTOR_MODULES = (
    "aws", "azure_storage_key", "discord", "github_token", "gitlab_token", "jwt",
    "mailchimp", "npm", "openai", "private_key", "pypi_token", "sendgrid", "slack", "square_oauth", "stripe",
    "telegram_token", "twilio",
)

_OWN_PATTERNS = (
    # Whole PEM/OpenSSH/PGP private key blocks (an unterminated block is masked to the end of the text).
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY"
    r"(?: BLOCK)?-----|\Z)",
    # Slack: bot/user/refresh/config/session tokens (xoxb, xoxp, xoxe, xoxe.xoxp, xoxc, xoxd …) and app tokens.
    # (A digit is required: every Slack token has one, "xoxo-see-you-all" has none.)
    r"\bxox[abcdeoprs](?:\.xox[a-z])?-(?=[A-Za-z%-]*\d)[A-Za-z0-9%-]{8,}",
    r"\bxapp-\d-[A-Za-z0-9]+-\d+-[A-Za-z0-9]+",
    # Discord bot tokens: base64 user id . timestamp . HMAC (ids grew past detect-secrets' 23–25 characters).
    r"\b[MNO][A-Za-z\d_-]{23,27}\.[A-Za-z\d_-]{6}\.[A-Za-z\d_-]{27,38}\b",
    # Passwords in URLs (``https://user:pass@host``): the credentials, not the host.
    r"(?<=://)[^:@/\s]+:[^@/\s]+(?=@)",
    # JWTs, all three parts (detect-secrets' own pattern stops lazily after the second).
    r"\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+",
    # GitHub fine-grained personal access tokens (detect-secrets knows only the ghp_/gho_… family).
    r"\bgithub_pat_[A-Za-z0-9_]{22,255}",
    # Google Cloud: API keys and OAuth access tokens.
    r"\bAIza[0-9A-Za-z_-]{35}",
    r"\bya29\.[0-9A-Za-z_-]{20,}",
)

# ``?t=xoxe-…`` / ``&t=xoxe-…`` in a link: drop the parameter (and its separator) entirely.
_LINK_TOKEN = re.compile(r"([?&])t=xox[a-z][^&#\s)>\]|\"']*(&?)")


@dataclass(frozen=True, slots=True)
class Masked:
    """A thread with its secrets masked, and how many were."""

    thread: Thread
    count: int


@cache
def _patterns() -> tuple[re.Pattern[str], ...]:
    """Compiled once, lazily: importing detect-secrets' plugins costs ~50 ms, not worth paying at CLI start."""
    from importlib import import_module

    from detect_secrets.plugins.base import RegexBasedDetector

    found: list[re.Pattern[str]] = [re.compile(p) for p in _OWN_PATTERNS]
    for name in _DETECTOR_MODULES:
        module = import_module(f"detect_secrets.plugins.{name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, RegexBasedDetector)
                and value is not RegexBasedDetector
                and value.__module__ == module.__name__
            ):
                found.extend(value().denylist)
    return tuple(found)


def strip_link_tokens(text: str) -> tuple[str, int]:
    """Remove ``t=xox…`` access-token parameters from every link in ``text``; and how many there were."""
    stripped, found = _strip(text)
    return stripped, len(found)


def mask_text(text: str) -> tuple[str, int]:
    """``text`` with link tokens stripped and every secret replaced by :data:`MASK`; and how many distinct
    secrets there were."""
    masked, found = _mask(text)
    return masked, len(found)


def mask_thread(thread: Thread, title: str | None = None) -> tuple[Masked, str | None]:
    """The thread (and a requested ``title``) with secrets masked in every message, attachment and hint.

    The count is of distinct secrets: one token pasted in three messages (and again in the title derived from
    the first) is one secret to rotate."""
    found: set[str] = set()

    def mask(value: str) -> str:
        masked, seen = _mask(value)
        found.update(seen)
        return masked

    messages = tuple(_mask_message(message, mask) for message in thread.messages)
    hint = mask(thread.title_hint) if thread.title_hint else thread.title_hint
    title = mask(title) if title else title
    if not found:
        return Masked(thread, 0), title
    # A title cut to length holds the start of a secret the message holds whole: that is not another one.
    distinct = {s for s in found if not any(s != other and s in other for other in found)}
    return Masked(replace(thread, messages=messages, title_hint=hint), len(distinct)), title


def _strip(text: str) -> tuple[str, set[str]]:
    if "t=xox" not in text:
        return text, set()
    found = {m.group(0).lstrip("?&").rstrip("&") for m in _LINK_TOKEN.finditer(text)}
    return _LINK_TOKEN.sub(_drop_token, text), found


def _drop_token(match: re.Match[str]) -> str:
    # "?t=…&a=1" → "?a=1", "?t=…" → "", "&t=…&a=1" → "&a=1", "&t=…" → "".
    return match.group(1) if match.group(2) else ""


def _spans(text: str, patterns: Iterable[re.Pattern[str]]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for pattern in patterns:
        for match in pattern.finditer(text):
            start, end = match.span()
            if end > start:
                spans.append((start, end))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _mask(text: str) -> tuple[str, set[str]]:
    stripped, found = _strip(text)
    spans = _spans(stripped, _patterns())
    if not spans:
        return stripped, found
    out: list[str] = []
    pos = 0
    for start, end in spans:
        out.append(stripped[pos:start])
        out.append(MASK)
        found.add(stripped[start:end])
        pos = end
    out.append(stripped[pos:])
    return "".join(out), found


def _mask_message(message: ThreadMessage, mask: Callable[[str], str]) -> ThreadMessage:
    text = mask(message.text)
    attachments = tuple(_mask_attachment(item, mask) for item in message.attachments)
    if text == message.text and attachments == message.attachments:
        return message
    return replace(message, text=text, attachments=attachments)


def _mask_attachment(item: Attachment, mask: Callable[[str], str]) -> Attachment:
    url = mask(item.url)
    if MASK in url:  # a link that still held a secret is not worth keeping: show the file's name only
        url = ""
    return Attachment(name=mask(item.name), url=url)
