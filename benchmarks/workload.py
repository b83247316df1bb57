"""The question stream the benchmarks replay: Zipf over distinct questions, with case/punctuation variants."""

from __future__ import annotations

import random

TOPICS = [
    "reset my password", "set up the VPN", "request a new laptop", "file an expense report", "book parental leave",
    "deploy to production", "roll back a release", "page the on-call engineer", "rotate an API key",
    "join the engineering Slack channels", "get access to the staging database", "submit a travel request",
]


def distinct_questions(n: int) -> list[str]:
    """``n`` different questions (different after normalization)."""
    return [f"How do I {TOPICS[i % len(TOPICS)]} for team {i}" for i in range(n)]


def variant(question: str, rng: random.Random) -> str:
    """The same question as people type it: case, spacing, punctuation, trailing question marks."""
    style = rng.randrange(5)
    if style == 0:
        return question + "?"
    if style == 1:
        return "  " + question.lower() + " ??"
    if style == 2:
        return question.upper() + "!"
    if style == 3:
        return "“" + question + "?”"
    return question


def zipf_stream(count: int, distinct: int, *, s: float = 1.1, seed: int = 7) -> list[str]:
    """``count`` questions drawn Zipf(s) over ``distinct`` questions, each as a random variant."""
    rng = random.Random(seed)
    questions = distinct_questions(distinct)
    weights = [1 / (rank**s) for rank in range(1, distinct + 1)]
    picks = rng.choices(range(distinct), weights=weights, k=count)
    return [variant(questions[i], rng) for i in picks]
