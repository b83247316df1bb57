"""Answer → Discord messages (content + embeds), as pure functions.

Discord rejects a message that breaks any of its size limits, so the whole answer is laid out here, where it can
be unit-tested, instead of being discovered as a 400 at send time. Every string that reaches Discord passes
through :func:`neutralize_mentions`; the sender also disables mentions (``AllowedMentions.none()``), so an
``@everyone`` quoted from a wiki page can never ping anyone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import discord

from kbbot.core.models import Answer, PageRef, Source
from kbbot.core.replies import NOTHING_FOUND
from kbbot.core.text import neutralize_mentions, split_text

# Discord's documented limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
CONTENT_LIMIT = 2000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
MESSAGE_EMBED_TOTAL = 6000
EMBEDS_PER_MESSAGE = 10

#: Colour of answer embeds (Discord "blurple"); search answers and "don't know"s are grey so an AI answer is
#: recognisable.
AI_COLOUR = 0x5865F2
SEARCH_COLOUR = 0x99AAB5

#: Description chunk size: below 6000/2 so that two chunks plus title/footer fit in one message.
_CHUNK = 2800

EMPTY_TEXT = NOTHING_FOUND

SOURCE_LABEL = {
    Source.AI: "Answered by the wiki's AI",
    Source.CACHE: "Cached AI answer",
    Source.SEARCH: "From a wiki search (no AI)",
}
#: The footer of a "don't know" (``empty``), whoever said it: when the wiki's AI found nothing
#: (``isEmptyResult``) the reply is kbbot's own, with the index's closest pages, not an AI answer.
NOT_FOUND_LABEL = "Not found in the wiki"


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One Discord message: optional plain content and up to 10 embeds, already within every limit."""

    content: str | None = None
    embeds: tuple[discord.Embed, ...] = field(default_factory=tuple)


def safe(text: str) -> str:
    """Text fit to send: mentions made inert."""
    return neutralize_mentions(text)


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def question_title(question: str) -> str:
    """The embed title that carries the question (also how a 👍/👎 vote finds its question after a restart)."""
    return truncate(safe(" ".join(question.split())), TITLE_LIMIT) or "Answer"


def related_links(pages: tuple[PageRef, ...]) -> str:
    """Related pages as Markdown links (titles only when no page URL is configured), within a field's limit."""
    lines: list[str] = []
    used = 0
    for page in pages:
        title = safe(page.title.replace("[", "(").replace("]", ")").strip()) or page.id
        line = f"• [{title}]({page.url})" if page.url and _plain_url(page.url) else f"• {title}"
        if used + len(line) + 1 > FIELD_VALUE_LIMIT:
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)


def _plain_url(url: str) -> bool:
    # A ")" or whitespace would end the Markdown link early; such URLs are shown as text only.
    return url.startswith(("https://", "http://")) and not any(c in url for c in " ()<>\n")


def footer_text(answer: Answer, *, part: int = 1, parts: int = 1, hint: str | None = None) -> str:
    label = NOT_FOUND_LABEL if answer.empty else SOURCE_LABEL.get(answer.source, str(answer.source))
    if answer.knowledgebase:
        label += f" · from {answer.knowledgebase}"
    label += f" · part {part}/{parts}" if parts > 1 else ""
    if part == parts and answer.asked:
        label += f" · asked the wiki: “{truncate(answer.asked, 200)}”"
    return label + (f" · {hint}" if hint and part == parts else "")


def render_answer(answer: Answer, *, question: str, hint: str | None = None) -> list[OutgoingMessage]:
    """Lay out ``answer`` as one or more messages.

    Layout: the quota notice (if any) as the first message's content; the answer text in embed descriptions,
    split on paragraph/line/word boundaries; each message's first embed titled with the question; related pages
    and the source (and ``hint``) in the last embed. Every message stays within 2000 content chars, 10 embeds
    and 6000 embed chars; :func:`check_limits` asserts it.
    """
    body = safe(answer.text.strip()) or EMPTY_TEXT
    chunks = split_text(body, _CHUNK)
    title = question_title(question)
    colour = SEARCH_COLOUR if answer.source == Source.SEARCH or answer.empty else AI_COLOUR
    links = related_links(answer.related_pages)

    embeds: list[discord.Embed] = [discord.Embed(description=chunk, colour=colour) for chunk in chunks]
    if links:
        embeds[-1].add_field(name="Related pages", value=links, inline=False)

    # Pack embeds greedily into messages, reserving room for the title on each message's first embed and the
    # footer on the very last one.
    footer_room = len(footer_text(answer, part=99, parts=99, hint=hint))
    messages: list[list[discord.Embed]] = [[]]
    size = 0
    for embed in embeds:
        cost = len(embed) + (len(title) if not messages[-1] else 0)
        if messages[-1] and (
            size + cost + footer_room > MESSAGE_EMBED_TOTAL or len(messages[-1]) >= EMBEDS_PER_MESSAGE
        ):
            messages.append([])
            size = 0
            cost = len(embed) + len(title)
        messages[-1].append(embed)
        size += cost

    out: list[OutgoingMessage] = []
    notice = truncate(safe("⚠️ " + answer.notice), CONTENT_LIMIT) if answer.notice else None
    for index, group in enumerate(messages, 1):
        group[0].title = title
        group[-1].set_footer(text=footer_text(answer, part=index, parts=len(messages), hint=hint))
        out.append(OutgoingMessage(content=notice if index == 1 else None, embeds=tuple(group)))
    return out


def render_text(text: str) -> list[str]:
    """A plain reply (errors, confirmations) as message contents of at most 2000 characters each."""
    return split_text(safe(text.strip()) or "…", CONTENT_LIMIT)


def check_limits(message: OutgoingMessage) -> None:
    """Raise ``ValueError`` when ``message`` would be rejected by Discord. Used by tests and as a last guard."""
    if message.content is not None and len(message.content) > CONTENT_LIMIT:
        raise ValueError("content over 2000 characters")
    if len(message.embeds) > EMBEDS_PER_MESSAGE:
        raise ValueError("more than 10 embeds")
    if sum(len(e) for e in message.embeds) > MESSAGE_EMBED_TOTAL:
        raise ValueError("embeds over 6000 characters in total")
    for embed in message.embeds:
        if embed.title and len(embed.title) > TITLE_LIMIT:
            raise ValueError("embed title over 256 characters")
        if embed.description and len(embed.description) > DESCRIPTION_LIMIT:
            raise ValueError("embed description over 4096 characters")
        if any(len(f.value or "") > FIELD_VALUE_LIMIT for f in embed.fields):
            raise ValueError("embed field over 1024 characters")
