"""One module per `kbbot` subcommand. Each has ``register(subparsers)`` that sets ``handler(args, rt) -> int``."""

from __future__ import annotations

from kbbot.commands import ask, check, pages

COMMANDS = (ask.register, pages.register, check.register)
