"""`.ci/run` is what CI executes on a fresh clone: a syntax error there means nothing lands."""

from __future__ import annotations

import subprocess
from pathlib import Path

CI_RUN = Path(__file__).resolve().parents[2] / ".ci" / "run"


def test_ci_run_is_valid_bash_that_ends_in_make_test() -> None:
    checked = subprocess.run(["bash", "-n", str(CI_RUN)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    lines = [line for line in CI_RUN.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert lines[0] == "set -euo pipefail"
    assert lines[-1] == "make test"
