"""kbbot_in_process (tests/integration/cli_support.py) is the same command as a real `kbbot` process, and
leaves the test's process as it found it (many CLI tests rely on both)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from tests.integration.cli_support import kbbot_in_process, run_kbbot


def test_same_output_and_exit_code_as_a_real_process(tmp_path: Path) -> None:
    # An answer, a knowledgebase error (exit 1) and a usage error (argparse's exit 2), each in fresh folders.
    for n, args in enumerate(
        (("ask", "how do I set up the VPN", "--json"), ("pages", "get", "no-such-page"), ("gaps", "--days"))
    ):
        here, real = tmp_path / f"here{n}", tmp_path / f"real{n}"
        here.mkdir()
        real.mkdir()
        ran_here = kbbot_in_process(*args, cwd=here)
        ran_real = run_kbbot(*args, cwd=real)
        assert ran_here.returncode == ran_real.returncode, (args, ran_here.stderr, ran_real.stderr)
        assert ran_here.stdout.replace(str(here), "X") == ran_real.stdout.replace(str(real), "X")
        assert ran_here.stderr.replace(str(here), "X") == ran_real.stderr.replace(str(real), "X")
        if args[0] == "ask":
            assert json.loads(ran_here.stdout)["source"] == "search"


def test_the_process_is_left_as_it_was(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = (
        dict(os.environ), Path.cwd(), list(root.handlers), root.level, logging.getLogRecordFactory(),
        logging.getLogger("httpx").level,
    )
    umask = os.umask(0o022)
    os.umask(umask)
    done = kbbot_in_process("ask", "vpn", env={"LOG_LEVEL": "DEBUG", "SOME_SETTING": "x"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    after = (
        dict(os.environ), Path.cwd(), list(root.handlers), root.level, logging.getLogRecordFactory(),
        logging.getLogger("httpx").level,
    )
    assert after == before
    assert os.umask(umask) == umask  # kbbot sets its private umask for the command only
