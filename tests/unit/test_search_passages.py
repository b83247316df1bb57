"""Passage selection: blocks with their section headings, steps for how-to questions, lead-ins kept with what
they introduce."""

from __future__ import annotations

import pytest

from kbbot.search.passages import asked_action, asks_quantity, best_passages, blocks, is_how_to, literals
from kbbot.search.query import QueryPlan, Term, stem

PAGE = """VPN setup

You need the VPN to reach internal services from outside the office.

Install on Linux

Run these commands on Ubuntu:

```
sudo apt install wireguard
sudo wg-quick up acme-wg0
```

Troubleshooting

- Handshake never completes: generate a new configuration.
- Internal names do not resolve: check the DNS line.

Request access

1. Open the Access Portal.
2. Choose Network → VPN → New device.
3. Download the configuration file.

The Access Portal also lists the devices you have and lets you revoke a configuration for the VPN."""


def plan(*words: str, total: int = 20, docs: int = 2) -> QueryPlan:
    return QueryPlan(tuple(Term(w, stem(w), docs) for w in words), total)


def test_blocks_know_headings_lists_steps_and_code() -> None:
    found = blocks(PAGE, "VPN setup")
    assert [(b.kind, b.heading) for b in found] == [
        ("paragraph", None),  # the title repeated as the first heading is no section
        ("paragraph", "Install on Linux"),
        ("lines", "Install on Linux"),  # a fenced code block, never taken for a heading
        ("list", "Troubleshooting"),
        ("steps", "Request access"),
        ("paragraph", "Request access"),
    ]


@pytest.mark.parametrize("line", ["./scripts/promote <service> --rollback", "acme-login k8s", "`make setup`"])
def test_commands_are_not_headings(line: str) -> None:
    [block] = blocks(f"{line}\n\nSome text after it.")[:1]
    assert block.heading is None or block.heading != line
    assert all(b.heading != line for b in blocks(f"Intro.\n\n{line}\n\nMore text."))


@pytest.mark.parametrize(
    ("question", "how_to"),
    [
        ("how do I set up the VPN", True),
        ("how to install wireguard", True),
        ("I got paged, what do I do?", True),
        ("steps to request access", True),
        ("how long is the link valid", False),
        ("what is the VPN", False),
    ],
)
def test_how_to_questions(question: str, how_to: bool) -> None:
    assert is_how_to(question) is how_to


@pytest.mark.parametrize(
    ("question", "action"),
    [
        ("how do I order business cards", "order"),
        ("How can we export the Slack emoji?", "export"),
        ("HOW DO I RESET MY PASSWORD", "reset"),
        ("how to deploy to production", "deploy"),
        ("how do i reqest vacaton", "reqest"),  # as typed: the plan knows its correction
        ("how would one set up the VPN", "set"),
        ("how do I ré-installer", "ré"),
        ("how long is the link valid", None),
        ("what is the VPN", None),
        ("how do I", None),
        ("", None),
        ("x " * 3000 + "how do I deploy", None),  # past the scanned start: no verb
    ],
)
def test_the_verb_of_a_how_to_question(question: str, action: str | None) -> None:
    assert asked_action(question) == action


def test_how_to_gets_the_numbered_steps() -> None:
    page = blocks(PAGE, "VPN setup")
    [best, *_] = best_passages(page, plan("request", "access"), title="VPN setup", how_to=True, max_chars=700)
    assert best.kind == "steps" and best.heading == "Request access"
    assert best.text.startswith("1. Open the Access Portal.")


def test_a_lead_in_is_quoted_with_what_it_introduces() -> None:
    page = blocks(PAGE, "VPN setup")
    [best, *_] = best_passages(page, plan("linux", "ubuntu"), title="VPN setup", how_to=True, max_chars=700)
    assert best.text.startswith("Run these commands on Ubuntu:") and "sudo wg-quick up acme-wg0" in best.text


def test_words_the_title_holds_count_less_than_the_others() -> None:
    # "vpn" is in the title: the passage is chosen by "dns", not by how often it says VPN.
    page = blocks(PAGE, "VPN setup")
    [best, *_] = best_passages(page, plan("vpn", "dns"), title="VPN setup", how_to=False, max_chars=700)
    assert "DNS" in best.text and stem("dns") in best.found


def test_no_passage_without_a_matching_word() -> None:
    assert best_passages(blocks(PAGE), plan("zzzqqq", docs=0), title="", how_to=False, max_chars=700) == []
    assert best_passages([], plan("vpn"), title="", how_to=False, max_chars=700) == []


RULES = """Release process

Firmware releases for the Picker and Hauler robots are planned, tested on real hardware and signed.

Cadence

A firmware release every four weeks.

Announcements

Use @channel only for urgent things. Otherwise mention the channel name in the thread."""


@pytest.mark.parametrize(
    ("question", "quantity"),
    [("how often do we release", True), ("how long is the link valid", True), ("how do I release", False)],
)
def test_quantity_questions(question: str, quantity: bool) -> None:
    assert asks_quantity(question) is quantity


def test_a_how_often_question_gets_the_passage_with_the_frequency() -> None:
    page = blocks(RULES, "Release process")
    # "robots" is on most pages of a robotics wiki: it says little.
    words = QueryPlan((Term("release", "releas", 4), Term("robots", "robot", 16), Term("firmware", "firmwar", 6)), 20)
    [best, *_] = best_passages(page, words, title="", how_to=False, max_chars=700)
    assert best.heading is None  # without the answer type: the intro, which has all three words
    [best, *_] = best_passages(page, words, title="", how_to=False, max_chars=700, quantity=True)
    assert "every four weeks" in best.text


@pytest.mark.parametrize(
    ("question", "found"),
    [
        ("when is it ok to use @channel", {"@channel"}),
        ("rollback with --rollback or -n", {"--rollback", "-n"}),
        ("set gpg.format ssh in #general", {"gpg.format", "#general"}),
        ("a - b, is it ok? - yes.", set()),
    ],
)
def test_literals_are_words_typed_with_their_symbols(question: str, found: set[str]) -> None:
    assert literals(question) == found


def test_a_passage_with_the_literal_word_beats_one_with_the_plain_word() -> None:
    page = blocks(RULES + "\n\nChannels\n\nPrefer public channels; a channel per team, a channel per topic.", "")
    words = plan("channel")
    [best, *_] = best_passages(page, words, title="", how_to=False, max_chars=700)
    assert best.heading == "Channels"
    [best, *_] = best_passages(page, words, title="", how_to=False, max_chars=700, exact=literals("use @channel?"))
    assert "@channel only for urgent things" in best.text
