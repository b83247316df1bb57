"""The embedded default: no configuration at all → the sample knowledgebase, `ask` and the terminal chat.

A few commands run as real processes (the embedded default as a user first meets it, end of input, text the
terminal could not encode); the rest run ``kbbot.cli.main`` in this process (kbbot_in_process)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.cli_support import ROOT, default_data_dir, kbbot_in_process, run_kbbot


def test_ask_with_no_configuration_answers_from_the_sample(tmp_path: Path) -> None:
    result = run_kbbot("ask", "how do I set up the VPN", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["source"] == "search" and not data["empty"]
    assert data["answer"].startswith("From the wiki")
    assert "vpn" in data["related_pages"][0]["title"].lower()


def test_ask_json_is_plain_markdown_and_names_each_page_once(tmp_path: Path) -> None:
    # vpn-setup.md's "## 1. Get your configuration" is quoted above its steps: escaped as Markdown escapes it,
    # not with a zero-width space (a display trick that leaked into the data).
    vpn = json.loads(kbbot_in_process("ask", "How do I set up the VPN?", "--json", cwd=tmp_path).stdout)["answer"]
    assert "> 1\\. Get your configuration  \n> 1. Open the Access Portal" in vpn and "\u200b" not in vpn
    # "what counts as sev2" quotes two passages of the on-call page: its title follows them once.
    sev2 = json.loads(kbbot_in_process("ask", "what counts as sev2", "--json", cwd=tmp_path).stdout)["answer"]
    assert sev2.count("\n\n> ") == 2 and sev2.count("— **On-call and incident response**") == 1
    for answer in (vpn, sev2):
        names = [line for line in answer.splitlines() if line.startswith("— ")]
        assert len(names) == len(set(names))


def test_chat_end_to_end_with_save(tmp_path: Path) -> None:
    script = (
        "how do I reset my password?\n/help\n/save Password help\nwhat about expenses\n/save\n/bogus\n"
        "password help conversation\n/quit\n"
    )
    result = kbbot_in_process("chat", cwd=tmp_path, stdin=script)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "From the wiki" in out and "Password reset" in out
    assert "/save [title]" in out  # help
    assert "Saved: Password help" in out
    assert "Updated: Password help" in out  # the second /save updates the same page, keeping its title
    assert "Unknown command '/bogus'" in out

    saved = list((default_data_dir(tmp_path) / "pages").glob("*.md"))
    assert len(saved) == 1
    text = saved[0].read_text()
    assert "how do I reset my password?" in text and "what about expenses" in text
    assert not list((ROOT / "kbbot" / "sample_kb").glob("password-help*"))  # never written into the package

    # The saved conversation is part of the knowledgebase at once (same chat) and after a restart.
    last_answer = out.rsplit("Unknown command", 1)[1]
    assert "• Password help" in last_answer
    found = kbbot_in_process("index", "search", "what about expenses", "--json", cwd=tmp_path)
    assert "Password help" in [p["title"] for p in json.loads(found.stdout)]


def test_chat_survives_hostile_input(tmp_path: Path) -> None:
    lines = ["", "   ", "\x00\x1b[31m", "x" * 5000, '"NEAR( * - : ) 🤖', "<script>alert(1)</script>", "/quit"]
    script = "\n".join(lines)
    result = kbbot_in_process("chat", cwd=tmp_path, stdin=script + "\n")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "keep it to 2,000 at most" in result.stdout


def test_chat_ends_cleanly_on_eof(tmp_path: Path) -> None:
    result = run_kbbot("chat", cwd=tmp_path, stdin="")
    assert result.returncode == 0 and "Traceback" not in result.stderr


def test_save_transcript_then_resave_updates(tmp_path: Path) -> None:
    transcript = tmp_path / "t.txt"
    transcript.write_text(
        "Ann: how do we rotate the API key?\n"
        "Bob: run `make rotate`, then <script>alert(1)</script> [x](javascript:alert(1))\n"
        "Ann: thanks <!channel> @everyone\n"
    )
    first = kbbot_in_process(
        "save", str(transcript), "--title", "Key rotation", "--tags", "ops,security", "--json", cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    saved = json.loads(first.stdout)
    assert set(saved) == {"id", "url", "created"} and saved["created"] is True
    again = json.loads(
        kbbot_in_process("save", str(transcript), "--title", "Key rotation", "--json", cwd=tmp_path).stdout
    )
    assert again["id"] == saved["id"] and again["created"] is False
    pages = list((default_data_dir(tmp_path) / "pages").glob("*.md"))
    assert len(pages) == 1
    text = pages[0].read_text()
    assert "<script>" not in text and "javascript:" not in text
    assert "<!channel>" not in text and "@everyone" not in text  # made inert (zero-width space after the @)


def test_save_unreadable_file_is_a_usage_error(tmp_path: Path) -> None:
    result = kbbot_in_process("save", str(tmp_path / "missing.json"), "--title", "x", cwd=tmp_path)
    assert result.returncode == 2 and "missing.json" in result.stderr and "Traceback" not in result.stderr


def test_data_dir_that_is_a_file_is_a_settings_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("x")
    result = kbbot_in_process("ask", "vpn", cwd=tmp_path, env={"KBBOT_DATA_DIR": str(tmp_path / "not-a-dir")})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "KBBOT_DATA_DIR" in result.stderr


def test_damaged_database_files_are_a_settings_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"KBBOT_DATA_DIR": str(data)}
    assert kbbot_in_process("ask", "vpn", cwd=tmp_path, env=env).returncode == 0
    files = sorted(file for file in data.glob("*.sqlite3") if not file.name.startswith("index-"))
    assert files  # the feedback and saved-thread stores (the search index is a cache: it rebuilds itself)
    for damaged in files:  # each in turn: they hold data (queued saves), so they are never silently replaced
        for file in files:
            file.unlink(missing_ok=True)
            for extra in data.glob(file.name + "-*"):
                extra.unlink()
        damaged.write_bytes(b"this is not a database " * 200)
        result = kbbot_in_process("ask", "vpn", cwd=tmp_path, env=env)
        assert result.returncode == 2, (damaged.name, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "KBBOT_DATA_DIR" in result.stderr


def test_command_line_text_that_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    # "\udcff" reaches the process as the raw byte 0xff (a Latin-1 terminal): it used to end in a
    # UnicodeEncodeError traceback when the text was sent to the knowledgebase.
    for args in (("pages", "create", "--title", "caf\udcff", "--content", "x"), ("pages", "get", "\udcff")):
        result = run_kbbot(*args, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "UTF-8" in result.stderr


def test_chat_save_keeps_symbols_in_the_title_and_the_page_stays_inert(tmp_path: Path) -> None:
    script = "how do I reset my password?\n/save C# build | notes [v2] > v1\n/save <script>alert(1)</script>\n/quit\n"
    result = kbbot_in_process("chat", cwd=tmp_path, stdin=script)
    assert result.returncode == 0, result.stderr
    assert "Saved: C# build | notes [v2] > v1" in result.stdout  # "[v2]" shown, not read as console markup
    assert "Updated: <script>alert(1)</script>" in result.stdout

    (page,) = (default_data_dir(tmp_path) / "pages").glob("*.md")
    text = page.read_text()
    assert 'title: "<script>alert(1)</script>"' in text  # JSON-quoted front matter
    assert "<script" not in text.split("---", 2)[2]  # the body's heading is escaped Markdown


def test_links_stay_whole_in_a_narrow_pipe(tmp_path: Path) -> None:
    """`kbbot ask > answer.txt`, `kbbot import … | less`: rich wraps at 80 columns (here 40) when not on a
    terminal, and broke every long file:// link in two; each link must stay whole on its line."""
    narrow = {"COLUMNS": "40"}
    export = ROOT / "tests" / "fixtures" / "exports" / "slack" / "slackdump_source_export.zip"
    transcript = tmp_path / "t.txt"
    transcript.write_text("Ann: how do we rotate the API key?\nBob: run `make rotate`\n")
    for command in (("ask", "how do I set up the VPN"), ("save", str(transcript)), ("import", str(export))):
        # The first a real process writing to a pipe, the others in this process (also not a terminal).
        run = run_kbbot if command[0] == "ask" else kbbot_in_process
        result = run(*command, cwd=tmp_path, env=narrow)
        assert result.returncode == 0, result.stderr
        links = [word for word in result.stdout.split() if word.startswith("file://")]
        assert links, result.stdout
        for link in links:
            assert link.endswith(".md") and Path(link.removeprefix("file://")).is_file(), (command, link)


def test_index_sync_in_a_pipe_prints_only_its_summary(tmp_path: Path) -> None:
    # The progress bar is for terminals: in a pipe it left a blank line first (stdout, or stderr with --json).
    plain = run_kbbot("index", "sync", cwd=tmp_path)
    assert plain.returncode == 0 and plain.stdout.startswith("Index up to date: 20 pages listed"), plain.stdout
    as_json = run_kbbot("index", "sync", "--json", cwd=tmp_path)
    assert json.loads(as_json.stdout)["listed"] == 20 and as_json.stderr == ""


def test_a_question_that_starts_with_a_dash_goes_after_double_dash(tmp_path: Path) -> None:
    # argparse reads "-h is this a flag" as -h with an explicit argument (a usage error, nothing is asked); after
    # "--" every argument is positional, so the same text is the question.
    refused = kbbot_in_process("ask", "-h is this a flag", cwd=tmp_path)
    assert refused.returncode == 2 and "usage: kbbot ask" in refused.stderr and refused.stdout == ""
    for question in ("-h is this a flag", "-v", "--json", "-- what does -- mean"):
        result = kbbot_in_process("ask", "--json", "--", question, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["answer"]  # asked and answered (the sample has no such page)
    example = 'kbbot ask --json -- "-v means?"'
    help_text = kbbot_in_process("ask", "--help", cwd=tmp_path).stdout
    assert example in help_text.splitlines()[-1] and example in (ROOT / "README.md").read_text()
