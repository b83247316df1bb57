"""`kbbot check` against a hung wiki (connections accepted, never answered): the whole process, start to exit.

Issue 15 item 9: bounded, ≤ 15 s (it used to take ~92 s: three attempts of REQUEST_TIMEOUT_SECONDS each).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.fakes.hung import HungServer

ROOT = Path(__file__).resolve().parents[1]


def run() -> dict[str, Any]:
    with HungServer() as hung, tempfile.TemporaryDirectory(prefix="kbbot-bench-check-") as tmp:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "PERFECTWIKI_API_TOKEN": "pw-bench-token",
            "PERFECTWIKI_BASE_URL": f"{hung.url}/api",
            "KBBOT_DATA_DIR": str(Path(tmp) / "data"),
        }
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "kbbot", "check"], cwd=tmp, env=env, capture_output=True, text=True, check=False
        )
        seconds = time.monotonic() - started
    return {
        "hung_wiki_seconds": round(seconds, 2),
        "exit_code": result.returncode,
        "stderr_lines": len(result.stderr.strip().splitlines()),
    }


if __name__ == "__main__":
    print(run())
