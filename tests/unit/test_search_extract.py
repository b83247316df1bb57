from __future__ import annotations

from kbbot.search.extract import html_to_text, markdown_to_text, to_text


def test_html_blocks_become_paragraphs_and_lists_lines() -> None:
    html = (
        "<h1>VPN &amp; network</h1><p>Use <b>WireGuard</b>\n   now.</p>"
        "<ul><li>one</li><li>two</li></ul><pre>sudo wg-quick up acme\nwg show</pre>"
    )
    assert html_to_text(html) == (
        "VPN & network\n\nUse WireGuard now.\n\n- one\n- two\n\n```\nsudo wg-quick up acme\nwg show\n```"
    )


def test_html_drops_scripts_styles_and_keeps_table_cells_apart() -> None:
    html = (
        "<style>p{}</style><script>alert('x')</script><table><tr><th>a</th><th>b</th></tr>"
        "<tr><td>1</td><td>2</td></tr></table>line<br>break"
    )
    text = html_to_text(html)
    assert "alert" not in text and "p{}" not in text
    assert "a | b\n1 | 2" in text
    assert text.endswith("line\nbreak")


def test_html_empty_and_malformed() -> None:
    assert html_to_text("") == ""
    assert html_to_text("   ") == ""
    assert "unclosed" in html_to_text("<div><p>unclosed <b>tags")


def test_markdown_strips_markup_keeps_code_and_latex() -> None:
    md = (
        "---\ntitle: Hidden\n---\n# Heading\n\n"
        "Some *emph* and $a_1 + b_2$ and **bold**; costs $5 and $10.\n\n"
        "- item one\n- item [link](http://x)\n\n```bash\nls *.txt\n```\n\n$$\n\\int_0^1 x\\,dx\n$$\n"
    )
    text = markdown_to_text(md)
    assert "Hidden" not in text and "title:" not in text
    assert text.startswith("Heading\n\nSome emph and $a_1 + b_2$ and bold; costs $5 and $10.")
    assert "- item one\n- item link" in text
    assert "ls *.txt" in text
    assert "$$\n\\int_0^1 x\\,dx\n$$" in text
    assert "*" not in text.replace("ls *.txt", "")


def test_markdown_wiki_links_resolve_to_titles() -> None:
    titles = {"serre-spectral-sequence": "Serre Spectral Sequence"}
    text = markdown_to_text(
        "See [[serre-spectral-sequence]], [[unknown-page]] and [[x|the X]].", resolve_link=titles.get
    )
    assert text == "See Serre Spectral Sequence, unknown page and the X."


def test_markdown_tables_and_html_blocks() -> None:
    text = markdown_to_text("| a | b |\n|---|---|\n| 1 | 2 |\n\n<div><p>raw <script>x()</script>html</p></div>\n")
    assert "a | b\n1 | 2" in text
    assert "raw html" in text and "x()" not in text


def test_to_text_dispatches_on_format() -> None:
    assert to_text("<p>x <i>y</i></p>", "html") == "x y"
    assert to_text("x *y*", "markdown") == "x y"
