"""The messages imported so far for each conversation, so a later import adds to a page instead of replacing it.

A page is rewritten from the thread it is given. An export holds only what it was asked for: a
DiscordChatExporter part (``Channel [part 2].json``), an export of another date range, a Slack import with
``--since``. Saving any of those alone would replace the earlier messages on the page. So every import is first
merged here with what earlier imports of the same conversation held — one copy per message id, the newer copy
winning (it may carry an edit) — and the union is what gets saved.

One JSON file per conversation under ``KBBOT_DATA_DIR/imports/`` (0600, folder 0700: it holds chat text),
written atomically so a crash never leaves half a file. A file that cannot be read is set aside (renamed
``*.damaged``) rather than silently dropped, and the import goes on with what it has.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kbbot.core.models import Attachment, Thread, ThreadMessage
from kbbot.formats.merge import Merged, merge_threads

__all__ = ["TranscriptArchive"]

log = logging.getLogger(__name__)


class TranscriptArchive:
    """Imported messages per conversation, in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def merge(self, thread: Thread, *, write: bool = True) -> Merged:
        """``thread`` with the messages earlier imports held and this one lacks; recorded unless ``write`` is
        False (a dry run). Messages without ids (plain-text transcripts) are saved as given."""
        if not all(m.id for m in thread.messages):
            return Merged(thread, 0)
        path = self._path(thread)
        merged = merge_threads(self._load(path), thread)
        if write:
            self._store(path, merged.thread)
        return merged

    def _path(self, thread: Thread) -> Path:
        digest = hashlib.sha256(f"{thread.platform}:{thread.key}".encode()).hexdigest()[:40]
        return self.folder / f"{digest}.json"

    def _load(self, path: Path) -> list[ThreadMessage]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return [_message(item) for item in data["messages"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = path.with_suffix(".damaged")
            with contextlib.suppress(OSError):
                path.replace(aside)
            log.warning("import archive %s could not be read (%s); set aside as %s", path.name, exc, aside.name)
            return []

    def _store(self, path: Path, thread: Thread) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        payload = {
            "platform": thread.platform,
            "key": thread.key,
            "messages": [asdict(m) for m in thread.messages],
        }
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)


def _message(item: dict[str, Any]) -> ThreadMessage:
    attachments = tuple(Attachment(str(a["name"]), str(a["url"])) for a in item.get("attachments") or ())
    return ThreadMessage(
        author_name=str(item["author_name"]),
        author_id=str(item["author_id"]),
        timestamp=str(item["timestamp"]),
        text=str(item["text"]),
        attachments=attachments,
        edited=bool(item.get("edited")),
        deleted=bool(item.get("deleted")),
        id=str(item.get("id") or ""),
    )
