"""Check a restored tree against a manifest, hashing with both cores."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from secops.manifest.model import Manifest
from secops.manifest.scan import sha256_file


@dataclass
class Verification:
    files_checked: int = 0
    bytes: int = 0
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.missing


def selected(manifest: Manifest, includes: Sequence[str]) -> list[str]:
    if not includes:
        return sorted(manifest.files)
    prefixes = [i.rstrip("/") for i in includes]
    return sorted(p for p in manifest.files
                  if any(p == i or p.startswith(i + "/") for i in prefixes))


def verify_tree(manifest: Manifest, restored_root: Path, includes: Sequence[str] = (),
                workers: int = 2, delete_after: bool = False) -> Verification:
    """Every selected manifest file must exist under ``restored_root`` with the same hash.

    ``delete_after`` removes each restored file once checked (a drill's scratch copy), so
    freeing the space runs in parallel with hashing instead of after it.
    """
    result = Verification()
    paths = selected(manifest, includes)

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
    return result


def _check(manifest: Manifest, root: Path, path: str) -> str:
    entry = manifest.files[path]
    restored = os.path.join(root, path.lstrip("/"))
    try:
        size = os.stat(restored, follow_symlinks=False).st_size
        if size != entry.size:
            return f"size {size} bytes, expected {entry.size}"
        digest = sha256_file(restored)
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if digest != entry.sha256:
        return f"SHA-256 {digest[:16]}…, expected {entry.sha256[:16]}…"
    return "ok"
