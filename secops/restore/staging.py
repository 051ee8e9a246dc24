"""An in-place restore that never writes into a live file.

restic restores into a private staging folder on the same mount as the watched folder; the
staged tree is verified there, and only then does each staged entry replace its live name by
``rename(2)``. A live inode is never opened for writing: a hard link planted in a watched
folder keeps its other name's content (a file in state_dir stays as it is), and a forged
snapshot that fails verification changes no live file.

The live tree is walked by descriptor (``O_NOFOLLOW``, ``*at`` calls), so a symbolic link
swapped in after the checks is not followed, and a folder on another mount (a bind mount
swapped in) is not entered: each is reported and left alone.
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass, field

PREFIX = ".secops-restore-"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Applied:
    renamed: int = 0  # entries moved into the live tree (a folder counts once)
    problems: list[str] = field(default_factory=list)


def mount_id(fd: int) -> int:
    """The mount a descriptor lies on (``/proc/self/fdinfo``: no path, no race)."""
    with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as f:
        for line in f:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    raise OSError(f"no mnt_id for descriptor {fd}")


def _same_mount(a: str, b: str) -> bool:
    fa = os.open(a, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fb = os.open(b, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return mount_id(fa) == mount_id(fb)
        finally:
            os.close(fb)
    finally:
        os.close(fa)


def make(watched: str) -> str:
    """A private (0700) staging folder on the mount of ``watched``: beside it, or inside it
    when the watched folder is the root of its own mount."""
    parent = os.path.dirname(watched.rstrip("/")) or "/"
    try:
        if _same_mount(parent, watched):
            return tempfile.mkdtemp(prefix=PREFIX, dir=parent)
    except OSError:
        pass
    return tempfile.mkdtemp(prefix=PREFIX, dir=watched)


def apply(stage: str, watched: str) -> Applied:
    """Move what restic restored under ``stage`` for ``watched`` over the live tree."""
    out = Applied()
    staged = os.path.join(stage, watched.lstrip("/"))
    if not os.path.isdir(staged):
        return out
    if not os.path.lexists(watched):  # gone altogether: the staged folder takes its place
        _rename(staged, watched, None, None, out=out)
        return out
    try:
        live_fd = os.open(watched, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        out.problems.append(f"{watched}: not restored ({e.strerror})")
        return out
    try:
        stage_fd = os.open(staged, _DIR)
        try:
            _merge(stage_fd, live_fd, watched, mount_id(live_fd), out)
        finally:
            os.close(stage_fd)
    finally:
        os.close(live_fd)
    return out


def _merge(src: int, dst: int, where: str, mnt: int, out: Applied) -> None:
    for name in sorted(os.listdir(src)):
        path = os.path.join(where, name)
        st = os.stat(name, dir_fd=src, follow_symlinks=False)
        try:
            live: os.stat_result | None = os.stat(name, dir_fd=dst, follow_symlinks=False)
        except FileNotFoundError:
            live = None
        staged_dir = stat.S_ISDIR(st.st_mode)
        live_dir = live is not None and stat.S_ISDIR(live.st_mode)
        if staged_dir and live_dir:
            _descend(src, dst, name, path=path, mnt=mnt, out=out)
        elif live is not None and staged_dir != live_dir:
            have = "a folder" if live_dir else _what(live.st_mode)
            out.problems.append(f"{path}: {have} is where the snapshot has "
                                f"{'a folder' if staged_dir else 'a file'}; left as it is")
        else:
            _rename(name, name, src, dst, out=out, shown=path)


def _descend(src: int, dst: int, name: str, *, path: str, mnt: int, out: Applied) -> None:
    try:
        child = os.open(name, _DIR, dir_fd=dst)
    except OSError as e:  # swapped for a link since it was looked at
        out.problems.append(f"{path}: not entered ({e.strerror}); nothing restored below it")
        return
    try:
        if mount_id(child) != mnt:
            out.problems.append(f"{path}: a mount point (another file system, or a bind "
                                "mount); nothing restored below it")
            return
        staged = os.open(name, _DIR, dir_fd=src)
        try:
            _merge(staged, child, path, mnt, out)
        finally:
            os.close(staged)
    finally:
        os.close(child)


def _rename(src_name: str, dst_name: str, src: int | None, dst: int | None, *,
            out: Applied, shown: str | None = None) -> None:
    try:
        os.rename(src_name, dst_name, src_dir_fd=src, dst_dir_fd=dst)
    except OSError as e:  # EBUSY: a mount point; EXDEV: another mount; EISDIR, ENOTDIR
        out.problems.append(f"{shown or dst_name}: not restored ({e.strerror})")
    else:
        out.renamed += 1


def _what(mode: int) -> str:
    return "a symbolic link" if stat.S_ISLNK(mode) else "a file"
