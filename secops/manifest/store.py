"""Build, sign and place the manifest that travels inside each snapshot.

The manifest and its signature are written to ``state_dir/snapshot-manifest/TARGET/`` and
that folder is backed up with the watched folders, so every snapshot carries the signed list
of what it should contain. One folder per target: the targets back up at the same time, each
from its own worker, and one never rewrites the manifest another's restic is reading.
Snapshots made before carry ``state_dir/snapshot-manifest/`` itself; :func:`in_snapshot`
finds either.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from secops.clock import Clock, iso_utc
from secops.errors import SigningError
from secops.files import atomic_write
from secops.layout import StateDir
from secops.manifest.cache import HashCache
from secops.manifest.model import Entry, Manifest, sign
from secops.manifest.scan import ScanResult, scan, walk

MANIFEST_DIR = "snapshot-manifest"
MANIFEST_NAME = "secops-manifest.json"
SIGNATURE_NAME = "secops-manifest.sig"


@dataclass(frozen=True)
class Built:
    manifest: Manifest
    scan: ScanResult
    folder: Path


def manifest_folder(state: StateDir, target: str) -> Path:
    return state.root / MANIFEST_DIR / target


def in_snapshot(paths: Sequence[str]) -> tuple[str, str] | None:
    """(the manifest folder, the state folder it was in) among a snapshot's paths:
    ``STATE/snapshot-manifest/TARGET``, or ``STATE/snapshot-manifest`` in older snapshots."""
    for p in paths:
        parent = os.path.dirname(p)
        if os.path.basename(parent) == MANIFEST_DIR:
            return p, os.path.dirname(parent)
    for p in paths:
        if os.path.basename(p) == MANIFEST_DIR:
            return p, os.path.dirname(p)
    return None


def build_and_sign(state: StateDir, office: str, roots: Sequence[str],
                   excludes: Sequence[str], clock: Clock, *, target: str) -> Built:
    """Scan (hashing only what changed), sign, and write the target's manifest folder."""
    from secops.keys.store import load_office_key

    if not state.ed25519_key.exists():
        raise SigningError(f"the office Ed25519 key {state.ed25519_key} does not exist",
                           hint="run 'secops init'")
    key = load_office_key(state.ed25519_key)
    cache = HashCache(state.root / "state.db")
    try:
        result = scan(roots, excludes, cache)
    finally:
        cache.close()
    files = {p: Entry(k[0], k[1], h) for p, (k, h) in result.files.items()}
    manifest = Manifest(office, iso_utc(clock.now()), tuple(roots), files)
    data = manifest.canonical()
    return place(state, Built(manifest, result, Path()), sign(data, key), target)


def place(state: StateDir, built: Built, signature: bytes, target: str) -> Built:
    """Write a signed manifest into ``target``'s folder."""
    folder = manifest_folder(state, target)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(folder / MANIFEST_NAME, built.manifest.canonical(), 0o600)
    atomic_write(folder / SIGNATURE_NAME, signature, 0o600)
    return Built(built.manifest, built.scan, folder)


def for_target(state: StateDir, built: Built, target: str) -> Built:
    """The same signed manifest in ``target``'s folder (one scan for every target of a
    ``backup now``)."""
    if built.folder == manifest_folder(state, target):
        return built
    return place(state, built, (built.folder / SIGNATURE_NAME).read_bytes(), target)


def changed_since(built: Built, roots: Sequence[str], excludes: Sequence[str]) -> list[str]:
    """Files whose size or mtime differ from the manifest now (changed during a backup)."""
    files = built.manifest.files
    skip = set(built.scan.unreadable)
    now = {p: (k[0], k[1]) for p, k in walk(roots, excludes) if p not in skip}
    changed = [p for p, e in files.items() if now.get(p) != (e.size, e.mtime_ns)]
    changed += [p for p in now if p not in files]
    return changed
