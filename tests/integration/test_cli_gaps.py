"""`kbbot gaps` through the real command line: questions the wiki cannot answer, asked with `kbbot ask`,
come back grouped (the JSON shape is the contract of issue #20). One `kbbot gaps --json` per test is a real
process; the other commands run ``kbbot.cli.main`` in this process (kbbot_in_process): what is tested is what
the commands store and print, not the process."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from tests.integration.cli_support import kbbot_in_process, run_kbbot

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
PHRASINGS = ["how do I book a meeting room", "How can I book a meeting room?", "booking a meeting room"]


def _env(tmp_path: Path) -> dict[str, str]:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "vpn.md").write_text("# VPN\n\nConnect to the VPN with WireGuard; the profile is on the IT portal.\n")
    return {"LOCAL_KB_DIR": str(kb), "KBBOT_DATA_DIR": str(tmp_path / "data")}


def test_three_phrasings_are_one_gap_and_answered_questions_are_none(tmp_path: Path) -> None:
    env = _env(tmp_path)
    for question in [*PHRASINGS, "how do I connect to the VPN", "<script>alert(1)</script>"]:
        asked = kbbot_in_process("ask", question, "--json", env=env, cwd=tmp_path)
        assert asked.returncode == 0, asked.stderr

    result = run_kbbot("gaps", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"since", "gaps"} and ISO.match(report["since"])
    first, second = report["gaps"]
    assert set(first) == {"question", "count", "reasons", "last_asked", "examples"}
    assert first["count"] == 3 and first["reasons"] == ["empty"] and ISO.match(first["last_asked"])
    assert sorted(first["examples"]) == sorted(PHRASINGS) and first["question"] in PHRASINGS
    assert second == {**second, "question": "<script>alert(1)</script>", "count": 1}
    # The answered VPN question is no gap; no user id or platform detail leaks into the report.
    assert "VPN" not in result.stdout

    table = kbbot_in_process("gaps", env=env, cwd=tmp_path)
    assert table.returncode == 0 and "booking a meeting room" in table.stdout and "<script>" in table.stdout

    rows = list(csv.reader(io.StringIO(kbbot_in_process("gaps", "--csv", env=env, cwd=tmp_path).stdout)))
    assert rows[0] == ["question", "count", "reasons", "last_asked", "examples"]
    assert rows[1][1:3] == ["3", "empty"] and len(rows) == 3


def test_days_window_and_bad_arguments(tmp_path: Path) -> None:
    env = _env(tmp_path)
    empty = run_kbbot("gaps", "--days", "1", "--json", env=env, cwd=tmp_path)
    assert empty.returncode == 0 and json.loads(empty.stdout)["gaps"] == []
    assert "No gaps" in kbbot_in_process("gaps", env=env, cwd=tmp_path).stdout
    for bad in (["--days", "0"], ["--days", "x"], ["--json", "--csv"]):
        refused = kbbot_in_process("gaps", *bad, env=env, cwd=tmp_path)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
    # argparse puts "argument --days:" first: the message must not say "--days" a second time.
    too_few = kbbot_in_process("gaps", "--days", "0", env=env, cwd=tmp_path).stderr
    assert "error: argument --days: must be between 1 and 3650" in too_few


def test_csv_cells_never_run_as_formulas(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert kbbot_in_process("ask", "=HYPERLINK(\"x\") meeting room", env=env, cwd=tmp_path).returncode == 0
    rows = list(csv.reader(io.StringIO(run_kbbot("gaps", "--csv", env=env, cwd=tmp_path).stdout)))
    assert rows[1][0].startswith("'=")
