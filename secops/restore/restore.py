"""``secops restore``: restore a snapshot and verify every file against its signed manifest.

Order: resolve the snapshot, check the destination (never live data or state_dir, never
through a link), fetch the manifest and check its signature where live data is at stake,
(for ``--in-place``) take a pinned safety snapshot, restore, and verify exactly what was
restored. ``--in-place`` restores only the watched folders (the audit log and the manifests
in each snapshot stay where they are), into a staging folder first: only a verified restore
replaces live files, by rename (:mod:`secops.restore.staging`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secops.backup import lineage
from secops.backup.engine import Engine
from secops.backup.models import Snapshot
from secops.backup.restic import Repo
from secops.config.schema import Config, Target
from secops.errors import BackupError, IntegrityError, UsageError
from secops.keys.signature import load_public_key, public_key_id, verify
from secops.layout import StateDir
from secops.manifest.model import Manifest, parse
from secops.manifest.store import MANIFEST_NAME, SIGNATURE_NAME, in_snapshot
from secops.restore import guard, staging
from secops.restore.guard import Existing, Protected
from secops.restore.pattern import Pattern, clean, escape
from secops.restore.pattern import parse as parse_pattern
from secops.restore.select import resolve
from secops.restore.verify import (
    Restored,
    Verification,
    restored_files,
    selected,
    verify_tree,
)

ProgressFn = Callable[[int, int], None]  # bytes done, bytes total

# secops' own scratch folders under state_dir (drills, incident folders): only a Request
# with ``scratch=True`` may restore there, and no command-line option sets it
SCRATCH_DIRS = ("drill-scratch", "incidents")


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
    audit_log: Path | None = None  # the snapshot's audit folder, restored into ``to``

    def to_json(self) -> dict[str, Any]:
        v = self.verification
        return {"ok": v.ok, "snapshot_id": self.snapshot.id, "target": self.target,
                "to": str(self.to), "files_checked": v.files_checked, "bytes": v.bytes,
                "mismatched": v.mismatched, "missing": v.missing, "problems": v.problems,
                "manifest_signed_by": self.signed_by, "safety_snapshot": self.safety_snapshot,
                "duration_s": round(self.duration_s, 3), "warnings": self.warnings,
                "audit_log": str(self.audit_log) if self.audit_log else None}


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
    scratch: bool = False  # drills, playbooks: ``to`` is secops' own folder in state_dir


def pick_target(cfg: Config, name: str | None) -> Target:
    return cfg.target(name) if name else cfg.backup.targets[0]


def _watched(cfg: Config) -> list[Protected]:
    return [Protected(w, f"the watched folder {w} (live data)") for w in cfg.paths.watch]


def _state(state: StateDir) -> Protected:
    return Protected(str(state.root), f"secops' state folder {state.root} (audit log, keys, "
                     "manifests), where a restore never writes")


def _in_scratch(real: str, state: StateDir) -> bool:
    for name in SCRATCH_DIRS:
        base = os.path.realpath(state.root / name)
        if real != base and guard.within(real, base):
            return True
    return False


def check_destination(cfg: Config, req: Request) -> Path:
    """Where to restore to: never live data (without ``--in-place``), never state_dir, never
    through a link. Returns the real path (links resolved)."""
    if req.in_place:
        if req.to not in (None, Path("/")):
            raise UsageError("--in-place restores to the original locations; drop --to")
        return Path("/")
    if req.to is None:
        raise UsageError("give --to DIR (an empty folder), or --in-place")
    state = StateDir(Path(cfg.paths.state_dir))
    to = os.path.abspath(req.to)
    real = os.path.realpath(to)
    protected = _watched(cfg)
    if not (req.scratch and _in_scratch(real, state)):
        protected.append(_state(state))
    guard.refuse_overlap(to, protected)
    if guard.non_empty(real):
        if not req.force:
            raise UsageError(f"{to} is not empty; refusing to overwrite files silently",
                             hint="choose an empty folder, or pass --force")
        guard.refuse_links(real, hard=True, why=(
            f"restic creates folders and opens files below {to} without looking for links, "
            "so it would write through it to wherever it points"))
    return Path(real)


def check_includes(cfg: Config, includes: Sequence[str]) -> tuple[Pattern, ...]:
    """Each ``--include`` as restic reads it; each must stay inside a watched folder."""
    watched = [tuple(c for c in clean(w).split("/") if c) for w in cfg.paths.watch]
    out = []
    for inc in includes:
        try:
            p = parse_pattern(inc)
        except ValueError as e:
            raise UsageError(f"--include {inc!r}: not a pattern restic can use ({e})") from None
        if not any(p.literal[:len(w)] == w for w in watched):
            raise UsageError(
                f"--include {inc!r}: give an absolute path or pattern inside a watched folder "
                f"({', '.join(cfg.paths.watch)}); the folder itself must be spelled out, "
                "not matched by a glob")
        out.append(p)
    return tuple(out)


def check_matches(manifest: Manifest, patterns: Sequence[Pattern], snap: Snapshot) -> None:
    """An include that selects nothing in the signed manifest is a mistake (exit 2)."""
    for p in patterns:
        if not selected(manifest, [p]):
            raise UsageError(f"--include {p.text!r} matches nothing in the signed manifest of "
                             f"snapshot {snap.short_id}",
                             hint="give the original absolute path (see 'secops snapshots'); "
                             "patterns use restic's rules: * ? [a-z] within one name, ** "
                             "for any depth")


def run_restore(cfg: Config, engine: Engine, req: Request,
                on_progress: ProgressFn | None = None) -> RestoreOutcome:
    start = time.monotonic()
    state = StateDir(Path(cfg.paths.state_dir))
    to = check_destination(cfg, req)
    patterns = check_includes(cfg, req.includes)
    target = pick_target(cfg, req.target)
    if req.public_key is not None and not req.public_key.is_file():
        raise UsageError(f"--public-key {req.public_key}: no such file",
                         hint="use the office-ed25519.pub written by 'secops keys export-public'")
    public_key = load_public_key(req.public_key or state.ed25519_pub)
    repo = engine.open(target)
    # an id secops handed out (a pin, a drill, an alert) names the snapshot restic tag made;
    # no pin may finish between following the id and listing the snapshots
    with engine.no_tagging(repo):
        ref = lineage.current(state.root / "state.db", target.name, req.ref) \
            if re.fullmatch(r"[0-9a-f]{8,64}", req.ref) else req.ref
        snap = resolve(ref, engine.with_lock_retry(repo, lambda: engine.restic.snapshots(repo)),
                       target.name)
    folder, state_then = _manifest_folder(snap)
    job = _Job(cfg, engine, repo, snap, folder, state_then, state, public_key)
    if req.in_place:
        return job.in_place(target, patterns, start)
    existing = guard.existing_files(str(to)) if to.is_dir() else None
    return job.into(target, to, patterns, existing=existing, delete_after=req.delete_verified,
                    with_audit=not req.scratch, on_progress=on_progress, start=start)


@dataclass
class _Job:
    cfg: Config
    engine: Engine
    repo: Repo
    snap: Snapshot
    folder: str  # the manifest folder, as the snapshot names it
    state_then: str  # the state folder the snapshot was made from (its audit log is there)
    state: StateDir
    public_key: Any

    def in_place(self, target: Target, patterns: tuple[Pattern, ...],
                 start: float) -> RestoreOutcome:
        scope = patterns or tuple(parse_pattern(escape(w)) for w in self._watched_in_snapshot())
        # Live data is overwritten: check the manifest's signature before touching anything.
        manifest, signer = _fetch_manifest(self.engine, self.repo, self.snap, self.folder,
                                           state=self.state, public_key=self.public_key)
        check_matches(manifest, patterns, self.snap)
        self._refuse_in_place(scope)
        safety = _safety_snapshot(self.engine, target)
        self._refuse_in_place(scope)  # again, right before restic writes
        warnings, verification = self._staged(manifest, scope)
        if not manifest.files:
            warnings.append(f"the manifest of snapshot {self.snap.short_id} lists no file")
        return RestoreOutcome(self.snap, target.name, Path("/"), verification, signer,
                              time.monotonic() - start, safety, warnings)

    def _staged(self, manifest: Manifest, scope: Sequence[Pattern]
                ) -> tuple[list[str], Verification]:
        """restic restores each watched folder's part into a staging folder beside it; only
        if all of it verifies does each entry replace its live name (rename, never a write
        into a live file)."""
        groups: dict[str, list[Pattern]] = {}
        for p in scope:
            groups.setdefault(self._watched_of(p), []).append(p)
        warnings: list[str] = []
        verification = Verification()
        stages: dict[str, str] = {}
        try:
            for w, group in groups.items():
                stages[w] = staging.make(w)
                root = Path(stages[w])
                # only the watched paths: restic 0.14 cannot combine --include with --exclude
                warnings += self._restic(root, tuple(p.text for p in group))
                verification.add(verify_tree(manifest, root, group,
                                             restored=restored_files(root, ())))
            if not verification.ok:
                warnings.append("the restore did not verify in the staging folder: no live "
                                "file was changed")
                return warnings, verification
            for w, stage in stages.items():
                verification.problems += staging.apply(stage, w).problems
        finally:
            for stage in stages.values():
                shutil.rmtree(stage, ignore_errors=True)
        return warnings, verification

    def _watched_of(self, p: Pattern) -> str:
        """The watched folder (cleaned) that the pattern ``p`` lies in."""
        below = "/" + "/".join(p.literal)
        return next(c for c in map(clean, self.cfg.paths.watch) if guard.within(below, c))

    def into(self, target: Target, to: Path, patterns: tuple[Pattern, ...], *,
             existing: Existing | None, delete_after: bool, with_audit: bool,
             on_progress: ProgressFn | None, start: float) -> RestoreOutcome:
        to.mkdir(parents=True, exist_ok=True)
        audit = self._audit_folder() if with_audit and not patterns else None
        if patterns:
            # check the includes against the signed manifest before restoring anything
            manifest, signer = _fetch_manifest(self.engine, self.repo, self.snap, self.folder,
                                               state=self.state, public_key=self.public_key)
            check_matches(manifest, patterns, self.snap)
            with _Watch(to, 0, on_progress):
                warnings = self._restic(to, tuple(p.text for p in patterns))
        else:
            # One restic run brings data and manifest (restic's start-up, the key derivation,
            # costs about 0.7 s a run), then the signature is checked there. Of secops' own
            # state only the manifest and (not for drills) the audit log come along.
            state_paths = [self.folder, *([audit] if audit else [])]
            includes = tuple(escape(p) for p in (*self._data_paths(), *state_paths))
            with _Watch(to, 0, on_progress):
                warnings = self._restic(to, includes)
            manifest, signer = self._restored_manifest(to, existing)
        restored = restored_files(to, [self.folder, *([audit] if audit else [])], existing)
        verification = verify_tree(manifest, to, patterns, delete_after=delete_after,
                                   restored=restored)
        warnings += _notes(restored, manifest, self.snap)
        audit_copy = to / audit.lstrip("/") if audit else None
        return RestoreOutcome(self.snap, target.name, to, verification, signer,
                              time.monotonic() - start, None, warnings,
                              audit_copy if audit_copy and audit_copy.is_dir() else None)

    def _restic(self, to: Path, includes: tuple[str, ...]) -> list[str]:
        """``restic restore`` of the patterns ``includes``; its complaints as warnings."""
        warnings = _restore(self.engine, self.repo, self.snap, to, includes, state=self.state)
        return [f"restic: {w}" for w in warnings]

    def _data_paths(self) -> list[str]:
        """The snapshot's own paths minus secops' state (the manifest and audit folders)."""
        return [p for p in self.snap.paths if not guard.within(p, self.state_then)]

    def _audit_folder(self) -> str | None:
        """The snapshot's copy of ``state_dir/audit`` (in the state folder of the manifest)."""
        audit = os.path.join(self.state_then, "audit")
        return audit if audit in self.snap.paths else None

    def _watched_in_snapshot(self) -> list[str]:
        data = self._data_paths()
        found = [w for w in self.cfg.paths.watch
                 if any(guard.within(w, d) or guard.within(d, w) for d in data)]
        if not found:
            raise UsageError(f"snapshot {self.snap.short_id} holds none of the watched folders "
                             f"({', '.join(self.cfg.paths.watch)}): nothing to restore in place",
                             hint="restore it into an empty folder with --to DIR")
        return found

    def _refuse_in_place(self, scope: Sequence[Pattern]) -> None:
        # hard links need no refusal: each file replaces its live name, no inode is written
        why = "an in-place restore would follow it out of the watched folder"
        for p in scope:
            below = "/" + "/".join(p.literal)
            w = self._watched_of(p)
            if guard.relation(w, str(self.state.root)) is not None:
                raise UsageError(f"refusing to restore in place: the watched folder {w} "
                                 f"overlaps secops' state folder {self.state.root}",
                                 hint="fix paths.watch / paths.state_dir in the config")
            guard.refuse_links_on_the_way(w, below, why)
            guard.refuse_links(below, hard=False, why=why)

    def _restored_manifest(self, to: Path, existing: Existing | None) -> tuple[Manifest, str]:
        base = to / self.folder.lstrip("/")
        if existing is not None:
            rel = os.path.relpath(base / MANIFEST_NAME, to)
            st = (base / MANIFEST_NAME).lstat() if (base / MANIFEST_NAME).exists() else None
            if st is not None and existing.files.get(rel) == guard.key(st):
                raise IntegrityError(f"snapshot {self.snap.short_id}: the manifest in {base} "
                                     "was there before the restore, not restored from the "
                                     "snapshot")
        return _read_manifest(base, self.snap, self.public_key)


def _notes(restored: Restored, manifest: Manifest, snap: Snapshot) -> list[str]:
    out = []  # a restored link or special file is a failure (verify_tree), not a note
    if restored.kept:
        out.append(f"{restored.kept} file(s) already in the folder were left as they were "
                   "(not from the snapshot, not verified)")
    if not manifest.files:
        out.append(f"the manifest of snapshot {snap.short_id} lists no file")
    return out


def _safety_snapshot(engine: Engine, target: Target) -> str:
    results = engine.backup(target.name, reason="manual", extra_tags=("pre-restore", "pinned"))
    r = results[0]
    if not r.ok or r.snapshot_id is None:
        raise BackupError(f"the safety snapshot before an in-place restore failed: {r.error}; "
                          "nothing was restored", target=target.name)
    return r.snapshot_id


def _manifest_folder(snap: Snapshot) -> tuple[str, str]:
    """(the snapshot's manifest folder, the state folder it was backed up from)."""
    found = in_snapshot(snap.paths)
    if found is None:
        raise IntegrityError(f"snapshot {snap.short_id} carries no signed manifest, so its "
                             "content cannot be verified (was it made by secops?)")
    return found


def _restore(engine: Engine, repo: Repo, snap: Snapshot, to: Path, includes: tuple[str, ...],
             *, state: StateDir) -> list[str]:
    """``restic restore``, waiting out another restic's lock (a playbook pinning this very
    snapshot holds an exclusive one); each attempt names the snapshot by the id it has then:
    the pin rewrote it under a new id (``lineage``), also when it finished between resolving
    the id and restic's start (restic: "no matching ID")."""
    db = state.root / "state.db"
    for _ in range(3):
        warnings = engine.with_lock_retry(repo, lambda: engine.restic.restore(
            repo, lineage.current(db, repo.name, snap.id), to, includes=includes))
        if not any("no matching ID" in w for w in warnings):
            return warnings
        with engine.no_tagging(repo):  # a pin ran between resolving and restoring: its end
            pass
    return warnings


def _fetch_manifest(engine: Engine, repo: Repo, snap: Snapshot, folder: str, *,
                    state: StateDir, public_key: Any) -> tuple[Manifest, str]:
    """Restore the snapshot's manifest folder alone and check its signature."""
    state.root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="manifest-", dir=state.root))
    try:
        _restore(engine, repo, snap, scratch, (escape(folder),), state=state)
        return _read_manifest(scratch / folder.lstrip("/"), snap, public_key)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _read_manifest(base: Path, snap: Snapshot, public_key: Any) -> tuple[Manifest, str]:
    """The manifest restored under ``base``, after its signature checks out."""
    data = _read_file(base / MANIFEST_NAME, snap)
    sig = _read_file(base / SIGNATURE_NAME, snap)
    where = f"snapshot {snap.short_id}: manifest"
    verify(data, sig, public_key, where)
    return parse(data, where), public_key_id(public_key)


def _read_file(path: Path, snap: Snapshot) -> bytes:
    """A regular file's bytes; a link in its place (a forged snapshot) is not followed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise IntegrityError(f"snapshot {snap.short_id}: the manifest or its signature "
                             "is missing from the snapshot") from None
    except OSError as e:
        raise IntegrityError(f"snapshot {snap.short_id}: {path.name} in the snapshot is not "
                             f"a regular file ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        return f.read()


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
