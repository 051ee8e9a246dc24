"""The CLI's contract for bad input: a clear message, the documented exit code, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from secops.cli.main import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), out, err


def test_unknown_config_key_exit_2_without_traceback(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[office]\nname="x"\ncode="x"\ncolour=1\n[paths]\nwatch=["d"]\n'
                   '[backup]\n[[backup.targets]]\nname="l"\nrepository="r"\n')
    code, out, err = run(["--config", str(cfg), "config", "check"], capsys)
    assert code == 2
    assert f"{cfg}: office.colour: unknown key" in err
    assert "Traceback" not in err and out == ""


def test_config_check_good_config_masks_secrets(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d").mkdir()
    env = tmp_path / "off.env"
    env.write_text("AWS_SECRET_ACCESS_KEY=topsecret\n")
    env.chmod(0o600)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[office]\nname="x"\ncode="x"\n[paths]\nwatch=["d"]\nstate_dir="s"\n'
                   '[backup]\n[[backup.targets]]\nname="l"\nrepository="rest:http://u:pw@h/r/"\n'
                   'env_file="off.env"\n')
    cfg.chmod(0o600)
    code, out, err = run(["--config", str(cfg), "config", "check"], capsys)
    assert code == 0, err
    assert "topsecret" not in out and ":pw@" not in out
    assert "u:****@h" in out and "AWS_SECRET_ACCESS_KEY" in out


def test_config_check_refuses_env_file_readable_by_others(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "d").mkdir()
    env = tmp_path / "off.env"
    env.write_text("AWS_SECRET_ACCESS_KEY=topsecret\n")
    env.chmod(0o644)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[office]\nname="x"\ncode="x"\n[paths]\nwatch=["d"]\nstate_dir="s"\n'
                   '[backup]\n[[backup.targets]]\nname="l"\nrepository="r"\n'
                   'env_file="off.env"\n')
    code, _out, err = run(["--config", str(cfg), "config", "check"], capsys)
    assert code == 2
    assert "backup.targets[0].env_file" in err and "chmod 600" in err
    assert "topsecret" not in err


def test_missing_config_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["--config", str(tmp_path / "nope.toml"), "snapshots"], capsys)
    assert code == 2 and "config file not found" in err and "Traceback" not in err


def test_unknown_command_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["frobnicate"], capsys)
    assert code == 2 and "No such command" in err


def test_unknown_target_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[office]\nname="x"\ncode="x"\n[paths]\nwatch=["d"]\nstate_dir="s"\n'
                   '[backup]\n[[backup.targets]]\nname="l"\nrepository="r"\n')
    code, _, err = run(["--config", str(cfg), "backup", "now", "--target", "nope"], capsys)
    assert code == 2 and "no target named 'nope'" in err


def test_every_command_of_every_cli_module_is_reachable_by_its_name() -> None:
    """The lazy command table names each command of every ``secops.cli.*_cmd`` module, and
    nothing else."""
    import importlib
    import pkgutil

    import secops.cli
    from secops.cli.main import _COMMANDS, cli

    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(secops.cli.__path__):
        if info.name.endswith("_cmd"):
            mod = importlib.import_module(f"secops.cli.{info.name}")
            found.update((c.name or "", info.name) for c in mod.COMMANDS)
    assert found == _COMMANDS
    ctx = cli.make_context("secops", ["--help"], resilient_parsing=True)
    for name in found:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
    assert cli.get_command(ctx, "nosuch") is None
