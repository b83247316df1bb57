"""A chat saved without an answer does not answer its own question: `kbbot chat` saves it, `kbbot ask` is honest."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.cli_support import kbbot_in_process, run_kbbot


def test_a_chat_saved_without_an_answer_is_no_answer_to_its_question(tmp_path: Path) -> None:
    env = {"KBBOT_DATA_DIR": str(tmp_path / "data")}
    chat = run_kbbot("chat", env=env, cwd=tmp_path, stdin="what is the capital of France?\n/save Geography\n")
    assert chat.returncode == 0, chat.stderr
    assert "Saved: Geography" in chat.stdout
    asked = kbbot_in_process("ask", "what is the capital of France?", "--json", env=env, cwd=tmp_path)
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["empty"] is True
    assert answer["answer"].startswith("I couldn't find this in the wiki.")
    assert "capital of France" not in answer["answer"]
