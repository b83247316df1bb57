"""One module per `kbbot` subcommand. Each has ``register(subparsers)`` that sets ``handler(args, rt) -> int``."""

from __future__ import annotations

from kbbot.commands import ask, chat, check, gaps, imports, index, pages, run, save

COMMANDS = (
    run.register, chat.register, ask.register, pages.register, index.register, save.register, imports.register,
    check.register, gaps.register,
)
