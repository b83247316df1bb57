"""Answer quality (issue #17): the handbook evaluation set and the real-corpus set (Python library reference,
with a plain BM25 peer), as `make bench` reports them. Goals are checked on all questions; the tuning and
held-out halves are in results.json (`answers.handbook.tune` / `.holdout`).

    python -m benchmarks.answers.handbook -v    # one set, with every miss
    python -m benchmarks.answers.pydocs -v
    python -m benchmarks.answers.calibrate -v   # the don't-know threshold sweep
"""

from __future__ import annotations

from typing import Any

from benchmarks.answers import handbook, pydocs
from benchmarks.answers.scoring import GOALS, meets_goals


def run() -> dict[str, Any]:
    hb = handbook.run()
    hb.pop("misses")
    docs = pydocs.run()
    docs.pop("misses", None)
    ok = meets_goals(hb)
    peer = docs.get("bm25", {})
    if "page_at_3_pct" in docs and "page_at_3_pct" in peer:
        ok = ok and docs["page_at_3_pct"] >= peer["page_at_3_pct"]
    return {"handbook": hb, "pydocs": docs, "ok": ok}


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(figure, measured, goal, met) rows for the benchmark table."""
    hb, docs = result["handbook"], result["pydocs"]

    def split(key: str) -> str:
        return f"{hb[key]} % (tune {hb['tune'][key]} / held out {hb['holdout'][key]})"

    def at_least(key: str) -> tuple[str, bool]:
        return f"≥ {GOALS[key]:g} %", hb[key] >= GOALS[key]

    wrong = "wrongly_dont_know_pct"
    out: list[tuple[str, str, str, bool | None]] = [
        ("handbook page@1", split("page_at_1_pct"), *at_least("page_at_1_pct")),
        ("handbook page@3", split("page_at_3_pct"), "—", None),
        ("handbook passage has the fact", split("fact_pct"), *at_least("fact_pct")),
        ("handbook honest don't-know", split("honest_dont_know_pct"), *at_least("honest_dont_know_pct")),
        ("handbook wrongly don't-know", split(wrong), f"≤ {GOALS[wrong]:g} %", hb[wrong] <= GOALS[wrong]),
    ]
    if "skipped" in docs:
        out.append(("python docs", f"skipped: {docs['skipped']}", "—", None))
        return out
    peer = docs["bm25"]
    out += [
        (
            f"python docs ({docs['pages']} pages) page@1 / @3",
            f"{docs['page_at_1_pct']} / {docs['page_at_3_pct']} %",
            "—",
            None,
        ),
        (
            "python docs BM25 peer page@1 / @3",
            peer.get("skipped") or f"{peer['page_at_1_pct']} / {peer['page_at_3_pct']} %",
            "page@3 ≤ ours",
            None if "skipped" in peer else docs["page_at_3_pct"] >= peer["page_at_3_pct"],
        ),
        (
            "python docs fact / honest / wrongly don't-know",
            f"{docs['fact_pct']} / {docs['honest_dont_know_pct']} / {docs['wrongly_dont_know_pct']} %",
            "—",
            None,
        ),
    ]
    return out
