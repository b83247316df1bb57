"""Convert Slack and Discord message markup into the neutral Markdown dialect of ``ThreadMessage.text``.

The neutral dialect is CommonMark + GFM strikethrough (``~~s~~``): what markdown-it-py renders for Perfect
Wiki and what MatHub/local pages store as-is. Adapters call these pure functions while building a ``Thread``,
so the renderer never needs to know where a message came from.

Rules shared by both converters:

* Code (fenced blocks and inline spans) is copied verbatim: no mention, emoji or emphasis rewriting inside it.
  Fences are moved onto their own lines because chat platforms accept ```` ```code``` ```` inline and
  CommonMark does not.
* Broadcast mentions (``<!channel>``, ``<!here>``, ``<!everyone>``, ``@everyone``, ``@here``) become inert
  text ``@\\u200beveryone``: readable, but no platform or wiki will ping anyone when the page is quoted back.
* Emoji shortcodes in a small common set become Unicode (``:tada:`` → 🎉); any other shortcode is kept as
  written (``:partyparrot:``), which is still readable and harmless.

Both functions are linear in the length of the text (regex passes with no nested quantifiers).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from kbbot.core.text import outside_code, outside_math

__all__ = ["EMOJI", "discord_to_markdown", "slack_to_markdown"]

_ZWSP = "\u200b"
_EMPTY: Mapping[str, str] = {}

#: The common shortcodes turned into Unicode; anything else stays ``:name:``.
EMOJI: Mapping[str, str] = {
    "+1": "👍", "thumbsup": "👍", "-1": "👎", "thumbsdown": "👎", "tada": "🎉", "smile": "😄",
    "smiley": "😃", "grinning": "😀", "joy": "😂", "slightly_smiling_face": "🙂", "wink": "😉", "heart": "❤️",
    "white_check_mark": "✅", "heavy_check_mark": "✔️", "x": "❌", "warning": "⚠️", "eyes": "👀",
    "rocket": "🚀", "fire": "🔥", "pray": "🙏", "clap": "👏", "ok_hand": "👌", "thinking_face": "🤔",
    "thinking": "🤔", "sweat_smile": "😅", "raised_hands": "🙌", "point_up": "☝️", "point_right": "👉",
    "bulb": "💡", "memo": "📝", "bug": "🐛", "sparkles": "✨", "star": "⭐", "100": "💯", "wave": "👋",
    "question": "❓", "exclamation": "❗", "lock": "🔒", "key": "🔑", "link": "🔗", "calendar": "📅",
    "sob": "😭", "cry": "😢", "rofl": "🤣", "slightly_frowning_face": "🙁", "muscle": "💪", "coffee": "☕",
    # kbbot's own answer source lines (kbbot.adapters.slack.rendering), which saved pages keep.
    "robot_face": "🤖", "mag": "🔍", "recycle": "♻️",
}

_EMOJI = re.compile(r":([a-z0-9_+\-]+):")
_SKIN_TONE = re.compile(r"(?<=:):skin-tone-[2-6]:")
_BROADCAST = re.compile(r"(?<![\w@])@(everyone|here|channel)\b", re.IGNORECASE)
_PLACEHOLDER = re.compile("\x00(\\d+)\x00")


def _inert(word: str) -> str:
    return "@" + _ZWSP + word


def _emoji(text: str) -> str:
    # Skin-tone suffixes (":+1::skin-tone-3:") only modify the emoji before them; drop them. Math is left
    # alone: "$1:100:1000$" is a ratio, not ":100:".
    return outside_math(text, _shortcodes) if ":" in text else text


def _shortcodes(text: str) -> str:
    return _EMOJI.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), _SKIN_TONE.sub("", text))


def _fence(body: str, *, lang_allowed: bool) -> str:
    """A CommonMark fenced block on its own lines from a chat fence's inner text."""
    lang = ""
    if lang_allowed and "\n" in body:
        first, rest = body.split("\n", 1)
        if re.fullmatch(r"[\w+#.\-]{1,30}", first):
            lang, body = first, rest
    body = body.strip("\n")
    fence = "```"
    while fence in body:  # a longer fence than any run inside the body keeps it one block
        fence += "`"
    return f"\n{fence}{lang}\n{body}\n{fence}\n"


class _Stash:
    """Placeholders for finished pieces (links, mentions) so later emphasis passes cannot mangle them."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def put(self, piece: str) -> str:
        self.items.append(piece)
        return f"\x00{len(self.items) - 1}\x00"

    def restore(self, text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: self.items[int(m.group(1))], text)


def _link_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def _link_url(url: str) -> str:
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")


# --- Slack -------------------------------------------------------------------------------------------------

# Only Slack's own tokens: mentions, channels, commands and links. Anything else in angle brackets cannot come
# from Slack (it escapes a literal "<" as "&lt;"), and skipping it keeps hostile input like "<b>"*100000 fast.
_SLACK_ANGLE = re.compile(r"<([@#!][^<>\n]{0,2000}|(?i:https?|mailto|ftp|tel|slack):[^<>\n]{0,2000})>")
_SLACK_ENTITY = re.compile(r"&(amp|lt|gt);")
_SLACK_CODE_LINK = re.compile(r"<((?i:https?|mailto|ftp):[^<>|\n]{1,2000})(?:\|[^<>\n]*)?>")
_SLACK_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_SLACK_ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])")
_SLACK_STRIKE = re.compile(r"(?<![\w~])~(?=\S)([^~\n]+?)(?<=\S)~(?![\w~])")
_SLACK_BULLET = re.compile(r"^([ \t]*)[•◦▪‣][ \t]*", re.MULTILINE)
_LEADING_HASH = re.compile(r"^([ \t]*)(#{1,6})(?=[ \t]|$)", re.MULTILINE)
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}


def _slack_unescape(text: str) -> str:
    return _SLACK_ENTITY.sub(lambda m: _ENTITIES[m.group(1)], text)


def slack_to_markdown(
    text: str, *, users: Mapping[str, str] = _EMPTY, channels: Mapping[str, str] = _EMPTY
) -> str:
    """Slack mrkdwn (as the Web API returns it in ``text``) → neutral Markdown.

    ``users`` maps user ids to display names and ``channels`` channel ids to names; when an id is missing the
    label Slack put in the token is used, else the raw id.
    """

    def angle(stash: _Stash, inner: str) -> str:
        target, _, label = inner.partition("|")
        label = _slack_unescape(label)
        if target.startswith("@"):
            uid = target[1:]
            return stash.put("@" + (users.get(uid) or label.lstrip("@") or uid))
        if target.startswith("#"):
            cid = target[1:]
            return stash.put("#" + (channels.get(cid) or label.lstrip("#") or cid))
        if target.startswith("!"):
            command = target[1:]
            if command.lower() in ("channel", "here", "everyone"):
                return stash.put(_inert(command.lower()))
            if command.startswith("subteam^"):
                return stash.put(_inert(label.lstrip("@") or "group"))
            # <!date^…|fallback> and anything newer: the fallback text is what a reader should see.
            return stash.put(label.replace("@", "@" + _ZWSP) if label else "")
        url = _slack_unescape(target)
        if label and label != url:
            return stash.put(f"[{_link_text(label)}]({_link_url(url)})")
        return stash.put(f"<{_link_url(url)}>")

    def prose(part: str) -> str:
        if not part:
            return part
        stash = _Stash()
        part = part.replace("\x00", "")
        part = _SLACK_ANGLE.sub(lambda m: angle(stash, m.group(1)), part)
        part = _SLACK_BOLD.sub(r"**\1**", part)
        part = _SLACK_ITALIC.sub(r"*\1*", part)
        part = _SLACK_STRIKE.sub(r"~~\1~~", part)
        part = _SLACK_BULLET.sub(r"\1- ", part)
        part = _LEADING_HASH.sub(lambda m: m.group(1) + "\\" + m.group(2), part)
        part = _emoji(_slack_unescape(part))
        part = _BROADCAST.sub(lambda m: _inert(m.group(1)), part)
        # Quotes: Slack sends ">" as "&gt;" at line start; after decoding it is already a Markdown quote.
        return stash.restore(part)

    def code(span: str) -> str:
        # Slack wraps what looks like a link in <…> even inside code ("wget <http://x>"): unwrap it.
        span = _SLACK_CODE_LINK.sub(lambda m: m.group(1), span)
        if span.startswith("```"):
            return _fence(_slack_unescape(span[3:-3]), lang_allowed=False)
        return _slack_unescape(span)

    return _tidy(outside_code(text, prose, code))


# --- Discord -----------------------------------------------------------------------------------------------

_DISCORD_TOKEN = re.compile(
    r"<@!?(?P<user>\d+)>|<@&(?P<role>\d+)>|<#(?P<channel>\d+)>|<a?:(?P<emoji>\w+):\d+>"
    r"|<t:(?P<ts>-?\d{1,13})(?::(?P<style>[tTdDfFR]))?>|<(?P<url>https?://[^\s<>]+)>"
    r"|</(?P<command>[\w\- ]+):\d+>"
)
_DISCORD_SPOILER = re.compile(r"\|\|(?=\S)([^|\n]|\|(?!\|))+?\|\|")
_DISCORD_BLOCKQUOTE = re.compile(r"^>>> ?", re.MULTILINE)
_DISCORD_SUBTEXT = re.compile(r"^-# ", re.MULTILINE)


def _discord_time(seconds: str, style: str | None) -> str:
    try:
        moment = datetime.fromtimestamp(int(seconds), tz=UTC)
    except (OverflowError, OSError, ValueError):
        return f"<t:{seconds}>"
    if style in ("d", "D"):
        return moment.date().isoformat()
    if style in ("t", "T"):
        return moment.strftime("%H:%M:%S UTC") if style == "T" else moment.strftime("%H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def discord_to_markdown(
    text: str,
    *,
    users: Mapping[str, str] = _EMPTY,
    roles: Mapping[str, str] = _EMPTY,
    channels: Mapping[str, str] = _EMPTY,
) -> str:
    """Discord markdown (``message.content``) → neutral Markdown.

    Discord's markdown is already close to CommonMark; what changes: mentions and channel links become names
    (``users``/``roles``/``channels`` map ids to names; unknown ids stay visible as ``@123``), custom emoji
    become ``:name:``, timestamps ``<t:…>`` become ISO dates in UTC, spoilers ``||x||`` become
    ``(spoiler: x)`` (a wiki page has no hidden text), ``>>>`` quotes every following line, ``-#`` subtext
    becomes a plain line. ``__underline__`` is left as is (CommonMark shows it bold).
    """

    def token(stash: _Stash, m: re.Match[str]) -> str:
        if m.group("user"):
            return stash.put("@" + users.get(m.group("user"), m.group("user")))
        if m.group("role"):
            name = roles.get(m.group("role"), m.group("role")).lstrip("@")
            return stash.put(_inert(name) if name.lower() in ("everyone", "here") else "@" + name)
        if m.group("channel"):
            return stash.put("#" + channels.get(m.group("channel"), m.group("channel")))
        if m.group("emoji"):
            return stash.put(":" + m.group("emoji") + ":")
        if m.group("ts"):
            return stash.put(_discord_time(m.group("ts"), m.group("style")))
        if m.group("url"):
            return stash.put("<" + _link_url(m.group("url")) + ">")
        return stash.put("/" + m.group("command"))

    def prose(part: str) -> str:
        if not part:
            return part
        stash = _Stash()
        part = part.replace("\x00", "")
        part = _DISCORD_TOKEN.sub(lambda m: token(stash, m), part)
        part = _DISCORD_SPOILER.sub(lambda m: "(spoiler: " + m.group(0)[2:-2] + ")", part)
        part = _DISCORD_SUBTEXT.sub("", part)
        part = _emoji(part)
        part = _BROADCAST.sub(lambda m: _inert(m.group(1)), part)
        return stash.restore(part)

    def code(span: str) -> str:
        if span.startswith("```"):
            return _fence(span[3:-3], lang_allowed=True)
        return span

    return _tidy(_quote_rest(outside_code(text, prose, code)))


def _quote_rest(text: str) -> str:
    """Discord ``>>> `` quotes everything after it, to the end of the message."""
    match = _DISCORD_BLOCKQUOTE.search(text)
    if match is None:
        return text
    rest = text[match.end() :]
    return text[: match.start()] + "\n".join("> " + line for line in rest.split("\n"))


def _tidy(text: str) -> str:
    """Drop the newlines the fence normalization may add at the edges (never inside: code stays verbatim)."""
    return text.strip("\n")
