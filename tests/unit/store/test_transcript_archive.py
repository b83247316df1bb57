"""The import archive: union of messages per conversation, newer copy wins, private files, damage set aside."""

from __future__ import annotations

import stat
from pathlib import Path

from kbbot.core.models import Attachment, Thread, ThreadMessage
from kbbot.store.transcript_archive import TranscriptArchive


def _m(i: int, text: str = "") -> ThreadMessage:
    return ThreadMessage("ada", "1", f"2026-01-0{i}T00:00:00+00:00", text or f"m{i}", (Attachment("a", "https://x"),),
                         id=str(i))


def _thread(*messages: ThreadMessage) -> Thread:
    return Thread("discord", "export:42", messages, channel_name="general")


def test_union_in_time_order_newer_copy_wins(tmp_path: Path) -> None:
    archive = TranscriptArchive(tmp_path / "imports")
    first = archive.merge(_thread(_m(1), _m(2)))
    assert first.earlier == 0 and [m.id for m in first.thread.messages] == ["1", "2"]
    second = archive.merge(_thread(_m(3), _m(2, "m2 edited")))
    assert second.earlier == 1
    assert [(m.id, m.text) for m in second.thread.messages] == [("1", "m1"), ("2", "m2 edited"), ("3", "m3")]
    assert second.thread.messages[0].attachments == (Attachment("a", "https://x"),)
    [file] = list((tmp_path / "imports").iterdir())
    assert stat.S_IMODE(file.stat().st_mode) == 0o600 and stat.S_IMODE(file.parent.stat().st_mode) == 0o700


def test_dry_run_writes_nothing_and_text_transcripts_are_not_kept(tmp_path: Path) -> None:
    archive = TranscriptArchive(tmp_path / "imports")
    archive.merge(_thread(_m(1)), write=False)
    plain = Thread("text", "file:1", (ThreadMessage("a", "a", "", "hi"),))
    assert archive.merge(plain).thread is plain
    assert not (tmp_path / "imports").exists()


def test_a_damaged_archive_file_is_set_aside(tmp_path: Path) -> None:
    archive = TranscriptArchive(tmp_path / "imports")
    archive.merge(_thread(_m(1)))
    [file] = list((tmp_path / "imports").iterdir())
    file.write_text("{not json")
    merged = archive.merge(_thread(_m(2)))
    assert [m.id for m in merged.thread.messages] == ["2"]
    assert file.with_suffix(".damaged").exists()
