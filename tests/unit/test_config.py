from __future__ import annotations

import re
from pathlib import Path

import pytest

from kbbot.config import Settings, load_settings
from kbbot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_pick_local_backend() -> None:
    settings = load_settings(_env_file=None)
    assert settings.backend == "local"
    assert settings.cache_ttl_seconds == 21600 and settings.quota_probe_seconds == 3600


def test_backend_inferred_from_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATHUB_API_KEY", "bot_x")
    monkeypatch.setenv("MATHUB_BASE_URL", "http://127.0.0.1:1/api/bot/v1")
    monkeypatch.setenv("MATHUB_PROJECT", "p")
    assert load_settings(_env_file=None).backend == "mathub"
    monkeypatch.setenv("PERFECTWIKI_API_TOKEN", "t")
    assert load_settings(_env_file=None).backend == "perfectwiki"


def test_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_TTL_SECONDS", "soon")
    with pytest.raises(ConfigError, match="CACHE_TTL_SECONDS"):
        load_settings(_env_file=None)


def test_missing_credentials_say_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_BACKEND", "perfectwiki")
    with pytest.raises(ConfigError, match="PERFECTWIKI_API_TOKEN"):
        load_settings(_env_file=None)


def test_bad_url_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFECTWIKI_BASE_URL", "ftp://x")
    with pytest.raises(ConfigError, match="PERFECTWIKI_BASE_URL: must start with http"):
        load_settings(_env_file=None)


def test_secrets_never_in_repr_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFECTWIKI_API_TOKEN", "pw-secret-123")
    monkeypatch.setenv("PERFECTWIKI_RATE_PER_SECOND", "zero")
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None)
    assert "pw-secret-123" not in str(info.value)
    monkeypatch.delenv("PERFECTWIKI_RATE_PER_SECOND")
    settings = load_settings(_env_file=None)
    assert "pw-secret-123" not in repr(settings)
    assert settings.secrets() == ["pw-secret-123"]


def test_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_GUILD_IDS", "1, 2,,3")
    monkeypatch.setenv("SAVE_DEFAULT_TAGS", "chat,  saved ")
    settings = load_settings(_env_file=None)
    assert settings.discord_guild_ids == (1, 2, 3)
    assert settings.save_default_tags == ("chat", "saved")


def test_dotenv_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CACHE_MAX_ENTRIES=7\n")
    assert load_settings().cache_max_entries == 7  # conftest chdir'd into tmp_path


def test_env_example_lists_every_setting() -> None:
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    assert listed == {name.upper() for name in Settings.model_fields}


@pytest.mark.parametrize("variable", ["PERFECTWIKI_API_TOKEN", "MATHUB_API_KEY"])
@pytest.mark.parametrize("token", ["pw-søcret-123", "pw-secret 123", "pw-secret-123\n", "pw-\x7fsecret"])
def test_wiki_token_that_cannot_be_sent_is_a_setting_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, token: str
) -> None:
    # An HTTP header carries printable ASCII only: such a token used to end in a traceback (whose
    # UnicodeEncodeError quoted a character of the token) or a misleading "could not reach" on every request.
    monkeypatch.setenv("MATHUB_BASE_URL", "http://127.0.0.1:1/api/bot/v1")
    monkeypatch.setenv("MATHUB_PROJECT", "p")
    monkeypatch.setenv(variable, token)
    with pytest.raises(ConfigError, match=variable) as info:
        load_settings(_env_file=None)
    message = str(info.value)
    assert "secret" not in message and "ø" not in message


def _readme_settings_rows() -> list[tuple[str, str]]:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in table.splitlines():
        if line.startswith("| `"):
            names, default = (cell.strip() for cell in line.strip("|").split("|")[:2])
            rows.append((names, default))
    return rows


def _variables(cell: str) -> list[str]:
    names: list[str] = []
    for name in re.findall(r"`([A-Z_][A-Z0-9_]+)`", cell):
        if name.startswith("_"):  # `PERFECTWIKI_RATE_PER_SECOND` / `_PER_MINUTE`
            previous = names[-1]
            name = previous[: previous.rfind(name[: name.index("_", 1) + 1])] + name
        names.append(name)
    return names


def test_readme_settings_table_lists_every_setting_with_its_default() -> None:
    rows = [(_variables(cell), cell, default) for cell, default in _readme_settings_rows()]
    listed = {name for names, _, _ in rows for name in names}
    assert listed == {name.upper() for name in Settings.model_fields}
    for names, cell, default in rows:
        fields = [Settings.model_fields[name.lower()] for name in names]
        values = re.findall(r"`([^`]*)`", default)
        if default == "—":  # none, unless the row gives one inline: `DISCORD_SAVE_THREADS` (true)
            inline = dict(re.findall(r"`([A-Z][A-Z0-9_]+)` \((true|false)\)", cell))
            for name, field in zip(names, fields, strict=True):
                if name in inline:
                    assert str(field.default).lower() == inline[name], f"README's default of {name}"
                else:
                    assert field.default in (None, ()), f"README says {name} has no default"
        elif re.fullmatch(r"`[^`]*`((, | / )`[^`]*`)*", default):  # `10` / `60`: one per variable
            assert len(values) == len(names), f"README's defaults of {names}"
            for name, field, value in zip(names, fields, values, strict=True):
                assert value == str(field.default).removesuffix(".0"), f"README's default of {name}: {value}"


def test_env_example_copied_as_is_equals_no_env_file(tmp_path: Path) -> None:
    # The README's first step is `cp .env.example .env`: every blank value there must mean "unset".
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    assert load_settings().model_dump() == load_settings(_env_file=None).model_dump()


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_blank_values_are_unset(monkeypatch: pytest.MonkeyPatch, blank: str) -> None:
    for name in ("KB_BACKEND", "MATHUB_BASE_URL", "DISCORD_SHARD_COUNT", "CACHE_TTL_SECONDS", "DISCORD_API_URL"):
        monkeypatch.setenv(name, blank)
    settings = load_settings(_env_file=None)
    assert settings.backend == "local" and settings.mathub_base_url is None
    assert settings.discord_shard_count is None and settings.cache_ttl_seconds == 21600
    assert settings.discord_api_url is None


def test_blank_environment_variable_does_not_hide_the_dotenv_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("CACHE_MAX_ENTRIES=7\n")
    monkeypatch.setenv("CACHE_MAX_ENTRIES", "")  # e.g. `environment: CACHE_MAX_ENTRIES: ""` in compose
    assert load_settings().cache_max_entries == 7


@pytest.mark.parametrize("name", ["#general", "general", "c0123abcde"])
def test_digest_channel_name_instead_of_id_says_what_to_copy(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("GAPS_DIGEST_SLACK_CHANNEL", name)
    with pytest.raises(ConfigError, match=r"GAPS_DIGEST_SLACK_CHANNEL: needs the channel's id, like C0123ABCDE") as e:
        load_settings(_env_file=None)
    assert "pattern" not in str(e.value)


def test_digest_channel_id_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAPS_DIGEST_SLACK_CHANNEL", "C0123ABCDE")
    assert load_settings(_env_file=None).gaps_digest_slack_channel == "C0123ABCDE"


def test_env_file_that_is_not_utf8_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A .env saved by an editor as UTF-16 (BOM ff fe) was a UnicodeDecodeError traceback.
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_bytes("KB_BACKEND=local\n".encode("utf-16"))
    with pytest.raises(ConfigError, match=r"^\.env is not UTF-8 text \(byte 0\); save it as UTF-8 and run again$"):
        load_settings()
