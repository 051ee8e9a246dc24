"""Atomic writes and secret-file checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from secops.errors import SecretFileError
from secops.files import atomic_write, check_secret_file, ensure_private_dir, read_env_file


def test_atomic_write_creates_with_mode(tmp_path: Path) -> None:
    p = tmp_path / "a" / "secret"
    atomic_write(p, b"x", 0o600)
    assert p.read_bytes() == b"x"
    assert p.stat().st_mode & 0o777 == 0o600
    assert [q.name for q in p.parent.iterdir()] == ["secret"]  # no temp file left


def test_secret_readable_by_others_is_refused_with_fix(tmp_path: Path) -> None:
    p = tmp_path / "pw"
    p.write_text("x")
    p.chmod(0o644)
    with pytest.raises(SecretFileError) as exc:
        check_secret_file(p, "password file")
    assert str(p) in str(exc.value) and "chmod 600" in str(exc.value)
    assert exc.value.exit_code == 2


def test_private_secret_passes(tmp_path: Path) -> None:
    p = tmp_path / "pw"
    p.write_text("x")
    p.chmod(0o600)
    check_secret_file(p, "password file")


def test_missing_secret(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError, match="does not exist"):
        check_secret_file(tmp_path / "nope", "env_file")


def test_env_file_parsing(tmp_path: Path) -> None:
    p = tmp_path / "e.env"
    p.write_text("# creds\nAWS_ACCESS_KEY_ID=abc\nexport AWS_SECRET_ACCESS_KEY='d=e'\n\n")
    p.chmod(0o600)
    assert read_env_file(p) == {"AWS_ACCESS_KEY_ID": "abc", "AWS_SECRET_ACCESS_KEY": "d=e"}


def test_env_file_bad_line(tmp_path: Path) -> None:
    p = tmp_path / "e.env"
    p.write_text("AWS_ACCESS_KEY_ID abc\n")
    p.chmod(0o600)
    with pytest.raises(SecretFileError, match="line 1"):
        read_env_file(p)


def test_ensure_private_dir_tightens(tmp_path: Path) -> None:
    d = tmp_path / "s"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)  # noqa: S103 - the test loosens it on purpose
    assert ensure_private_dir(d) is False
    assert d.stat().st_mode & 0o777 == 0o700
    assert ensure_private_dir(tmp_path / "new") is True
