"""``secops restore``: restore a snapshot and verify every file against its signed manifest.

Order: resolve the snapshot, (for ``--in-place``) take a pinned safety snapshot, restore the
manifest folder alone and verify its signature, restore the data, verify every file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secops.backup.engine import Engine
from secops.backup.models import Snapshot
from secops.backup.restic import Repo
from secops.config.schema import Config, Target
from secops.errors import BackupError, IntegrityError, UsageError
from secops.keys.signature import load_public_key, public_key_id, verify
from secops.layout import StateDir
from secops.manifest.model import Manifest, parse
from secops.manifest.store import MANIFEST_DIR, MANIFEST_NAME, SIGNATURE_NAME
from secops.restore.select import resolve
from secops.restore.verify import Verification, verify_tree

ProgressFn = Callable[[int, int], None]  # bytes done, bytes total


@dataclass
class RestoreOutcome:
    snapshot: Snapshot
    target: str
    to: Path
    verification: Verification
    signed_by: str
    duration_s: float
    safety_snapshot: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        v = self.verification
        return {"ok": v.ok, "snapshot_id": self.snapshot.id, "target": self.target,
                "to": str(self.to), "files_checked": v.files_checked, "bytes": v.bytes,
                "mismatched": v.mismatched, "missing": v.missing,
                "manifest_signed_by": self.signed_by, "safety_snapshot": self.safety_snapshot,
                "duration_s": round(self.duration_s, 3), "warnings": self.warnings}


@dataclass(frozen=True)
class Request:
    ref: str
    to: Path | None
    target: str | None = None
    includes: tuple[str, ...] = ()
    force: bool = False
    in_place: bool = False
    public_key: Path | None = None
    delete_verified: bool = False  # drills: free each scratch file once it is hashed


def pick_target(cfg: Config, name: str | None) -> Target:
    return cfg.target(name) if name else cfg.backup.targets[0]


def check_destination(cfg: Config, req: Request) -> Path:
    """Where to restore to; never into live data without ``--in-place``."""
    if req.in_place:
        if req.to not in (None, Path("/")):
            raise UsageError("--in-place restores to the original locations; drop --to")
        return Path("/")
    if req.to is None:
        raise UsageError("give --to DIR (an empty folder), or --in-place")
    to = Path(os.path.abspath(req.to))
    for w in cfg.paths.watch:
        if to == Path(w) or to.is_relative_to(w) or Path(w).is_relative_to(to):
            raise UsageError(
                f"refusing to restore into {to}: it overlaps the watched folder {w} (live data)",
                hint="restore into an empty folder elsewhere, or use --in-place (a safety "
                "snapshot of the current state is taken first)")
    if to.exists() and any(to.iterdir()) and not req.force:
        raise UsageError(f"{to} is not empty; refusing to overwrite files silently",
                         hint="choose an empty folder, or pass --force")
    return to


def check_includes(cfg: Config, includes: Sequence[str]) -> tuple[str, ...]:
    out = []
    for inc in includes:
        p = os.path.normpath(inc)
        if not os.path.isabs(p) or not any(Path(p).is_relative_to(w) for w in cfg.paths.watch):
            raise UsageError(f"--include {inc!r}: give an absolute path inside a watched folder "
                             f"({', '.join(cfg.paths.watch)})")
        out.append(p)
    return tuple(out)


def run_restore(cfg: Config, engine: Engine, req: Request,
                on_progress: ProgressFn | None = None) -> RestoreOutcome:
    start = time.monotonic()
    state = StateDir(Path(cfg.paths.state_dir))
    to = check_destination(cfg, req)
    includes = check_includes(cfg, req.includes)
    target = pick_target(cfg, req.target)
    if req.public_key is not None and not req.public_key.is_file():
        raise UsageError(f"--public-key {req.public_key}: no such file",
                         hint="use the office-ed25519.pub written by 'secops keys export-public'")
    public_key = load_public_key(req.public_key or state.ed25519_pub)
    repo = engine.open(target)
    snap = resolve(req.ref, engine.with_lock_retry(repo, lambda: engine.restic.snapshots(repo)),
                   target.name)
    safety = None
    if req.in_place:
        safety = _safety_snapshot(engine, target)
    folder = _manifest_folder(snap)
    if req.in_place:
        # Live data is overwritten: check the manifest's signature before touching anything.
        manifest, signer = _fetch_manifest(engine, repo, snap, folder, state=state,
                                           public_key=public_key)
        # restic 0.14: --include and --exclude are mutually exclusive
        warnings = engine.restic.restore(repo, snap.id, to, includes=includes,
                                         excludes=() if includes else (folder,))
    else:
        # An empty folder: one restic run brings data and manifest (restic's start-up, the
        # key derivation, costs about 0.7 s a run), then the signature is checked there.
        to.mkdir(parents=True, exist_ok=True)
        with _Watch(to, 0, on_progress):
            warnings = engine.restic.restore(repo, snap.id, to,
                                             includes=(*includes, folder) if includes else ())
        manifest, signer = _read_manifest(to / folder.lstrip("/"), snap, public_key)
    verification = verify_tree(manifest, to, includes, delete_after=req.delete_verified)
    return RestoreOutcome(snap, target.name, to, verification, signer,
                          time.monotonic() - start, safety, warnings)


def _safety_snapshot(engine: Engine, target: Target) -> str:
    results = engine.backup(target.name, reason="manual", extra_tags=("pre-restore", "pinned"))
    r = results[0]
    if not r.ok or r.snapshot_id is None:
        raise BackupError(f"the safety snapshot before an in-place restore failed: {r.error}; "
                          "nothing was restored", target=target.name)
    return r.snapshot_id


def _manifest_folder(snap: Snapshot) -> str:
    folders = [p for p in snap.paths if os.path.basename(p) == MANIFEST_DIR]
    if not folders:
        raise IntegrityError(f"snapshot {snap.short_id} carries no signed manifest, so its "
                             "content cannot be verified (was it made by secops?)")
    return folders[0]


def _fetch_manifest(engine: Engine, repo: Repo, snap: Snapshot, folder: str, *,
                    state: StateDir, public_key: Any) -> tuple[Manifest, str]:
    """Restore the snapshot's manifest folder alone and check its signature."""
    state.root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="manifest-", dir=state.root))
    try:
        engine.restic.restore(repo, snap.id, scratch, includes=(folder,))
        return _read_manifest(scratch / folder.lstrip("/"), snap, public_key)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _read_manifest(base: Path, snap: Snapshot, public_key: Any) -> tuple[Manifest, str]:
    """The manifest restored under ``base``, after its signature checks out."""
    try:
        data = (base / MANIFEST_NAME).read_bytes()
        sig = (base / SIGNATURE_NAME).read_bytes()
    except FileNotFoundError:
        raise IntegrityError(f"snapshot {snap.short_id}: the manifest or its signature "
                             "is missing from the snapshot") from None
    where = f"snapshot {snap.short_id}: manifest"
    verify(data, sig, public_key, where)
    return parse(data, where), public_key_id(public_key)


class _Watch:
    """restic 0.14 prints no restore progress: measure the bytes written ourselves."""

    def __init__(self, root: Path | None, total: int, cb: ProgressFn | None) -> None:
        self.root, self.total, self.cb = root, total, cb
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Watch:
        if self.cb is not None and self.root is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.cb is not None:
            self.cb(self.total, self.total)

    def _loop(self) -> None:
        assert self.cb is not None and self.root is not None
        while not self._stop.wait(0.5):
            done = _allocated(self.root)
            self.cb(min(done, self.total) if self.total else done, self.total)


def _allocated(root: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                continue
    return total
