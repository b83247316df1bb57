"""Pure helpers: slugs from titles, page URLs."""

from __future__ import annotations

import re

import pytest

from kbbot.backends.mathub_links import page_url
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


def test_page_url() -> None:
    assert page_url(None, page_id="1", slug="a") is None
    assert page_url(TEMPLATE, page_id="1", slug=None) is None
    assert page_url(TEMPLATE, page_id="1", slug="a b/c") == "https://mathub.example/p/topo/wiki/a%20b%2Fc"
    assert page_url("https://m/{id}/{slug}", page_id="u1", slug="s") == "https://m/u1/s"
    assert page_url("https://m/{title}", page_id="u1", slug="s") is None  # unknown placeholder
