"""Discord start-up failures → kbbot's one-line errors, for ``kbbot run`` and ``kbbot check`` alike.

A rejected token is :class:`Unauthorized` (exit 3), an unreachable or failing Discord :class:`Unavailable`
(exit 4), a required Message Content intent that the portal refuses (close code 4014) a :class:`ConfigError`
(exit 2) — instead of discord.py's and aiohttp's tracebacks. No message contains the token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import discord

from kbbot.errors import ConfigError, Unauthorized, Unavailable

#: The one line for a Message Content intent the portal has not enabled (close code 4014 or the app's flags).
INTENT_SWITCH = (
    "Discord refused the Message Content intent: switch on Developer Portal → your app → Bot → Privileged "
    "Gateway Intents → MESSAGE CONTENT INTENT (needed by {features})"
)
REJECTED = "DISCORD_BOT_TOKEN was rejected by Discord: reset it in the Developer Portal (Bot → Reset Token)"


@contextmanager
def startup_errors() -> Iterator[None]:
    try:
        yield
    except discord.LoginFailure:
        raise Unauthorized(REJECTED) from None
    except discord.PrivilegedIntentsRequired:
        raise ConfigError(INTENT_SWITCH.format(features="saving threads and auto-answer channels")) from None
    except (aiohttp.ClientError, OSError, TimeoutError, discord.GatewayNotFound) as exc:
        raise Unavailable(f"could not reach Discord ({type(exc).__name__}): check the network and proxy") from None
    except discord.DiscordServerError as exc:
        raise Unavailable(f"Discord is not answering properly (HTTP {exc.status}); try again shortly") from None
