"""``/kb gaps`` and the weekly digest in Slack: the top knowledge gaps as mrkdwn (questions are user text:
escaped, mentions made inert)."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from kbbot.adapters.slack.rendering import Message, escape, section
from kbbot.reports.digest import GapsSummary, Poster

MAX_QUESTION_CHARS = 200


def render_gaps(summary: GapsSummary, *, title: str = "Top knowledge gaps") -> Message:
    heading = f"*{title}, last {summary.days} days*"
    if not summary.gaps:
        text = f"{heading}\nNo gaps: every question got an answer nobody downvoted. :tada:"
        return Message(text=text, blocks=[section(text)])
    lines = [heading]
    for n, gap in enumerate(summary.gaps, 1):
        question = gap.question if len(gap.question) <= MAX_QUESTION_CHARS else gap.question[:199] + "…"
        times = "once" if gap.count == 1 else f"{gap.count}×"
        lines.append(f"{n}. {escape(question)} — asked {times} ({', '.join(gap.reasons)})")
    lines.append("_Fill one by writing a page, or save a thread that answered it (message menu → Save thread)._")
    text = "\n".join(lines)
    return Message(text=f"{title}: {len(summary.gaps)}", blocks=[section(text)])


def digest_poster(client: AsyncWebClient, channel: str) -> Poster:
    async def post(summary: GapsSummary) -> None:
        message = render_gaps(summary, title="Weekly knowledge gaps")
        await client.chat_postMessage(channel=channel, unfurl_links=False, **message.kwargs())

    return post
