"""The `kbbot` command line. Parses arguments, loads settings once, opens the runtime, runs one command.

Exit codes: 0 done; 1 the knowledgebase said no (bad request, not found, conflict…); 2 bad usage, settings or
input file; 3 the token was rejected or lacks a scope; 4 the knowledgebase could not be reached (network, 5xx,
rate limit); 75 (`kbbot save`) the wiki is busy and the save was queued for retry.
Errors are one line on stderr, never a traceback and never a token.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kbbot import __version__
from kbbot.commands import COMMANDS, registrar
from kbbot.errors import (
    BadResponse,
    ConfigError,
    Forbidden,
    InvalidQuestion,
    KbbotError,
    RateLimited,
    TranscriptError,
    Unauthorized,
    Unavailable,
)

if TYPE_CHECKING:
    from kbbot.config import Settings
    from kbbot.knowledgebases import Knowledgebases

# Settings, the runtime, asyncio and each subcommand's libraries are imported only once it is known what runs
# (see kbbot.commands): `kbbot --version` must not pay for pydantic, httpx and the chat SDKs.


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the subcommand it names is registered (none for a bare
    ``--version``), so only that command's module is imported. Help and usage errors list every command."""
    parser = argparse.ArgumentParser(
        prog="kbbot",
        description="Answers questions from your knowledgebase in Slack, Discord and the terminal.",
    )
    parser.add_argument("--version", action="version", version=f"kbbot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in _commands_for(argv):
        registrar(command)(sub)
    for name in KB_COMMANDS:
        if name in sub.choices:
            _add_kb_option(sub.choices[name])
    return parser


#: The commands that work on one knowledgebase: ``--kb NAME`` picks it (default: the default route).
KB_COMMANDS = ("ask", "chat", "pages", "index", "save", "import", "check")


def _add_kb_option(parser: argparse.ArgumentParser) -> None:
    """``--kb`` on the command and each of its subcommands (``kbbot pages list --kb eng`` and ``kbbot pages
    --kb eng list`` alike); SUPPRESS keeps a subcommand's absent option from hiding the command's."""
    parser.add_argument(
        "--kb", metavar="NAME", default=argparse.SUPPRESS,
        help="the knowledgebase of KBBOT_CONFIG to use (default: its default route)",
    )
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                _add_kb_option(child)


def _commands_for(argv: Sequence[str] | None) -> list[str]:
    if argv is None:
        return list(COMMANDS)
    words = [arg for arg in argv if not arg.startswith("-")]
    if words and words[0] in COMMANDS:
        return [words[0]]  # the only options before a command are --version and --help, which take no value
    if not words and "--version" in argv and "-h" not in argv and "--help" not in argv:
        return []
    return list(COMMANDS)


def exit_code(exc: KbbotError) -> int:
    if isinstance(exc, ConfigError | InvalidQuestion | TranscriptError):
        return 2
    if isinstance(exc, Unauthorized | Forbidden):
        return 3
    if isinstance(exc, Unavailable | RateLimited | BadResponse):
        return 4
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    import asyncio

    from kbbot.config import environment, load_settings
    from kbbot.knowledgebases import load_knowledgebases
    from kbbot.store.datadir import PRIVATE_UMASK, describe_failure

    # Everything kbbot creates (its data folder's databases, WAL files, pages) is owner-only, whatever the
    # umask of the shell or service manager: it holds tokens' traces, private threads and queued saves.
    os.umask(PRIVATE_UMASK)
    settings: Settings | None = None
    try:
        _check_text_arguments(args)
        settings = load_settings()
        knowledgebases = load_knowledgebases(settings, environment())
        return asyncio.run(_run(args, settings, knowledgebases))
    except KbbotError as exc:
        print(f"kbbot: {exc}", file=sys.stderr)
        return exit_code(exc)
    except (OSError, sqlite3.Error) as exc:
        # A full disk or a folder turned read-only mid-command: one line, not a traceback.
        problem = describe_failure(settings.kbbot_data_dir, exc) if settings is not None else None
        if problem is None:
            raise
        print(f"kbbot: {problem}", file=sys.stderr)
        return exit_code(problem)
    except KeyboardInterrupt:
        return 130


def _check_text_arguments(args: argparse.Namespace) -> None:
    """Text typed in a terminal that is not UTF-8 arrives with its undecodable bytes as lone surrogates, which
    cannot be sent anywhere (file paths are fine: they go back to the file system as the same bytes)."""
    for name, value in vars(args).items():
        values = value if isinstance(value, list | tuple) else (value,)
        for item in values:
            if isinstance(item, str) and any("\ud800" <= char <= "\udfff" for char in item):
                option = "--" + name.replace("_", "-") if name not in ("question", "query", "id") else name.upper()
                raise ConfigError(f"{option} is not UTF-8 text; check the terminal's encoding (LANG, LC_ALL)")


def _log_level(args: argparse.Namespace, settings: Settings) -> str:
    """The long-running bot logs at LOG_LEVEL; one-shot commands and the chat (also `run` without adapters)
    keep the terminal to their own output (retries in progress are noise there; the final error is printed
    anyway) unless LOG_LEVEL=DEBUG."""
    serving = args.command == "run" and (settings.slack_bot_token or settings.discord_bot_token)
    if serving or settings.log_level == "DEBUG":
        return settings.log_level
    return "ERROR"


async def _run(args: argparse.Namespace, settings: Settings, knowledgebases: Knowledgebases) -> int:
    from kbbot.ops.logging import setup_logging
    from kbbot.runtime import open_runtime

    secrets = sorted({*settings.secrets(), *knowledgebases.secrets()})
    setup_logging(_log_level(args, settings), settings.log_format, secrets)
    async with open_runtime(settings, knowledgebases=knowledgebases, kb=getattr(args, "kb", None)) as rt:
        result: int = await args.handler(args, rt)
        return result
