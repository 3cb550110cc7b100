"""Conventions a Python user relies on: real signatures and docstrings, ``py.typed`` shipped,
settings from ``~/.mltrail/config.toml`` below the environment."""

from __future__ import annotations

import inspect
import pydoc
from pathlib import Path

import pytest

import mltrail
from mltrail.config import Settings, tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_help_of_start_shows_its_parameters_and_their_meaning():
    parameters = inspect.signature(mltrail.start).parameters
    assert list(parameters)[:5] == ["project", "display_name", "description", "hyperparams", "tags"]
    assert parameters["resume"].kind is inspect.Parameter.KEYWORD_ONLY
    text = pydoc.render_doc(mltrail.start, renderer=pydoc.plaintext)
    for name in parameters:
        assert f"{name}:" in text, name  # every parameter is documented under Args
    assert "Returns:" in text and "Raises:" in text


def test_start_is_the_sdk_function_code_imports():
    from mltrail.sdk.experiment import start

    assert start is mltrail.start


def test_py_typed_is_shipped():
    assert (Path(mltrail.__file__).parent / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["mltrail"]


def test_the_config_file_is_read_below_the_environment(tmp_path):
    (tmp_path / "config.toml").write_text(
        'url = "http://file:5870"\ntoken = "from-file"\nsystem_metrics_interval = 30\n'
        "system_metrics = false\n"
    )
    env = {"MLTRAIL_HOME": str(tmp_path), "MLTRAIL_TOKEN": "from-env"}
    settings = Settings.from_env(env)
    assert (settings.url, settings.token) == ("http://file:5870", "from-env")
    assert settings.system_metrics_interval == 30.0 and settings.system_metrics is False
    assert Settings.from_env({"MLTRAIL_HOME": str(tmp_path / "none")}).url is None


def test_a_malformed_config_file_names_itself(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("url = \n")
    with pytest.raises(ValueError, match=r"config\.toml"):
        Settings.from_env({"MLTRAIL_HOME": str(tmp_path)})
    path.write_bytes(b"url = '\xff'\n")  # not UTF-8: was the codec's error, not naming the file
    with pytest.raises(ValueError, match=r"config\.toml: not a readable TOML file"):
        Settings.from_env({"MLTRAIL_HOME": str(tmp_path)})
    path.write_text("[server]\nurl = 'x'\n")
    with pytest.raises(ValueError, match="server: must be a string"):
        Settings.from_env({"MLTRAIL_HOME": str(tmp_path)})


def test_a_misspelt_config_key_is_named_not_ignored(tmp_path):
    # `tokne = "mlt_..."` was ignored, and the next command said a token is required
    (tmp_path / "config.toml").write_text('url = "http://h:5870"\ntokne = "mlt_x"\n')
    with pytest.raises(ValueError, match=r"config\.toml: tokne: not a setting \(one of .*token"):
        Settings.from_env({"MLTRAIL_HOME": str(tmp_path)})


@pytest.mark.parametrize(
    ("value", "message"),
    [("3", "PROJECT/EXPERIMENT"), ("p/0", "PROJECT/EXPERIMENT"), ("p/x", "PROJECT/EXPERIMENT")],
)
def test_a_bad_resume_variable_is_refused(value, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_env({"MLTRAIL_RESUME": value, "MLTRAIL_HOME": "/nonexistent"})


def test_settings_round_trip_through_a_child_environment():
    settings = Settings.from_env(
        {
            "MLTRAIL_HOME": "/nonexistent",
            "MLTRAIL_RESUME": "my project/3",
            "MLTRAIL_SYSTEM_METRICS": "off",
            "MLTRAIL_SYSTEM_METRICS_INTERVAL": "2.5",
        }
    )
    assert settings.resume == ("my project", 3)
    assert Settings.from_env(settings.to_env()) == settings


BAD_VALUES = [  # (toml key, its TOML text, the same value as an environment variable's)
    ("crash_after", "0", "0"),
    ("system_metrics_interval", '"soon"', "soon"),
    ("request_deadline", "-1", "-1"),
    ("capture", '"pipes"', "pipes"),
    ("resume", '"3"', "3"),
    ("system_metrics", '"maybe"', "maybe"),
    ("spool_limit_bytes", '"lots"', "lots"),
    # limits that were not a plain count were ignored, leaving the default quota in force
    ("artifact_quota_bytes", '"1e9"', "1e9"),
    ("artifact_max_file_bytes", '"10GB"', "10GB"),
]


@pytest.mark.parametrize(("key", "toml", "raw"), BAD_VALUES, ids=[v[0] for v in BAD_VALUES])
def test_a_bad_setting_names_where_it_was_written(tmp_path, key, toml, raw):
    # a bad value in config.toml named MLTRAIL_<KEY>, which the user never set
    path = tmp_path / "config.toml"
    path.write_text(f"{key} = {toml}\n")
    variable = f"MLTRAIL_{key.upper()}"
    with pytest.raises(ValueError) as from_file:
        Settings.from_env({"MLTRAIL_HOME": str(tmp_path)})
    assert str(from_file.value).startswith(f"{path}: {key}")
    assert variable not in str(from_file.value) and repr(raw) in str(from_file.value)
    with pytest.raises(ValueError) as from_env:
        Settings.from_env({"MLTRAIL_HOME": str(tmp_path), variable: raw})
    assert str(from_env.value).startswith(variable) and "config.toml" not in str(from_env.value)


@pytest.mark.parametrize("key", ["crash_after", "spool_limit_bytes", "artifact_quota_bytes"])
def test_a_boolean_is_not_taken_for_a_number(tmp_path, key):
    # `true` read as "1": a crash_after of 1 s, a spool of 1 byte; `false` as "off"
    path = tmp_path / "config.toml"
    for value in ("true", "false"):
        path.write_text(f"{key} = {value}\n")
        with pytest.raises(ValueError, match="must be a number, got a boolean") as caught:
            Settings.from_env({"MLTRAIL_HOME": str(tmp_path)})
        assert str(caught.value).startswith(f"{path}: {key}")
    path.write_text(f"{key} = true\nstrict = true\n")  # the environment's value wins
    settings = Settings.from_env({"MLTRAIL_HOME": str(tmp_path), f"MLTRAIL_{key.upper()}": "7"})
    assert settings.strict and getattr(settings, key) == 7


def test_every_setting_read_has_its_config_key_and_every_key_is_read(tmp_path, monkeypatch):
    # CONFIG_KEYS is a list beside from_env: a variable added to one and not the other was
    # either refused in config.toml as "not a setting" or accepted there and never read
    from mltrail import config

    read: list[str] = []
    original = config._Values.get

    def recording(self: config._Values, name: str) -> str | None:
        read.append(name)
        return original(self, name)

    monkeypatch.setattr(config._Values, "get", recording)
    settings = Settings.from_env({"MLTRAIL_HOME": str(tmp_path)})
    assert all(name.startswith("MLTRAIL_") for name in read)
    keys = {name.removeprefix("MLTRAIL_").lower() for name in read}
    assert sorted(keys) == sorted(config.CONFIG_KEYS)
    assert len(config.CONFIG_KEYS) == len(set(config.CONFIG_KEYS))
    written = set(settings.with_(system_metrics=False, strict=True).to_env()) - {"MLTRAIL_HOME"}
    assert {name.removeprefix("MLTRAIL_").lower() for name in written} <= keys
