from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import kbbot
from kbbot.backends.local import LocalBackend, sample_kb_dir
from kbbot.core.models import PageChange
from kbbot.core.ports import KnowledgeBase
from kbbot.core.slugs import slugify
from kbbot.errors import BadRequest, ConfigError, NotFound, Unsupported


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "kb"
    (folder / "it").mkdir(parents=True)
    (folder / "vpn.md").write_text(
        '---\ntitle: "VPN: setup"\ntags: [vpn, "net work"]\n---\n# Ignored heading\n\nBody.\n'
    )
    (folder / "it" / "printers.md").write_text("# Printers on floor 2\n\nAdd ber-print-02.\n")
    (folder / "block-tags.md").write_text("---\ntitle: Block\ntags:\n  - a\n  - b\n---\ntext\n")
    (folder / "notes.txt").write_text("not a page")
    (folder / ".hidden.md").write_text("hidden")
    return folder


@pytest.fixture
def kb(source: Path, tmp_path: Path) -> LocalBackend:
    return LocalBackend(source, tmp_path / "data" / "pages")


def test_implements_the_protocol(kb: LocalBackend) -> None:
    assert isinstance(kb, KnowledgeBase)
    assert (kb.kind, kb.content_format, kb.supports_ai) == ("local", "markdown", False)


async def test_lists_pages_with_front_matter_headings_and_subfolders(kb: LocalBackend) -> None:
    pages = {p.id: p for p in await kb.list_pages()}
    assert set(pages) == {"vpn", "it/printers", "block-tags"}
    assert pages["vpn"].title == "VPN: setup" and pages["vpn"].tags == ("vpn", "net work")
    assert pages["it/printers"].title == "Printers on floor 2" and pages["it/printers"].tags == ()
    assert pages["block-tags"].tags == ("a", "b")
    assert all(p.updated_at for p in pages.values())


async def test_get_page_returns_body_without_front_matter(kb: LocalBackend) -> None:
    page = await kb.get_page("vpn")
    assert page.content == "# Ignored heading\n\nBody.\n"
    assert page.title == "VPN: setup" and page.slug == "vpn"


@pytest.mark.parametrize(
    "page_id",
    ["../secret", "/etc/passwd", "it/../vpn", "", ".hidden", "a\\b", "x\x00y", "missing", "it", "notes"],
)
async def test_bad_or_missing_ids_are_not_found(kb: LocalBackend, page_id: str) -> None:
    with pytest.raises(NotFound):
        await kb.get_page(page_id)
    with pytest.raises(NotFound):
        await kb.update_page(page_id, PageChange(content="x"))
    with pytest.raises(NotFound):
        await kb.delete_page(page_id)
    assert kb.page_url(page_id) is None


async def test_create_writes_only_into_the_writable_dir(kb: LocalBackend, source: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in source.rglob("*"))
    ref = await kb.create_page("Saved: the flux capacitor!", "We fixed it.\n", ("incident", "saved"))
    assert ref.id == "saved-the-flux-capacitor"
    written = tmp_path / "data" / "pages" / "saved-the-flux-capacitor.md"
    assert ref.url == written.as_uri()
    assert sorted(p.name for p in source.rglob("*")) == before
    page = await kb.get_page(ref.id)
    assert (page.title, page.content, page.tags) == (
        "Saved: the flux capacitor!",
        "We fixed it.\n",
        ("incident", "saved"),
    )
    assert not [p for p in written.parent.iterdir() if p.name.startswith(".tmp")]


@pytest.mark.parametrize(
    "title",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "..",
        "C:\\Windows\\x",
        "💥💥",
        "   a/b  ",
        "x" * 1000,
        "CON",
        "<script>alert(1)</script>",
    ],
)
async def test_hostile_titles_make_safe_file_names(kb: LocalBackend, tmp_path: Path, title: str) -> None:
    ref = await kb.create_page(title, "body")
    pages_dir = tmp_path / "data" / "pages"
    path = pages_dir / f"{ref.id}.md"
    assert path.is_file() and path.resolve().parent == pages_dir.resolve()
    assert "/" not in ref.id and ".." not in ref.id and len(ref.id) <= 80
    assert (await kb.get_page(ref.id)).title == title.strip()[:300]


async def test_empty_title_is_rejected(kb: LocalBackend) -> None:
    with pytest.raises(BadRequest):
        await kb.create_page("  \n ", "body")


async def test_same_title_twice_gets_a_new_id(kb: LocalBackend) -> None:
    first = await kb.create_page("Standup notes", "1")
    second = await kb.create_page("Standup notes", "2")
    assert (first.id, second.id) == ("standup-notes", "standup-notes-2")
    created = await asyncio.gather(*(kb.create_page("Race", str(n)) for n in range(5)))
    assert len({ref.id for ref in created}) == 5


async def test_slug_never_collides_with_a_source_page(kb: LocalBackend) -> None:
    ref = await kb.create_page("VPN", "shadow?")
    assert ref.id == "vpn-2"
    assert (await kb.get_page("vpn")).title == "VPN: setup"


async def test_update_of_a_source_page_shadows_it_and_keeps_the_original(
    kb: LocalBackend, source: Path, tmp_path: Path
) -> None:
    original = (source / "vpn.md").read_text()
    await kb.update_page("vpn", PageChange(content="New body.\n"))
    page = await kb.get_page("vpn")
    assert (page.title, page.tags, page.content) == ("VPN: setup", ("vpn", "net work"), "New body.\n")
    assert (source / "vpn.md").read_text() == original
    assert kb.page_url("vpn") == (tmp_path / "data" / "pages" / "vpn.md").as_uri()
    await kb.update_page(
        "it/printers", PageChange(title="Printers", tags=("it",), rewrite=lambda old: old + "\nMore.\n")
    )
    page = await kb.get_page("it/printers")
    assert (page.title, page.tags) == ("Printers", ("it",)) and page.content.endswith("More.\n")
    assert len(await kb.list_pages()) == 3


async def test_update_is_atomic(kb: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = await kb.create_page("Atomic", "old body")
    path = tmp_path / "data" / "pages" / "atomic.md"
    before = path.read_text()

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        await kb.update_page(ref.id, PageChange(content="new body"))
    assert path.read_text() == before  # the old page is intact
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp")]  # no temp file left behind


async def test_delete_writable_and_source_pages(kb: LocalBackend, source: Path) -> None:
    ref = await kb.create_page("Temp", "x")
    await kb.delete_page(ref.id)
    with pytest.raises(NotFound):
        await kb.get_page(ref.id)
    await kb.delete_page("vpn")
    assert (source / "vpn.md").exists()  # the read-only folder is untouched
    assert "vpn" not in {p.id for p in await kb.list_pages()}
    with pytest.raises(NotFound):
        await kb.get_page("vpn")
    # Re-creating a page with that id after deleting it makes it visible again.
    await kb.update_page("it/printers", PageChange(content="x"))
    await kb.delete_page("it/printers")
    assert {p.id for p in await kb.list_pages()} == {"block-tags"}


async def test_query_is_unsupported(kb: LocalBackend) -> None:
    with pytest.raises(Unsupported):
        await kb.query("anything")
    assert (await kb.info()).name == "kb"


def test_refuses_a_data_dir_inside_the_package() -> None:
    package = Path(kbbot.__file__).resolve().parent
    with pytest.raises(ConfigError):
        LocalBackend(None, package / "sample_kb")
    with pytest.raises(ConfigError):
        LocalBackend(None, package)


async def test_bundled_sample_is_the_default(tmp_path: Path) -> None:
    kb = LocalBackend(None, tmp_path / "pages")
    assert kb.source_dir == sample_kb_dir()
    pages = await kb.list_pages()
    assert 18 <= len(pages) <= 22
    assert all(p.title and p.tags for p in pages)
    assert "Acme" in (await kb.info()).name
    for page in pages:
        words = len((await kb.get_page(page.id)).content.split())
        assert 150 <= words <= 520, (page.id, words)


async def test_unreadable_bytes_do_not_break_listing(source: Path, tmp_path: Path) -> None:
    (source / "binary.md").write_bytes(b"---\ntitle: Bin\xff\xfe\n---\n\x00\x01 body")
    kb = LocalBackend(source, tmp_path / "pages")
    page = await kb.get_page("binary")
    assert page.title.startswith("Bin")


def test_slugify() -> None:
    assert slugify("Héllo, Wörld!") == "hello-world"
    assert slugify("../../etc/passwd") == "etc-passwd"
    assert slugify("日本語") == "page"
    assert len(slugify("a" * 500)) == 80


async def test_lone_surrogates_do_not_lose_the_page(kb: LocalBackend) -> None:
    ref = await kb.create_page("Odd \ud800 title", "body \udfff text")
    page = await kb.get_page(ref.id)
    assert (page.title, page.content) == ("Odd ? title", "body ? text")


def test_missing_source_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        LocalBackend(tmp_path / "nope", tmp_path / "pages")
    assert "LOCAL_KB_DIR" in str(caught.value)


async def test_unreadable_file_is_skipped_not_fatal(source: Path, tmp_path: Path) -> None:
    (source / "dangling.md").symlink_to(tmp_path / "missing-target.md")
    kb = LocalBackend(source, tmp_path / "pages")
    assert {p.id for p in await kb.list_pages()} == {"vpn", "it/printers", "block-tags"}


async def test_file_vanishing_during_listing_is_skipped(kb: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    original = LocalBackend._read_meta

    def flaky(page_id: str, path: Path) -> tuple[str, tuple[str, ...], str]:
        if page_id == "vpn":
            raise FileNotFoundError(2, "No such file or directory")
        return original(page_id, path)

    monkeypatch.setattr(LocalBackend, "_read_meta", staticmethod(flaky))
    assert {p.id for p in await kb.list_pages()} == {"it/printers", "block-tags"}
