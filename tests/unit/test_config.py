"""Config loading: every error names the file and the key path; a good config loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from secops.config.loader import describe_validation_error, load_config
from secops.errors import ConfigError

GOOD = """
[office]
name = "UBND xã Tân Kỳ"
code = "tan-ky"

[paths]
state_dir = "state"
watch = ["data"]

[backup]
debounce_seconds = 5

[backup.retention]
keep_within = "30d"
keep_daily = 7

[[backup.targets]]
name = "local"
repository = "repo"

[[backup.targets]]
name = "offsite"
repository = "rest:http://backup.tinh.example:8000/tan-ky/"
append_only = true
env_file = "offsite.env"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "secops.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_good_config_loads_and_resolves_relative_paths(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.office.name == "UBND xã Tân Kỳ"
    assert cfg.office.language == "vi"
    assert cfg.paths.state_dir == str(tmp_path / "state")
    assert cfg.paths.watch == [str(tmp_path / "data")]
    assert cfg.backup.targets[0].repository == str(tmp_path / "repo")
    assert cfg.backup.targets[1].repository.startswith("rest:http://")
    assert cfg.backup.targets[1].env_file == str(tmp_path / "offsite.env")
    assert cfg.backup.retention.keep_daily == 7


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (("debounce_seconds = 5", "debounce_seconds = 5\ncolour = 1"),
         "backup.colour: unknown key"),
        (('append_only = true', 'append_only = true\nfoo = 1'),
         "backup.targets[1].foo: unknown key"),
        (('code = "tan-ky"', 'code = "Tân Kỳ"'), "office.code:"),
        (('code = "tan-ky"', ''), "office.code: required key is missing"),
        (('keep_daily = 7', 'keep_daily = 0'), "backup.retention.keep_daily:"),
        (('keep_within = "30d"', 'keep_within = "thirty days"'), "backup.retention.keep_within:"),
        (('debounce_seconds = 5', 'debounce_seconds = "five"'), "backup.debounce_seconds:"),
        (('name = "offsite"', 'name = "local"'), "backup.targets[1].name: duplicate"),
        (('[office]', '[office]\nlanguage = "fr"'), "office.language:"),
        (('watch = ["data"]', 'watch = []'), "paths.watch:"),
        (('watch = ["data"]', 'watch = ["."]'), "paths.watch[0]: the state_dir"),
        (('name = "UBND xã Tân Kỳ"', 'name = "UBND xã Tân Kỳ"\nsource = "x"'),
         "source: unknown key"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, mutation: tuple[str, str],
                                       expected: str) -> None:
    old, new = mutation
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(path) in str(exc.value)
    assert expected in str(exc.value)
    assert exc.value.exit_code == 2


def test_untouched_twin_of_each_mutation_loads(tmp_path: Path) -> None:
    load_config(write(tmp_path, GOOD))  # the twin: no mutation, no error


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('code = "tan-ky"', 'code = "tan-ky'))
    with pytest.raises(ConfigError, match=r"TOML syntax error.*line"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_describe_validation_error_shapes() -> None:
    assert describe_validation_error(
        "Object contains unknown field `x` - at `$.a.b[0]`") == "a.b[0].x: unknown key"
    assert describe_validation_error("Expected `int`, got `str` - at `$.a`") == (
        "a: Expected 'int', got 'str'")
    assert describe_validation_error("Object missing required field `office`") == (
        "office: required key is missing")


@pytest.mark.parametrize("name", ["secops.example.toml", "demo.toml"])
def test_shipped_configs_load(name: str) -> None:
    path = Path(__file__).parent.parent.parent / "configs" / name
    cfg = load_config(path)
    assert cfg.office.language == "vi"
    assert any(t.append_only for t in cfg.backup.targets)
