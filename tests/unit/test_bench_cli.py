from __future__ import annotations

import pytest

from benchmarks import bench_cli


def test_start_up_is_measured_as_whole_processes_side_by_side() -> None:
    result = bench_cli.run(rounds=1)
    medians = result["median_ms"]
    assert set(medians) == {"python_pass", "kbbot_version", "kbbot_ask_json"}
    assert all(value > 0 for value in medians.values())
    assert result["version_ratio"] == pytest.approx(medians["kbbot_version"] / medians["python_pass"], abs=0.2)
    assert result["ask_json_ratio"] == pytest.approx(medians["kbbot_ask_json"] / medians["python_pass"], abs=0.2)
