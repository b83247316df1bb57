"""A knowledgebase that is a folder of Markdown files — the embedded default, over the bundled sample
handbook.

A page's id is its path relative to the folder, without ``.md`` (``it/vpn-setup``). Title and tags come from
optional front matter (``title:``, ``tags:``); without a title, the first ``# heading`` or the file name is
used.

Two folders are merged: the *source* folder (``LOCAL_KB_DIR``, or the sample handbook inside the installed
package) is only read; every write goes to the *writable* folder (``KBBOT_DATA_DIR/pages``), where a file
shadows the source file with the same id. So the installed package is never written to, and editing a sample
page keeps the original intact. Deleting a page that exists in the source folder leaves a ``<id>.deleted``
tombstone.

Files are written atomically (temporary file, then ``os.replace``/``os.link``), so a reader never sees half a
page and a crash never leaves one. ``page_url`` returns the file's ``file://`` URI: clickable in a terminal,
and it tells a user of the local backend which file to edit. There is no AI: :meth:`query` raises
``Unsupported`` and answers come from the search index.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import tempfile
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path, PurePosixPath

from kbbot.backends import frontmatter
from kbbot.core.models import AiAnswer, ContentFormat, KbInfo, Page, PageChange, PageRef, PageSummary
from kbbot.core.ports import Priority
from kbbot.core.slugs import slugify
from kbbot.core.text import clean_tags
from kbbot.errors import BadRequest, ConfigError, NotFound, Unsupported

log = logging.getLogger(__name__)

_SUFFIX = ".md"
_TOMBSTONE = ".deleted"
_HEADING = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_TITLE = 300


def package_dir() -> Path:
    """The installed ``kbbot`` package directory (never written to)."""
    return Path(str(resources.files("kbbot"))).resolve()


def sample_kb_dir() -> Path:
    """The bundled sample knowledgebase (the Acme Robotics handbook)."""
    return package_dir() / "sample_kb"


def _valid_id(page_id: str) -> PurePosixPath:
    """The relative path of ``page_id``; raises ``NotFound`` for anything that could leave the folder."""
    if not page_id or "\\" in page_id or "\x00" in page_id or len(page_id) > 500:
        raise NotFound("No such page.", status=404)
    path = PurePosixPath(page_id)
    if path.is_absolute() or any(part in ("", ".", "..") or part.startswith(".") for part in path.parts):
        raise NotFound("No such page.", status=404)
    return path


def _clean_title(title: str) -> str:
    cleaned = _CONTROL.sub(" ", title).strip()[:_MAX_TITLE].strip()
    if not cleaned:
        raise BadRequest("A page needs a title.", status=400)
    return cleaned


def _iso_mtime(path: Path) -> str:
    # Microsecond precision: two edits within one second still look different to incremental sync.
    return datetime.fromtimestamp(path.stat().st_mtime_ns / 1e9, tz=UTC).isoformat(timespec="microseconds")


class LocalBackend:
    """:class:`~kbbot.core.ports.KnowledgeBase` over a read-only source folder plus a writable folder."""

    kind = "local"
    content_format: ContentFormat = "markdown"
    supports_ai = False

    def __init__(self, source_dir: Path | None, writable_dir: Path, *, name: str | None = None) -> None:
        self.source_dir = (source_dir or sample_kb_dir()).resolve()
        self.writable_dir = writable_dir.resolve()
        if not self.source_dir.is_dir():
            raise ConfigError(f"LOCAL_KB_DIR {self.source_dir} is not a folder; point it at a folder of .md files")
        pkg = package_dir()
        if self.writable_dir == pkg or pkg in self.writable_dir.parents:
            raise ConfigError(
                f"KBBOT_DATA_DIR must not be inside the installed kbbot package ({pkg}); pick another folder"
            )
        default_name = "Acme Robotics handbook (sample)" if source_dir is None else self.source_dir.name
        self.name = name or default_name

    # --- reading -----------------------------------------------------------------------------

    async def info(self) -> KbInfo:
        return KbInfo(name=self.name)

    async def list_pages(self, *, priority: Priority = Priority.LIVE) -> list[PageSummary]:
        return await asyncio.to_thread(self._list_sync)

    def _list_sync(self) -> list[PageSummary]:
        summaries = []
        for page_id, path in sorted(self._files().items()):
            try:
                title, tags, _ = self._read_meta(page_id, path)
                updated = _iso_mtime(path)
            except OSError as exc:
                # Deleted while we listed, or unreadable: one bad file must not hide every other page.
                log.warning("skipping %s: %s", path, exc.strerror or exc)
                continue
            summaries.append(PageSummary(id=page_id, title=title, tags=tags, slug=page_id, updated_at=updated))
        return summaries

    def _files(self) -> dict[str, Path]:
        """Every visible page: source files, shadowed by writable ones, minus tombstones."""
        files: dict[str, Path] = {}
        tombstones: set[str] = set()
        for root in (self.source_dir, self.writable_dir):
            if not root.is_dir():
                continue
            for path in root.rglob("*"):
                rel = path.relative_to(root)
                if any(part.startswith(".") for part in rel.parts) or not path.is_file():
                    continue
                if path.name.endswith(_SUFFIX + _TOMBSTONE) and root == self.writable_dir:
                    tombstones.add(rel.as_posix()[: -len(_SUFFIX + _TOMBSTONE)])
                elif path.suffix == _SUFFIX:
                    files[rel.as_posix()[: -len(_SUFFIX)]] = path
        for page_id in tombstones:
            writable = self.writable_dir / (page_id + _SUFFIX)
            if files.get(page_id) != writable:
                files.pop(page_id, None)
        return files

    def _locate(self, page_id: str) -> Path:
        rel = _valid_id(page_id)
        writable = self.writable_dir / f"{rel}{_SUFFIX}"
        if writable.is_file():
            return writable
        if (self.writable_dir / f"{rel}{_SUFFIX}{_TOMBSTONE}").exists():
            raise NotFound("No such page.", status=404)
        source = self.source_dir / f"{rel}{_SUFFIX}"
        if source.is_file():
            return source
        raise NotFound("No such page.", status=404)

    @staticmethod
    def _read_meta(page_id: str, path: Path) -> tuple[str, tuple[str, ...], str]:
        text = path.read_text(encoding="utf-8", errors="replace")
        meta, body = frontmatter.split(text)
        title = meta.title
        if not title:
            heading = _HEADING.search(body)
            title = heading.group(1).strip() if heading else PurePosixPath(page_id).name.replace("-", " ")
        return title, meta.tags, body.lstrip("\r\n")

    async def get_page(self, page_id: str, *, priority: Priority = Priority.LIVE) -> Page:
        return await asyncio.to_thread(self._get_sync, page_id)

    def _get_sync(self, page_id: str) -> Page:
        path = self._locate(page_id)
        try:
            title, tags, body = self._read_meta(page_id, path)
            updated = _iso_mtime(path)
        except FileNotFoundError:
            raise NotFound("No such page.", status=404) from None
        return Page(id=page_id, title=title, content=body, tags=tags, slug=page_id, updated_at=updated)

    def page_url(self, page_id: str, title: str = "", slug: str | None = None) -> str | None:
        try:
            return self._locate(page_id).as_uri()
        except NotFound:
            return None

    # --- writing -----------------------------------------------------------------------------

    async def create_page(self, title: str, content: str, tags: tuple[str, ...] = ()) -> PageRef:
        return await asyncio.to_thread(self._create_sync, title, content, tags)

    def _create_sync(self, title: str, content: str, tags: tuple[str, ...]) -> PageRef:
        title = _clean_title(title)
        text = frontmatter.render(title, clean_tags(tags), content)
        self.writable_dir.mkdir(parents=True, exist_ok=True)
        stem = slugify(title)
        tmp = self._write_tmp(self.writable_dir, text)
        try:
            existing = self._files()
            for n in range(1, 10_000):
                page_id = stem if n == 1 else f"{stem}-{n}"
                if page_id in existing:
                    continue
                target = self.writable_dir / (page_id + _SUFFIX)
                try:
                    # link() never overwrites: a concurrent writer that took the name makes us try the next.
                    os.link(tmp, target)
                except FileExistsError:
                    continue
                (self.writable_dir / (page_id + _SUFFIX + _TOMBSTONE)).unlink(missing_ok=True)
                return PageRef(id=page_id, title=title, url=target.as_uri())
        finally:
            tmp.unlink(missing_ok=True)
        raise BadRequest("Too many pages with this title.", status=400)  # pragma: no cover

    async def update_page(self, page_id: str, change: PageChange) -> None:
        await asyncio.to_thread(self._update_sync, page_id, change)

    def _update_sync(self, page_id: str, change: PageChange) -> None:
        rel = _valid_id(page_id)
        current = self._get_sync(page_id)
        title = _clean_title(change.title) if change.title is not None else current.title
        tags = clean_tags(change.tags) if change.tags is not None else current.tags
        if change.rewrite is not None:
            content = change.rewrite(current.content)
        elif change.content is not None:
            content = change.content
        else:
            content = current.content
        target = self.writable_dir / f"{rel}{_SUFFIX}"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._write_tmp(target.parent, frontmatter.render(title, tags, content))
        try:
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    async def delete_page(self, page_id: str) -> None:
        await asyncio.to_thread(self._delete_sync, page_id)

    def _delete_sync(self, page_id: str) -> None:
        rel = _valid_id(page_id)
        self._locate(page_id)  # NotFound when it is not there
        (self.writable_dir / f"{rel}{_SUFFIX}").unlink(missing_ok=True)
        if (self.source_dir / f"{rel}{_SUFFIX}").is_file():
            tombstone = self.writable_dir / f"{rel}{_SUFFIX}{_TOMBSTONE}"
            tombstone.parent.mkdir(parents=True, exist_ok=True)
            tombstone.touch()

    @staticmethod
    def _write_tmp(directory: Path, text: str) -> Path:
        """Write ``text`` to a hidden temporary file in ``directory`` (same file system, so the final rename
        or link is atomic) and flush it to disk."""
        fd, name = tempfile.mkstemp(prefix=".tmp-", suffix=".md", dir=directory)
        try:
            # errors="replace": a lone surrogate (from JSON "\\ud800") becomes "?" instead of losing the page.
            with os.fdopen(fd, "w", encoding="utf-8", errors="replace", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
        return Path(name)

    # --- the rest of the protocol ------------------------------------------------------------

    async def query(self, question: str) -> AiAnswer:
        raise Unsupported("The local knowledgebase has no AI; answers come from the search index.")

    async def aclose(self) -> None:
        return None
