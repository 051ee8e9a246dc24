"""Containment: stop the writers, make the watched trees unwritable, pin the last good
snapshot; and the exact reverse for ``secops unfreeze``.

Root ignores mode bits, so the trees are frozen with the immutable attribute
(``FS_IOC_SETFLAGS``, what ``chattr +i`` does): no write, rename, delete or create, for root
too. Only paths secops itself made immutable are recorded and later released; a file that
was immutable before stays so.

A stopped process is recorded with its start time (:mod:`secops.fim.procid`) and only that
process is ever resumed or killed: a pid that has since been given to another process is
"gone".
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from secops.fim import procid, smb

FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IMMUTABLE_FL = 0x00000010
PROTECTED_PIDS = frozenset({0, 1})
EXIT_WAIT_S = 10.0  # how long unfreeze --kill waits for the killed to end
BATCH = 256  # paths recorded in one transaction before their attribute is set


@dataclass
class FreezeResult:
    paths: list[str] = field(default_factory=list)    # made immutable by us
    unsupported: int = 0                              # filesystem without the attribute
    failed: list[str] = field(default_factory=list)


@dataclass
class Ledger:
    """Where a freeze records its paths (``FimState``, the freeze's id): each batch is
    recorded before its attribute is set, so ``unfreeze`` releases whatever a freeze made
    immutable, even one that died half-way."""

    state: Any
    freeze_id: int

    def add(self, paths: list[str]) -> None:
        self.state.add_frozen_paths(self.freeze_id, paths)

    def forget(self, paths: list[str]) -> None:
        self.state.forget_frozen_paths(self.freeze_id, paths)


def describe_process(pid: int) -> dict[str, Any]:
    info: dict[str, Any] = {"pid": pid}
    with contextlib.suppress(OSError):
        info["exe"] = os.readlink(f"/proc/{pid}/exe")
    with contextlib.suppress(OSError):
        raw = open(f"/proc/{pid}/cmdline", "rb").read()  # noqa: SIM115 - tiny
        info["cmdline"] = __import__("secops.redact").redact.redact_argv(  # no secrets in alerts
            [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a])[:20]
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in open(f"/proc/{pid}/status", encoding="utf-8", errors="replace"):  # noqa: SIM115
            if line.startswith("Uid:"):
                info["uid"] = int(line.split()[1])
            elif line.startswith("PPid:"):
                info["ppid"] = int(line.split()[1])
    if smb.is_smbd(info.get("exe"), info.get("cmdline")):
        # a clerk PC on the share: its address and user, not only "smbd"
        client = smb.client_of(pid, info.get("cmdline"))
        if client:
            info["smb_client"] = client
            info["user"] = smb.described(client)
    return info


def stop_processes(pids: Sequence[int]) -> list[dict[str, Any]]:
    """SIGSTOP each writer (never ourselves, our parent or pid 1); describe what was done:
    pid, start time, ``stopped`` (and ``error``), exe, cmdline, uid, ppid."""
    out = []
    me = {os.getpid(), os.getppid()}
    for pid in pids:
        if pid in PROTECTED_PIDS or pid in me:
            continue
        record = procid.stop(pid)
        info = describe_process(pid)
        if record.get("start") != procid.start_time(pid):  # it exited; the pid was reused
            info = {"pid": pid}
        out.append({**info, **record})
    return out


def resume_processes(processes: Sequence[dict[str, Any]], kill: bool) -> list[dict[str, Any]]:
    """SIGKILL or SIGCONT each recorded stopped process that still exists (same start time;
    a record without one, from an older secops, is matched by exe and command line)."""
    sig = signal.SIGKILL if kill else signal.SIGCONT
    done = "killed" if kill else "resumed"
    out = []
    for p in processes:
        if not p.get("stopped"):
            continue
        pid, start = int(p["pid"]), p.get("start")
        if isinstance(start, int):
            result = procid.signal_exact(pid, start, sig)
        elif _same_process(pid, p):
            result = procid.signal_exact(pid, procid.start_time(pid) or -1, sig)
        else:
            result = procid.GONE
        out.append({"pid": pid, "result": {procid.SENT: done, procid.GONE: "gone"}.get(
            result, "not permitted")})
    return out


def _wait_exited(processes: Sequence[dict[str, Any]], timeout: float = EXIT_WAIT_S) -> None:
    """Until each killed process has ended (a zombie counts: its files are closed), at most
    ``timeout`` (a process in uninterruptible sleep on a hung disk takes its time)."""
    deadline = time.monotonic() + timeout
    waiting = [(int(p["pid"]), p["start"]) for p in processes if isinstance(p.get("start"), int)]
    while waiting and time.monotonic() < deadline:
        waiting = [(pid, start) for pid, start in waiting if not procid.exited(pid, start)]
        if waiting:
            time.sleep(0.01)


def _same_process(pid: int, recorded: dict[str, Any]) -> bool:
    """The pid still names the process we stopped (records without a start time)."""
    now = describe_process(pid)
    if "exe" not in now and "cmdline" not in now:
        return False
    return now.get("exe") == recorded.get("exe") and \
        now.get("cmdline") == recorded.get("cmdline")


def finished_before(cfg: Any, before: float) -> dict[str, str]:
    """Per target, the newest snapshot the daemon saw finish before ``before``."""
    from pathlib import Path

    from secops.daemon.state import StateDB

    db = StateDB(Path(cfg.paths.state_dir) / "state.db")
    try:
        return {t.name: hit[0] for t in cfg.backup.targets
                if (hit := db.last_backup_before(t.name, before)) is not None}
    finally:
        db.close()


def freeze(cfg: Any, state: Any, pids: Sequence[int], reason: str,
           stopped: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Contain now: stop ``pids`` and every other process holding a file under the watched
    folders open for writing (never ourselves, our parent or pid 1), make the trees
    immutable, then stop a writer that opened in between; join an active freeze instead of
    starting a second one. ``stopped`` are processes stopped already (by the gate), recorded
    as they are. ``state`` is a ``FimState``."""

    def writers() -> list[dict[str, Any]]:
        # every other process holding a file under the folders open for writing: the gate
        # judges opens only, and chattr +i does not stop a descriptor opened before it
        seen = {int(p["pid"]) for p in processes}
        return stop_processes([p for p in writers_under(cfg.paths.watch) if p not in seen])

    done = {int(p["pid"]) for p in stopped}
    processes = list(stopped) + stop_processes([p for p in pids if p not in done])
    processes += writers()
    with _freeze_lock(cfg.paths.state_dir):  # the daemon and a CLI run: one freeze, not two
        active = state.active_freeze()
        if active is not None:
            state.add_processes(active.id, processes)
            return {"freeze_id": active.id, "already": True, "processes": processes,
                    "paths_frozen": active.paths}
        freeze_id = state.record_freeze(reason, processes)
        result = freeze_trees(cfg.paths.watch, Ledger(state, freeze_id))
        late = writers()  # opened between the scan and the immutable attribute
        if late:
            state.add_processes(freeze_id, late)
            processes += late
    return {"freeze_id": freeze_id, "already": False, "processes": processes,
            "paths_frozen": len(result.paths), "unsupported": result.unsupported,
            "failed": result.failed[:20], "paths": list(cfg.paths.watch)}


def _freeze_lock(state_dir: str) -> contextlib.AbstractContextManager[None]:
    from pathlib import Path

    from secops.files import exclusive

    return exclusive(Path(state_dir) / "freeze.lock")


def unfreeze(state: Any, how: str | None) -> dict[str, Any]:
    """Lift the active freeze: release exactly the frozen paths, then kill or resume the
    stopped processes. ``how`` (kill | resume) is required when processes are stopped.

    Under the freeze lock, so a process the daemon stops meanwhile is recorded either in this
    freeze (and released here) or in the next one. The release marker is written before the
    first process is resumed: the daemon's gate lets a resumed program open files at once.
    """
    with _freeze_lock(str(state.released_path.parent)):
        return _unfreeze(state, how)


def _unfreeze(state: Any, how: str | None) -> dict[str, Any]:
    from secops.errors import OperationalError, UsageError

    active = state.active_freeze()
    if active is None:
        return {"unfrozen": False, "reason": "no freeze is active"}
    stopped = [p for p in active.processes if p.get("stopped")]
    if stopped and how not in ("kill", "resume"):
        listing = "; ".join(f"pid {p['pid']} {' '.join(p.get('cmdline', []))[:80]}"
                            for p in stopped)
        raise UsageError(f"freeze {active.id} stopped {len(stopped)} process(es): "
                         f"{listing}. Say what happens to them: --kill (an attack) or "
                         "--resume (a false alarm)")
    killed = resume_processes(stopped, kill=True) if how == "kill" else None
    if killed is not None:
        # a killed writer closes its files as it dies: that close (of a decoy it was writing,
        # say) happens while the freeze still stands, so it is the same attack, not a new one
        _wait_exited(stopped)
    failures = thaw(state.frozen_paths(active.id))
    if failures:
        raise OperationalError(f"could not make {len(failures)} path(s) writable again, "
                               f"e.g. {failures[0]}; the freeze stays recorded")
    state.mark_released(active.id)
    processes = killed if killed is not None else resume_processes(stopped, kill=False)
    state.lift(active.id, how or "no processes")
    return {"unfrozen": True, "freeze_id": active.id, "paths_released": active.paths,
            "processes": processes, "snapshots_still_pinned": active.snapshots}


def writers_under(roots: Sequence[str]) -> list[int]:
    """Without fanotify: processes holding a file under ``roots`` open for writing."""
    prefixes = tuple(os.path.join(os.path.abspath(r), "") for r in roots)
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in (me, 1):
            continue
        pid = int(entry.name)
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if not target.startswith(prefixes):
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as f:
                    flags = int(next(x for x in f if x.startswith("flags:")).split()[1], 8)
            except (OSError, StopIteration, ValueError):
                continue
            if flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR):
                found.append(pid)
                break
    return found


def _flags(fd: int) -> int:
    return int(struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, b"\0" * 4))[0])


def set_immutable(path: str, on: bool) -> bool:
    """True if this call changed the attribute. Raises OSError (EOPNOTSUPP/ENOTTY: none)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        flags = _flags(fd)
        new = flags | FS_IMMUTABLE_FL if on else flags & ~FS_IMMUTABLE_FL
        if new == flags:
            return False
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", new))
        return True
    finally:
        os.close(fd)


def is_immutable(path: str) -> bool:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return bool(_flags(fd) & FS_IMMUTABLE_FL)
    finally:
        os.close(fd)


def freeze_trees(roots: Sequence[str], ledger: Ledger | None = None) -> FreezeResult:
    """Make every folder and regular file under ``roots`` immutable, files first (a frozen
    folder still lets its files be rewritten, a frozen file does not). With a ``ledger``,
    each batch of paths is recorded before it is frozen, and the ones this call did not
    change (immutable before, gone, refused) are struck off again; one path that fails is
    counted and the freeze goes on."""
    result = FreezeResult()
    folders: list[str] = []
    batch: list[str] = []
    for root in roots:
        for folder, _dirs, files in os.walk(root):
            folders.append(folder)
            for name in files:
                batch.append(os.path.join(folder, name))
                if len(batch) >= BATCH:
                    _freeze_batch(batch, result, ledger)
                    batch = []
    batch += reversed(folders)
    for at in range(0, len(batch), BATCH):
        _freeze_batch(batch[at:at + BATCH], result, ledger)
    return result


def _freeze_batch(paths: list[str], result: FreezeResult, ledger: Ledger | None) -> None:
    if ledger is not None:
        try:
            ledger.add(paths)
        except Exception as e:  # not recorded, so not frozen: unfreeze could not undo it
            result.failed += [f"{p}: not recorded, left writable ({e})" for p in paths]
            return
    unchanged = [p for p in paths if not _freeze_one(p, result)]
    if ledger is not None and unchanged:
        with contextlib.suppress(Exception):  # left recorded: unfreeze only clears them
            ledger.forget(unchanged)


def _freeze_one(path: str, result: FreezeResult) -> bool:
    """True if this call made ``path`` immutable."""
    try:
        if set_immutable(path, True):
            result.paths.append(path)
            return True
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL):
            result.unsupported += 1
        elif e.errno not in (errno.ENOENT, errno.ELOOP, errno.ENXIO):
            result.failed.append(f"{path}: {e.strerror}")
    except ValueError as e:  # a name the kernel cannot take (NUL): never the whole freeze
        result.failed.append(f"{path}: {e}")
    return False


def thaw(paths: Sequence[str]) -> list[str]:
    """Clear the attribute on exactly these paths; returns failures."""
    failed = []
    for path in paths:
        try:
            set_immutable(path, False)
        except FileNotFoundError:
            continue
        except OSError as e:
            failed.append(f"{path}: {e.strerror}")
    return failed


def pin_pre_attack(cfg: Any, before: float, label: str,
                   finished: dict[str, str] | None = None) -> dict[str, Any]:
    """Pin, per target, the last snapshot taken before the attack began at ``before``.

    ``finished`` names, per target, the newest snapshot the daemon saw *complete* before
    ``before``: a snapshot that was still being written when the attack began may hold
    damaged files. Without it, a snapshot started a minute before ``before`` is taken.

    Tags ``pinned`` and ``label`` (``freeze-<id>``, ``incident-<id>``) where the repository
    allows; on an append-only target
    nothing can be deleted anyway, and ``restic tag`` (which rewrites the snapshot) is
    refused, so the snapshot is only recorded.
    """
    from pathlib import Path

    from secops.backup import lineage
    from secops.backup.engine import Engine
    from secops.errors import SecopsError

    engine = Engine.from_config(cfg)
    when = datetime.fromtimestamp(before, UTC)
    out: dict[str, Any] = {}
    for target in cfg.backup.targets:
        try:
            repo = engine.open(target)
            snaps = engine.restic.snapshots(repo, tags=(f"office:{cfg.office.code}",))
            known = (finished or {}).get(target.name)
            if known:  # tagged since (an earlier incident's pin): under its new id
                known = lineage.current(Path(cfg.paths.state_dir) / "state.db",
                                        target.name, known)
                snaps = [s for s in snaps if s.id.startswith(known)]
            else:
                snaps = [s for s in snaps if s.time < when - timedelta(minutes=1)]
            if not snaps:
                out[target.name] = {"id": None, "error": "no snapshot before the attack"}
                continue
            snap = snaps[-1]
            entry: dict[str, Any] = {"id": snap.id, "short_id": snap.short_id,
                                     "time": snap.time.isoformat().replace("+00:00", "Z")}
            if target.append_only:
                entry["tagged"] = False
                entry["note"] = "append-only target: kept by the server, not re-tagged"
            else:
                now = engine.retag(repo, snap, add=("pinned", label))
                entry["tagged"] = True
                entry["tags_added"] = ["pinned", label]
                # restic rewrote the snapshot under a new id: name the one that exists now
                entry["id_before_tagging"] = snap.id
                entry["id"], entry["short_id"] = now.id, now.short_id
            out[target.name] = entry
        except SecopsError as e:
            out[target.name] = {"id": None, "error": str(e)}
    return out
