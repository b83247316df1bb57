"""Knowledge gaps and the dashboard at a busy bot's scale; goals: grouping 10,000 gap questions ≤ 1 s, the
dashboard page for 90 days of 50,000 outcomes ≤ 1 s, recording one outcome ≤ 2 ms (it is on the answer path).

Run: ``python -m benchmarks.bench_gaps``. The gap questions are 400 topics asked in 5 phrasings each ("how do I
…", "How can I …?", "…ing …", a typo, word order), so a correct grouping finds 400 gaps.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from pathlib import Path

from kbbot.core.models import Answer, Source
from kbbot.core.outcomes import Kind, Outcome, OutcomeRecorder
from kbbot.ops.dashboard import render_dashboard
from kbbot.reports.gaps import find_gaps
from kbbot.reports.usage import summarize
from kbbot.store.sqlite_outcomes import SqliteOutcomeLog

GOAL_GROUP_S = 1.0
GOAL_PAGE_S = 1.0
GOAL_RECORD_MS = 2.0
NOW = 1_765_843_200.0

_VERBS = ["book", "reset", "request", "renew", "configure", "install", "cancel", "approve", "export", "share"]
_THINGS = ["meeting room", "vpn profile", "parking permit", "laptop", "travel budget", "payslip", "badge",
           "printer", "guest wifi", "holiday", "expense report", "desk", "software licence", "2fa token",
           "shared drive", "calendar", "phone", "monitor", "training course", "visa letter", "mentor", "locker",
           "bike lease", "health check", "pension plan", "team offsite", "gym pass", "name badge", "cloud account",
           "build server", "staging database", "api key", "ssh key", "dns record", "tls certificate",
           "backup", "on-call shift", "incident report", "release notes", "style guide"]


def topics() -> list[tuple[str, str]]:
    return [(verb, thing) for verb in _VERBS for thing in _THINGS]  # 400


def phrasings(verb: str, thing: str) -> list[str]:
    typo = thing[:-2] + thing[-1] if len(thing) > 6 else thing
    return [f"how do I {verb} a {thing}", f"How can I {verb} the {thing}?", f"{verb}ing a {thing}",
            f"how do i {verb} a {typo}", f"{thing} {verb}?"]


def gap_outcomes(count: int, rng: random.Random) -> list[Outcome]:
    pool = [(p, i) for i, t in enumerate(topics()) for p in phrasings(*t)]
    return [Outcome(NOW - rng.random() * 90 * 86400, "slack", "C1", "kb", Kind.EMPTY, "search", rng.choice(pool)[0])
            for _ in range(count)]


async def _record_ms(path: Path, count: int) -> float:
    store = SqliteOutcomeLog(path)
    recorder = OutcomeRecorder(store, knowledgebase="kb")
    answer = Answer("An answer.", source=Source.AI)
    started = time.perf_counter()
    for _ in range(count):
        await recorder.answered(platform="slack", channel="C1", question="q", answer=answer)
    elapsed = (time.perf_counter() - started) * 1000 / count
    await store.aclose()
    return elapsed


def run(gaps: int = 10_000, outcomes: int = 50_000) -> dict[str, float | int]:
    rng = random.Random(20)
    asked = gap_outcomes(gaps, rng)
    started = time.perf_counter()
    found = find_gaps(sorted(asked, key=lambda o: o.at))
    group_s = time.perf_counter() - started
    owner = {p: t for t in topics() for p in phrasings(*t)}
    wrong_merges = sum(1 for gap in found if len({owner[e] for e in gap.examples}) > 1)
    everything = asked + [
        Outcome(NOW - rng.random() * 90 * 86400, "discord", "C2", "kb", Kind.ANSWERED, rng.choice(["ai", "cache"]))
        for _ in range(outcomes - gaps)
    ]
    everything.sort(key=lambda o: o.at)
    started = time.perf_counter()
    usage = summarize(everything, {}, now=NOW, days=90)
    page = render_dashboard(usage, title="bench", days=90, now=NOW)
    page_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        record_ms = asyncio.run(_record_ms(Path(tmp) / "o.sqlite3", 500))
    return {
        "gap_questions": gaps,
        "topics": len(topics()),
        "gaps_found": len(found),
        "wrong_merges": wrong_merges,
        "group_seconds": round(group_s, 3),
        "outcomes": outcomes,
        "page_seconds": round(page_s, 3),
        "page_kib": len(page.encode()) // 1024,
        "record_ms": round(record_ms, 3),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
