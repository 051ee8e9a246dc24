"""No command leaves a gpg-agent behind: each one held inotify instances (128 per user) and
enough leftovers made every later watch fail (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from integration.office import Office, target_toml

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]


def agents_of(home: Path) -> list[str]:
    """Command lines of the gpg-agents running on ``home``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"gpg-agent") and str(home).encode() in b" ".join(argv):
            found.append(b" ".join(argv).decode(errors="replace"))
    return found


def test_init_and_signed_reports_leave_no_agent(tmp_path: Path) -> None:
    office = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))]).write()
    home = office.state / "gnupg"
    assert office.run("init").code == 0
    assert home.is_dir()
    assert agents_of(home) == []
    assert office.run("backup", "now").code == 0
    done = office.run("report", "weekly", "--json")
    assert done.code == 0, done.err
    assert agents_of(home) == []
    # the twin: gpg itself does leave one (what the fix stops)
    import subprocess

    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--list-secret-keys"],
                   capture_output=True, check=True, timeout=60)
    assert agents_of(home), "gpg started no agent: this test proves nothing"
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=True,
                   timeout=60)
