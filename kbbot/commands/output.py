"""Shared output helper for commands: JSON to stdout (answers for people: :mod:`kbbot.adapters.terminal_render`)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console


def print_json(console: Console, value: Any) -> None:
    """Plain JSON on stdout (no rich markup, no wrapping), so scripts can parse it."""
    console.file.write(json.dumps(value, ensure_ascii=False) + "\n")
    console.file.flush()
