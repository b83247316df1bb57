"""discord.py warns at every client start that voice needs PyNaCl and davey; kbbot never uses voice."""

from __future__ import annotations

import logging

import discord
import pytest

from kbbot.adapters.discord.client import silence_voice_warnings


def test_no_voice_dependency_warnings_at_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(discord.VoiceClient, "warn_nacl", True)  # as on an install without PyNaCl / davey
    monkeypatch.setattr(discord.VoiceClient, "warn_dave", True)
    silence_voice_warnings()
    with caplog.at_level(logging.WARNING, logger="discord"):
        discord.Client(intents=discord.Intents.none())
    assert not [r for r in caplog.records if "voice" in r.getMessage()]
