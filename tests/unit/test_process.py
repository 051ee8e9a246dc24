"""The one subprocess runner: timeouts kill the whole process group; missing tools are named."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from secops import process
from secops.errors import OperationalError, Stalled, ToolMissing


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


# A program that prints the same status line on a timer and gets nowhere, as restic does
# while it waits on a server that never answers; and its twin that moves.
REPEATS = "while true; do echo same; sleep 0.1; done"
MOVES = "for i in $(seq 1 30); do echo $i; sleep 0.1; done"


def _progress_when_new() -> tuple[list[str], Callable[[str], bool]]:
    seen: list[str] = []

    def on_line(line: str) -> bool:
        new = line not in seen
        seen.append(line)
        return new

    return seen, on_line


def test_a_program_that_makes_no_progress_is_stopped_at_its_stall_bound() -> None:
    _seen, on_line = _progress_when_new()
    start = time.monotonic()
    with pytest.raises(Stalled, match="made no progress for 1 s"):
        process.run(["sh", "-c", REPEATS], env=process.base_env(), timeout=60,
                    on_line=on_line, stall_timeout=1.0)
    assert time.monotonic() - start < 30


def test_a_program_that_prints_nothing_is_stalled_too() -> None:
    with pytest.raises(Stalled):
        process.run(["sleep", "30"], env=process.base_env(), timeout=60,
                    on_line=lambda _line: True, stall_timeout=1.0)


def test_a_program_that_keeps_moving_runs_past_its_stall_bound() -> None:
    seen, on_line = _progress_when_new()
    done = process.run(["sh", "-c", MOVES], env=process.base_env(), timeout=60,
                       on_line=on_line, stall_timeout=1.0)
    assert done.returncode == 0 and len(seen) == 30 and done.duration_s > 1.0
