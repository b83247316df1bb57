"""Every save reply says how many secrets were masked on the page (Slack, Discord, terminal share the sentence)."""

from __future__ import annotations

from kbbot.adapters.discord.handlers import saved_text
from kbbot.adapters.slack.rendering import render_saved
from kbbot.core.models import SavedPage
from kbbot.core.replies import masked_note


def test_reply_says_how_many_were_masked() -> None:
    page = SavedPage("p1", "https://wiki/p1", True, title="Incident", extra={"masked": 3})
    sentence = "3 secrets (access tokens, keys or passwords) were masked before saving."
    assert masked_note(page) == sentence
    assert saved_text(page, count=4).endswith("\n🔒 " + sentence)
    assert render_saved(page, title="Incident", saved_by="Ada").text.endswith(":lock: " + sentence)


def test_no_note_when_nothing_was_masked() -> None:
    page = SavedPage("p1", None, False, title="Incident")
    assert masked_note(page) == "" and masked_note(SavedPage("p", None, True, extra={"masked": "x"})) == ""
    assert "🔒" not in saved_text(page, count=1)
    assert ":lock:" not in render_saved(page, title="Incident", saved_by="").text
