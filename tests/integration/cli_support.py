"""Run the real `kbbot` command in a subprocess, the way a user or a script would."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def default_data_dir(cwd: Path) -> Path:
    """Where a :func:`run_kbbot` process without ``KBBOT_DATA_DIR`` keeps its data (the per-user data folder,
    pointed into the test's directory so no test touches the developer's own)."""
    return cwd / "xdg-data" / "kbbot"


def _environment(env: dict[str, str] | None, cwd: Path) -> dict[str, str]:
    """Only the given settings, plus PATH/HOME and a terminal that keeps the output plain."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    base.update({"PYTHONPATH": str(ROOT), "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"})
    base["XDG_DATA_HOME"] = str(default_data_dir(cwd).parent)
    base.update(env or {})
    return base


def run_kbbot(
    *args: str, env: dict[str, str] | None = None, cwd: Path, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m kbbot ARGS`` with only the given settings (plus PATH/HOME), from ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "kbbot", *args],
        cwd=cwd,
        env=_environment(env, cwd),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def kbbot_in_process(
    *args: str, env: dict[str, str] | None = None, cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The same command as :func:`run_kbbot` (``kbbot.cli.main(ARGS)``, the environment, ``cwd``, stdin and
    the captured output and exit code), in this process: for tests of what a command does, several commands
    in a row, where a Python start-up per command (~0.3 s, seconds on a busy machine) buys nothing. Tests of
    the process itself (signals, `kbbot run`, imports at start-up, a terminal) use :func:`run_kbbot`.

    Only for synchronous tests (the command runs its own event loop). What ``main`` sets for the whole
    process (the environment, the working directory, the umask, kbbot's logging) is put back afterwards."""
    from kbbot.cli import main

    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    saved_umask = os.umask(0o022)
    os.umask(saved_umask)
    root = logging.getLogger()
    saved_handlers, saved_level, saved_factory = list(root.handlers), root.level, logging.getLogRecordFactory()
    saved_levels = _logger_levels()
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(_environment(env, cwd))
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            saved_stdin, sys.stdin = sys.stdin, io.StringIO(stdin or "")
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argparse's usage errors and --help
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            finally:
                sys.stdin = saved_stdin
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        os.umask(saved_umask)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, level in _logger_levels().items():  # setup_logging quietens some libraries' loggers
            if level != saved_levels.get(name, logging.NOTSET):
                logging.getLogger(name).setLevel(saved_levels.get(name, logging.NOTSET))
        logging.setLogRecordFactory(saved_factory)
        logging.captureWarnings(False)
    return subprocess.CompletedProcess(["kbbot", *args], code, out.getvalue(), err.getvalue())


def _logger_levels() -> dict[str, int]:
    return {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
