"""The handbook evaluation: the bundled sample knowledgebase, indexed the way `make run` indexes it (local
backend → IndexSyncer → SearchIndex), asked every question of ``handbook.yaml`` through the search answerer.
``--engine tantivy`` ranks with ``SEARCH_ENGINE=tantivy``'s ranking instead of SQLite's (the default).

    python -m benchmarks.answers.handbook [-v] [--engine sqlite|tantivy]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from benchmarks.answers.scoring import Outcome, evaluate, figures, load
from kbbot.backends.local import LocalBackend
from kbbot.search.answerer import SearchAnswerer
from kbbot.search.index import ENGINES, SearchIndex
from kbbot.search.sync import IndexSyncer

EVAL_SET = Path(__file__).resolve().parent / "handbook.yaml"


@asynccontextmanager
async def indexed(directory: Path, engine: str = "sqlite") -> AsyncIterator[SearchIndex]:
    """The bundled sample knowledgebase indexed in ``directory``, ranked by ``engine`` as ``SEARCH_ENGINE``
    has the bot rank it (the calibration asks it at each threshold)."""
    async with SearchIndex(directory / "index.sqlite3", engine=engine) as index:
        kb = LocalBackend(None, directory / "saved")
        try:
            await IndexSyncer(kb, index).sync()
        finally:
            await kb.aclose()
        yield index


async def outcomes(directory: Path, engine: str = "sqlite", **answerer_options: Any) -> list[Outcome]:
    async with indexed(directory, engine) as index:
        return await evaluate(load(EVAL_SET), SearchAnswerer(index, **answerer_options))


def run(engine: str = "sqlite", **answerer_options: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kbbot-answers-") as tmp:
        return figures(asyncio.run(outcomes(Path(tmp), engine, **answerer_options)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="list every miss")
    parser.add_argument("--engine", choices=ENGINES, default="sqlite", help="who ranks (SEARCH_ENGINE)")
    args = parser.parse_args(argv)
    result = run(args.engine)
    misses = result.pop("misses")
    print(json.dumps(result, indent=2))
    if args.verbose:
        print("\n".join(misses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
