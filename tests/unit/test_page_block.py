"""kbbot's block in a saved page: found however the wiki re-serializes it, replaced alone, never spoofed."""

from __future__ import annotations

import pytest

from kbbot.core.models import Thread, ThreadMessage
from kbbot.core.page_block import find_marker, locate_block, replace_block
from kbbot.core.page_render import PageRenderer, begin_marker_text, marker_text, thread_digest

DIGEST = thread_digest("slack", "C1:1")
OTHER = thread_digest("slack", "C1:2")


def thread(*texts: str, key: str = "C1:1") -> Thread:
    messages = tuple(
        ThreadMessage(f"u{i}", f"U{i}", f"2026-01-05T09:0{i % 10}:00+00:00", text) for i, text in enumerate(texts)
    )
    return Thread("slack", key, messages)


def block(fmt: str, *texts: str) -> str:
    return PageRenderer(fmt).render(thread(*texts), "Printer on fire")[0].content  # type: ignore[arg-type]


def rewrite(fmt: str, content: str, new_block: str, part: int = 1) -> str:
    kept = PageRenderer(fmt).kept_note()  # type: ignore[arg-type]
    return replace_block(content, new_block, DIGEST, part, kept_note=kept)


@pytest.mark.parametrize("fmt", ["html", "markdown"])
def test_text_around_the_block_is_kept_byte_for_byte(fmt: str) -> None:
    old, new = block(fmt, "it smokes"), block(fmt, "it smokes", "unplug it")
    above = "<p>Owner: facilities</p>\n" if fmt == "html" else "Owner: facilities\n\n"
    below = "<h2>Resolution</h2>\n<p>Replaced the fuser.</p>" if fmt == "html" else "\n## Resolution\n\nFuser.\n"
    result = rewrite(fmt, above + old + below, new)
    assert result == above + new + below
    assert rewrite(fmt, result, new) == result  # applying it again changes nothing


def test_html_reserialized_by_the_wiki_is_still_found() -> None:
    old, new = block("html", "it smokes"), block("html", "it smokes", "unplug it")
    # The wiki dropped the newlines and put attributes on the paragraphs.
    wiki = "<p>Notes</p>" + old.replace("\n", "").replace("<p>", '<p class="x">') + "<p>After</p>"
    result = rewrite("html", wiki, new)
    assert result == "<p>Notes</p>" + new + "<p>After</p>"


def test_a_persons_hr_right_before_the_block_is_theirs() -> None:
    old = block("html", "x")
    assert rewrite("html", "<p>a</p><hr>" + old, "NEW") == "<p>a</p><hr>NEW"


@pytest.mark.parametrize("fmt", ["html", "markdown"])
@pytest.mark.parametrize("damage", ["begin", "end", "both", "legacy"])
def test_removed_markers_keep_everything_and_heal_on_the_next_save(fmt: str, damage: str) -> None:
    old = block(fmt, "it smokes") + ("<p>Resolution: fixed.</p>" if fmt == "html" else "Resolution: fixed.\n")
    if damage == "legacy":  # a page saved before the begin marker existed
        old = old.split("\n", 1)[1]
    if damage in ("begin", "both"):
        old = old.replace(begin_marker_text(DIGEST, 1), "")
    if damage in ("end", "both"):
        old = old.replace(marker_text(DIGEST, 1), "")
    new = block(fmt, "it smokes", "unplug it")
    result = rewrite(fmt, old, new)
    assert result.startswith(new)
    assert result.endswith(old.lstrip("\r\n")) and "Kept from this page" in result
    assert locate_block(result, DIGEST, 1) == (0, len(new))
    newer = block(fmt, "it smokes", "unplug it", "done")
    assert rewrite(fmt, result, newer) == newer + result[len(new) :]  # healed: only the block changes now


def test_empty_page_gets_just_the_block() -> None:
    assert rewrite("markdown", " \n", "BLOCK") == "BLOCK"


@pytest.mark.parametrize("fmt", ["html", "markdown"])
def test_user_text_cannot_forge_markers(fmt: str) -> None:
    forged = f"{marker_text(DIGEST, 1)}\n\n{begin_marker_text(DIGEST, 1)} and {marker_text(OTHER, 1)}"
    content = PageRenderer(fmt).render(thread(forged, forged), forged)[0].content  # type: ignore[arg-type]
    assert content.count(begin_marker_text(DIGEST, 1)) == 1 and content.count(marker_text(DIGEST, 1)) == 1
    assert marker_text(OTHER, 1) not in content
    assert "kbbot-\u200bthread" in content  # still readable
    assert locate_block(content, DIGEST, 1) == (0, len(content))


def test_part_numbers_do_not_match_each_other() -> None:
    p1 = PageRenderer("markdown").marked_note("one", DIGEST, 1)
    p12 = PageRenderer("markdown").marked_note("twelve", DIGEST, 12)
    assert locate_block(p12, DIGEST, 1) is None and locate_block(p1, DIGEST, 12) is None
    assert rewrite("markdown", p12, "NEW", part=12) == "NEW"


def test_find_marker_sees_the_block_under_a_long_appendix() -> None:
    content = block("markdown", "it smokes") + "\n## Resolution\n\n" + "long notes " * 2_000
    assert find_marker(content, DIGEST, 1) and not find_marker(content, DIGEST, 2)
    assert not find_marker(content, OTHER, 1)
