"""KBBOT_CONFIG: the file's contract (kbbot.knowledgebases), its one-line errors through `kbbot` (exit 2), and
the environment's single knowledgebase when there is no file."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbbot.cli import main
from kbbot.config import Settings, environment, load_settings
from kbbot.errors import ConfigError
from kbbot.knowledgebases import Knowledgebases, load_knowledgebases, parse_knowledgebases

ENV = {"PW_ENG_TOKEN": "eng-token-1", "PW_HR_TOKEN": "hr-token-2", "MATHUB_KEY": "bot_key_3"}

#: The README's example file.
EXAMPLE = """
[knowledgebases.engineering]
backend = "perfectwiki"                 # perfectwiki | mathub | local
api_token = "env:PW_ENG_TOKEN"
base_url = "https://api.perfectwiki.xyz/api"
page_url_template = "https://eng.example.com/{id}"

[knowledgebases.handbook]
backend = "perfectwiki"
api_token = "env:PW_HR_TOKEN"

[knowledgebases.maths]
backend = "mathub"
api_key = "env:MATHUB_KEY"
base_url = "https://mathub.example.com/api/bot/v1"
project = "algebraic-topology"

[routes]
default = "handbook"
slack = { "C0ENG0001" = "engineering" }
discord = { "123456789012345678" = "engineering" }
"""


def parse(text: str, base: Settings | None = None, env: dict[str, str] | None = None) -> Knowledgebases:
    return parse_knowledgebases(text, base or Settings(), ENV if env is None else env, source=Path("kbbot.toml"))


def test_the_readme_example_gives_each_knowledgebase_its_own_settings() -> None:
    base = Settings(perfectwiki_api_token="env-token", perfectwiki_page_url_template="https://env/{id}",
                    cache_ttl_seconds=60, kbbot_data_dir=Path("/d"))
    kbs = parse_knowledgebases(EXAMPLE, base, ENV, source=Path("kbbot.toml"))
    eng, hr, maths = kbs.settings["engineering"], kbs.settings["handbook"], kbs.settings["maths"]
    assert eng.backend == hr.backend == "perfectwiki" and maths.backend == "mathub"
    assert eng.perfectwiki_api_token is not None and eng.perfectwiki_api_token.get_secret_value() == "eng-token-1"
    assert hr.perfectwiki_api_token is not None and hr.perfectwiki_api_token.get_secret_value() == "hr-token-2"
    assert eng.perfectwiki_page_url_template == "https://eng.example.com/{id}"
    # Nothing of the environment's own knowledgebase leaks into a table that does not set it …
    assert hr.perfectwiki_page_url_template is None
    # … but the settings of the whole bot (cache TTL, Slack, …) are inherited.
    assert hr.cache_ttl_seconds == 60
    assert maths.mathub_project == "algebraic-topology"
    assert {s.kbbot_data_dir for s in kbs.settings.values()} == {
        Path("/d/knowledgebases/engineering"), Path("/d/knowledgebases/handbook"), Path("/d/knowledgebases/maths")
    }
    assert kbs.routes.default == "handbook"
    assert kbs.routes.slack == {"C0ENG0001": "engineering"}
    assert kbs.routes.discord == {"123456789012345678": "engineering"}
    assert kbs.named and set(kbs.secrets()) == set(ENV.values())


def test_every_per_knowledgebase_setting_can_be_given_in_its_table(tmp_path: Path) -> None:
    text = """
[knowledgebases.pw]
backend = "perfectwiki"
api_token = "env:PW_ENG_TOKEN"
rate_per_second = 5
rate_per_minute = 30
save_tags = ["eng", "wiki"]
ai_user_limit = "off"
[knowledgebases.mh]
backend = "mathub"
api_key = "env:MATHUB_KEY"
base_url = "https://m.example.org/api/bot/v1"
project = "p"
page_url_template = "https://m/{slug}"
writes_per_minute = 3
[knowledgebases.docs]
backend = "local"
folder = "pages"
"""
    kbs = parse_knowledgebases(text, Settings(), ENV, source=tmp_path / "kbbot.toml")
    pw, mh, docs = kbs.settings["pw"], kbs.settings["mh"], kbs.settings["docs"]
    assert (pw.perfectwiki_rate_per_second, pw.perfectwiki_rate_per_minute) == (5, 30)
    assert pw.save_default_tags == ("eng", "wiki") and pw.ai_user_limit == "off"
    assert mh.mathub_writes_per_minute == 3 and mh.mathub_page_url_template == "https://m/{slug}"
    assert docs.local_kb_dir == tmp_path / "pages"  # relative to the file, not to the working directory
    assert kbs.routes.default == "pw"  # no [routes]: the first knowledgebase


def test_each_perfect_wiki_table_has_its_own_ai_quota_else_the_environments() -> None:
    text = """
[knowledgebases.eng]
backend = "perfectwiki"
api_token = "env:PW_ENG_TOKEN"
ai_quota_monthly = 5000
[knowledgebases.hr]
backend = "perfectwiki"
api_token = "env:PW_HR_TOKEN"
"""
    kbs = parse(text, Settings(perfectwiki_ai_quota_monthly=800))
    assert [s.perfectwiki_ai_quota_monthly for s in kbs.settings.values()] == [5000, 800]
    with pytest.raises(ConfigError, match="ai_quota_monthly: "):
        parse(text.replace("5000", "0"))
    with pytest.raises(ConfigError, match="unknown key 'ai_quota_monthly'"):  # MatHub has no AI
        parse('[knowledgebases.m]\nbackend = "mathub"\napi_key = "env:MATHUB_KEY"\nai_quota_monthly = 9\n')
    # One token, one quota: two tables disagreeing about it is a mistake (the token is never named).
    with pytest.raises(ConfigError, match=r"\[knowledgebases.eng\] and \[knowledgebases.hr\] use one token") as err:
        parse(text.replace("PW_HR_TOKEN", "PW_ENG_TOKEN"), Settings(perfectwiki_ai_quota_monthly=800))
    assert ENV["PW_ENG_TOKEN"] not in str(err.value)
    agreeing = text.replace("PW_HR_TOKEN", "PW_ENG_TOKEN") + "ai_quota_monthly = 5000\n"
    assert [s.perfectwiki_ai_quota_monthly for s in parse(agreeing).settings.values()] == [5000, 5000]
    # …and one 402 breaker, so one probe interval (else the second table's setting would silently not apply).
    with pytest.raises(ConfigError, match=r"use one token, so one AI quota: give them the same quota_probe_seconds"):
        parse(agreeing + "quota_probe_seconds = 60\n")
    both = agreeing.replace("[knowledgebases.hr]", "quota_probe_seconds = 60\n[knowledgebases.hr]")
    assert [s.quota_probe_seconds for s in parse(both + "quota_probe_seconds = 60\n").settings.values()] == [60, 60]


def test_redis_prefix_of_the_bot_gives_each_knowledgebase_its_own_namespace() -> None:
    kbs = parse(EXAMPLE, Settings(redis_prefix="acme"))
    assert [s.redis_prefix for s in kbs.settings.values()] == [
        "acme.engineering", "acme.handbook", "acme.maths"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[knowledgebases.a]\nbackend = "confluence"', "[knowledgebases.a] backend = 'confluence': unknown backend"),
        ('[knowledgebases.a]\nbackend = "local"\nfolderr = "x"', "[knowledgebases.a] unknown key 'folderr'"),
        ('[knowledgebases.a]\nfolder = "x"', '[knowledgebases.a] needs backend = "perfectwiki", "mathub" or "local"'),
        ('[knowledgebases.a]\nbackend = "local"\nproject = "x"', "[knowledgebases.a] unknown key 'project'"),
        ('[knowledgebase.a]\nbackend = "local"', "unknown key 'knowledgebase'"),
        ('[knowledgebases.a]\nbackend = "perfectwiki"\napi_token = "env:NOPE"',
         "knowledgebases.a.api_token: environment variable NOPE is not set"),
        ('[knowledgebases.a]\nbackend = "perfectwiki"\napi_token = "pw-real-token-123"',
         'knowledgebases.a.api_token: write "env:NAME"'),
        ('[knowledgebases.a]\nbackend = "perfectwiki"', "[knowledgebases.a] backend = perfectwiki needs api_token"),
        ('[knowledgebases.a]\nbackend = "mathub"\napi_key = "env:MATHUB_KEY"',
         "[knowledgebases.a] backend = mathub needs base_url, project"),
        ('[knowledgebases.a]\nbackend = "local"\n[routes]\ndefault = "b"',
         "routes.default = 'b': no knowledgebase of that name (there are: a)"),
        ('[knowledgebases.a]\nbackend = "local"\n[routes]\nslack = { "C0ENG0001" = "eng" }',
         "routes.slack.C0ENG0001 = 'eng': no knowledgebase of that name"),
        ('[knowledgebases.a]\nbackend = "local"\n[routes]\ndiscord = { "general" = "a" }',
         "routes.discord.general: not a Discord channel or server id"),
        ('[knowledgebases.a]\nbackend = "local"\n[routes]\nteams = {}', "[routes] unknown key 'teams'"),
        ('[knowledgebases.a]\nbackend = "local"\ncache_ttl_seconds = -1', "cache_ttl_seconds: Input should be"),
        ("[knowledgebases.a]\nbackend = \"local\"\n\nkey = = 1", "not valid TOML: Invalid value (at line 4, column 7)"),
        ("", "needs at least one [knowledgebases.NAME] table"),
        ('[knowledgebases."bad name"]\nbackend = "local"', "a name is 1–40 letters"),
    ],
)
def test_every_mistake_is_one_line_naming_the_file_and_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    error = str(caught.value)
    assert error.startswith("KBBOT_CONFIG kbbot.toml: ") and message in error and "\n" not in error
    assert "pw-real-token-123" not in error  # an inline secret is never echoed


def test_without_a_file_the_environment_configures_one_knowledgebase(tmp_path: Path) -> None:
    settings = Settings(perfectwiki_api_token="tok")
    kbs = load_knowledgebases(settings, {})
    assert list(kbs.settings) == ["default"] and kbs.settings["default"] is settings and not kbs.named


def test_kbbot_toml_in_the_working_directory_is_the_default_file(tmp_path: Path) -> None:
    (tmp_path / "kbbot.toml").write_text('[knowledgebases.docs]\nbackend = "local"\n', encoding="utf-8")
    kbs = load_knowledgebases(Settings(), {})
    assert list(kbs.settings) == ["docs"] and kbs.source == Path("kbbot.toml")


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_cli_errors_are_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "several.toml"
    monkeypatch.setenv("KBBOT_CONFIG", str(config))
    cases = {
        '[knowledgebases.a]\nbackend = "wiki"\n': "unknown backend",
        '[knowledgebases.a]\nbackend = "perfectwiki"\napi_token = "env:PW_UNSET"\n': "PW_UNSET is not set",
        '[knowledgebases.a]\nbackend = "local"\n[routes]\nslack = { "C0ENG0001" = "zzz" }\n': "'zzz': no knowledge",
        '[knowledgebases.a]\nbackend = "local"\n[routes\n': "(at line 3, column 8)",
    }
    for text, message in cases.items():
        config.write_text(text, encoding="utf-8")
        code, err = _cli(capsys, "ask", "hello?")
        assert code == 2 and message in err and err.count("\n") == 1, err
    config.write_text('[knowledgebases.a]\nbackend = "local"\n[knowledgebases.b]\nbackend = "local"\n', "utf-8")
    code, err = _cli(capsys, "pages", "list", "--kb", "c")
    assert code == 2 and err == f"kbbot: --kb c: no knowledgebase of that name in {config}; there are: a, b\n"
    config.unlink()
    code, err = _cli(capsys, "check")
    assert code == 2 and "KBBOT_CONFIG" in err and "cannot read it" in err


def test_cli_kb_picks_the_knowledgebase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, text in (("a", "Alpha WireGuard port is 51820."), ("b", "Beta holidays are 30 days a year.")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "page.md").write_text(f"---\ntitle: {name} page\n---\n{text}\n", encoding="utf-8")
    (tmp_path / "kbbot.toml").write_text(
        '[knowledgebases.a]\nbackend = "local"\nfolder = "a"\n[knowledgebases.b]\nbackend = "local"\nfolder = "b"\n'
        '[routes]\ndefault = "b"\n',
        encoding="utf-8",
    )
    assert main(["ask", "--kb", "a", "which port does WireGuard use?", "--json"]) == 0
    assert "51820" in capsys.readouterr().out
    assert main(["ask", "how many holiday days?", "--json"]) == 0  # the default route
    assert "30 days" in capsys.readouterr().out
    assert main(["check", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"knowledgebases": {"a": ' in out and '"routes.default": "b"' in out


ROOT = Path(__file__).resolve().parents[2]


def test_the_files_in_the_readme_and_deploy_parse_as_documented() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Several knowledgebases", 1)[1]
    block = section.split("```toml\n", 1)[1].split("```", 1)[0]
    shown, tested = parse(block), parse(EXAMPLE)  # the test above checks what the README shows
    assert shown.routes == tested.routes
    assert shown.settings == tested.settings
    import yaml

    (configmap, secret) = list(yaml.safe_load_all((ROOT / "deploy/k8s/knowledgebases.yaml").read_text()))
    kbs = parse_knowledgebases(configmap["data"]["kbbot.toml"], Settings(), secret["stringData"],
                               source=Path("/etc/kbbot/kbbot.toml"))
    assert list(kbs.settings) == ["engineering", "handbook", "maths"]
    assert set(secret["stringData"]) == {"PW_ENG_TOKEN", "PW_HR_TOKEN", "MATHUB_KEY"}


def test_slack_use_is_a_command_only_when_there_is_a_choice() -> None:
    from kbbot.adapters.slack.parsing import Command, parse_command

    assert parse_command("use wireguard") == Command("ask", "use wireguard")  # one knowledgebase: a question
    assert parse_command("use maths", choosing=True) == Command("use", "maths")
    assert parse_command("use", choosing=True) == Command("use", "")
    assert parse_command("use the VPN from a hotel?", choosing=True) == Command("ask", "use the VPN from a hotel?")


def test_a_secret_with_a_line_break_or_a_non_utf8_file_is_refused_without_echo(tmp_path: Path) -> None:
    text = '[knowledgebases.a]\nbackend = "perfectwiki"\napi_token = "env:PW_ENG_TOKEN"\n'
    with pytest.raises(ConfigError) as caught:
        parse(text, env={"PW_ENG_TOKEN": "pw-secret\nsecond-line"})
    assert "api_token: contains a space, line break" in str(caught.value) and "pw-secret" not in str(caught.value)
    broken = tmp_path / "kbbot.toml"
    broken.write_bytes(b'[knowledgebases.a]\nbackend = "local" # \xff\xfe\n')
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_knowledgebases(Settings(kbbot_config=broken), {})


def test_check_names_the_table_keys_still_holding_placeholders() -> None:
    kbs = parse(EXAMPLE, env={**ENV, "PW_HR_TOKEN": "replace-me"})
    assert parse("[knowledgebases.a]\nbackend = 'local'").placeholders(Settings()) == []
    assert kbs.placeholders(Settings(slack_bot_token="xoxb-your-token")) == [
        "SLACK_BOT_TOKEN",
        "knowledgebases.engineering.page_url_template",  # https://eng.example.com/{id}
        "knowledgebases.handbook.api_token",
        "knowledgebases.maths.base_url",
    ]


def test_env_references_are_found_in_dot_env_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # .env.example: secrets in the file are "env:NAME" references to variables set in .env. Only the process
    # environment was searched, so `kbbot check` said "PW_ENG_TOKEN is not set" with the token in .env.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kbbot.toml").write_text(
        '[knowledgebases.eng]\nbackend = "perfectwiki"\napi_token = "env:PW_ENG_TOKEN"\n'
        '[knowledgebases.hr]\nbackend = "perfectwiki"\napi_token = "env:PW_HR_TOKEN"\n',
        encoding="utf-8",
    )
    (tmp_path / ".env").write_text("PW_ENG_TOKEN=from-dotenv\nPW_HR_TOKEN=hidden\n", encoding="utf-8")
    monkeypatch.setenv("PW_HR_TOKEN", "from-environment")  # the environment wins, as for every setting
    kbs = load_knowledgebases(load_settings(), environment())
    tokens = {name: s.perfectwiki_api_token for name, s in kbs.settings.items()}
    assert {name: t.get_secret_value() for name, t in tokens.items() if t} == {
        "eng": "from-dotenv",
        "hr": "from-environment",
    }
