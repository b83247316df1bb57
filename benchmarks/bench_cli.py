"""CLI start-up: whole processes, side by side with a bare interpreter, as ratios (issue 21).

Three commands run in turn, ``ROUNDS`` times each, interleaved so that whatever else loads the shared machine
weighs on all three alike: ``python -c pass`` (the same interpreter), ``kbbot --version``, and
``kbbot ask --json`` on the embedded default (no tokens: the bundled sample knowledgebase, its index already
built by one untimed ask, as on every run after the first). Reported: the median wall time of each and the
ratios of the medians; goals ≤ 10× for ``--version``, ≤ 20× for ``ask --json``.

    python -m benchmarks.bench_cli
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 15
GOAL_VERSION_RATIO = 10.0
GOAL_ASK_RATIO = 20.0
QUESTION = "how do I reset my password"


def _seconds(command: list[str], env: dict[str, str], cwd: str) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=True)
    return time.perf_counter() - started


def run(rounds: int = ROUNDS) -> dict[str, Any]:
    kbbot = [sys.executable, "-m", "kbbot"]
    commands = {
        "python_pass": [sys.executable, "-c", "pass"],
        "kbbot_version": [*kbbot, "--version"],
        "kbbot_ask_json": [*kbbot, "ask", "--json", QUESTION],
    }
    with tempfile.TemporaryDirectory(prefix="kbbot-bench-cli-") as tmp:
        # Nothing configured but a data folder of its own: the embedded default, as `make run` starts it.
        env = {"PATH": os.environ.get("PATH", ""), "HOME": tmp, "KBBOT_DATA_DIR": str(Path(tmp) / "data")}
        _seconds(commands["kbbot_ask_json"], env, tmp)  # builds the sample knowledgebase's index once
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(rounds):
            for name, command in commands.items():
                times[name].append(_seconds(command, env, tmp))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["python_pass"]
    return {
        "rounds": rounds,
        "median_ms": {name: round(value * 1000, 1) for name, value in medians.items()},
        "version_ratio": round(medians["kbbot_version"] / base, 1),
        "ask_json_ratio": round(medians["kbbot_ask_json"] / base, 1),
        "goal_version_ratio": GOAL_VERSION_RATIO,
        "goal_ask_ratio": GOAL_ASK_RATIO,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
