"""Which export a path is, read whole: a Slack workspace export, or DiscordChatExporter files.

``kbbot import`` calls :func:`read_export`; the result holds one Thread per page to write and every problem met
(a damaged file is reported and skipped, never the end of the import).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from kbbot.core.models import Thread
from kbbot.errors import ExportError
from kbbot.formats.discord_export import is_discord_export, parse_discord_export
from kbbot.formats.slack_export import MAX_FILE_BYTES, is_slack_export, read_slack_export

__all__ = ["ExportBatch", "read_export"]

Progress = Callable[[int, int], None]


@dataclass
class ExportBatch:
    kind: str  # "slack" | "discord"
    threads: list[Thread] = field(default_factory=list)
    files_read: int = 0
    problems: list[str] = field(default_factory=list)


def read_export(
    path: Path,
    *,
    channels: Collection[str] = (),
    since: date | None = None,
    until: date | None = None,
    progress: Progress | None = None,
) -> ExportBatch:
    """Read ``path``: a Slack export (zip or folder with ``channels.json``/``users.json``), one
    DiscordChatExporter ``.json`` file, or a folder of them. Raises :class:`ExportError` when it is neither."""
    if not path.exists():
        raise ExportError(f"{path} does not exist")
    if is_slack_export(path):
        slack = read_slack_export(path, channels=channels, since=since, until=until, progress=progress)
        return ExportBatch("slack", slack.threads, slack.files_read, slack.problems)
    if path.is_dir():
        files = sorted(path.rglob("*.json"))
    elif path.suffix.lower() == ".json":
        files = [path]
    else:
        raise ExportError(
            f"{path} is not a Slack export (a zip or folder with channels.json and users.json) "
            "nor DiscordChatExporter JSON"
        )
    return _discord(files, channels, since, until, progress)


def _discord(
    files: list[Path], wanted: Collection[str], since: date | None, until: date | None, progress: Progress | None
) -> ExportBatch:
    batch = ExportBatch("discord")
    # Parts of one channel ("general [part 2].json") share the channel id: their messages are read as one
    # export (file-name order), so no part replaces another and a reply in part 2 finds its message in part 1.
    by_channel: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for done, file in enumerate(files, start=1):
        try:
            data = _load(file, single=len(files) == 1)
        except _Skip as skip:
            if skip.reason:
                batch.problems.append(f"{file}: skipped, {skip.reason}")
            continue
        finally:
            if progress is not None:
                progress(done, len(files))
        channel = data.get("channel") if isinstance(data.get("channel"), dict) else {}
        assert isinstance(channel, dict)
        channel_id = str(channel.get("id") or file.stem)
        by_channel.setdefault(channel_id, []).append((file, data))
    wanted_keys = {w.strip().lstrip("#") for w in wanted}
    found_names: set[str] = set()
    for channel_id, parts in by_channel.items():
        first = parts[0][1]
        joined = {**first, "messages": [m for _, data in parts for m in data["messages"]]}
        try:
            thread = parse_discord_export(joined, str(parts[0][0]), since=since, until=until)
        except ExportError as exc:
            batch.problems.append(f"{', '.join(str(f) for f, _ in parts)}: skipped, {exc}")
            continue
        batch.files_read += len(parts)
        names = {channel_id, thread.channel_name or ""}
        found_names |= names
        if wanted_keys and not wanted_keys & names:
            continue
        if thread.messages:
            batch.threads.append(thread)
    missing = wanted_keys - found_names
    if missing:
        listed = ", ".join(sorted(n for n in found_names if n)[:20]) or "none"
        raise ExportError(f"there is no channel {sorted(missing)[0]!r} in these exports (channels: {listed})")
    return batch


class _Skip(Exception):
    """This file is not imported; ``reason`` says why ("" for a JSON file that is simply not an export)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _load(file: Path, *, single: bool) -> dict[str, Any]:
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _Skip(f"{size:,} bytes, more than kbbot reads from one file")
        data = json.loads(file.read_bytes().decode("utf-8-sig"))
    except OSError as exc:
        raise _Skip(f"cannot read it ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _Skip(f"not valid JSON ({exc})") from None
    if not is_discord_export(data):
        if single:
            raise ExportError(f"{file} is JSON but not a DiscordChatExporter export (no 'messages')")
        raise _Skip("")  # another JSON file lying in the folder (e.g. an attachment): not ours to judge
    assert isinstance(data, dict)
    return data
