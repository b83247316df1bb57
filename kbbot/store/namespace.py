"""The Redis key namespace of one knowledgebase, so bots for different wikis can share one Redis.

Everything kbbot keeps in Redis for a knowledgebase (answer cache, single-flight, the 402 pause, dedupe,
feedback, the saved-thread map, queued saves) lives under one prefix. The composition root computes it once
per knowledgebase and hands it to the stores: two bots for two wikis on one Redis share nothing, and replicas
of one bot (same settings) share everything. The prefix is ``REDIS_PREFIX`` when set, else derived from what
makes a knowledgebase itself: the backend, its API base URL, its project and a fingerprint of its token (a
hash; never the token). The token is part of it because Perfect Wiki has one knowledgebase per token.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

from pydantic import SecretStr

if TYPE_CHECKING:
    from kbbot.config import Settings

ROOT = "kbbot:"


def fingerprint(secret: SecretStr | str | None) -> str:
    """A short non-reversible stand-in for ``secret`` (empty for none), safe to show and to put in keys."""
    if secret is None:
        return ""
    raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


def knowledgebase_namespace(
    backend: str,
    *,
    base_url: str | None = None,
    project: str | None = None,
    token: SecretStr | str | None = None,
    explicit: str | None = None,
) -> str:
    """``kbbot:<explicit>:`` or ``kbbot:<backend>-<16 hex digits>:``, always ending in ``:``."""
    if explicit:
        return f"{ROOT}{explicit.strip(':')}:"
    identity = json.dumps([backend, (base_url or "").rstrip("/").lower(), project or "", fingerprint(token)])
    return f"{ROOT}{backend}-{hashlib.sha256(identity.encode('utf-8')).hexdigest()[:16]}:"


def namespace_from_settings(settings: Settings) -> str:
    """The namespace of the knowledgebase ``settings`` select."""
    backend = settings.backend
    base_url: str | None
    project: str | None
    token: SecretStr | None
    if backend == "perfectwiki":
        base_url, project, token = settings.perfectwiki_base_url, None, settings.perfectwiki_api_token
    elif backend == "mathub":
        base_url, project, token = settings.mathub_base_url, settings.mathub_project, settings.mathub_api_key
    else:
        local = settings.local_kb_dir
        base_url, project, token = (local.resolve().as_uri() if local else "bundled-sample"), None, None
    return knowledgebase_namespace(
        backend, base_url=base_url, project=project, token=token, explicit=settings.redis_prefix
    )
