"""Run the real `kbbot` command in a subprocess, the way a user or a script would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def default_data_dir(cwd: Path) -> Path:
    """Where a :func:`run_kbbot` process without ``KBBOT_DATA_DIR`` keeps its data (the per-user data folder,
    pointed into the test's directory so no test touches the developer's own)."""
    return cwd / "xdg-data" / "kbbot"


def run_kbbot(
    *args: str, env: dict[str, str] | None = None, cwd: Path, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m kbbot ARGS`` with only the given settings (plus PATH/HOME), from ``cwd``."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    base.update({"PYTHONPATH": str(ROOT), "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"})
    base["XDG_DATA_HOME"] = str(default_data_dir(cwd).parent)
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "kbbot", *args],
        cwd=cwd,
        env=base,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
