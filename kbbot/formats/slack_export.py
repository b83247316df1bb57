"""A Slack workspace export (the zip Slack mails, or its unzipped folder) → one neutral Thread per thread.

The layout (Slack's "How to read Slack data exports", and slackdump's export mode, which writes the same):
``channels.json`` (public), ``groups.json`` (private), ``dms.json`` and ``mpims.json`` list the conversations,
``users.json`` the people; each conversation has a folder (its name; a DM's folder is its id) holding one
``YYYY-MM-DD.json`` per day with that day's messages. A thread's replies are filed under the day they were
written, so they may sit in later day files than the root: threads are assembled across every file read.

Pages: one per thread, keyed ``CHANNEL_ID:THREAD_TS`` like a live save of the same thread (so importing a thread
that was saved live updates that page); messages outside any thread are gathered per channel and day
(``CHANNEL_ID:day:YYYY-MM-DD``). ``--since``/``--until`` pick threads by the day they started; their later
replies are read too.

A damaged file (bad JSON, not a list, too big) is reported in :attr:`SlackImport.problems` and skipped; a
message without a usable ``ts`` is skipped and reported; the rest of the export is still imported.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from kbbot.core.models import Thread, ThreadMessage
from kbbot.errors import ExportError
from kbbot.formats.slack import referenced_ids, thread_key, thread_title_hint, to_neutral, user_display_name

__all__ = ["ExportChannel", "SlackImport", "is_slack_export", "read_slack_export"]

#: One day file bigger than this is not a day of chat (Slack's own day files are a few MB at most).
MAX_FILE_BYTES = 64 * 1024 * 1024
_MARKERS = ("users.json", "channels.json")
_DAY_FILE = re.compile(r"(\d{4}-\d{2}-\d{2})\.json")
_LISTS = (("channels.json", "channel"), ("groups.json", "private channel"), ("mpims.json", "group DM"),
          ("dms.json", "DM"))


@dataclass(frozen=True, slots=True)
class ExportChannel:
    id: str
    name: str
    folder: str
    kind: str


@dataclass
class SlackImport:
    """What an import read: the threads, the files read, and every problem met (file: reason)."""

    threads: list[Thread] = field(default_factory=list)
    channels: list[ExportChannel] = field(default_factory=list)
    files_read: int = 0
    problems: list[str] = field(default_factory=list)


class _Source:
    """The export's files, from a zip or a folder, relative to the folder that holds ``users.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._root = PurePosixPath()
        if path.is_dir():
            if not any((path / marker).exists() for marker in _MARKERS):
                # An export unzipped with its top folder ("Acme Slack export Jan 1 2024/users.json").
                roots = {p.parent for marker in _MARKERS for p in path.glob(f"*/{marker}")}
                if len(roots) != 1:
                    raise ExportError(f"{path} has no channels.json or users.json: not a Slack export folder")
                self._root = PurePosixPath(roots.pop().name)
            self._names = sorted(
                str(p.relative_to(path / self._root).as_posix()) for p in (path / self._root).rglob("*.json")
            )
            return
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ExportError(f"{path} is neither a folder nor a readable zip file ({exc})") from None
        names = [n for n in self._zip.namelist() if not n.endswith("/")]
        markers = [n for n in names if PurePosixPath(n).name in _MARKERS]
        if not markers:
            raise ExportError(f"{path} has no channels.json or users.json: not a Slack export")
        self._root = PurePosixPath(min(markers, key=len)).parent
        prefix = "" if str(self._root) == "." else f"{self._root}/"
        self._names = sorted(n[len(prefix) :] for n in names if n.startswith(prefix) and n.endswith(".json"))

    def names(self) -> list[str]:
        return self._names

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            full = name if str(self._root) == "." else f"{self._root}/{name}"
            info = self._zip.getinfo(full)
            if info.file_size > MAX_FILE_BYTES:
                raise ExportError(f"{info.file_size:,} bytes, more than a day of chat ({MAX_FILE_BYTES:,})")
            return self._zip.read(info)
        target = self.path / self._root / name
        if target.stat().st_size > MAX_FILE_BYTES:
            raise ExportError(f"{target.stat().st_size:,} bytes, more than a day of chat ({MAX_FILE_BYTES:,})")
        return target.read_bytes()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def is_slack_export(path: Path) -> bool:
    """A folder or zip that holds a ``channels.json`` or ``users.json`` (at its top or one folder down)."""
    try:
        _Source(path).close()
    except ExportError:
        return False
    return True


def read_slack_export(
    path: Path,
    *,
    channels: Collection[str] = (),
    since: date | None = None,
    until: date | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SlackImport:
    """Read the export at ``path`` (zip or folder). ``channels`` (names, ``#names`` or ids) limits what is read;
    ``progress(done, total)`` is called after each day file. Raises :class:`ExportError` when ``path`` is not an
    export or a requested channel is not in it."""
    source = _Source(path)
    try:
        return _read(source, channels, since, until, progress)
    finally:
        source.close()


def _read(
    source: _Source,
    wanted: Collection[str],
    since: date | None,
    until: date | None,
    progress: Callable[[int, int], None] | None,
) -> SlackImport:
    result = SlackImport()
    users = _users(source, result)
    known = _channels(source, result, users)
    selected = _select(known, wanted)
    result.channels = selected
    names = {c.id: c.name for c in known}
    days = [
        (channel, name, day)
        for channel in selected
        for name, day in _day_files(source.names(), channel.folder)
        if since is None or day >= since
    ]
    groups: dict[str, _Group] = {}
    for done, (channel, name, day) in enumerate(days, start=1):
        raw = _load_list(source, name, result)
        if raw is not None:
            result.files_read += 1
            _add_day(groups, result.problems, channel, day, raw, name)
        if progress is not None:
            progress(done, len(days))
    # Threads that started outside the range go only now: their replies may have come in later files.
    started = [g for g in groups.values() if not (since and g.started < since) and not (until and g.started > until)]
    result.threads = _threads(started, users, names)
    return result


def _load_list(source: _Source, name: str, result: SlackImport) -> list[Any] | None:
    try:
        data = json.loads(source.read(name).decode("utf-8-sig"))
    except (ExportError, OSError, KeyError) as exc:
        result.problems.append(f"{name}: skipped, cannot read it ({exc})")
        return None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        result.problems.append(f"{name}: skipped, not valid JSON ({exc})")
        return None
    if not isinstance(data, list):
        result.problems.append(f"{name}: skipped, expected a list of messages, found {type(data).__name__}")
        return None
    return data


def _channels(source: _Source, result: SlackImport, users: Mapping[str, str]) -> list[ExportChannel]:
    found: list[ExportChannel] = []
    for file, kind in _LISTS:
        if file not in source.names():
            continue
        for entry in _load_list(source, file, result) or ():
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                continue
            name = entry.get("name") if isinstance(entry.get("name"), str) else ""
            # DMs have no name (their folder is the conversation id): a page says whose DM it was.
            members = [users.get(m, m) for m in entry.get("members") or () if isinstance(m, str)]
            shown = name or (f"DM {' and '.join(members)}" if members else entry["id"])
            found.append(ExportChannel(entry["id"], shown, name or entry["id"], kind))
    if not found:  # an export whose lists were lost: every folder of day files is a channel, named as the folder
        days = (n.split("/") for n in source.names())
        folders = sorted({parts[0] for parts in days if len(parts) == 2 and _DAY_FILE.fullmatch(parts[1])})
        found = [ExportChannel(folder, folder, folder, "channel") for folder in folders]
    return found


def _users(source: _Source, result: SlackImport) -> dict[str, str]:
    if "users.json" not in source.names():
        return {}
    names: dict[str, str] = {}
    for user in _load_list(source, "users.json", result) or ():
        if isinstance(user, dict) and isinstance(user.get("id"), str) and (name := user_display_name(user)):
            names[user["id"]] = name
    return names


def _select(known: list[ExportChannel], wanted: Collection[str]) -> list[ExportChannel]:
    if not wanted:
        return known
    chosen: list[ExportChannel] = []
    for want in wanted:
        key = want.strip().lstrip("#")
        match = [c for c in known if key in (c.name, c.id, c.folder)]
        if not match:
            listed = ", ".join(sorted(c.name for c in known)[:20]) or "none"
            raise ExportError(f"there is no channel {want!r} in this export (channels: {listed})")
        chosen.extend(c for c in match if c not in chosen)
    return chosen


def _day_files(names: list[str], folder: str) -> Iterator[tuple[str, date]]:
    for name in names:
        parent, _, file = name.rpartition("/")
        match = _DAY_FILE.fullmatch(file)
        if parent == folder and match:
            try:
                yield name, date.fromisoformat(match.group(1))
            except ValueError:
                continue


# --- assembling threads ----------------------------------------------------------------------------------------


@dataclass
class _Group:
    channel: ExportChannel
    key: str
    started: date
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)


def _add_day(
    groups: dict[str, _Group], problems: list[str], channel: ExportChannel, day: date, raw: list[Any], name: str
) -> None:
    for index, message in enumerate(raw):
        if not isinstance(message, dict):
            problems.append(f"{name}: message {index + 1} skipped (not an object)")
            continue
        ts = message.get("ts")
        if not isinstance(ts, str) or not _is_ts(ts):
            problems.append(f"{name}: message {index + 1} skipped (no valid 'ts')")
            continue
        thread_ts = message.get("thread_ts") if isinstance(message.get("thread_ts"), str) else None
        if thread_ts and _is_ts(thread_ts):
            key = thread_key(channel.id, thread_ts)
            started = _day_of(thread_ts)
        else:
            key = f"{channel.id}:day:{day.isoformat()}"
            started = day
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(channel, key, started)
        group.raw[ts] = message


def _threads(groups: list[_Group], users: Mapping[str, str], channel_names: Mapping[str, str]) -> list[Thread]:
    threads: list[Thread] = []
    for group in groups:
        raws = [group.raw[ts] for ts in sorted(group.raw, key=float)]
        ids, channels = referenced_ids(raws)
        names = {uid: users[uid] for uid in ids if uid in users}
        messages: list[ThreadMessage] = []
        for raw in raws:
            message = to_neutral(raw, users=names, channels={**channels, **channel_names})
            if message is not None:
                messages.append(message)
        if not messages:
            continue
        day_page = ":day:" in group.key
        threads.append(
            Thread(
                platform="slack",
                key=group.key,
                messages=tuple(messages),
                channel_name=group.channel.name,
                title_hint=(
                    f"#{group.channel.name} {group.started.isoformat()}" if day_page else thread_title_hint(messages)
                ),
            )
        )
    threads.sort(key=lambda t: (t.channel_name or "", t.messages[0].timestamp))
    return threads


def _is_ts(value: str) -> bool:
    try:
        seconds = float(value)
    except ValueError:
        return False
    return 0 <= seconds < 1e11


def _day_of(ts: str) -> date:
    return datetime.fromtimestamp(float(ts), tz=UTC).date()
