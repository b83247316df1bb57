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

from kbbot.core.models import Thread
from kbbot.formats.discord_export import ExportFormatError, is_discord_export, parse_discord_export
from kbbot.formats.merge import merge_threads
from kbbot.formats.slack_export import MAX_FILE_BYTES, ExportError, is_slack_export, read_slack_export

__all__ = ["ExportBatch", "ExportError", "read_export"]

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
    # Parts of one channel ("general [part 2].json") share the channel id: joined in file-name order, so a
    # later part never replaces an earlier one's messages.
    by_channel: dict[str, Thread] = {}
    wanted_keys = {w.strip().lstrip("#") for w in wanted}
    found_names: set[str] = set()
    for done, file in enumerate(files, start=1):
        try:
            if file.stat().st_size > MAX_FILE_BYTES:
                raise ExportFormatError(f"{file.stat().st_size:,} bytes, more than kbbot reads from one file")
            data = json.loads(file.read_bytes().decode("utf-8-sig"))
            if not is_discord_export(data):
                if len(files) == 1:
                    raise ExportError(f"{file} is JSON but not a DiscordChatExporter export (no 'messages')")
                continue  # another JSON file lying in the folder (e.g. an attachment): not ours to judge
            export = parse_discord_export(data, str(file), since=since, until=until)
        except ExportError:
            raise
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError, ExportFormatError) as exc:
            batch.problems.append(f"{file}: skipped, cannot read it ({exc})")
            continue
        finally:
            if progress is not None:
                progress(done, len(files))
        batch.files_read += 1
        found_names.update({export.channel_id, export.thread.channel_name or ""})
        if wanted_keys and not wanted_keys & {export.channel_id, export.thread.channel_name or ""}:
            continue
        earlier = by_channel.get(export.channel_id)
        by_channel[export.channel_id] = (
            merge_threads(earlier.messages, export.thread).thread if earlier else export.thread
        )
    missing = wanted_keys - found_names
    if missing:
        listed = ", ".join(sorted(n for n in found_names if n)[:20]) or "none"
        raise ExportError(f"there is no channel {sorted(missing)[0]!r} in these exports (channels: {listed})")
    batch.threads = [t for t in by_channel.values() if t.messages]
    return batch
