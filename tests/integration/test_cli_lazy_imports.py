"""The CLI imports only what the command it runs needs (issue 21: `kbbot --version` and `kbbot ask` start at once;
the start-up ratios themselves are measured in benchmarks/bench_cli.py, not here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kbbot.commands import COMMANDS
from tests.integration.cli_support import ROOT

# Runs the real entry point in a fresh interpreter, then lists every module that got imported.
PROBE = """
import json, sys
from kbbot.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""

HEAVY = {"aiohttp", "discord", "slack_bolt", "slack_sdk", "httpx", "tantivy", "prompt_toolkit", "rich.progress"}


def imported(*args: str, tmp_path: Path) -> tuple[int, set[str], str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update({"PYTHONPATH": str(ROOT), "KBBOT_DATA_DIR": str(tmp_path / "data"), "NO_COLOR": "1"})
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    report = json.loads(out.stderr.strip().splitlines()[-1])
    return int(report["code"] or 0), set(report["modules"]), out.stdout


def test_version_loads_no_settings_runtime_or_command(tmp_path: Path) -> None:
    code, modules, stdout = imported("--version", tmp_path=tmp_path)
    assert code == 0 and stdout.strip().startswith("kbbot ")
    assert not modules & {"kbbot.config", "kbbot.runtime", "pydantic", "asyncio", *HEAVY}
    assert not any(name.startswith("kbbot.commands.") for name in modules)


def test_ask_on_the_embedded_default_loads_only_its_own_command(tmp_path: Path) -> None:
    code, modules, stdout = imported("ask", "--json", "how do I set up the VPN?", tmp_path=tmp_path)
    assert code == 0 and json.loads(stdout)["source"] == "search"
    assert not modules & HEAVY
    assert {name for name in modules if name.startswith("kbbot.commands.")} == {
        "kbbot.commands.ask",
        "kbbot.commands.output",
    }


def test_help_and_usage_errors_still_list_every_command(tmp_path: Path) -> None:
    for args in (["--help"], ["no-such-command"]):
        out = subprocess.run(
            [sys.executable, "-m", "kbbot", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}, "PYTHONPATH": str(ROOT)},
        )
        text = out.stdout + out.stderr
        assert all(command in text for command in COMMANDS)
