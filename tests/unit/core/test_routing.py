"""KnowledgebaseRouter: which knowledgebase answers where, people's choices, and what `use` says back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kbbot.core.models import Answer, Asker, Question, SavedPage, Thread
from kbbot.core.routing import KnowledgebaseRouter


@dataclass
class Named:
    """An Asking + Saving that answers with its own name (the router is what is under test)."""

    name: str
    saved: list[Thread] = field(default_factory=list)

    async def ask(self, question: Question, *, on_queued: object = None) -> Answer:
        return Answer(text=self.name)

    async def status(self) -> object:
        raise NotImplementedError

    async def save(
        self, thread: Thread, title: str | None = None, tags: Sequence[str] | None = None, *, announce: bool = True
    ) -> SavedPage:
        self.saved.append(thread)
        return SavedPage(id=self.name, url=None, created=True)


class Choices:
    def __init__(self) -> None:
        self.kept: dict[str, str] = {}

    async def get(self, person: str) -> str | None:
        return self.kept.get(person)

    async def set(self, person: str, knowledgebase: str | None) -> None:
        if knowledgebase is None:
            self.kept.pop(person, None)
        else:
            self.kept[person] = knowledgebase

    async def aclose(self) -> None:
        pass


def router(choices: Choices | None = None) -> tuple[KnowledgebaseRouter, dict[str, Named]]:
    kbs = {name: Named(name) for name in ("eng", "hr", "maths")}
    routes = {"slack": {"C0ENG0001": "eng"}, "discord": {"111": "eng", "222": "maths", "900": "hr"}}
    return (
        KnowledgebaseRouter(kbs, kbs, default="hr", routes=routes, choices=choices or Choices()),  # type: ignore[arg-type]
        kbs,
    )


async def ask(r: KnowledgebaseRouter, platform: str, *places: str, direct: bool = False, who: str = "U1") -> str:
    answer = await r.ask(Question("q", asker=Asker(who), platform=platform, places=places, direct=direct))
    assert answer.text == answer.knowledgebase  # the answer names who answered
    return answer.text


async def test_the_most_specific_place_with_a_route_wins() -> None:
    r, _ = router()
    assert await ask(r, "discord", "111", "500", "900") == "eng"  # the channel
    assert await ask(r, "discord", "333", "222", "900") == "maths"  # a thread: its parent channel
    assert await ask(r, "discord", "333", "444", "900") == "hr"  # the server
    assert await ask(r, "discord", "333", "444", "555") == "hr"  # nothing: the default
    assert await ask(r, "slack", "C0ENG0001") == "eng"
    assert await ask(r, "slack", "111") == "hr"  # Discord's routes are not Slack's


async def test_a_choice_applies_to_that_persons_direct_messages_only() -> None:
    r, _ = router()
    assert "now ask `maths`" in await r.use("slack", "U1", "maths")
    assert await ask(r, "slack", "D0ALICE01", direct=True) == "maths"
    assert await ask(r, "slack", "D0BOB0001", direct=True, who="U2") == "hr"  # another person
    assert await ask(r, "slack", "C0GENERAL") == "hr"  # a channel
    assert await ask(r, "discord", "D1", direct=True) == "hr"  # another platform's person


async def test_a_choice_of_a_knowledgebase_since_removed_falls_back_to_the_default() -> None:
    choices = Choices()
    choices.kept["slack:U1"] = "support"  # chosen under an older file
    r, _ = router(choices)
    assert await ask(r, "slack", "D0ALICE01", direct=True) == "hr"


async def test_use_replies_for_unknown_hostile_and_empty_names() -> None:
    r, _ = router()
    for name in ("nope", "<!channel>", "@everyone", "x" * 5000, "\x00\x1b[31m", "✨"):
        reply = await r.use("slack", "U1", name)
        assert reply.startswith("There is no knowledgebase") and "`eng`, `hr`, `maths`" in reply
        assert "<!" not in reply and "@" not in reply and "\x1b" not in reply and len(reply) < 200
    assert "ask `hr`" in await r.use("slack", "U1", "   ")  # no name: which one, and the choices
    assert await r.chosen("slack", "U1") == "hr"


async def test_saves_follow_the_threads_channel_never_a_persons_choice() -> None:
    r, kbs = router()
    await r.use("discord", "U1", "maths")
    thread = Thread(platform="discord", key="333", messages=(), places=("333", "111", "900"))
    assert (await r.save(thread)).id == "eng"
    dm = Thread(platform="slack", key="D0ALICE01:1.2", messages=(), places=("D0ALICE01",))
    assert (await r.save(dm)).id == "hr"
    assert kbs["eng"].saved == [thread] and kbs["hr"].saved == [dm]
