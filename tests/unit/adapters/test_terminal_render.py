"""An answer drawn in the terminal reads as the wiki wrote it."""

from __future__ import annotations

import io

from rich.console import Console

from kbbot.adapters.terminal_render import print_answer
from kbbot.core.models import Answer, Source


def _drawn(text: str) -> list[str]:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    print_answer(console, Answer(text=text, source=Source.SEARCH))
    return [line.strip() for line in console.file.getvalue().splitlines()]  # type: ignore[attr-defined]


def test_a_quoted_heading_that_looks_like_markdown_stays_a_line_and_the_steps_keep_their_numbers() -> None:
    # What the answerer quotes for "how do I set up the VPN?" (vpn-setup.md: "## 1. Get your configuration" above
    # its steps), the heading escaped as Markdown escapes it. Before, a zero-width space guarded it, which
    # stripping invisible characters for the terminal took away: the heading became step 1.
    lines = _drawn(
        "From the wiki:\n\n> 1\\. Get your configuration  \n> 1. Open the Access Portal.  \n"
        "> 2. Go to Network → VPN.\n\n— **VPN setup**\n\n> \\# 3 is the magic number  \n> \\- not a bullet"
    )
    assert "▌ 1. Get your configuration" in lines
    assert "▌  1 Open the Access Portal." in lines and "▌  2 Go to Network → VPN." in lines
    assert "▌ # 3 is the magic number" in lines and "▌ - not a bullet" in lines
    assert not any("\u200b" in line or "\\" in line for line in lines)
