"""Where a restore may write: never into live data or state_dir, never through a link.

Paths are compared three times: by their real paths (``os.path.realpath``: symbolic links
resolved), by device and inode of each existing ancestor, and by where they lie inside their
file system (``/proc/self/mountinfo``), so a symbolic link, a bind mount (of the folder or of
one below it) or another name for the same folder counts as that folder. Below a
destination, a mount point is refused like a link: restic would write through it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from secops.errors import UsageError
from secops.files import walk_lstat

Key = tuple[int, int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns

LINK_HINT = ("remove the link or unmount the mount point (it may have been planted to "
             "redirect the restore), or restore into an empty folder")
MOUNTINFO = "/proc/self/mountinfo"
MOUNT_WHAT = "another file system, or a bind mount of a folder or file from elsewhere"


@dataclass(frozen=True)
class Protected:
    """A folder a restore must not write into: a watched folder or the state folder."""
    path: str
    what: str  # "the watched folder /srv/bau-cu (live data)"


@dataclass
class Existing:
    """What a non-empty destination held before the restore (every entry but folders, by
    path)."""
    files: dict[str, Key] = field(default_factory=dict)


@dataclass(frozen=True)
class Mount:
    device: str  # "major:minor" of the file system
    root: str  # the folder of that file system mounted here
    point: str  # where it is mounted


def mounts() -> list[Mount]:
    """This process's mounts in the order they were made (``/proc/self/mountinfo``)."""
    try:
        with open(MOUNTINFO, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    return [Mount(fields[2], _unescape(fields[3]), _unescape(fields[4]))
            for fields in (line.split(" ") for line in lines) if len(fields) > 4]


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as ``\\ooo``."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _location(real: str, table: Sequence[Mount]) -> tuple[str, str] | None:
    """(device, path inside that file system) of a real path, through its innermost mount
    (the last one made wins a tie)."""
    best: Mount | None = None
    for m in table:
        if within(real, m.point) and (best is None or len(m.point) >= len(best.point)):
            best = m
    if best is None:
        return None
    return best.device, os.path.normpath(os.path.join(best.root,
                                                      os.path.relpath(real, best.point)))


def _ident(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _self_and_ancestors(real: str) -> Iterator[str]:
    p = real
    while True:
        yield p
        parent = os.path.dirname(p)
        if parent == p:
            return
        p = parent


def within(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies below it (both absolute and clean)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def relation(dest: str, folder: str) -> str | None:
    """How ``dest`` overlaps ``folder``: "is", "inside", "contains", or None."""
    d, f = os.path.realpath(dest), os.path.realpath(folder)
    if d == f:
        return "is"
    if within(d, f):
        return "inside"
    if within(f, d):
        return "contains"
    fid, did = _ident(f), _ident(d)
    if fid is not None:
        for a in _self_and_ancestors(d):
            if _ident(a) == fid:
                return "is" if a == d else "inside"
    if did is not None:
        for a in _self_and_ancestors(f):
            if _ident(a) == did:
                return "contains"
    return _by_mount(d, f)


def _by_mount(d: str, f: str) -> str | None:
    """The same overlap seen inside the file system: a bind mount of a folder *below* a
    protected one has its own inode, and none of its ancestors is the protected folder."""
    table = mounts()
    dl, fl = _location(d, table), _location(f, table)
    if dl is None or fl is None or dl[0] != fl[0]:
        return None
    if dl[1] == fl[1]:
        return "is"
    if within(dl[1], fl[1]):
        return "inside"
    if within(fl[1], dl[1]):
        return "contains"
    return None


_WORDS = {"is": "is", "inside": "lies inside", "contains": "contains"}


def refuse_overlap(dest: str, protected: Iterable[Protected]) -> None:
    """``UsageError`` (exit 2) naming ``dest`` and what it overlaps."""
    for p in protected:
        rel = relation(dest, p.path)
        if rel is None:
            continue
        real = os.path.realpath(dest)
        shown = dest if real == os.path.abspath(dest) else f"{dest} (that is {real})"
        raise UsageError(
            f"refusing to restore into {shown}: it {_WORDS[rel]} {p.what}",
            hint="restore into an empty folder outside the watched folders and the state "
                 "folder, or use --in-place to restore the watched folders (after a safety "
                 "snapshot)")


def non_empty(folder: str) -> bool:
    """``folder`` exists and holds something."""
    if not os.path.isdir(folder):
        return False
    try:
        with os.scandir(folder) as entries:
            return any(True for _ in entries)
    except OSError as e:
        raise UsageError(f"cannot look inside {folder} ({e.strerror})") from None


def links(root: str, *, hard: bool) -> Iterator[str]:
    """Symbolic links and mount points below ``root`` (with ``hard``, also hard-linked
    files), described. A mount point is a folder on another device than its parent's, or any
    entry mountinfo names (a bind mount of the same file system, of a folder or a file)."""
    if not os.path.isdir(root) or os.path.islink(root):
        return
    points = {m.point for m in mounts()}
    stack = [(root, os.stat(root).st_dev)]
    while stack:
        folder, device = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as e:
            raise UsageError(f"cannot look inside {folder} before restoring into it "
                             f"({e.strerror})") from None
        for entry in entries:
            est = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(est.st_mode):
                yield f"{entry.path} is a symbolic link (to {os.readlink(entry.path)})"
            elif entry.path in points or (stat.S_ISDIR(est.st_mode) and est.st_dev != device):
                yield f"{entry.path} is a mount point ({MOUNT_WHAT})"
            elif stat.S_ISDIR(est.st_mode):
                stack.append((entry.path, est.st_dev))
            elif hard and stat.S_ISREG(est.st_mode) and est.st_nlink > 1:
                yield f"{entry.path} is a hard link (one of {est.st_nlink} names of one file)"


def refuse_links(root: str, *, hard: bool, why: str) -> None:
    """``UsageError`` (exit 2) at the first link below ``root``."""
    for found in links(root, hard=hard):
        raise UsageError(f"refusing to restore: {found}; {why}", hint=LINK_HINT)


def existing_files(root: str) -> Existing:
    """Every entry under ``root`` but folders, with its identity and change time (ctime): an
    entry restic did not touch keeps all of them."""
    out = Existing()
    for path, st in walk_lstat([root]):
        out.files[os.path.relpath(path, root)] = key(st)
    return out


def key(st: os.stat_result) -> Key:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def path_components(base: str, below: str) -> Iterator[str]:
    """``base`` and each path from it down to ``below`` (inclusive)."""
    rel = os.path.relpath(below, base)
    p = base
    yield p
    if rel == ".":
        return
    for c in rel.split("/"):
        p = os.path.join(p, c)
        yield p


def refuse_links_on_the_way(base: str, below: str, why: str) -> None:
    """No component strictly below ``base`` down to ``below`` may be a symbolic link or a
    mount point."""
    points = {m.point for m in mounts()}
    try:
        device = os.stat(base).st_dev
    except FileNotFoundError:
        return
    for p in list(path_components(base, below))[1:]:
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode):
            raise UsageError(f"refusing to restore: {p} is a symbolic link (to "
                             f"{os.readlink(p)}); {why}", hint=LINK_HINT)
        if p in points or st.st_dev != device:
            raise UsageError(f"refusing to restore: {p} is a mount point ({MOUNT_WHAT}); {why}",
                             hint=LINK_HINT)
