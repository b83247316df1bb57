"""One module per `kbbot` subcommand. Each has ``register(subparsers)`` that sets ``handler(args, rt) -> int``.

Only the module of the subcommand being run is imported (:func:`registrar`): each brings its own libraries
(aiohttp and the chat SDKs for ``run``, rich's progress bars for ``index`` and ``import``…), and importing all
of them made every command, ``kbbot --version`` included, start half a second late.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

#: Subcommand → its module, in the order `kbbot --help` lists them.
COMMANDS = {
    "run": "kbbot.commands.run",
    "chat": "kbbot.commands.chat",
    "ask": "kbbot.commands.ask",
    "pages": "kbbot.commands.pages",
    "index": "kbbot.commands.index",
    "save": "kbbot.commands.save",
    "import": "kbbot.commands.imports",
    "check": "kbbot.commands.check",
    "gaps": "kbbot.commands.gaps",
}


def registrar(command: str) -> Registrar:
    """The ``register`` function of ``command``'s module (imported now)."""
    register: Registrar = importlib.import_module(COMMANDS[command]).register
    return register
