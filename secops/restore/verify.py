"""Check a restored tree against a manifest, hashing with both cores.

Two directions: every manifest entry the restore selected must be there with its hash, and
every entry restic wrote must be a manifest entry: a file slipped into a snapshot is not
"verified" by being left out of the count. A manifest lists regular files only, so a restored
symbolic link, device, FIFO or socket is always a failure.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from secops.files import walk_lstat
from secops.manifest.model import Manifest
from secops.manifest.scan import sha256_file
from secops.restore.guard import Existing, key
from secops.restore.pattern import Pattern, matches_any, parse


@dataclass
class Verification:
    files_checked: int = 0
    bytes: int = 0
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.missing and not self.problems

    def add(self, other: Verification) -> None:
        """Take in the verification of another part of the same restore."""
        self.files_checked += other.files_checked
        self.bytes += other.bytes
        self.mismatched += other.mismatched
        self.missing += other.missing
        self.problems += other.problems


@dataclass
class Restored:
    """What a restore wrote below its folder, by original absolute path."""
    files: list[str] = field(default_factory=list)  # regular files
    # links, devices, FIFOs, sockets, described: a manifest lists regular files only
    others: dict[str, str] = field(default_factory=dict)
    kept: int = 0  # entries that were there before and that restic did not touch


def selected(manifest: Manifest, includes: Sequence[str | Pattern]) -> list[str]:
    """The manifest entries restic restores for these include patterns (all without any)."""
    if not includes:
        return sorted(manifest.files)
    patterns = [i if isinstance(i, Pattern) else parse(i) for i in includes]
    return sorted(p for p in manifest.files if matches_any(patterns, p))


def restored_files(root: Path, skip: Sequence[str], before: Existing | None = None
                   ) -> Restored:
    """Walk ``root`` (links not followed), leaving out the subtrees ``skip`` (original
    absolute paths: the manifest and audit folders) and files ``before`` shows restic did
    not touch."""
    out = Restored()
    base = os.fspath(root)
    skipped = {os.path.join(base, s.lstrip("/")) for s in skip}
    for path, st in walk_lstat([base], lambda e: e.path in skipped):
        rel = os.path.relpath(path, base)
        if before is not None and before.files.get(rel) == key(st):
            out.kept += 1
        elif stat.S_ISREG(st.st_mode):
            out.files.append("/" + rel)
        else:
            out.others["/" + rel] = _kind(path, st.st_mode)
    out.files.sort()
    return out


def _kind(path: str, mode: int) -> str:
    if stat.S_ISLNK(mode):
        try:
            return f"a symbolic link (to {os.readlink(path)})"
        except OSError:
            return "a symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a character device" if stat.S_ISCHR(mode) else "a block device"
    return "a FIFO" if stat.S_ISFIFO(mode) else "a socket or other special file"


def verify_tree(manifest: Manifest, restored_root: Path,
                includes: Sequence[str | Pattern] = (), *, workers: int = 2,
                delete_after: bool = False, restored: Restored | None = None) -> Verification:
    """Every selected manifest file must exist under ``restored_root`` with the same hash;
    with ``restored`` (what the restore wrote), every restored file must be in the manifest.

    ``delete_after`` removes each restored file once checked (a drill's scratch copy), so
    freeing the space runs in parallel with hashing instead of after it.
    """
    result = Verification()
    paths = selected(manifest, includes)
    unlisted: list[str] = []
    if restored is not None:
        unlisted = [p for p in restored.files if p not in manifest.files]
        paths = sorted({*paths, *(p for p in restored.files if p in manifest.files)})

    def check(p: str) -> str:
        outcome = _check(manifest, restored_root, p)
        if delete_after:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(restored_root, p.lstrip("/")))
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for path, outcome in zip(paths, pool.map(check, paths), strict=True):
            if outcome == "missing":
                result.missing.append(path)
            elif outcome == "ok":
                result.files_checked += 1
                result.bytes += manifest.files[path].size
            else:
                result.files_checked += 1
                result.mismatched.append(f"{path}: {outcome}")
    result.mismatched += [f"{p}: restored, but not in the signed manifest" for p in unlisted]
    if restored is not None:
        result.mismatched += [f"{p}: {kind} restored, but not in the signed manifest (it lists "
                              "regular files only)" for p, kind in sorted(restored.others.items())]
    written = len(restored.files) if restored is not None else 0
    if result.files_checked == 0 and (paths or written):
        result.problems.append(
            f"0 files verified: restic restored {written} file(s), none of them in the "
            "signed manifest" if written else
            f"0 files verified: none of the {len(paths)} file(s) the signed manifest lists "
            "for this restore is there")
    return result


def _check(manifest: Manifest, root: Path, path: str) -> str:
    entry = manifest.files[path]
    restored = os.path.join(root, path.lstrip("/"))
    try:
        st = os.stat(restored, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file (a link or a folder in its place)"
        if st.st_size != entry.size:
            return f"size {st.st_size} bytes, expected {entry.size}"
        digest = sha256_file(restored)
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if digest != entry.sha256:
        return f"SHA-256 {digest[:16]}…, expected {entry.sha256[:16]}…"
    return "ok"
