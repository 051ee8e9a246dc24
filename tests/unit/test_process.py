"""The one subprocess runner: timeouts kill the whole process group; missing tools are named."""

from __future__ import annotations

import time

import pytest

from secops import process
from secops.errors import OperationalError, ToolMissing


def test_a_hanging_program_is_killed_at_its_timeout() -> None:
    # A stand-in for a hung restic: a real program cannot be made to hang on demand.
    start = time.monotonic()
    with pytest.raises(OperationalError, match="did not finish within"):
        process.run(["sleep", "30"], env=process.base_env(), timeout=0.5)
    assert time.monotonic() - start < 10


def test_a_quick_program_runs_to_completion() -> None:
    done = process.run(["sh", "-c", "echo out; echo err >&2"], env=process.base_env(),
                       timeout=10)
    assert (done.returncode, done.stdout, done.stderr) == (0, "out\n", "err\n")


def test_streamed_lines_are_not_kept() -> None:
    lines: list[str] = []
    done = process.run(["printf", "a\\nb\\n"], env=process.base_env(), timeout=10,
                       on_line=lines.append)
    assert lines == ["a\n", "b\n"] and done.stdout == ""


def test_missing_tool_says_how_to_install() -> None:
    with pytest.raises(ToolMissing, match="restic is not installed") as exc:
        process.run(["/nonexistent/restic", "version"], env=process.base_env(), timeout=5)
    assert "apt-get install restic" in str(exc.value)


def test_environment_is_minimal() -> None:
    env = process.base_env()
    assert set(env) == {"PATH", "HOME", "LANG", "TMPDIR"}
