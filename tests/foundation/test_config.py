import dataclasses
import re
import stat
import typing
from pathlib import Path

import pytest

from app.config import ConfigError, load_settings, render_example

ROOT = Path(__file__).resolve().parents[2]


def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(text)
    return folder


def test_defaults_without_a_file(tmp_path):
    settings = load_settings(tmp_path / "inst", env={})
    assert settings.server.port == 5000
    assert settings.sandbox is True
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path / 'inst' / 'prodpanel.sqlite3'}"


def test_file_values_are_read(tmp_path):
    folder = write(tmp_path / "i", '[server]\nport = 8080\n[panda]\nurl = "https://panda.example:25443"\n')
    settings = load_settings(folder, env={})
    assert settings.server.port == 8080
    assert settings.sandbox is False


def test_unknown_key_names_the_key(tmp_path):
    folder = write(tmp_path / "i", "[server]\nprot = 8080\n")
    with pytest.raises(ConfigError, match=r"server\.prot: unknown key"):
        load_settings(folder, env={})


def test_unknown_top_level_key(tmp_path):
    folder = write(tmp_path / "i", 'databse_url = "x"\n')
    with pytest.raises(ConfigError, match="databse_url: unknown key"):
        load_settings(folder, env={})


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[server]\nport = "80"\n', r"server\.port: expected int, got str"),
        ("[server]\nport = true\n", r"server\.port: expected int, got bool"),
        ('[auth]\nlocal_accounts = "yes"\n', r"auth\.local_accounts: expected bool"),
        ('[tasks]\nstep_types = "SIM"\n', r"tasks\.step_types: expected list\[str\]"),
        ('[iam]\nrole_map = { "spd" = 1 }\n', r"iam\.role_map: expected dict\[str, str\]"),
        ("server = 5\n", r"server: expected a table"),
    ],
)
def test_wrong_type_names_key_and_expected_type(tmp_path, toml, message):
    folder = write(tmp_path / "i", toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(folder, env={})


def test_invalid_toml_is_reported(tmp_path):
    folder = write(tmp_path / "i", "[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(folder, env={})


def test_secrets_cannot_be_put_in_the_file(tmp_path):
    folder = write(tmp_path / "i", 'secret_key = "abc"\n')
    with pytest.raises(ConfigError, match="secret_key: may not be set in config.toml"):
        load_settings(folder, env={})


def test_environment_overrides_file_with_types(tmp_path):
    folder = write(tmp_path / "i", "[server]\nport = 8080\n")
    env = {
        "PRODPANEL_SERVER__PORT": "9090",
        "PRODPANEL_AUTH__LOCAL_ACCOUNTS": "false",
        "PRODPANEL_TASKS__STEP_TYPES": "SIM, RECO, DIGI",
        "PRODPANEL_LOG_LEVEL": "DEBUG",
    }
    settings = load_settings(folder, env=env)
    assert settings.server.port == 9090
    assert settings.auth.local_accounts is False
    assert settings.tasks.step_types == ["SIM", "RECO", "DIGI"]
    assert settings.log_level == "DEBUG"


def test_environment_wrong_type_and_unknown_names(tmp_path):
    with pytest.raises(ConfigError, match=r"server\.port: expected int, got 'abc' from the environment"):
        load_settings(tmp_path / "i", env={"PRODPANEL_SERVER__PORT": "abc"})
    with pytest.raises(ConfigError, match="PRODPANEL_SERVR__PORT: unknown section 'servr'"):
        load_settings(tmp_path / "i", env={"PRODPANEL_SERVR__PORT": "1"})


def test_settings_are_frozen(tmp_path):
    settings = load_settings(tmp_path / "i", env={})
    with pytest.raises(AttributeError):
        settings.server.port = 1  # type: ignore[misc]


def test_secrets_generated_once_private(tmp_path):
    folder = tmp_path / "i"
    first = load_settings(folder, env={})
    second = load_settings(folder, env={})
    assert first.secret_key and first.secret_key == second.secret_key
    assert len(first.token_key) == 32 and first.token_key == second.token_key
    for name in ("secret_key", "token_key"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_secrets_from_environment_are_not_written(tmp_path):
    import base64

    key = base64.b64encode(b"k" * 32).decode()
    settings = load_settings(
        tmp_path / "i", env={"PRODPANEL_SECRET_KEY": "s3cret", "PRODPANEL_TOKEN_KEY": key}
    )
    assert settings.secret_key == "s3cret" and settings.token_key == b"k" * 32
    assert not (tmp_path / "i" / "secret_key").exists()
    assert not (tmp_path / "i" / "token_key").exists()


def test_bad_token_key_from_environment(tmp_path):
    with pytest.raises(ConfigError, match="token_key: expected base64 of 32 bytes"):
        load_settings(tmp_path / "i", env={"PRODPANEL_TOKEN_KEY": "c2hvcnQ="})


def test_example_file_documents_every_key_with_its_default():
    committed = (ROOT / "instance" / "config.example.toml").read_text()
    assert committed == render_example(), (
        "regenerate: prodpanel config-example > instance/config.example.toml"
    )


def test_example_file_uncommented_is_a_valid_config(tmp_path):
    lines = []
    for line in render_example().splitlines():
        if re.match(r"# [a-z_]+ = ", line):
            lines.append(line[2:])
        elif line.startswith("["):
            lines.append(line)
    folder = write(tmp_path / "i", "\n".join(lines) + "\n")
    assert load_settings(folder, env={}) == load_settings(tmp_path / "i", env={})


def test_example_file_documents_each_key_on_the_line_above_it():
    lines = render_example().splitlines()
    keys = [i for i, line in enumerate(lines) if re.match(r"# [a-z_]+ = ", line)]
    assert len(keys) > 50
    undocumented = [lines[i] for i in keys if not re.match(r"# \S", lines[i - 1]) or lines[i - 1] == "#"]
    assert undocumented == [], "keys without a doc line: give the field a doc in setting(...)"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[auth]\nlogin_attempts = 0\n", "auth.login_attempts: must be at least 1, got 0"),
        ("[auth]\nsession_idle_minutes = -5\n", "auth.session_idle_minutes: must be at least 1, got -5"),
        ("[server]\nthreads = 0\n", "server.threads: must be at least 1, got 0"),
        ("[server]\nport = 70000\n", "server.port: must be 0..65535, got 70000"),
        (
            '[panda]\ntransport = "carrier-pigeon"\n',
            'panda.transport: must be one of "auto", "v1", "legacy", got "carrier-pigeon"',
        ),
        ("[panda]\nread_timeout_s = -1\n", "panda.read_timeout_s: must be more than 0, got -1.0"),
        ("[tasks]\nmax_bunch_size = -1\n", "tasks.max_bunch_size: must be at least 1, got -1"),
        ('log_level = "LOUD"\n', 'log_level: must be one of "DEBUG", "INFO", "WARNING", "ERROR", got "LOUD"'),
        (
            '[iam]\nrole_map = { "spd" = "superuser" }\n',
            'iam.role_map: must be one of "viewer", "manager", "admin", got "superuser"',
        ),
        ('[panda]\nurl = "pandaserver:25443"\n', "panda.url: must be an http:// or https:// URL"),
        ('[panda]\nproxy = "http://[::1"\n', "panda.proxy: not a valid URL"),
        (
            '[tasks]\ntask_name_pattern = "{production}.{stp}"\n',
            "tasks.task_name_pattern: unknown placeholder {stp}",
        ),
        ('[tasks]\nbunch_suffix = ".{n"\n', "tasks.bunch_suffix: not a valid pattern"),
    ],
)
def test_values_outside_their_range_or_choices_are_refused_naming_the_key(tmp_path, toml, message):
    folder = write(tmp_path / "i", toml)
    with pytest.raises(ConfigError) as refused:
        load_settings(folder, env={})
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


@pytest.mark.parametrize("key", ["tag_strip_regex", "scope_regex", "container_regex", "request_id_regex"])
def test_every_regex_key_must_compile(tmp_path, key):
    folder = write(tmp_path / "i", f'[tasks]\n{key} = "[A-Z"\n')
    with pytest.raises(ConfigError, match=rf"^tasks\.{key}: not a valid regular expression \(.+\): '\[A-Z'$"):
        load_settings(folder, env={})


def test_template_file_must_exist_relative_to_the_instance_folder(tmp_path):
    folder = write(tmp_path / "i", '[tasks]\ntemplate_file = "spd-template.toml"\n')
    with pytest.raises(
        ConfigError, match=f"^tasks.template_file: no such file: {folder / 'spd-template.toml'}$"
    ):
        load_settings(folder, env={})
    (folder / "spd-template.toml").write_text("[common]\n")
    assert load_settings(folder, env={}).tasks.template_file == "spd-template.toml"


def test_environment_values_follow_the_same_rules(tmp_path):
    with pytest.raises(ConfigError, match="^server.threads: must be at least 1, got 0$"):
        load_settings(tmp_path / "i", env={"PRODPANEL_SERVER__THREADS": "0"})


def test_every_number_and_pattern_key_declares_its_rule():
    from app.config import REGEX, Settings

    sections = [
        f.default_factory for f in dataclasses.fields(Settings) if dataclasses.is_dataclass(f.default_factory)
    ]
    unruled = []
    for section in [Settings, *sections]:
        hints = typing.get_type_hints(section)
        for f in dataclasses.fields(section):
            rules = f.metadata.get("rules", ())
            if f.name.endswith("_regex") and REGEX not in rules:
                unruled.append(f"{f.name}: not checked as a regular expression")
            if hints[f.name] in (int, float) and not rules and f.name != "sim_seed":  # any seed is fine
                unruled.append(f"{f.name}: no range")
    assert unruled == []
