"""Walk the watched folders, stat every file, hash what changed (both cores).

Exclusion follows restic's rule for the patterns secops uses: a pattern without ``/``
matches any path component's name; a pattern with ``/`` matches the whole absolute path.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from secops.files import walk_lstat
from secops.manifest.cache import HashCache, Key

CHUNK = 1 << 20


@dataclass
class ScanResult:
    files: dict[str, tuple[Key, str]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    hashed: int = 0
    hashed_bytes: int = 0


@functools.lru_cache(maxsize=32)
def _matchers(patterns: tuple[str, ...]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """One compiled regex for name patterns and one for path patterns."""
    names = [fnmatch.translate(p) for p in patterns if "/" not in p]
    paths = [fnmatch.translate(p) for p in patterns if "/" in p]
    return (re.compile("|".join(names)) if names else None,
            re.compile("|".join(paths)) if paths else None)


def excluded(name: str, path: str, patterns: Sequence[str]) -> bool:
    by_name, by_path = _matchers(tuple(patterns))
    return bool((by_name is not None and by_name.match(name)) or
                (by_path is not None and by_path.match(path)))


def walk(roots: Sequence[str], excludes: Sequence[str]) -> Iterator[tuple[str, Key]]:
    """Every regular file under ``roots`` (symlinks not followed), with its stat key."""
    for path, st in walk_stat(roots, excludes):
        yield path, (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def walk_stat(roots: Sequence[str], excludes: Sequence[str]
              ) -> Iterator[tuple[str, os.stat_result]]:
    """Every regular file under ``roots`` with its lstat: symlinks are never followed, so
    nothing outside the watched trees is ever read."""
    by_name, by_path = _matchers(tuple(excludes))

    def skip(e: os.DirEntry[str]) -> bool:
        return (by_name is not None and by_name.match(e.name) is not None) or \
            (by_path is not None and by_path.match(e.path) is not None)

    for path, st in walk_lstat(list(roots), skip):
        if stat.S_ISREG(st.st_mode):
            yield path, st


def sha256_file(path: str) -> str:
    """SHA-256 of a file; hashlib releases the GIL, so threads hash in parallel."""
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def changed_paths(roots: Sequence[str], excludes: Sequence[str], cache: HashCache
                  ) -> list[str]:
    """Files added, changed or deleted since the hash cache last saw them (stat only)."""
    known = cache.load()
    seen: set[str] = set()
    changed = []
    for path, key in walk(roots, excludes):
        seen.add(path)
        hit = known.get(path)
        if hit is None or hit[0] != key:
            changed.append(path)
    return changed + [p for p in known if p not in seen]


def scan(roots: Sequence[str], excludes: Sequence[str], cache: HashCache,
         workers: int = os.cpu_count() or 2) -> ScanResult:
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
    from concurrent.futures import ThreadPoolExecutor  # only when there is hashing to do

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
