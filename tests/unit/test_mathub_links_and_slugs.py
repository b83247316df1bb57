"""Pure helpers: slugs from titles, ``[[slug]]`` links, page URLs."""

from __future__ import annotations

import re

import pytest

from kbbot.backends.mathub_links import linked_slugs, page_url, render_wiki_links
from kbbot.core.slugs import MAX_SLUG_LENGTH, slugify, unique_slug, with_suffix

SAFE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
TEMPLATE = "https://mathub.example/p/topo/wiki/{slug}"


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Eilenberg–MacLane Spaces", "eilenberg-maclane-spaces"),
        ("Serre Spectral Sequence", "serre-spectral-sequence"),
        ("K(G, n)", "k-g-n"),
        ("Café crème brûlée", "cafe-creme-brulee"),
        ("Straße Ærø Łódź", "strasse-aero-lodz"),
        ("", "page"),
        ("   ", "page"),
        ("🙂🎉", "page"),
        ("../", "page"),
        ("../../etc/passwd", "etc-passwd"),
        ("a/b\\c", "a-b-c"),
        ("\x00\x1b[31mred\x1b[0m", "31mred-0m"),
        ("ＦＵＬＬＷＩＤＴＨ", "fullwidth"),
        ("x" * 1000, "x" * MAX_SLUG_LENGTH),
        ("日本語のページ", "page"),
        ("%2e%2e%2f", "2e-2e-2f"),
    ],
)
def test_slugify(title: str, slug: str) -> None:
    assert slugify(title) == slug
    assert SAFE.match(slugify(title))


def test_slugify_long_titles_cut_at_a_word() -> None:
    slug = slugify("word " * 300)
    assert len(slug) <= MAX_SLUG_LENGTH and not slug.endswith("-") and slug.split("-") == ["word"] * 16


def test_suffixes_and_uniqueness() -> None:
    assert with_suffix("a", 1) == "a" and with_suffix("a", 2) == "a-2" and with_suffix("a", 13) == "a-13"
    long = "-".join(["word"] * 16)  # 79 characters
    assert len(with_suffix(long, 2)) <= MAX_SLUG_LENGTH and with_suffix(long, 2).endswith("word-2")
    assert unique_slug("a", set()) == "a"
    assert unique_slug("a", {"a", "a-2"}) == "a-3"
    assert unique_slug("a", {"a", "a-2", "a-3"}, max_tries=3) is None


def test_wiki_links_become_markdown_links() -> None:
    text = "See [[serre-spectral-sequence]] and [[k-g-n|Eilenberg–MacLane]]."
    titles = {"serre-spectral-sequence": "Serre Spectral Sequence"}
    assert render_wiki_links(text, TEMPLATE, titles=titles) == (
        "See [Serre Spectral Sequence](https://mathub.example/p/topo/wiki/serre-spectral-sequence) and "
        "[Eilenberg–MacLane](https://mathub.example/p/topo/wiki/k-g-n)."
    )


def test_wiki_links_without_a_template_stay_readable() -> None:
    assert render_wiki_links("See [[serre]] now", None) == "See serre now"
    assert render_wiki_links("See [[serre]]", None, titles={"serre": "Serre SS"}) == "See Serre SS"
    # An {id} template with no known id: plain label, no broken link.
    assert render_wiki_links("[[serre]]", "https://m/{id}") == "serre"
    assert render_wiki_links("[[serre]]", "https://m/{id}", ids={"serre": "u-1"}) == "[serre](https://m/u-1)"


def test_latex_and_code_are_left_alone() -> None:
    text = (
        "Let $K(G, n)$ with $$\\pi_n = G$$ and `[[not-a-link]]`\n```\n[[also-code]]\n```\n[[real]] $5 or $6"
    )
    out = render_wiki_links(text, TEMPLATE)
    assert "$K(G, n)$" in out and "$$\\pi_n = G$$" in out and "$5 or $6" in out
    assert "`[[not-a-link]]`" in out and "\n[[also-code]]\n" in out
    assert "[real](https://mathub.example/p/topo/wiki/real)" in out
    assert linked_slugs(text) == ["real"]


@pytest.mark.parametrize(
    "hostile",
    ["[[../../admin]]", "[[javascript:alert(1)]]", "[[a b]]", "[[]]", "[[" + "a" * 300 + "]]", "[[<b>]]"],
)
def test_hostile_wiki_links_are_not_turned_into_links(hostile: str) -> None:
    assert render_wiki_links(hostile, TEMPLATE) == hostile


def test_labels_are_escaped_markdown() -> None:
    out = render_wiki_links("[[a|*bold* <b> _x_ \\]]", TEMPLATE)
    assert out == "[\\*bold\\* \\<b\\> \\_x\\_ \\\\](https://mathub.example/p/topo/wiki/a)"
    # A label with brackets is not a wiki link at all: left exactly as written.
    assert render_wiki_links("[[a|x](https://evil)]]", TEMPLATE) == "[[a|x](https://evil)]]"


def test_page_url() -> None:
    assert page_url(None, page_id="1", slug="a") is None
    assert page_url(TEMPLATE, page_id="1", slug=None) is None
    assert page_url(TEMPLATE, page_id="1", slug="a b/c") == "https://mathub.example/p/topo/wiki/a%20b%2Fc"
    assert page_url("https://m/{id}/{slug}", page_id="u1", slug="s") == "https://m/u1/s"
    assert page_url("https://m/{title}", page_id="u1", slug="s") is None  # unknown placeholder
