"""Repository URL parsing, masking and the pinned ssh command (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from secops.backup.retention import forget_args, snapshot_tags
from secops.backup.targets import Endpoint, mask_repository, parse_repository, ssh_command
from secops.config.schema import Retention


@pytest.mark.parametrize(
    ("repo", "expected"),
    [
        ("/var/backups/secops", Endpoint("local", path="/var/backups/secops")),
        ("local:/srv/r", Endpoint("local", path="/srv/r")),
        ("rest:http://h.example:8000/tan-ky/", Endpoint("rest", "h.example", 8000, None,
                                                         "/tan-ky/")),
        ("rest:https://u:p@h.example/x/", Endpoint("rest", "h.example", 443, None, "/x/")),
        ("s3:http://127.0.0.1:9000/bucket", Endpoint("s3", "127.0.0.1", 9000, None, "/bucket")),
        ("s3:s3.amazonaws.com/bucket", Endpoint("s3", "s3.amazonaws.com", 443, None, "/bucket")),
        ("sftp:root@10.0.0.1:/srv/repo", Endpoint("sftp", "10.0.0.1", 22, "root", "/srv/repo")),
        ("sftp://bk@h:2222//srv/repo", Endpoint("sftp", "h", 2222, "bk", "/srv/repo")),
        ("b2:bucket:path", Endpoint("other")),
    ],
)
def test_parse_repository(repo: str, expected: Endpoint) -> None:
    assert parse_repository(repo) == expected


def test_mask_repository_hides_url_password_only() -> None:
    assert mask_repository("rest:https://u:s3cret@h/x/") == "rest:https://u:****@h/x/"
    assert mask_repository("rest:https://h/x/") == "rest:https://h/x/"


def test_ssh_command_pins_host_key_and_never_prompts() -> None:
    ep = parse_repository("sftp://bk@h:2222//srv/repo")
    cmd = ssh_command(ep, Path("/k/id"), Path("/s/ssh/t.known_hosts"), 10)
    assert "StrictHostKeyChecking=yes" in cmd
    assert "UserKnownHostsFile=/s/ssh/t.known_hosts" in cmd
    assert "GlobalKnownHostsFile=/dev/null" in cmd
    assert "BatchMode=yes" in cmd
    assert "-p 2222" in cmd and "-i /k/id" in cmd
    assert cmd.endswith("bk@h -s sftp")


def test_ssh_command_quotes_paths_with_spaces() -> None:
    ep = parse_repository("sftp:bk@h:/r")
    cmd = ssh_command(ep, Path("/my keys/id"), Path("/kh"), 10)
    assert '-i "/my keys/id"' in cmd


def test_retention_always_keeps_pinned_and_scopes_to_office() -> None:
    args = forget_args(Retention(keep_within="30d", keep_daily=7), "tan-ky")
    assert args == ["--keep-within", "30d", "--keep-daily", "7", "--keep-tag", "pinned",
                    "--tag", "office:tan-ky"]


def test_retention_without_policy_keeps_everything() -> None:
    assert forget_args(Retention(), "tan-ky") == []


def test_snapshot_tags() -> None:
    assert snapshot_tags("tan-ky", "change") == ["secops", "office:tan-ky", "reason:change"]
