"""`kbbot save FILE` with KB_BACKEND=mathub, at the command-handler level.

The parser comes from the command's own ``register`` and the handler is awaited exactly as ``kbbot.cli`` does
(``await args.handler(args, rt)``), with the runtime the composition root builds for MatHub.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from kbbot.commands import save
from kbbot.errors import SaveError
from kbbot.runtime import open_runtime
from tests.fakes.mathub import FakeMatHub, mathub_settings


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kbbot")
    save.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["save", *argv])


async def test_kbbot_save_creates_then_updates_with_version(fake_mathub: FakeMatHub, tmp_path: Path) -> None:
    transcript = tmp_path / "thread.txt"
    transcript.write_text("Ana: How do we cite [[serre-spectral-sequence]]?\nBo: Use $E_2^{p,q}$ notation.\n")
    settings = mathub_settings(fake_mathub, mathub_page_url_template="https://mathub.example/wiki/{slug}")
    out = io.StringIO()
    async with open_runtime(settings, console=Console(file=out, width=200)) as rt:
        args = parse(str(transcript), "--title", "Citing the Serre spectral sequence", "--json")
        assert await args.handler(args, rt) == 0
        created = json.loads(out.getvalue())
        assert created["created"] is True
        assert created["url"] == "https://mathub.example/wiki/citing-the-serre-spectral-sequence"
        page = fake_mathub.page(created["id"])
        assert "$E_2^{p,q}$" in page.content and page.version == 1

        transcript.write_text(transcript.read_text() + "Ana: Thanks!\n")
        out.truncate(0)
        out.seek(0)
        args = parse(str(transcript), "--title", "Citing the Serre spectral sequence", "--json")
        assert await args.handler(args, rt) == 0
        updated = json.loads(out.getvalue())
        assert updated == {**created, "created": False}
        assert fake_mathub.page(created["id"]).version == 2
        assert "Thanks!" in fake_mathub.page(created["id"]).content
        assert [r.body["version"] for r in fake_mathub.requests if r.method == "PATCH"] == [1]
        assert len(fake_mathub.pages()) == 1


async def test_kbbot_save_with_a_read_only_key_says_which_scope(
    fake_mathub: FakeMatHub, tmp_path: Path
) -> None:
    fake_mathub.add_key("bot_reader", {"wiki.read"})
    transcript = tmp_path / "t.txt"
    transcript.write_text("Ana: hello\n")
    settings = mathub_settings(fake_mathub, mathub_api_key="bot_reader")
    async with open_runtime(settings, console=Console(file=io.StringIO())) as rt:
        args = parse(str(transcript))
        # The CLI prints str(exc) as its one stderr line.
        with pytest.raises(SaveError, match=r"wiki\.write") as caught:
            await args.handler(args, rt)
        assert "bot_reader" not in str(caught.value)
