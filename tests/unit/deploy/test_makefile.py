"""The Makefile: an old Python is refused before anything is created; `make clean` never deletes data."""

from __future__ import annotations

import functools
import glob
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MAKE = shutil.which("make")

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, project / name)
    return project


def _make(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert MAKE is not None
    return subprocess.run(
        [MAKE, "--no-print-directory", *args], cwd=project, capture_output=True, text=True, timeout=120, check=False
    )


@functools.cache
def _old_python() -> str | None:
    # pyenv's own interpreters first: its shims on PATH start a shell script each (a quarter second apiece).
    candidates: list[str | None] = sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.[0-9]*/bin/python3")))
    candidates += [shutil.which(f"python3.{minor}") for minor in range(6, 11)]
    for candidate in candidates:
        if candidate is None:
            continue
        version = subprocess.run([candidate, "-V"], capture_output=True, text=True, check=False).stdout.split()
        if len(version) == 2 and tuple(int(part) for part in version[1].split(".")[:2]) < (3, 11):
            return candidate
    return None


@pytest.mark.parametrize("target", [".venv/.installed", ".venv/.dev-installed", "run", "test"])
def test_old_python_is_refused_in_one_line_without_a_venv(tmp_path: Path, target: str) -> None:
    old = _old_python()
    if old is None:
        pytest.skip("no Python older than 3.11 on this machine")
    project = _copy_project(tmp_path)
    result = _make(project, target, f"PYTHON={old}")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs Python 3.11 or newer" in lines[0] and "Python 3." in lines[0], result.stderr
    assert result.stdout == ""
    assert not (project / ".venv").exists()


def test_missing_python_is_refused_in_one_line(tmp_path: Path) -> None:
    project = _copy_project(tmp_path)
    result = _make(project, ".venv/.installed", f"PYTHON={tmp_path / 'no-such-python'}")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not installed" in lines[0], result.stderr
    assert not (project / ".venv").exists()


def test_clean_never_deletes_saved_pages_or_queued_saves(tmp_path: Path) -> None:
    project = _copy_project(tmp_path)
    # A data folder from an older kbbot (its default was ./.kbbot) and one named by KBBOT_DATA_DIR.
    kept = [project / ".kbbot" / "pages" / "saved.md", project / ".kbbot" / "threads.sqlite3"]
    kept += [project / "data" / "threads.sqlite3"]
    caches = [project / ".venv" / "bin" / "python", project / ".pytest_cache" / "x", project / ".mypy_cache" / "x"]
    for path in kept + caches:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    result = _make(project, "clean", "KBBOT_DATA_DIR=data")
    assert result.returncode == 0, result.stderr
    assert all(path.exists() for path in kept)
    assert not any(path.exists() for path in caches)
