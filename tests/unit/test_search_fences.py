"""Code stays code from the page to the answer: fences and code spans survive extraction and passage cuts."""

from __future__ import annotations

from pathlib import Path

from markdown_it import MarkdownIt

from kbbot.backends.local import LocalBackend
from kbbot.search.answerer import SearchAnswerer
from kbbot.search.extract import html_to_text, markdown_to_text
from kbbot.search.fences import blocks, close_open_fence, code_lines, fence, inline_code
from kbbot.search.index import IndexedPage, SearchIndex
from kbbot.search.sync import IndexSyncer


def test_fence_and_code_span_outlast_backticks_inside() -> None:
    assert fence("ls") == "```\nls\n```"
    assert fence("echo ```x```") == "````\necho ```x```\n````"
    assert inline_code("a`b") == "``a`b``"
    assert inline_code("`x") == "`` `x ``"
    # What a CommonMark parser reads back is exactly the code.
    assert MarkdownIt().parseInline(inline_code("`x"))[0].children[0].content == "`x"  # type: ignore[index]


def test_blank_lines_inside_code_do_not_split_blocks() -> None:
    text = "Intro:\n\n```\nline one\n\nline two\n```\n\nAfter."
    assert blocks(text) == ["Intro:", "```\nline one\n\nline two\n```", "After."]
    assert [flag for _, flag in code_lines(text)] == [False, False, True, True, True, True, True, False, False]


def test_an_open_fence_is_closed() -> None:
    assert close_open_fence("```bash\nls") == "```bash\nls\n```"
    assert close_open_fence("````\nls") == "````\nls\n````"
    assert close_open_fence("```\nls\n```") == "```\nls\n```"
    assert close_open_fence("no code") == "no code"


def test_markdown_code_is_kept_as_code() -> None:
    text = markdown_to_text("Run `./scripts/promote <service>` or:\n\n```bash\n# comment\n./x <a>\n```\n")
    assert text == "Run `./scripts/promote <service>` or:\n\n```\n# comment\n./x <a>\n```"


def test_html_pre_keeps_indentation_and_is_fenced() -> None:
    text = html_to_text("<p>Config:</p><pre>server:\n    port: 80\n# note</pre>")
    assert text == "Config:\n\n```\nserver:\n    port: 80\n# note\n```"


async def test_sample_answer_quotes_the_promote_command_verbatim(tmp_path: Path) -> None:
    async with SearchIndex(tmp_path / "i.sqlite3") as index:
        await IndexSyncer(LocalBackend(None, tmp_path / "pages"), index).sync()
        answer = await SearchAnswerer(index).answer("how do I roll back a deploy with promote")
    assert "> ./scripts/promote <service> --rollback\n" in answer.text
    assert "> ```" in answer.text and "\u200b" not in answer.text
    # The quote is well-formed Markdown: the command is a code block, nothing of it is read as HTML.
    tokens = MarkdownIt("commonmark").parse(answer.text)
    assert any(t.type == "fence" and "<service>" in t.content for t in tokens)
    assert not any(t.type in ("html_inline", "html_block") for t in tokens)


async def test_a_long_code_block_cut_keeps_its_fence(tmp_path: Path) -> None:
    code = "\n".join(f"step {n}: run tool-{n} --flag. then wait." for n in range(40))
    text = f"Intro words here.\n\n```sh\n{code}\n# final comment mentions zebra\n```"
    async with SearchIndex(tmp_path / "i.sqlite3") as index:
        await index.upsert(IndexedPage(id="p", title="Tools", text=text))
        answer = await SearchAnswerer(index, max_passage_chars=200).answer("zebra comment")
    quote = answer.text.split("\n\n—")[0]
    tokens = MarkdownIt("commonmark").parse(quote)
    fences = [t for t in tokens if t.type == "fence"]
    assert len(fences) == 1 and "# final comment mentions zebra" in fences[0].content
    assert "\u200b" not in quote and "…" in quote
