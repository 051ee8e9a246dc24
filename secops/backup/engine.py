"""Back up every watched folder to every target; one failing target never stops the others.

The engine wires config, state layout and the restic adapter together: it builds a ``Repo``
per target, fails fast on unreachable network targets, retries on lock contention (restic
0.14 has no ``--retry-lock``) and reports one ``TargetResult`` per target.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from secops.backup.models import Progress, Snapshot, TargetResult
from secops.backup.restic import Repo, Restic
from secops.backup.retention import forget_args, snapshot_tags
from secops.backup.targets import parse_repository, preflight, ssh_command
from secops.clock import Clock, SystemClock
from secops.config.schema import Config, Target
from secops.errors import (
    BackupError,
    BackupStalled,
    RepositoryLocked,
    SecopsError,
    TargetUnreachable,
    UsageError,
)
from secops.files import check_secret_file, exclusive, read_env_file
from secops.layout import StateDir
from secops.manifest.store import Built, build_and_sign, changed_since, for_target

T = TypeVar("T")
STABILITY_RETRIES = 2
UNLOCK_TIMEOUT_S = 120.0  # restic unlock, at most (and no longer than a stall)
REASONS = ("manual", "change", "schedule", "incident")


def repo_for(cfg: Config, target: Target) -> Repo:
    """The ``Repo`` for ``target``: password, env file and ssh pinning checked here."""
    state = StateDir(Path(cfg.paths.state_dir))
    pw = Path(target.password_file) if target.password_file else state.password_file(target.name)
    check_secret_file(pw, f"password file of target {target.name!r}")
    extra_env = read_env_file(Path(target.env_file)) if target.env_file else {}
    options: tuple[str, ...] = ()
    ep = parse_repository(target.repository)
    if ep.kind == "sftp":
        kh = state.known_hosts(target.name)
        if not kh.exists():
            raise BackupError(
                f"target {target.name!r}: its SSH host key is not pinned yet ({kh} is missing)",
                target=target.name, hint="run 'secops init'")
        identity = Path(target.ssh_identity) if target.ssh_identity else None
        if identity is not None:
            check_secret_file(identity, f"ssh_identity of target {target.name!r}")
        cmd = ssh_command(ep, identity, kh, cfg.backup.connect_timeout_seconds)
        options = ("-o", f"sftp.command={cmd}")
    return Repo(name=target.name, repository=target.repository, password_file=pw,
                cache_dir=state.cache, home=state.root, extra_env=extra_env, options=options)


def select_targets(cfg: Config, name: str | None) -> list[Target]:
    return [cfg.target(name)] if name else list(cfg.backup.targets)


@dataclass
class Engine:
    cfg: Config
    restic: Restic
    clock: Clock
    # The daemon watches the tree: a file changed while restic ran is a change it recorded
    # after this backup's start, and it backs that target up again. Only a one-shot backup
    # re-walks the tree afterwards to find such files (a walk of every file: at 200,000
    # files about a second of each backup's RPO).
    watched: bool = False

    @classmethod
    def from_config(cls, cfg: Config, clock: Clock | None = None) -> Engine:
        return cls(cfg, Restic(cfg.backup.restic_binary, cfg.backup.timeout_seconds),
                   clock or SystemClock())

    def open(self, target: Target) -> Repo:
        """The target's repo after a fast reachability check."""
        repo = repo_for(self.cfg, target)
        ep = parse_repository(target.repository)
        timeout = self.cfg.backup.connect_timeout_seconds
        preflight(target.name, ep, timeout)
        if ep.kind == "sftp":
            from secops.keys.hostkeys import verify_pinned

            verify_pinned(target.name, ep, StateDir(Path(self.cfg.paths.state_dir))
                          .known_hosts(target.name), timeout)
        return repo

    def with_lock_retry(self, repo: Repo, op: Callable[[], T]) -> T:
        """Run ``op``; while the repository is locked, remove stale locks and back off."""
        start = self.clock.monotonic()
        deadline = start + self.cfg.backup.lock_wait_seconds
        delay, attempts = 1.0, 0
        while True:
            attempts += 1
            try:
                return op()
            except RepositoryLocked as e:
                left = deadline - self.clock.monotonic()
                if left <= 0:
                    waited = self.clock.monotonic() - start
                    raise RepositoryLocked(
                        f"{e.message}; still locked after {attempts} attempts over "
                        f"{waited:.0f} s", target=e.target, hint=e.hint) from None
                self.restic.unlock(repo)  # stale locks only; a refusal is not fatal
                self.clock.sleep(min(delay, left))
                delay = min(delay * 2, 30.0)

    def retag(self, repo: Repo, snap: Snapshot, add: Sequence[str] = (),
              remove: Sequence[str] = ()) -> Snapshot:
        """``restic tag`` and the snapshot it became (restic rewrites it under a new id),
        recorded in ``state.db`` so that every id secops handed out still resolves
        (``lineage.current``). One tagging at a time per office (``tag.lock``): the
        monitor's pin and a playbook's pin of the same snapshot run one after the other,
        the second on the id the first left (restic 0.14 tags a vanished id with exit 0 and
        "no snapshots were modified")."""
        from secops.backup import lineage

        state_dir = Path(self.cfg.paths.state_dir)
        db = state_dir / "state.db"
        with exclusive(state_dir / "tag.lock"):
            self.settle_lineage(repo)
            now_id = lineage.current(db, repo.name, snap.id)
            before = snap
            if now_id != snap.id:
                found = [s for s in self.restic.snapshots(repo) if s.id == now_id]
                if not found:
                    raise BackupError(f"target {repo.name!r}: snapshot {snap.short_id} is "
                                      "gone (it was tagged, and what it became no longer "
                                      "exists)", target=repo.name)
                before = found[0]
            lineage.intend(db, before)
            self.with_lock_retry(repo, functools.partial(self.restic.tag, repo, before.id,
                                                         add=add, remove=remove))
            after = lineage.successor(before, self.restic.snapshots(repo))
            if after is None or not set(add) <= set(after.tags) or set(remove) & set(after.tags):
                raise BackupError(f"target {repo.name!r}: tagging snapshot {snap.short_id} "
                                  "had no effect, or the snapshot it became cannot be found",
                                  target=repo.name)
            lineage.record(db, repo.name, before.id, after.id)
            return after

    @contextlib.contextmanager
    def no_tagging(self, repo: Repo) -> Iterator[None]:
        """No ``retag`` of this office runs inside the block (``tag.lock``), and every tagging
        before it is recorded: an id resolved here (``lineage.current``) names a snapshot that
        exists, until the next tagging."""
        with exclusive(Path(self.cfg.paths.state_dir) / "tag.lock"):
            self.settle_lineage(repo)
            yield

    def settle_lineage(self, repo: Repo) -> None:
        """Finish the record of a tagging a killed process left (``lineage.settle``): one
        listing, only when there is such a tagging."""
        from secops.backup import lineage

        if lineage.unsettled(Path(self.cfg.paths.state_dir) / "state.db", repo.name):
            self._settle_from(repo, self._list(repo))

    def _settle_from(self, repo: Repo, listed: Sequence[Snapshot]) -> None:
        from secops.backup import lineage

        db = Path(self.cfg.paths.state_dir) / "state.db"
        if lineage.unsettled(db, repo.name):
            lineage.settle(db, repo.name, listed)

    def audit_anchor(self) -> tuple[str, ...]:
        """Sign a checkpoint of the audit log and name it in the snapshot's tags
        (``audit:<seq>:<head>``, and ``audit-root:<id>`` of the checkpoint chain's root): on an
        append-only target, anchors the server cannot take back, which ``secops audit
        verify`` compares with the local log."""
        from secops.audit.log import AUDIT_TAG, ROOT_TAG, AuditLog, audit_root_path, key_state_path
        from secops.keys.signature import load_public_key, public_key_id

        state_dir = Path(self.cfg.paths.state_dir)
        if not key_state_path(state_dir).exists():
            return ()
        try:
            cp = AuditLog(state_dir, self.cfg.office.code).checkpoint()
            root = audit_root_path(state_dir)
            tags = (f"{ROOT_TAG}{public_key_id(load_public_key(root))}",) \
                if root.exists() else ()
        except (SecopsError, OSError):
            return ()  # the backup matters more; `audit verify` will say what is wrong
        if cp["seq"] < 0:
            return tags
        return (f"{AUDIT_TAG}{cp['seq']}:{cp['head'][:32]}", *tags)

    def build_manifest(self, target: str) -> Built:
        """Scan, hash what changed, and sign the manifest that goes into ``target``'s
        snapshot."""
        return build_and_sign(StateDir(Path(self.cfg.paths.state_dir)), self.cfg.office.code,
                              self.cfg.paths.watch, self.cfg.backup_excludes, self.clock,
                              target=target)

    def backup_target(self, target: Target, reason: str, extra_tags: tuple[str, ...] = (),
                      on_progress: Callable[[Progress], None] | None = None,
                      built: Built | None = None, *, unlock_first: bool = False
                      ) -> tuple[TargetResult, Built | None]:
        """One target; re-run (bounded) while files change under the running backup.
        ``unlock_first``: remove stale locks first (the daemon's first backup of a target:
        a restic killed with the last daemon, by kill -9 or the OOM killer, left its lock)."""
        start = time.monotonic()
        warnings: list[str] = []
        repo: Repo | None = None
        try:
            repo = self.open(target)
            if unlock_first:
                # bounded like a backup's silence: a hung server must not hold the target
                # longer than the backup itself would be allowed to
                with contextlib.suppress(SecopsError):
                    self.restic.unlock(repo, timeout=min(UNLOCK_TIMEOUT_S,
                                                         self.cfg.backup.stall_seconds))
            tags = snapshot_tags(self.cfg.office.code, reason, extra_tags)
            audit_dir = StateDir(Path(self.cfg.paths.state_dir)).audit
            state = StateDir(Path(self.cfg.paths.state_dir))
            for attempt in range(1 + STABILITY_RETRIES):
                built = for_target(state, built, target.name) if built is not None else \
                    self.build_manifest(target.name)
                paths = [*self.cfg.paths.watch, str(built.folder)]
                if audit_dir.is_dir():
                    paths.append(str(audit_dir))  # off-site anchors of the audit log
                summary = self.with_lock_retry(repo, functools.partial(
                    self.restic.backup, repo, paths, tags=tags,
                    excludes=self.cfg.backup_excludes, on_progress=on_progress,
                    stall_timeout=self.cfg.backup.stall_seconds))
                changed = [] if self.watched else \
                    changed_since(built, self.cfg.paths.watch, self.cfg.backup_excludes)
                if not changed:
                    break
                built = None
                warnings.append(f"{len(changed)} file(s) changed during the backup "
                                f"(e.g. {changed[0]}); "
                                + ("backed up again" if attempt < STABILITY_RETRIES else
                                   "the next backup will include the new content"))
        except SecopsError as e:
            # a stalled restic had to be killed and left its lock: the daemon's next backup
            # of the target removes it first (unlock_first), not this one, whose server may
            # still hang
            return TargetResult(target.name, ok=False, duration_s=time.monotonic() - start,
                                error=str(e), exit_code=e.exit_code,
                                stalled=isinstance(e, BackupStalled)), None
        return TargetResult(
            target.name, ok=True, snapshot_id=summary.snapshot_id, files_new=summary.files_new,
            files_changed=summary.files_changed, data_added=summary.data_added,
            duration_s=time.monotonic() - start,
            warnings=[*warnings, *summary.warnings]), built

    def backup(self, target_name: str | None = None, reason: str = "manual",
               extra_tags: tuple[str, ...] = (),
               on_progress: Callable[[str, Progress], None] | None = None,
               unlock_first: bool = False) -> list[TargetResult]:
        """Back up every (or one) target; each result says ok or why not."""
        if reason not in REASONS:
            raise UsageError(f"unknown backup reason {reason!r} (one of {', '.join(REASONS)})")
        results = []
        built: Built | None = None
        extra_tags = (*extra_tags, *self.audit_anchor())
        for target in select_targets(self.cfg, target_name):
            cb = _bind(on_progress, target.name)
            result, fresh = self.backup_target(target, reason, extra_tags, cb, built,
                                               unlock_first=unlock_first)
            built = fresh or built
            results.append(result)
        return results

    def snapshots(self, target_name: str | None = None
                  ) -> tuple[list[Snapshot], list[tuple[str, SecopsError]]]:
        snaps: list[Snapshot] = []
        failures: list[tuple[str, SecopsError]] = []
        for target in select_targets(self.cfg, target_name):
            try:
                repo = self.open(target)
                listed = self._list(repo)
                self._settle_from(repo, listed)
                snaps += listed
            except SecopsError as e:
                failures.append((target.name, e))
        return snaps, failures

    def _list(self, repo: Repo) -> list[Snapshot]:
        return self.with_lock_retry(repo, lambda: self.restic.snapshots(repo))

    def retention(self, target_name: str | None = None, dry_run: bool = False
                  ) -> list[dict[str, Any]]:
        """Apply ``[backup.retention]`` on targets that are not append-only."""
        args = forget_args(self.cfg.backup.retention, self.cfg.office.code)
        out: list[dict[str, Any]] = []
        for target in select_targets(self.cfg, target_name):
            row: dict[str, Any] = {"target": target.name, "ok": True, "removed": [],
                                   "kept": 0, "skipped": None, "error": None}
            out.append(row)
            if target.append_only:
                row["skipped"] = "append-only target: retention is the server owner's job"
                continue
            if not args:
                row["skipped"] = "no retention policy configured: everything is kept"
                continue
            try:
                row.update(self._forget(target, args, dry_run))
            except SecopsError as e:
                row.update(ok=False, error=str(e))
        return out

    def _forget(self, target: Target, args: list[str], dry_run: bool) -> dict[str, Any]:
        repo = self.open(target)
        groups = self.with_lock_retry(
            repo, lambda: self.restic.forget(repo, args, dry_run=dry_run))
        removed = [s["id"] for g in groups for s in (g.get("remove") or [])]
        kept = sum(len(g.get("keep") or []) for g in groups)
        if removed and not dry_run and self.cfg.backup.retention.prune:
            self.with_lock_retry(repo, lambda: self.restic.prune(repo))
        return {"removed": removed, "kept": kept}


def _bind(cb: Callable[[str, Progress], None] | None, name: str
          ) -> Callable[[Progress], None] | None:
    if cb is None:
        return None
    return lambda p: cb(name, p)


def failed_names(results: Iterable[TargetResult]) -> Sequence[str]:
    return [r.target for r in results if not r.ok]


__all__ = ["Engine", "TargetUnreachable", "failed_names", "repo_for", "select_targets"]
