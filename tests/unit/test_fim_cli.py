"""``secops fim``, ``maintenance`` and ``unfreeze`` from the command line: results, exit codes,
and bad input without a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from minimal_config import MINIMAL_TOML

from secops.cli.main import main

CONFIG = MINIMAL_TOML + """\
[integrity]
canary_depth = 1
[[integrity.protect]]
paths = ["danh-sach/"]
windows = [{windows}]
"""


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    code = exc.value.code
    assert "Traceback" not in err
    return (code if isinstance(code, int) else 1), out, err


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    (tmp_path / "data" / "danh-sach").mkdir(parents=True)
    (tmp_path / "data" / "danh-sach" / "thon-1.csv").write_text("STT,Họ và tên\n1,Lê Văn An\n")
    (tmp_path / "data" / "bien-ban.txt").write_text("Biên bản\n")
    path = tmp_path / "secops.toml"
    path.write_text(CONFIG.format(windows=""), encoding="utf-8")
    return path


def test_scan_before_a_baseline_is_bad_input(cfg: Path, capsys: pytest.CaptureFixture[str]
                                             ) -> None:
    code, _out, err = run(["--config", str(cfg), "fim", "scan"], capsys)
    assert code == 2 and "secops fim baseline" in err


def test_baseline_scan_and_an_unauthorised_change(cfg: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    c = ["--config", str(cfg)]
    code, out, _ = run([*c, "fim", "baseline", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["files"] == 2 and doc["canaries"] == 4  # 2 folders x 2 decoys
    code, out, _ = run([*c, "fim", "scan", "--json"], capsys)
    assert code == 0 and json.loads(out)["changes"] == []  # the untouched twin
    (cfg.parent / "data" / "bien-ban.txt").write_text("Biên bản, sửa\n")  # not protected
    code, out, _ = run([*c, "fim", "scan", "--json"], capsys)
    assert code == 0 and [x["kind"] for x in json.loads(out)["changes"]] == ["modified"]
    voters = cfg.parent / "data" / "danh-sach" / "thon-1.csv"
    voters.write_text("STT,Họ và tên\n1,Lê Văn An\n2,Kẻ Mạo Danh\n")
    code, out, _ = run([*c, "fim", "scan", "--json"], capsys)
    doc = json.loads(out)
    assert code == 1
    bad = doc["unauthorized"][0]
    assert bad["path"] == str(voters) and "+2,Kẻ Mạo Danh" in bad["diff"]
    # inside a maintenance window the same kind of change is fine
    assert run([*c, "maintenance", "start", "--minutes", "5", "--reason", "cập nhật"],
               capsys)[0] == 0
    voters.write_text("STT,Họ và tên\n1,Lê Văn An\n")
    code, out, _ = run([*c, "fim", "scan", "--json"], capsys)
    assert code == 0 and json.loads(out)["unauthorized"] == []
    assert run([*c, "maintenance", "stop"], capsys)[0] == 0


def test_a_touched_canary_fails_the_scan(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["--config", str(cfg)]
    run([*c, "fim", "baseline"], capsys)
    canary = next((cfg.parent / "data").glob("0000-secops-canary.docx"))
    canary.unlink()
    code, out, _ = run([*c, "fim", "verify", "--json"], capsys)
    assert code == 1 and json.loads(out)["canaries_touched"] == [str(canary)]


def test_bad_window_in_config_names_the_key(cfg: Path, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    cfg.write_text(CONFIG.format(windows='"mon-fri 7:30-17:30"'), encoding="utf-8")
    code, _out, err = run(["--config", str(cfg), "fim", "baseline"], capsys)
    assert code == 2 and "integrity.protect[0].windows[0]" in err


def test_unfreeze_with_nothing_frozen_and_maintenance_without_reason(
        cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["--config", str(cfg)]
    code, out, _ = run([*c, "unfreeze", "--json"], capsys)
    assert code == 0 and json.loads(out)["unfrozen"] is False
    code, _out, err = run([*c, "maintenance", "start", "--minutes", "5"], capsys)
    assert code == 2 and "--reason" in err
