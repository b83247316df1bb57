"""The "Save thread to wiki" modal: building it, and reading a submission back.

The thread being saved travels in ``private_metadata`` (Slack echoes it back on submit, max 3000 chars), so no
server-side state is needed between ``views.open`` and ``view_submission`` — any replica can handle the submit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kbbot.adapters.slack.parsing import ThreadRef
from kbbot.core.text import parse_tags

SAVE_VIEW_CALLBACK = "kb_save_modal"
TITLE_BLOCK, TITLE_ACTION = "title", "title_input"
TAGS_BLOCK, TAGS_ACTION = "tags", "tags_input"
MAX_TITLE_CHARS = 150
MAX_TAGS = 10


def save_modal(ref: ThreadRef, *, title: str, tags: Sequence[str] = ()) -> dict[str, Any]:
    """The modal the message shortcut opens: the title prefilled from the thread's first line."""
    metadata = json.dumps({"channel": ref.channel, "thread_ts": ref.thread_ts})
    title_input: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": TITLE_ACTION,
        "max_length": MAX_TITLE_CHARS,
        "placeholder": {"type": "plain_text", "text": "Page title"},
    }
    if title:
        title_input["initial_value"] = title[:MAX_TITLE_CHARS]
    tags_input: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": TAGS_ACTION,
        "placeholder": {"type": "plain_text", "text": "comma separated, e.g. vpn, onboarding"},
    }
    if tags:
        tags_input["initial_value"] = ", ".join(tags)
    return {
        "type": "modal",
        "callback_id": SAVE_VIEW_CALLBACK,
        "private_metadata": metadata,
        "title": {"type": "plain_text", "text": "Save thread to wiki"},
        "submit": {"type": "plain_text", "text": "Save"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "input", "block_id": TITLE_BLOCK, "label": {"type": "plain_text", "text": "Title"},
             "element": title_input},
            {"type": "input", "block_id": TAGS_BLOCK, "optional": True,
             "label": {"type": "plain_text", "text": "Tags"}, "element": tags_input},
            {"type": "context", "elements": [{"type": "mrkdwn", "text":
                "Every message of the thread is saved. Saving again later updates the same page."}]},
        ],
    }


@dataclass(frozen=True, slots=True)
class SaveRequest:
    ref: ThreadRef
    title: str
    tags: tuple[str, ...]


class InvalidSubmission(ValueError):
    """The submitted modal is unusable; ``errors`` maps block ids to messages for ``response_action=errors``."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def parse_submission(view: dict[str, Any]) -> SaveRequest:
    """``view_submission`` payload's ``view`` → what to save. Raises :class:`InvalidSubmission`."""
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        meta = {}
    if not isinstance(meta, dict):
        meta = {}
    ref = ThreadRef.from_key(f"{meta.get('channel', '')}:{meta.get('thread_ts', '')}")
    if ref is None:
        raise InvalidSubmission({TITLE_BLOCK: "This form lost track of its thread; please start again."})
    values = (view.get("state") or {}).get("values") or {}
    title = str(((values.get(TITLE_BLOCK) or {}).get(TITLE_ACTION) or {}).get("value") or "").strip()
    raw_tags = str(((values.get(TAGS_BLOCK) or {}).get(TAGS_ACTION) or {}).get("value") or "")
    if not title:
        raise InvalidSubmission({TITLE_BLOCK: "Please give the page a title."})
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidSubmission({TITLE_BLOCK: f"Please keep the title to {MAX_TITLE_CHARS} characters at most."})
    tags = parse_tags(raw_tags)
    if len(tags) > MAX_TAGS:
        raise InvalidSubmission({TAGS_BLOCK: f"At most {MAX_TAGS} tags, please."})
    return SaveRequest(ref=ref, title=title, tags=tags)
