"""Answer quality (issue #17): the handbook evaluation set and the real-corpus set (Python library reference,
with a plain BM25 peer), as `make bench` reports them, once per ranking (``SEARCH_ENGINE``: sqlite, the
default, and tantivy when it is installed), each checked against the same goals. Goals are checked on all
questions; the tuning and held-out halves are in results.json (`answers.<engine>.handbook.tune` / `.holdout`).

    python -m benchmarks.answers.handbook -v [--engine tantivy]   # one set, with every miss
    python -m benchmarks.answers.pydocs -v [--engine tantivy]
    python -m benchmarks.answers.calibrate -v [--engine tantivy]  # the don't-know threshold sweep
"""

from __future__ import annotations

from typing import Any

from benchmarks.answers import handbook, pydocs
from benchmarks.answers.scoring import GOALS, meets_goals
from kbbot.search.index import ENGINES
from kbbot.search.tantivy_ranking import available as tantivy_available


def run() -> dict[str, Any]:
    corpus = pydocs.prepare()  # converted once: the pages and the peer are the same for every engine
    result: dict[str, Any] = {}
    for engine in ENGINES:
        if engine == "tantivy" and not tantivy_available():
            result[engine] = {"skipped": "tantivy is not installed (pip install 'kbbot[tantivy]')"}
        else:
            result[engine] = run_engine(engine, corpus)
    result["ok"] = all(figures.get("ok", True) for figures in result.values())
    return result


def run_engine(engine: str, corpus: pydocs.Corpus | None) -> dict[str, Any]:
    """Both sets with ``engine`` ranking, and whether they meet the goals."""
    hb = handbook.run(engine)
    hb.pop("misses")
    docs = pydocs.run(engine, corpus)
    docs.pop("misses", None)
    ok = meets_goals(hb)
    peer = docs.get("bm25", {})
    if "page_at_3_pct" in docs and "page_at_3_pct" in peer:
        ok = ok and docs["page_at_3_pct"] >= peer["page_at_3_pct"]
    return {"handbook": hb, "pydocs": docs, "ok": ok}


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(figure, measured, goal, met) rows for the benchmark table, per engine."""
    out: list[tuple[str, str, str, bool | None]] = []
    for engine in ENGINES:
        figures = result[engine]
        if "skipped" in figures:
            out.append((f"answer quality, SEARCH_ENGINE={engine}", f"skipped: {figures['skipped']}", "—", None))
        else:
            out += engine_rows(engine, figures)
    return out


def engine_rows(engine: str, result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    hb, docs = result["handbook"], result["pydocs"]
    label = f"SEARCH_ENGINE={engine}"

    def split(key: str) -> str:
        return f"{hb[key]} % (tune {hb['tune'][key]} / held out {hb['holdout'][key]})"

    def at_least(key: str) -> tuple[str, bool]:
        return f"≥ {GOALS[key]:g} %", hb[key] >= GOALS[key]

    wrong = "wrongly_dont_know_pct"
    out: list[tuple[str, str, str, bool | None]] = [
        (f"handbook page@1, {label}", split("page_at_1_pct"), *at_least("page_at_1_pct")),
        (f"handbook page@3, {label}", split("page_at_3_pct"), "—", None),
        (f"handbook passage has the fact, {label}", split("fact_pct"), *at_least("fact_pct")),
        (f"handbook honest don't-know, {label}", split("honest_dont_know_pct"), *at_least("honest_dont_know_pct")),
        (f"handbook wrongly don't-know, {label}", split(wrong), f"≤ {GOALS[wrong]:g} %", hb[wrong] <= GOALS[wrong]),
    ]
    if "skipped" in docs:
        out.append((f"python docs, {label}", f"skipped: {docs['skipped']}", "—", None))
        return out
    peer = docs["bm25"]
    out += [
        (
            f"python docs ({docs['pages']} pages) page@1 / @3, {label}",
            f"{docs['page_at_1_pct']} / {docs['page_at_3_pct']} %",
            "—",
            None,
        ),
        (
            f"python docs BM25 peer page@1 / @3 (vs {label})",
            peer.get("skipped") or f"{peer['page_at_1_pct']} / {peer['page_at_3_pct']} %",
            "page@3 ≤ ours",
            None if "skipped" in peer else docs["page_at_3_pct"] >= peer["page_at_3_pct"],
        ),
        (
            f"python docs fact / honest / wrongly don't-know, {label}",
            f"{docs['fact_pct']} / {docs['honest_dont_know_pct']} / {docs['wrongly_dont_know_pct']} %",
            "—",
            None,
        ),
    ]
    return out
