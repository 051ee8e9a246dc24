"""The restic adapter: every call to the restic binary goes through here.

Repositories and passwords travel in the environment (``RESTIC_REPOSITORY``,
``RESTIC_PASSWORD_FILE``), never on the command line, so ``ps`` shows neither a URL with
credentials nor a password.  Failures are classified (see ``classify.py``) into our errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secops import process
from secops.backup.classify import Failure, classify, essential_lines
from secops.backup.models import BackupSummary, Progress, Snapshot
from secops.clock import parse_restic_time
from secops.errors import (
    BackupError,
    BackupStalled,
    OperationalError,
    RepositoryLocked,
    RepositoryMissing,
    Stalled,
    TargetUnreachable,
    ToolMissing,
    WrongPassword,
)

Runner = Callable[..., process.Completed]
_STALL_HINT = ("the backup server accepts connections but does not answer, or restic hangs: "
               "check the server; secops retries the target")


@dataclass(frozen=True)
class Repo:
    """How to reach one target's repository."""

    name: str
    repository: str
    password_file: Path
    cache_dir: Path
    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    options: tuple[str, ...] = ()

    def env(self) -> dict[str, str]:
        env = process.base_env(self.home)
        env.update(self.extra_env)
        env["RESTIC_REPOSITORY"] = self.repository.removeprefix("local:")
        env["RESTIC_PASSWORD_FILE"] = str(self.password_file)
        env["RESTIC_CACHE_DIR"] = str(self.cache_dir)
        return env

    def local_path(self) -> Path | None:
        repo = self.repository.removeprefix("local:")
        return Path(repo) if repo.startswith("/") else None


_ERRORS: dict[Failure, type[BackupError]] = {
    Failure.NO_REPOSITORY: RepositoryMissing,
    Failure.WRONG_PASSWORD: WrongPassword,
    Failure.LOCKED: RepositoryLocked,
    Failure.UNREACHABLE: TargetUnreachable,
    Failure.HOST_KEY_MISMATCH: TargetUnreachable,
    Failure.CREDENTIALS: TargetUnreachable,
}

_HINTS: dict[Failure, str] = {
    Failure.NO_REPOSITORY: "run 'secops init' to create it",
    Failure.WRONG_PASSWORD: "the password file does not open this repository; on a new machine "
    "run 'secops keys recover ESCROW_FILE'",
    Failure.LOCKED: "another restic process is using the repository; secops retries and removes "
    "only locks restic itself calls stale",
    Failure.HOST_KEY_MISMATCH: "the server's SSH host key is not the pinned one: the connection "
    "may be intercepted. Verify the key with the server's owner before changing the pin",
    Failure.CREDENTIALS: "the server refused the credentials in the target's env_file",
    Failure.UNREACHABLE: "check the network and that the backup server is running",
    Failure.DISK_FULL: "free space on the target",
}


class Restic:
    """One restic binary, run with a timeout, against any number of repositories."""

    def __init__(self, binary: str = "restic", timeout: float = 6 * 3600.0,
                 runner: Runner = process.run) -> None:
        self.binary = binary
        self.timeout = timeout
        self._run_fn = runner
        self._version: tuple[int, ...] | None = None
        # restic 0.14 reports a short id; finding the full one costs a `restic snapshots`
        # run (about 0.5 s) on network targets. The daemon turns it off.
        self.resolve_full_ids = True

    # -- plumbing ---------------------------------------------------------------------------

    def _run(self, repo: Repo, args: Sequence[str], *, timeout: float | None = None,
             on_line: Callable[[str], object] | None = None,
             stall_timeout: float | None = None) -> process.Completed:
        """One restic run; a run stopped for its time or for no progress names its target."""
        argv = [self.binary, *repo.options, *args]
        env = repo.env()
        extra: dict[str, Any] = {}
        if stall_timeout is not None:
            extra["stall_timeout"] = stall_timeout
            env["RESTIC_PROGRESS_FPS"] = "2"  # status lines twice a second, terminal or not
        command = next((a for a in args if not a.startswith("-")), "restic")
        try:
            return self._run_fn(argv, env=env, timeout=timeout or self.timeout,
                                on_line=on_line, **extra)
        except Stalled as e:
            raise BackupStalled(f"target {repo.name!r}: {command}: {e.message}",
                                target=repo.name, hint=_STALL_HINT) from None
        except ToolMissing:
            raise
        except OperationalError as e:
            raise BackupError(f"target {repo.name!r}: {command}: {e.message}",
                              target=repo.name, hint=e.hint) from None

    def error(self, repo: Repo, done: process.Completed, action: str) -> BackupError:
        """Our error for a failed restic run."""
        kind = classify(done.returncode, done.stderr)
        cls = _ERRORS.get(kind, BackupError)
        detail = essential_lines(done.stderr)
        return cls(f"target {repo.name!r}: {action} failed ({kind.value}): {detail}",
                   target=repo.name, hint=_HINTS.get(kind))

    def version(self) -> tuple[int, ...]:
        if self._version is None:
            done = self._run_fn([self.binary, "version"], env=process.base_env(), timeout=30)
            m = re.search(r"restic (\d+)\.(\d+)\.(\d+)", done.stdout)
            self._version = tuple(int(x) for x in m.groups()) if m else (0, 0, 0)
        return self._version

    # -- repository ------------------------------------------------------------------------

    def exists(self, repo: Repo, timeout: float = 120) -> bool:
        """True if the repository exists and the password opens it."""
        done = self._run(repo, ["cat", "config"], timeout=timeout)
        if done.returncode == 0:
            return True
        err = self.error(repo, done, "opening the repository")
        if isinstance(err, RepositoryMissing):
            return False
        raise err

    def init(self, repo: Repo) -> None:
        done = self._run(repo, ["init"], timeout=300)
        if done.returncode != 0:
            raise self.error(repo, done, "restic init")

    def unlock(self, repo: Repo, timeout: float = 120.0) -> bool:
        """Remove stale locks only (restic's own judgement). False if the server refused."""
        done = self._run(repo, ["unlock"], timeout=timeout)
        return done.returncode == 0

    # -- backup ----------------------------------------------------------------------------

    def backup(self, repo: Repo, paths: Sequence[str], *, tags: Sequence[str],
               excludes: Sequence[str] = (),
               on_progress: Callable[[Progress], None] | None = None,
               stall_timeout: float | None = None) -> BackupSummary:
        args = ["backup", "--json", "--tag", ",".join(tags)]
        for pattern in excludes:
            args += ["--exclude", pattern]
        args += ["--", *paths]
        parser = _BackupOutput(on_progress)
        done = self._run(repo, args, on_line=parser.feed, stall_timeout=stall_timeout)
        # exit 3: snapshot written, some files could not be read (warnings, not failure)
        if done.returncode not in (0, 3) or parser.summary is None:
            raise self.error(repo, done, "backup")
        summary = parser.summary
        warnings = tuple(parser.warnings)
        if done.returncode == 3 and not warnings:
            warnings = (essential_lines(done.stderr),)
        snap_id = str(summary.get("snapshot_id", ""))
        if len(snap_id) < 64 and (self.resolve_full_ids or repo.local_path() is not None):
            snap_id = self._full_id(repo, snap_id)
        return BackupSummary(
            snapshot_id=snap_id,
            files_new=int(summary.get("files_new", 0)),
            files_changed=int(summary.get("files_changed", 0)),
            files_unmodified=int(summary.get("files_unmodified", 0)),
            data_added=int(summary.get("data_added", 0)),
            total_files=int(summary.get("total_files_processed", 0)),
            total_bytes=int(summary.get("total_bytes_processed", 0)),
            warnings=warnings,
        )

    def _full_id(self, repo: Repo, short: str) -> str:
        """restic 0.14 reports a short id; find the full one (cheaply for local repos)."""
        local = repo.local_path()
        if local is not None:
            matches = [p.name for p in (local / "snapshots").glob(f"{short}*")]
            if len(matches) == 1:
                return matches[0]
        for snap in self.snapshots(repo):
            if snap.id.startswith(short):
                return snap.id
        return short

    # -- snapshots ----------------------------------------------------------------------------

    def snapshots(self, repo: Repo, tags: Sequence[str] = ()) -> list[Snapshot]:
        args = ["--no-lock", "snapshots", "--json"]  # read-only: no lock needed
        if tags:
            args += ["--tag", ",".join(tags)]
        done = self._run(repo, args, timeout=600)
        if done.returncode != 0:
            raise self.error(repo, done, "listing snapshots")
        try:
            items = json.loads(done.stdout or "[]") or []
        except json.JSONDecodeError as e:
            raise BackupError(f"target {repo.name!r}: restic printed unreadable JSON: {e}",
                              target=repo.name) from None
        snaps = [snapshot_from_json(repo.name, it) for it in items]
        return sorted(snaps, key=lambda s: s.time)

    def tag(self, repo: Repo, snapshot_id: str, add: Sequence[str] = (),
            remove: Sequence[str] = ()) -> None:
        """Add or remove tags. restic rewrites the snapshot under a new id (same tree and
        time): call it through ``Engine.retag``, which finds and records the new id."""
        args = ["tag"]
        for t in add:
            args += ["--add", t]
        for t in remove:
            args += ["--remove", t]
        done = self._run(repo, [*args, snapshot_id], timeout=600)
        if done.returncode != 0:
            raise self.error(repo, done, "tagging a snapshot")

    def forget(self, repo: Repo, policy_args: Sequence[str], *, dry_run: bool
               ) -> list[dict[str, Any]]:
        args = ["forget", "--json", *policy_args]
        if dry_run:
            args.append("--dry-run")
        done = self._run(repo, args)
        if done.returncode != 0:
            raise self.error(repo, done, "forget")
        start = done.stdout.find("[")
        try:
            groups: list[dict[str, Any]] = json.loads(done.stdout[start:]) if start >= 0 else []
        except json.JSONDecodeError:
            groups = []
        return groups

    def check(self, repo: Repo, read_data_subset: str) -> None:
        done = self._run(repo, ["check", f"--read-data-subset={read_data_subset}"])
        if done.returncode != 0:
            raise self.error(repo, done, "check")

    def prune(self, repo: Repo) -> None:
        done = self._run(repo, ["prune"])
        if done.returncode != 0:
            raise self.error(repo, done, "prune")

    def restore(self, repo: Repo, snapshot_id: str, target_dir: Path,
                includes: Sequence[str] = (), excludes: Sequence[str] = ()) -> list[str]:
        """Restore; problems with single files come back as warnings (verification judges
        the result), while a repository that cannot be opened raises."""
        args = ["restore", snapshot_id, "--target", str(target_dir)]
        for inc in includes:
            args += ["--include", inc]
        for exc in excludes:
            args += ["--exclude", exc]
        done = self._run(repo, args)
        if done.returncode == 0:
            return []
        err = self.error(repo, done, "restore")
        if type(err) is not BackupError:  # unreachable, locked, wrong password, no repo
            raise err
        return [essential_lines(done.stderr, limit=8)]


def snapshot_from_json(target: str, item: dict[str, Any]) -> Snapshot:
    sid = str(item["id"])
    return Snapshot(
        id=sid,
        short_id=str(item.get("short_id") or sid[:8]),
        time=parse_restic_time(str(item["time"])),
        target=target,
        paths=tuple(item.get("paths") or ()),
        tags=tuple(item.get("tags") or ()),
        hostname=str(item.get("hostname", "")),
        tree=str(item.get("tree", "")),
    )


class _BackupOutput:
    """Incremental parser of ``restic backup --json`` stdout. ``feed`` says whether a line
    was progress: any message but a status line that repeats the last one (restic prints
    its status on a timer, also while it waits on a server that never answers)."""

    def __init__(self, on_progress: Callable[[Progress], None] | None) -> None:
        self.on_progress = on_progress
        self.summary: dict[str, Any] | None = None
        self.warnings: list[str] = []
        self._last: tuple[Any, ...] | None = None

    def feed(self, line: str) -> bool:
        line = line.strip()
        if not line.startswith("{"):
            return bool(line)
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            return False
        kind = msg.get("message_type")
        if kind == "summary":
            self.summary = msg
        elif kind == "error":
            err = msg.get("error")
            text = err.get("message") if isinstance(err, dict) else err
            self.warnings.append(f"{msg.get('item', '?')}: {text or 'unreadable'}")
        elif kind == "status":
            state = tuple(msg.get(k) for k in ("files_done", "bytes_done", "total_files",
                                               "total_bytes", "error_count"))
            moved, self._last = state != self._last, state
            if self.on_progress is not None:
                self.on_progress(Progress(
                    percent=float(msg.get("percent_done", 0.0)),
                    files_done=int(msg.get("files_done", 0)),
                    total_files=int(msg.get("total_files", 0)),
                    bytes_done=int(msg.get("bytes_done", 0)),
                    total_bytes=int(msg.get("total_bytes", 0)),
                ))
            return moved
        return True
