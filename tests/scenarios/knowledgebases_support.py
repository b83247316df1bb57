"""Three knowledgebases behind one bot, as a KBBOT_CONFIG file configures them: two fake Perfect Wikis (their own
tokens, names and pages) and a fake MatHub, each served on 127.0.0.1 and reached through the real backends.

The file is parsed by the real loader (``env:`` secrets from a test environment), the runtime is the real
composition root (``open_runtime``): every knowledgebase gets its own stack and stores, and the adapters talk to
the router.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kbbot.config import Settings
from kbbot.knowledgebases import Knowledgebases, parse_knowledgebases
from kbbot.runtime import Runtime, open_runtime
from tests.fakes.mathub import FakeMatHub
from tests.fakes.perfectwiki import FakePerfectWiki
from tests.scenarios.slack_support import FAST_HTTP_RETRY, FAST_RETRY

ENG_TOKEN, HR_TOKEN, MATHUB_KEY = "pw-eng-token-0001", "pw-hr-token-0002", "bot_maths_key"
#: Slack channels routed to engineering and to maths; anything else asks the default (handbook).
SLACK_ENG, SLACK_MATHS = "C0ENG0001", "C0MATHS01"


@dataclass
class Wikis:
    eng: FakePerfectWiki
    hr: FakePerfectWiki
    maths: FakeMatHub

    def environ(self) -> dict[str, str]:
        return {"PW_ENG_TOKEN": ENG_TOKEN, "PW_HR_TOKEN": HR_TOKEN, "MATHUB_KEY": MATHUB_KEY}


@contextmanager
def three_wikis() -> Iterator[Wikis]:
    with (
        FakePerfectWiki(token=ENG_TOKEN, kb_name="Engineering") as eng,
        FakePerfectWiki(token=HR_TOKEN, kb_name="Handbook") as hr,
        FakeMatHub(api_key=MATHUB_KEY) as maths,
    ):
        eng.seed_pages([
            {"title": "VPN setup", "content": "<p>Install WireGuard and import the engineering profile.</p>"},
            {"title": "Deploy checklist", "content": "<p>Run the smoke tests before every deploy.</p>"},
        ])
        hr.seed_pages([
            {"title": "Holiday policy", "content": "<p>Everyone gets 30 holiday days per year.</p>"},
            {"title": "VPN for staff", "content": "<p>Ask the help desk for VPN access.</p>"},
        ])
        maths.add_page("Fundamental group", "The fundamental group $\\pi_1(X)$ classifies loops up to homotopy.",
                       slug="fundamental-group")
        yield Wikis(eng, hr, maths)


def config_text(w: Wikis, *, discord: dict[str, str] | None = None) -> str:
    """The README's example file, pointed at the fakes."""
    routes = ", ".join(f'"{place}" = "{name}"' for place, name in (discord or {}).items())
    return f"""
[knowledgebases.engineering]
backend = "perfectwiki"
api_token = "env:PW_ENG_TOKEN"
base_url = "{w.eng.url}"
page_url_template = "https://eng.example.com/{{id}}"
rate_per_second = 1000
rate_per_minute = 100000
save_tags = ["engineering"]

[knowledgebases.handbook]
backend = "perfectwiki"
api_token = "env:PW_HR_TOKEN"
base_url = "{w.hr.url}"
page_url_template = "https://handbook.example.com/{{id}}"
rate_per_second = 1000
rate_per_minute = 100000

[knowledgebases.maths]
backend = "mathub"
api_key = "env:MATHUB_KEY"
base_url = "{w.maths.url}"
project = "algebraic-topology"
page_url_template = "https://maths.example.com/{{slug}}"

[routes]
default = "handbook"
slack = {{ "{SLACK_ENG}" = "engineering", "{SLACK_MATHS}" = "maths" }}
discord = {{ {routes} }}
"""


def knowledgebases(w: Wikis, base: Settings, tmp: Path, **routes: Any) -> Knowledgebases:
    path = tmp / "kbbot.toml"
    path.write_text(config_text(w, **routes), encoding="utf-8")
    return parse_knowledgebases(path.read_text(encoding="utf-8"), base, w.environ(), source=path)


@asynccontextmanager
async def several_runtime(base: Settings, kbs: Knowledgebases) -> AsyncIterator[Runtime]:
    """The runtime over every knowledgebase, indexes synced (the 402 fallback searches them)."""
    async with open_runtime(base, knowledgebases=kbs, save_retry=FAST_RETRY, http_retry=FAST_HTTP_RETRY) as rt:
        for stack in rt.all_stacks:
            await stack.syncer.sync()
        yield rt


@asynccontextmanager
async def savers_running(rt: Runtime) -> AsyncIterator[None]:
    """Every knowledgebase's outbox worker (after the adapters registered their saved-page listeners)."""
    async with AsyncExitStack() as savers:
        for stack in rt.all_stacks:
            await savers.enter_async_context(stack.saver)
        yield
