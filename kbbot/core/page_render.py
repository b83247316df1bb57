"""Render a :class:`Thread` as wiki page content: HTML for Perfect Wiki, Markdown for MatHub and local.

A page is kbbot's *block* (see :mod:`kbbot.core.page_block`): a first line ``kbbot-thread-begin: <digest>-<part>``,
the title, one header line (channel, date range, participants, link back to the original thread), every message
as author + time + body (attachments as links, deleted messages as a placeholder, edits marked), and a last line
``kbbot-thread: <digest>-<part>``. The two markers let a re-save replace only the block (people may write around
it) and let the saver recognise, after a crash, a page it created but never recorded. They are plain visible
text because sanitizers and wikis drop HTML comments and unknown attributes; user text cannot contain them (a
zero-width space is put into any ``kbbot-thread`` it has).

Safety: every piece of user text (names, bodies, file names, URLs) is escaped; HTML bodies go through
markdown-it-py with raw HTML disabled, and the whole page is then sanitized by nh3 (no scripts, no event
handlers, only http/https/mailto links). Broadcast mentions become inert (``@\\u200beveryone``). Markdown
output keeps ``$…$`` and ``$$…$$`` LaTeX untouched for MatHub and escapes raw ``<`` outside code and math.
Links whose target is not http/https/mailto/relative (``javascript:``, ``data:``, ``file:``…) are shown as
their plain text in both formats (:mod:`kbbot.core.page_links`).

Size policy: a page longer than ``max_chars`` is **split into parts** ("Title (part 2/3)"), each a complete
page with its own header and marker; a single message longer than a part is truncated with a visible note.
No message is silently dropped, and every part stays under the cap.

Speed: one pass over the messages. markdown-it-py is the slow step (~0.1 ms a message), so bodies without any
Markdown syntax take a fast path (escape + paragraphs) and single-line bodies skip its block pass; both give
the HTML markdown-it would. Author names are escaped once per thread.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import nh3
from markdown_it import MarkdownIt

from kbbot.core.models import Attachment, ContentFormat, Thread, ThreadMessage
from kbbot.core.page_block import begin_marker_text, find_marker, marker_text, neutralize_markers
from kbbot.core.page_links import flatten_markdown_links, is_allowed_url
from kbbot.core.text import neutralize_mentions, outside_code, outside_math
from kbbot.errors import SaveError

__all__ = [
    "PageRenderer",
    "RenderedPart",
    "begin_marker_text",
    "clean_title",
    "find_marker",
    "marker_text",
    "masked_text",
    "thread_digest",
]

#: The smallest page cap that leaves room for messages after the header and footer.
_MIN_PAGE_CHARS = 8_000
_MAX_PARTICIPANTS = 25
_MAX_ATTACHMENTS = 50
_DELETED_HTML = "<p><em>This message was deleted.</em></p>\n"
_DELETED_MD = "*This message was deleted.*\n\n"
# A deleted message whose author the platform no longer says (a Slack thread root kept for its replies).
_DELETED_ANON_HTML = "<p><em>(deleted message)</em></p>\n"
_DELETED_ANON_MD = "*(deleted message)*\n\n"

_ALLOWED_TAGS = {
    "h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "a", "em", "strong", "code", "pre", "blockquote",
    "ul", "ol", "li", "del", "s", "small",
}
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}  # no style: CSS is not sanitized
_URL_SCHEMES = {"http", "https", "mailto"}
_LINK_REL = "noopener noreferrer nofollow"

# Anything markdown-it would treat specially; bodies without it take the fast path.
_MARKDOWN_SYNTAX = re.compile(r"[\\`*_\[\]<>&~]|^[ \t]*(?:[-+=>#]|\d{1,9}[.)])|^(?: {4}|\t)|  \n", re.M)
# What can open a block at the start of a line (lists, thematic breaks, quotes, headings, fences, numbered lists).
_BLOCK_START = re.compile(r"[-+*][ \t]|[-*_](?:[ \t]*[-*_]){2,}[ \t]*$|[=>#~`]|\d{1,9}[.)]")
_PARAGRAPHS = re.compile(r"\n[ \t]*\n\s*")
_RAW_LT = re.compile(r"<(?!(?:https?|mailto):[^\s<>]*>)")
_MATH_TAG = re.compile(r"<(?=[A-Za-z/!?])")
_FENCE_LINE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})", re.M)
_MD_ESCAPE = re.compile(r"([\\`*_\[\]<>#~|$&!])")
_TITLE_LINK = re.compile(r"\[([^\]\n]*)\]\([^)\n]*\)|<((?:https?|mailto):[^\s<>]*)>")
# Only markup is dropped from a title, never ordinary symbols ("C# build | notes v2 > v1" stays as typed): what
# opens a line (headings, quotes, bullets) and emphasis/code around words. Renderers escape the rest.
_TITLE_LEAD = re.compile(r"^[ \t]*(?:(?:#{1,6}|[-+*])[ \t]+|>[ \t]*)+")
_TITLE_EMPHASIS = re.compile(
    r"(\*{1,3}|~~|`+)(?=\S)(.+?)(?<=\S)\1|(?<!\w)(_{1,3})(?=\S)(.+?)(?<=\S)\3(?!\w)"
)
_SPACES = re.compile(r"\s+")
_WORDY = re.compile(r"[^\W_]")  # a title has at least one letter or digit
_UTC_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
_INVISIBLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def thread_digest(platform: str, key: str) -> str:
    """A short, stable, non-reversible id for a conversation; what the page marker carries."""
    return hashlib.sha256(f"{platform}:{key}".encode()).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class RenderedPart:
    """One page's worth of a thread: ``index`` is 1-based, ``total`` the number of parts."""

    title: str
    content: str
    index: int
    total: int


def _markdown_it() -> MarkdownIt:
    md = MarkdownIt("zero", {"html": False, "maxNesting": 20})
    md.enable(
        ["fence", "code", "blockquote", "list", "hr", "heading", "paragraph", "backticks", "emphasis", "link",
         "autolink", "entity", "escape", "newline", "strikethrough", "text"]
    )
    # markdown-it's default normalizer (punycode + percent-encoding) is most of its link cost; a plain
    # percent-encode is enough because validateLink still refuses javascript:/data: and nh3 re-checks schemes.
    md.normalizeLink = lambda url: quote(url, safe="/:?#[]@!$&'()*+,;=%~")  # type: ignore[method-assign]
    # Every link is parsed as a link (markdown-it would leave a refused one as its raw source text,
    # ``[x](file:///…)``); the render rules below then show a refused one as its text alone.
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    default_link_open = getattr(md.renderer, "rules", {}).get("link_open")
    default_link_close = getattr(md.renderer, "rules", {}).get("link_close")

    def link_open(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        if not is_allowed_url(str(token.attrGet("href") or ""), markdown=False, percent=True):
            for later in tokens[idx + 1 :]:  # links do not nest: the next close is this link's
                if later.type == "link_close":
                    later.meta = {**(later.meta or {}), "kbbot_drop": True}
                    break
            return ""
        # Emit the rel nh3 will set anyway, so sanitizing does not grow the page past its measured size.
        token.attrSet("rel", _LINK_REL)
        if default_link_open is not None:
            return str(default_link_open(tokens, idx, options, env))
        return str(self.renderToken(tokens, idx, options, env))

    def link_close(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        if (tokens[idx].meta or {}).get("kbbot_drop"):
            return ""
        if default_link_close is not None:
            return str(default_link_close(tokens, idx, options, env))
        return str(self.renderToken(tokens, idx, options, env))

    md.add_render_rule("link_open", link_open)
    md.add_render_rule("link_close", link_close)
    return md


class PageRenderer:
    """Renders threads for one content format and size cap. Pure and reusable; no I/O."""

    def __init__(self, content_format: ContentFormat, *, max_chars: int = 400_000) -> None:
        if max_chars < _MIN_PAGE_CHARS:
            raise ValueError(f"max_chars must be at least {_MIN_PAGE_CHARS}")
        self.content_format: ContentFormat = content_format
        self.max_chars = max_chars
        self._md = _markdown_it() if content_format == "html" else None

    # --- public --------------------------------------------------------------------------------------------

    def render(self, thread: Thread, title: str, *, masked: int = 0) -> list[RenderedPart]:
        """The thread as one or more pages, each at most ``max_chars`` characters. ``masked`` secrets were
        removed from it before (:mod:`kbbot.core.secrets`): every part says how many."""
        digest = thread_digest(thread.platform, thread.key)
        # What every part repeats (title, header, part note, footer), measured at its largest, is off the budget.
        fixed = (
            len(self._title(f"{title} (part 999/999)"))
            + len(self._header(thread))
            + len(self._note(f"Part 999 of 999 of “{title}”."))
            + len(self._note(masked_text(10**9)))
            + len(self._footer(marker_text(digest, 999)))
            + len(self._begin(begin_marker_text(digest, 999)))
        )
        budget = max(self.max_chars - fixed - 200, self.max_chars // 4)
        authors: dict[str, str] = {}  # per call, so one renderer can serve several threads at once
        chunks = [self._message_chunk(message, budget, authors) for message in thread.messages]
        for _ in range(6):
            parts = self._assemble(thread, title, digest, _pack(chunks, budget), masked)
            if all(len(part.content) <= self.max_chars for part in parts):
                return parts
            # Sanitizing grew the HTML past the cap (rare: we already emit what nh3 would): pack tighter, and
            # re-render only the messages that no longer fit a part on their own.
            budget = int(budget * 0.8)
            chunks = [
                chunk if len(chunk) <= budget else self._message_chunk(message, budget, authors)
                for chunk, message in zip(chunks, thread.messages, strict=True)
            ]
        raise SaveError(  # pragma: no cover - every chunk is capped below the budget
            f"The thread could not be fitted into pages of {self.max_chars:,} characters (PAGE_MAX_CHARS)."
        )

    def note(self, text: str) -> str:
        """A one-line page body in this format, with ``text`` escaped."""
        return self._note(text)

    def marked_note(self, text: str, digest: str, part: int) -> str:
        """A kbbot block (begin and end markers) holding only a note, e.g. for a part page no longer needed.

        Marked, so that replacing it again (a retried save) replaces the note instead of stacking another.
        """
        return (
            self._begin(begin_marker_text(digest, part))
            + self._note(text)
            + self._footer(marker_text(digest, part))
        )

    def kept_note(self) -> str:
        """The line above a page's previous content kept by a re-save that could not find its block."""
        return self._note(
            "Kept from this page's previous version: kbbot re-saved the thread above but could not find its "
            "markers (kbbot-thread-begin / kbbot-thread lines) to replace only its own part, so nothing "
            "below was removed. Delete what is no longer needed."
        )

    # --- pieces --------------------------------------------------------------------------------------------

    def _assemble(
        self, thread: Thread, title: str, digest: str, groups: list[list[str]], masked: int = 0
    ) -> list[RenderedPart]:
        total = len(groups)
        header = self._header(thread)
        parts = []
        for number, group in enumerate(groups, start=1):
            part_title = title if total == 1 else f"{title} (part {number}/{total})"
            body = [self._title(part_title), header]
            if total > 1:
                body.append(self._note(f"Part {number} of {total} of “{title}”."))
            if masked:
                body.append(self._note(masked_text(masked)))
            body.extend(group)
            inner = "".join(body)
            if self._md is not None:
                inner = _sanitize(inner)
            # After sanitizing (nh3 decodes entities): no user text may carry a marker of its own.
            inner = neutralize_markers(inner)
            content = (
                self._begin(begin_marker_text(digest, number)) + inner + self._footer(marker_text(digest, number))
            )
            parts.append(RenderedPart(part_title, content, number, total))
        return parts

    def _title(self, title: str) -> str:
        if self._md is not None:
            return f"<h1>{_html_text(title)}</h1>\n"
        return f"# {_md_text(title)}\n\n"

    def _note(self, text: str) -> str:
        if self._md is not None:
            return f"<p><em>{_html_text(text)}</em></p>\n"
        return f"*{_md_text(text)}*\n\n"

    def _begin(self, marker: str) -> str:
        if self._md is not None:
            return f"<p><small>{marker}</small></p>\n"
        return f"{marker}\n\n"

    def _footer(self, marker: str) -> str:
        if self._md is not None:
            return f"<hr>\n<p><small>{marker}</small></p>\n"
        return f"---\n\n{marker}\n"

    def _header(self, thread: Thread) -> str:
        is_html = self._md is not None
        esc: Callable[[str], str] = _html_text if is_html else _md_text
        bits: list[str] = []
        where = f"#{_cap(thread.channel_name, 80)}" if thread.channel_name else "a conversation"
        bits.append(f"Saved from {esc(where)} on {esc(thread.platform.capitalize())}")
        span = _date_range(thread.messages)
        if span:
            bits.append(esc(span))
        names = _participants(thread.messages)
        if names:
            shown = ", ".join(_cap(name, 40) for name in names[:_MAX_PARTICIPANTS])
            more = f" and {len(names) - _MAX_PARTICIPANTS} more" if len(names) > _MAX_PARTICIPANTS else ""
            bits.append(esc(f"{len(names)} participant{'s' if len(names) != 1 else ''}: {shown}{more}"))
        bits.append(esc(f"{len(thread.messages)} message{'s' if len(thread.messages) != 1 else ''}"))
        link = _safe_url(thread.permalink)
        if link:
            bits.append(_link(link, "original thread", is_html))
        line = " · ".join(bits)
        return f"<p><em>{line}</em></p>\n<hr>\n" if is_html else f"*{line}*\n\n---\n\n"

    def _message_chunk(self, message: ThreadMessage, budget: int, authors: dict[str, str]) -> str:
        if len(message.text) <= budget:  # longer text cannot fit once rendered: skip straight to truncating
            chunk = self._render_message(message, message.text, authors)
            if len(chunk) <= budget:
                return chunk
        keep = budget // 2
        while keep > 0:
            note = f"\n\n(message truncated: {len(message.text):,} characters, the first {keep:,} are shown)"
            chunk = self._render_message(message, message.text[:keep] + note, authors)
            if len(chunk) <= budget:
                return chunk
            keep //= 2
        # Even the attachment list is too long: show a stub that always fits.
        stub = replace(message, attachments=())
        text = f"(message too long to show: {len(message.attachments)} attachments)"
        return self._render_message(stub, text, authors)

    def _render_message(self, message: ThreadMessage, text: str, authors: dict[str, str]) -> str:
        is_html = self._md is not None
        if message.deleted and not (message.author_name or message.author_id):
            return _DELETED_ANON_HTML if is_html else _DELETED_ANON_MD
        name = message.author_name or message.author_id or "unknown"
        author = authors.get(name)
        if author is None:  # a thread has few authors and many messages: escape each name once
            shown = _cap(name, 80)
            author = authors[name] = _html_text(shown) if is_html else _md_text(shown)
        meta = _format_time(message.timestamp) if message.timestamp else ""
        if meta is None:  # unparseable: show the raw string, which is user text
            raw = _cap(message.timestamp, 40)
            meta = _html_text(raw) if is_html else _md_text(raw)
        if message.edited and not message.deleted:
            meta = f"{meta} · edited" if meta else "edited"
        if not meta:
            out = [f"<p><strong>{author}</strong></p>\n" if is_html else f"**{author}**\n\n"]
        elif is_html:
            out = [f"<p><strong>{author}</strong> <small>{meta}</small></p>\n"]
        else:
            out = [f"**{author}** · {meta}\n\n"]
        if message.deleted:
            out.append(_DELETED_HTML if is_html else _DELETED_MD)
            return "".join(out)
        if text.strip():
            out.append(self._body_html(text) if is_html else _body_markdown(text) + "\n\n")
        if message.attachments:
            out.append(_attachments(message.attachments, is_html))
        return "".join(out)

    def _body_html(self, text: str) -> str:
        text = _inert(text)
        if _MARKDOWN_SYNTAX.search(text) is None:
            paragraphs = (p.strip() for p in _PARAGRAPHS.split(text))
            return "".join("<p>" + p.replace('"', "&quot;") + "</p>\n" for p in paragraphs if p)
        assert self._md is not None
        line = text.strip()
        if "\n" not in line and _BLOCK_START.match(line) is None:
            # One line that cannot open a block is one paragraph: skip markdown-it's block pass (~40% faster).
            inline: str = self._md.renderInline(line)
            return "<p>" + inline + "</p>\n"
        rendered: str = self._md.render(text)
        return rendered


def masked_text(count: int) -> str:
    """The sentence on a page (and in the reply) saying how many secrets were masked before saving."""
    noun, verb = ("secret", "was") if count == 1 else ("secrets", "were")
    return f"{count:,} {noun} (access tokens, keys or passwords) {verb} masked before saving."


def _pack(chunks: Iterable[str], budget: int) -> list[list[str]]:
    """Greedy, in order: start a new part when the next message would overflow this one."""
    groups: list[list[str]] = [[]]
    size = 0
    for chunk in chunks:
        if size + len(chunk) > budget and groups[-1]:
            groups.append([])
            size = 0
        groups[-1].append(chunk)
        size += len(chunk)
    return groups


def _sanitize(content: str) -> str:
    return nh3.clean(
        content,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel=_LINK_REL,
        strip_comments=True,
    )


def _body_markdown(text: str) -> str:
    """User Markdown made safe to store: mentions inert, raw HTML escaped, refused links flattened, fences shut."""

    def prose(part: str) -> str:
        return outside_math(part, _markdown_prose, _inert_math)

    # Links first, over the whole body, code included: our code-span detection is simpler than CommonMark's
    # (an escaped backtick), so a refused link must not be able to hide from this pass inside "code".
    text = flatten_markdown_links(text)
    body = (outside_code(text, prose) if "`" in text else prose(text)).strip("\n")
    if len(_FENCE_LINE.findall(body)) % 2 == 1:
        body += "\n```"  # an unclosed fence would swallow every later message of the page
    return body


def _inert(text: str) -> str:
    """Broadcast and user mentions made inert outside code (cheap skip when there is nothing to do)."""
    if "@" not in text and "<" not in text:
        return text
    return outside_code(text, neutralize_mentions) if "`" in text else neutralize_mentions(text)


def _inert_math(tex: str) -> str:
    """TeX kept as written, except a "<" that opens an HTML tag (``$<img src=x onerror=…>$``): a Markdown
    renderer passes that through as HTML. ``\\lt`` is the same symbol to KaTeX/MathJax, and inert."""
    return _MATH_TAG.sub(r"\\lt ", tex) if ">" in tex else tex


def _markdown_prose(part: str) -> str:
    if "@" in part or "<" in part:
        part = neutralize_mentions(part)
    return _RAW_LT.sub("&lt;", part)


def _attachments(attachments: tuple[Attachment, ...], is_html: bool) -> str:
    links = []
    for item in attachments[:_MAX_ATTACHMENTS]:
        name = _cap(item.name or "attachment", 120)
        url = _safe_url(item.url)
        if url:
            links.append(_link(url, name, is_html))
        else:
            links.append(_html_text(name) if is_html else _md_text(name))
    if len(attachments) > _MAX_ATTACHMENTS:
        links.append(f"and {len(attachments) - _MAX_ATTACHMENTS} more")
    joined = ", ".join(links)
    return f"<p>Attachments: {joined}</p>\n" if is_html else f"Attachments: {joined}\n\n"


def _link(url: str, text: str, is_html: bool) -> str:
    if is_html:
        return f'<a href="{html.escape(url, quote=True)}" rel="{_LINK_REL}">{_html_text(text)}</a>'
    return f"[{_md_text(text)}](<{url.replace('>', '%3E').replace('<', '%3C')}>)"


def _safe_url(url: str | None) -> str | None:
    if not url or len(url) > 2_000:
        return None
    url = _INVISIBLE.sub("", url).strip()
    if not re.match(r"(?i)https?://[^\s]+$", url):
        return None
    return url


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _html_text(text: str) -> str:
    return html.escape(neutralize_mentions(_INVISIBLE.sub(" ", text)), quote=True)


def _md_text(text: str) -> str:
    # "<" becomes an entity rather than "\<": every Markdown renderer honours entities, not all honour escapes.
    escaped = _MD_ESCAPE.sub(r"\\\1", neutralize_mentions(_INVISIBLE.sub(" ", text)))
    return escaped.replace("\\<", "&lt;")


def _parse_time(stamp: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _format_time(stamp: str) -> str | None:
    """``YYYY-MM-DD HH:MM UTC``, or None when ``stamp`` is not an ISO 8601 time."""
    if stamp.endswith(("+00:00", "Z")) and _UTC_STAMP.match(stamp):
        return f"{stamp[:10]} {stamp[11:16]} UTC"  # already UTC: skip parsing, most adapters send this
    moment = _parse_time(stamp)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else None


def _date_range(messages: tuple[ThreadMessage, ...]) -> str:
    moments = [m for m in (_parse_time(msg.timestamp) for msg in messages) if m is not None]
    if not moments:
        return ""
    first, last = min(moments), max(moments)
    if first.date() == last.date():
        return f"{first:%Y-%m-%d %H:%M}–{last:%H:%M} UTC"
    return f"{first:%Y-%m-%d %H:%M} – {last:%Y-%m-%d %H:%M} UTC"


def _participants(messages: tuple[ThreadMessage, ...]) -> list[str]:
    seen: dict[str, None] = {}
    for message in messages:
        name = message.author_name or message.author_id
        if name:
            seen.setdefault(name, None)
    return list(seen)


def clean_title(text: str, *, max_chars: int = 120) -> str:
    """A page title from free text: the first line with words in it, without leading Markdown markup, emphasis
    or invisible chars (symbols such as ``C#``, ``|``, ``>`` stay; renderers escape them). Prose wins over code;
    a code line is used only when there is no prose, and a line of bare
    punctuation (``{`` opening a JSON snippet) never is."""
    prose: list[str] = []
    code: list[str] = []
    fence = ""
    for line in text.splitlines():
        opened = _FENCE_LINE.match(line)
        if opened and (not fence or opened.group(1).startswith(fence)):
            fence = "" if fence else opened.group(1)[:3]
            continue
        (code if fence else prose).append(line)
    for line in (*prose, *code):
        line = _TITLE_LINK.sub(lambda m: m.group(1) or m.group(2) or "", _INVISIBLE.sub("", line))
        line = _TITLE_EMPHASIS.sub(lambda m: m.group(2) or m.group(4), _TITLE_LEAD.sub("", line))
        cleaned = _SPACES.sub(" ", line).strip(" -:.")
        if cleaned and _WORDY.search(cleaned):
            if len(cleaned) > max_chars:
                cleaned = cleaned[: max_chars - 1].rstrip() + "…"
            return cleaned
    return ""
