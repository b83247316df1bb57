"""Passage selection: blocks with their section headings, steps for how-to questions, lead-ins kept with what
they introduce."""

from __future__ import annotations

import pytest

from kbbot.search.passages import best_passages, blocks, is_how_to
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
