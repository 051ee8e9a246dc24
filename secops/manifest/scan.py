"""Walk the watched folders, stat every file, hash what changed (both cores).

Exclusion follows restic's rule for the patterns secops uses: a pattern without ``/``
matches any path component's name; a pattern with ``/`` matches the whole absolute path.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from secops.manifest.cache import HashCache, Key

CHUNK = 1 << 20


@dataclass
class ScanResult:
    files: dict[str, tuple[Key, str]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    hashed: int = 0
    hashed_bytes: int = 0


def excluded(name: str, path: str, patterns: Sequence[str]) -> bool:
    for pat in patterns:
        if "/" in pat:
            if fnmatch.fnmatchcase(path, pat):
                return True
        elif fnmatch.fnmatchcase(name, pat):
            return True
    return False


def walk(roots: Sequence[str], excludes: Sequence[str]) -> Iterator[tuple[str, Key]]:
    """Every regular file under ``roots`` (symlinks not followed), with its stat key."""
    stack = list(roots)
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            if excluded(e.name, e.path, excludes):
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(e.path)
            elif stat.S_ISREG(st.st_mode):
                yield e.path, (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def scan(roots: Sequence[str], excludes: Sequence[str], cache: HashCache,
         workers: int = 2) -> ScanResult:
    """Stat everything; hash only files whose (size, mtime, ctime, inode) changed."""
    known = cache.load()
    result = ScanResult()
    todo: list[tuple[str, Key]] = []
    seen: set[str] = set()
    for path, key in walk(roots, excludes):
        seen.add(path)
        hit = known.get(path)
        if hit is not None and hit[0] == key:
            result.files[path] = hit
        else:
            todo.append((path, key))
    fresh: list[tuple[str, Key, str]] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for (path, key), digest in zip(todo, pool.map(_try_hash, (p for p, _ in todo)),
                                       strict=True):
            if digest is None:
                result.unreadable.append(path)
                continue
            result.files[path] = (key, digest)
            fresh.append((path, key, digest))
            result.hashed += 1
            result.hashed_bytes += key[0]
    cache.store(fresh)
    gone = [p for p in known if p not in seen]
    if gone:
        cache.forget(gone)
    return result


def _try_hash(path: str) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None
