"""Pure functions: the core's Markdown answers → Slack Block Kit + mrkdwn.

Everything the bot posts goes through here, so this is where the platform facts are enforced: a section's text is
at most 3000 characters, a message at most 50 blocks and :data:`MAX_MESSAGE_BLOCK_TEXT` characters of block text
(Slack refuses more with ``msg_blocks_too_long``, so a long answer is several messages), every message has a plain
``text`` fallback (notifications and screen readers use it), ``& < >`` are escaped, links are ``<url|text>``, and
nothing can ping anyone — mentions in answers or quoted content are neutralized *before* escaping, so neither
``<!channel>`` nor a link we build ourselves can smuggle one in.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from kbbot.core.ask import AskStatus
from kbbot.core.models import Answer, PageRef, SavedPage, Source
from kbbot.core.ports import FeedbackCounts
from kbbot.core.replies import NOTHING_FOUND, masked_note
from kbbot.core.text import neutralize_mentions, split_text
from kbbot.formats.slack import ANSWER_BLOCK_ID

MAX_SECTION_CHARS = 3000
MAX_BLOCKS = 50
#: Text in one message's blocks. Slack refuses a message past ~12,000 (it sums the blocks' text strings, plus an
#: undocumented allowance for the containers: slackapi/bolt-js#2509, #2867 saw refusals from 11,341), so stay
#: well under it.
MAX_MESSAGE_BLOCK_TEXT = 9000
#: A longer answer is cut (with a note) rather than flooding the thread.
MAX_ANSWER_MESSAGES = 5
#: Slack caps a button ``value`` at 2000 characters.
MAX_BUTTON_VALUE = 2000
MAX_RELATED_PAGES = 10
#: The fallback ``text`` only feeds notifications; Slack truncates long ones anyway.
MAX_FALLBACK_CHARS = 3000

ACTION_FEEDBACK_UP = "kb_feedback_up"
ACTION_FEEDBACK_DOWN = "kb_feedback_down"
ACTION_SHARE = "kb_share"
ACTION_SAVE_THREAD = "kb_save_thread"

SOURCE_LABELS = {
    Source.AI: ":robot_face: AI answer from the wiki",
    Source.CACHE: ":recycle: Cached answer",
    Source.SEARCH: ":mag: Wiki search result (no AI)",
}
#: The source line of a "don't know" (``empty``), whoever said it: when the wiki's AI found nothing
#: (``isEmptyResult``) the reply is kbbot's own, with the index's closest pages, not an AI answer.
NOT_FOUND_LABEL = ":mag: Not found in the wiki"

Block = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Message:
    """What ``chat.postMessage``/``respond`` get: blocks plus the plain ``text`` fallback."""

    text: str
    blocks: list[Block] = field(default_factory=list)

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text}
        if self.blocks:
            out["blocks"] = self.blocks
        return out


# --- escaping -------------------------------------------------------------------------------------

_PLACEHOLDER_CHARS = re.compile(r"[\x00-\x03]")


def escape(text: str) -> str:
    """User or answer text → safe mrkdwn: mentions made inert, then ``& < >`` escaped."""
    return _escape_neutralized(_PLACEHOLDER_CHARS.sub("", text))


def _escape_neutralized(text: str) -> str:
    text = neutralize_mentions(text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_SAFE_SCHEMES = ("http://", "https://", "mailto:")


def link(url: str | None, text: str) -> str:
    """``<url|text>`` for a safe URL; just the escaped text for None or anything but http(s)/mailto.

    Only well-known schemes are linked because ``<!channel>``/``<@U1>`` share the angle-bracket syntax: a
    "URL" of ``!channel`` would otherwise become a ping.
    """
    label = escape(text).replace("|", "¦") or escape(url or "")
    if not url or not url.lower().startswith(_SAFE_SCHEMES):
        return label
    return f"<{_escape_url(url)}|{label}>"


def _escape_url(url: str) -> str:
    # Keep the URL working but unable to close the token early: quote what is not URL-safe, then escape.
    safe = quote(_PLACEHOLDER_CHARS.sub("", url), safe=":/?#[]@!$&'()*+,;=%~.-_")
    return safe.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E")


# --- Markdown → mrkdwn ----------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_QUOTE = re.compile(r"^\s{0,3}>\s?(.*)$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_IMAGE_OR_LINK = re.compile(r"!?\[([^\]\n]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_AUTOLINK = re.compile(r"<((?:https?://|mailto:)[^>\s]+)>")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_TOKEN = re.compile(r"\x02(\d+)\x03")
# Markdown's escape of a line that would read as a heading or list item ("\\# 3", "1\\. Get your configuration",
# as search answers quote them): mrkdwn has neither, nor escapes, so the backslash would show.
_LINE_START_ESCAPE = re.compile(r"^(\s*\d{0,9})\\([#.)*+-])")


def markdown_to_mrkdwn(markdown: str) -> str:
    """Convert the core's Markdown to Slack mrkdwn, escaping and neutralizing as it goes.

    Handles what answers actually contain: headings (→ bold lines), ``**bold**``, ``*italic*``, ``~~strike~~``,
    links and images (→ ``<url|text>``), autolinks, bullet lists (→ •), block quotes, rules, inline code and
    fenced code (kept verbatim apart from escaping, as Slack requires even inside code).
    """
    out: list[str] = []
    in_fence = False
    fence_quote = ""  # "> " while the open fence sits in a block quote (search answers quote code that way)
    for line in markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        quoted = _QUOTE.match(line)
        inner = quoted.group(1) if quoted and (fence_quote or not in_fence) else line
        if _FENCE.match(inner):
            in_fence = not in_fence
            fence_quote = "> " if in_fence and quoted else ""
            out.append(("> " if quoted else "") + "```")
            continue
        if in_fence:
            out.append(fence_quote + escape(inner if fence_quote else line))
            continue
        out.append(_block_line(line))
    if in_fence:
        out.append("```")
    return "\n".join(out).strip("\n")


def _block_line(line: str) -> str:
    if _RULE.match(line):
        return "──────────"
    heading = _HEADING.match(line)
    if heading:
        inner = _inline(_BOLD.sub(r"\2", heading.group(1)))
        return f"*{inner}*" if inner else ""
    quote_ = _QUOTE.match(line)
    if quote_:
        return "> " + _block_line(quote_.group(1)) if quote_.group(1) else ">"
    bullet = _BULLET.match(line)
    if bullet:
        return f"{bullet.group(1)}• {_inline(bullet.group(2))}"
    return _inline(_LINE_START_ESCAPE.sub(r"\1\2", line))


def _inline(text: str) -> str:
    tokens: list[str] = []

    def stash(value: str) -> str:
        tokens.append(value)
        return f"\x02{len(tokens) - 1}\x03"

    text = _PLACEHOLDER_CHARS.sub("", text)
    text = _CODE_SPAN.sub(lambda m: stash("`" + escape(m.group(2)) + "`"), text)
    text = _IMAGE_OR_LINK.sub(lambda m: stash(link(m.group(2), _strip_emphasis(m.group(1)))), text)
    text = _AUTOLINK.sub(lambda m: stash(link(m.group(1), m.group(1))), text)
    text = _escape_neutralized(text)  # keeps the \x02n\x03 placeholders
    text = _BOLD.sub(lambda m: "\x01" + m.group(2) + "\x01", text)
    text = _ITALIC.sub(r"_\1_", text)
    text = _STRIKE.sub(r"~\1~", text)
    text = text.replace("\x01", "*")
    return _TOKEN.sub(lambda m: tokens[int(m.group(1))], text)


def _strip_emphasis(text: str) -> str:
    return _BOLD.sub(r"\2", text).replace("`", "")


# --- splitting ------------------------------------------------------------------------------------

_LINK_TOKEN = re.compile(r"<[^<>\n]*>")
_NBSP_MARK = "\x00"


def split_mrkdwn(text: str, limit: int = MAX_SECTION_CHARS) -> list[str]:
    """Split mrkdwn into chunks ≤ ``limit`` without cutting inside a ``<url|text>`` link.

    Spaces inside links are masked while :func:`split_text` looks for break points, so a link is cut only if a
    single link is longer than half a section — which real answers never have.
    """
    masked = _LINK_TOKEN.sub(lambda m: m.group(0).replace(" ", _NBSP_MARK), text)
    return [chunk.replace(_NBSP_MARK, " ") for chunk in split_text(masked, limit) if chunk.strip()]


# --- messages -------------------------------------------------------------------------------------


def section(mrkdwn: str, *, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn[:MAX_SECTION_CHARS]}}
    if block_id is not None:
        block["block_id"] = block_id
    return block


def context(mrkdwn: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn[:MAX_SECTION_CHARS]}]}


def button(text: str, action_id: str, value: str, *, style: str | None = None) -> Block:
    out: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        # Values are echoed back to us, not shown, but they are still outgoing text: keep them inert too.
        "value": neutralize_mentions(value)[:MAX_BUTTON_VALUE],
    }
    if style:
        out["style"] = style
    return out


def related_pages(pages: Sequence[PageRef]) -> str:
    """Linked titles (title only when the page has no URL), one bullet each."""
    lines = [f"• {link(page.url, page.title or page.id)}" for page in pages[:MAX_RELATED_PAGES]]
    more = len(pages) - MAX_RELATED_PAGES
    if more > 0:
        lines.append(f"…and {more} more")
    return "*Related pages*\n" + "\n".join(lines)


def render_answer(
    answer: Answer,
    *,
    question: str,
    share_id: str | None = None,
    save_target: str | None = None,
) -> list[Message]:
    """The answer as one or more messages (a long one is split, each within every Slack limit; the buttons and the
    source line go on the last).

    ``share_id`` adds a "Share in channel" button (ephemeral ``/kb`` answers); ``save_target``
    (``channel:thread_ts``) adds "Save this thread to the wiki" when the wiki had nothing.
    """
    head: list[Block] = []
    if answer.notice:
        head.append(context(":warning: " + escape(answer.notice)))

    # An empty answer's own text already says so ("I couldn't find this…"); NOTHING_FOUND only stands in for none.
    chunks = split_mrkdwn(markdown_to_mrkdwn(answer.text)) if answer.text.strip() else []
    chunks = chunks or [NOTHING_FOUND]

    tail: list[Block] = []
    if answer.related_pages:
        tail.append(section(_fit(related_pages(answer.related_pages))))
    if answer.asked:
        tail.append(context(f"Asked the wiki: “{escape(answer.asked[:300])}”"))
    source = NOT_FOUND_LABEL if answer.empty else SOURCE_LABELS.get(answer.source, escape(str(answer.source)))
    tail.append(context(f"{source} · from `{escape(answer.knowledgebase)}`" if answer.knowledgebase else source))

    buttons: list[Block] = []
    if share_id is not None:
        buttons.append(button("Share in channel", ACTION_SHARE, share_id, style="primary"))
    if answer.empty and save_target is not None:
        value = json.dumps({"ref": save_target, "title": neutralize_mentions(question)[:150]}, ensure_ascii=False)
        buttons.append(button("Save this thread to the wiki", ACTION_SAVE_THREAD, value))
    feedback_value = question
    buttons.append(button("👍 Helpful", ACTION_FEEDBACK_UP, feedback_value))
    buttons.append(button("👎 Not helpful", ACTION_FEEDBACK_DOWN, feedback_value))
    tail.append({"type": "actions", "block_id": "kb_answer_actions", "elements": buttons})

    groups = _pack(chunks, first_room=MAX_MESSAGE_BLOCK_TEXT - block_text_chars(head))
    if len(groups) > MAX_ANSWER_MESSAGES:
        groups = groups[:MAX_ANSWER_MESSAGES]
        groups[-1][-1] = _fit(groups[-1][-1], "\n_…answer truncated; ask a narrower question._")
    # Block ids mark every part as an answer, so saving the thread keeps it (kbbot.formats.slack.is_answer).
    pages = [[section(chunk, block_id=f"{ANSWER_BLOCK_ID}_{n}") for n, chunk in enumerate(group)] for group in groups]
    pages[0][:0] = head
    last = pages[-1]
    if block_text_chars(last) + block_text_chars(tail) > MAX_MESSAGE_BLOCK_TEXT or len(last) + len(tail) > MAX_BLOCKS:
        pages.append(tail)
    else:
        last.extend(tail)

    notice = [escape(answer.notice)] if answer.notice else []
    messages = []
    for index, (blocks, group) in enumerate(zip(pages, [*groups, []], strict=False)):
        fallback = "\n".join([*(notice if index == 0 else []), *(group[:1] or ["…"])])
        messages.append(Message(text=_fallback(fallback), blocks=blocks))
    return messages


def _pack(chunks: list[str], *, first_room: int) -> list[list[str]]:
    """Sections' texts grouped into messages: each group within the block-text budget and the block count (room
    for the tail is made by the caller)."""
    groups: list[list[str]] = [[]]
    room = first_room
    for chunk in chunks:
        current = groups[-1]
        if current and (len(chunk) > room or len(current) >= MAX_BLOCKS - 5):
            groups.append([])
            room = MAX_MESSAGE_BLOCK_TEXT
        groups[-1].append(chunk)
        room -= len(chunk)
    return groups


def block_text_chars(blocks: Sequence[Block] | Block | Any) -> int:
    """What Slack counts against a message's block budget: the length of every ``text`` string in the blocks."""
    if isinstance(blocks, dict):
        return sum(len(v) if k == "text" and isinstance(v, str) else block_text_chars(v) for k, v in blocks.items())
    if isinstance(blocks, list | tuple):
        return sum(block_text_chars(v) for v in blocks)
    return 0


def plain_parts(message: Message, limit: int = MAX_SECTION_CHARS) -> list[Message]:
    """The message's words as plain-text messages (no blocks) of at most ``limit`` characters: what is left to
    send when Slack refuses the blocks themselves."""
    texts: list[str] = []
    for block in message.blocks:
        if block.get("type") == "section":
            texts.append(str((block.get("text") or {}).get("text") or ""))
        elif block.get("type") == "context":
            texts.extend(str(e.get("text") or "") for e in block.get("elements") or [] if isinstance(e, dict))
    joined = "\n\n".join(t for t in texts if t.strip()) or message.text
    return [Message(text=chunk) for chunk in split_mrkdwn(joined, limit)]


def _fit(text: str, suffix: str = "") -> str:
    limit = MAX_SECTION_CHARS - len(suffix)
    if len(text) > limit:
        text = text[: limit - 1].rsplit("\n", 1)[0] if "\n" in text[: limit - 1] else text[: limit - 1]
        text += "…"
    return text + suffix


def _fallback(text: str) -> str:
    return text if len(text) <= MAX_FALLBACK_CHARS else text[: MAX_FALLBACK_CHARS - 1] + "…"


def render_text(text: str) -> Message:
    """A short plain notice (errors, confirmations), escaped; ``text`` only, no blocks."""
    return Message(text=_fallback(escape(text)))


def render_saved(saved: SavedPage, *, title: str, saved_by: str, note: str | None = None) -> Message:
    """The note posted in a thread after saving it (or queueing the save); ``note`` adds a caveat line (e.g.
    that only the first N messages of a very long thread were saved)."""
    by = f" (by {escape(saved_by)})" if saved_by else ""
    name = title or saved.title or "this thread"
    if saved.pending:
        text = f":hourglass_flowing_sand: Saving “{escape(name)}” — the wiki is busy, will retry.{by}"
    else:
        verb = "Saved" if saved.created else "Updated"
        text = f":white_check_mark: {verb} this thread to the wiki: {link(saved.url, name)}{by}"
    if note:
        text += f"\n:warning: {escape(note)}"
    if masked := masked_note(saved):
        text += f"\n:lock: {escape(masked)}"
    return Message(text=_fallback(text), blocks=[section(_fit(text))])


def render_error(message: str) -> Message:
    return render_text(":warning: " + message)


def render_help(command: str = "/kb", *, knowledgebases: Sequence[str] = ()) -> Message:
    """``knowledgebases``: the names to choose from with ``use NAME``, when several are configured."""
    choose = (
        [f"• `{command} use NAME` — the knowledgebase your DMs ask: {', '.join(f'`{n}`' for n in knowledgebases)}."]
        if len(knowledgebases) > 1
        else []
    )
    text = "\n".join(
        [
            "*Ask the wiki*",
            "• Mention me in a channel: `@kbbot how do I set up the VPN?` — I answer in the thread.",
            "• Send me a direct message with your question.",
            f"• `{command} <question>` — a private answer, with a button to share it in the channel.",
            "",
            "*Save a thread as a wiki page*",
            "• Message menu (⋮) on any message of the thread → *Save thread to wiki*.",
            f"• `{command} save <message link> [title]` — copy the thread's link with *Copy link*.",
            "• Inside the thread: `@kbbot save [title]`.",
            "",
            f"*Other*: `{command} status` (knowledgebase, cache, quota), `{command} gaps` (admins), `{command} help`.",
            *choose,
        ]
    )
    return Message(text="How to use kbbot: mention me, DM me, or use " + command, blocks=[section(text)])


def render_status(status: AskStatus, feedback: FeedbackCounts) -> Message:
    """``/kb status``: what an admin needs to know at a glance."""
    name = f"{escape(status.kb_name)} ({escape(status.kb_kind)})" if status.kb_name else escape(status.kb_kind)
    if status.knowledgebase:
        name = f"`{escape(status.knowledgebase)}` — {name}"
    if status.quota.paused:
        when = ""
        if status.quota.next_probe_at is not None:
            when = ", next try at " + time.strftime("%H:%M UTC", time.gmtime(status.quota.next_probe_at))
        quota = f":warning: AI answers paused — monthly quota used up; answering from search{when}"
    else:
        quota = ":white_check_mark: AI answers available"
    lines = [
        f"*Knowledgebase:* {name}",
        f"*Answer cache:* {status.cache.size:,} entries, hit rate {status.cache.hit_rate:.0%}",
        f"*AI quota:* {quota}",
        f"*Rate limit:* {status.queued} request(s) waiting for a slot",
        f"*Feedback:* 👍 {feedback.helpful} · 👎 {feedback.not_helpful}",
    ]
    if (ai_quota := status.ai_quota) is not None:
        warn = ":warning: " if ai_quota.used_ratio >= 0.8 else ""
        lines.append(
            f"*AI quota this month:* {warn}{ai_quota.used:,} of {ai_quota.quota:,} billed calls "
            f"({ai_quota.used_ratio:.0%}), runs out {ai_quota.runs_out_text()}"
        )
    text = "\n".join(lines)
    return Message(text=f"kbbot status: {name}", blocks=[section(text)])


SAVE_OFFER_TEXT = (
    ":bulb: I couldn't answer this from the wiki, but it looks like this thread has the answer now. "
    "Save the thread to the wiki, so the next person who asks gets it from me?"
)


def render_save_offer(save_target: str, *, title: str) -> Message:
    """The one-time offer, after kbbot's empty or 👎'd answer and a person's reply, to save the thread
    (``save_target``: ``channel:thread_ts``); the button opens the save form."""
    value = json.dumps({"ref": save_target, "title": neutralize_mentions(title)[:150]}, ensure_ascii=False)
    actions = {
        "type": "actions", "block_id": "kb_save_offer",
        "elements": [button("Save this thread to the wiki", ACTION_SAVE_THREAD, value, style="primary")],
    }
    return Message(text=SAVE_OFFER_TEXT, blocks=[section(SAVE_OFFER_TEXT), actions])


FOLLOWUPS_STOPPED = "OK, I'll stop answering replies in this thread. Mention me if you need me here again."
FOLLOWUPS_NOT_FOLLOWING = "I'm not following this thread: I only answer replies in threads where I answered."
