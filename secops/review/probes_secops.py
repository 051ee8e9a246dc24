"""Probes of the election data and of secops itself (adapter): the bounded walk of the
watched folders, and secops's posture from its config, state folder, state.db and unit."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from secops import database
from secops.audit.log import initial_key_path
from secops.backup.targets import parse_repository
from secops.clock import parse_iso
from secops.pathtext import display
from secops.review import accounts, posture, tree
from secops.review.host import Context, Host
from secops.review.model import MAX_LISTED, Finding, Text, Unknown

FILE_IDS = tuple(s.id for s in tree.SPECS)
POSTURE_IDS = tuple(s.id for s in posture.SPECS)
UNIT_DIRS = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
SHIPPED_UNIT = Path(__file__).resolve().parents[2] / "systemd" / "secops.service"


def known_uids(h: Host) -> set[int] | None:
    try:
        text = h.read_text(h.path("/etc/passwd"), limit=16 << 20)
    except Unknown:
        return None
    return None if text is None else {a.uid for a in accounts.parse_passwd(text)}


def walk(roots: list[Path], uids: set[int] | None, skip: set[Path]) -> tree.Flagged:
    """Every entry below ``roots`` by lstat (links never followed, so a link loop is one
    entry), at most ``WALK_MAX_ENTRIES``; unreadable folders noted and passed over."""
    found = tree.Flagged()
    stack: list[Path] = []
    for r in roots:
        try:
            st = os.lstat(r)
        except OSError as e:
            found.errors.append(f"{display(str(r))}: {e.strerror}")
            continue
        for cid in tree.flags(st.st_mode, st.st_uid, uids):
            found.add(cid, tree.describe(display(str(r)), st.st_mode, st.st_uid), MAX_LISTED)
        if stat.S_ISDIR(st.st_mode):
            stack.append(r)
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    if found.entries >= tree.WALK_MAX_ENTRIES:
                        found.truncated = True
                        return found
                    found.entries += 1
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    for cid in tree.flags(st.st_mode, st.st_uid, uids):
                        found.add(cid, tree.describe(display(entry.path), st.st_mode,
                                                     st.st_uid), MAX_LISTED)
                    if stat.S_ISDIR(st.st_mode) and Path(entry.path) not in skip:
                        stack.append(Path(entry.path))
        except OSError as e:
            found.errors.append(f"{display(str(folder))}: {e.strerror}")
    return found


def probe_files(ctx: Context) -> list[Finding]:
    h = ctx.host
    roots = [h.path(w) for w in ctx.cfg.paths.watch]
    flagged = walk(roots, known_uids(h), {h.path(ctx.cfg.paths.state_dir)})
    if flagged.errors and flagged.entries == 0:
        why = "; ".join(flagged.errors[:5])
        raise Unknown(Text(f"không duyệt được: {why}", f"cannot walk: {why}"))
    return tree.file_findings(flagged, [display(str(r)) for r in roots])


def _db_facts(db_path: Path) -> tuple[tuple[float, str] | None, dict[str, str],
                                      dict[str, float | None]]:
    """From state.db (read only): newest successful drill, meta values, last ok backups."""
    if not db_path.exists():
        return None, {}, {}
    db = database.connect(db_path, timeout=5)
    try:
        def rows(sql: str) -> list[tuple[object, ...]]:
            try:
                return list(db.execute(sql).fetchall())
            except sqlite3.OperationalError as e:
                if "no such table" in str(e):
                    return []
                raise
        drill = rows("SELECT time, target FROM drills WHERE ok = 1 ORDER BY time DESC LIMIT 1")
        meta = {str(k): str(v) for k, v in rows(
            "SELECT key, value FROM meta WHERE key IN ('monitor', 'daemon_heartbeat')")}
        last = {str(n): parse_iso(str(t)) if t else None
                for n, t in rows("SELECT name, last_ok_time FROM targets")}
    finally:
        db.close()
    when = parse_iso(str(drill[0][0])) if drill else None
    return ((when, str(drill[0][1])) if when is not None else None), meta, last


def _unit(h: Host) -> tuple[str, str, bool] | None:
    for folder in UNIT_DIRS:
        path = h.path(folder) / "secops.service"
        text = h.read_text(path)
        if text is None:
            continue
        drop = h.path("/etc/systemd/system/secops.service.d")
        for name in h.listdir(drop):
            if name.endswith(".conf"):
                text += "\n" + (h.read_text(drop / name) or "")
        return str(path), text, True
    if SHIPPED_UNIT.exists():
        return str(SHIPPED_UNIT), SHIPPED_UNIT.read_text(encoding="utf-8"), False
    return None


def _too_open(path: Path, mask: int) -> list[str]:
    try:
        st = os.stat(path)
    except OSError:
        return []
    mode = stat.S_IMODE(st.st_mode)
    return [f"{display(str(path))} mode {mode:04o}"] if mode & mask else []


def _state_problems(state: Path) -> list[str]:
    out = _too_open(state, 0o077)
    keys = state / "keys"
    try:
        names = sorted(os.listdir(keys))
    except OSError:
        names = []
    for n in names:
        if not n.endswith(".pub"):
            out += _too_open(keys / n, 0o077)
    return out


def _config_problems(ctx: Context) -> list[str]:
    cfg = ctx.cfg
    out = _too_open(Path(cfg.source), 0o022) if cfg.source else []
    for t in cfg.backup.targets:
        for secret in (t.env_file, t.password_file):
            if secret:
                out += _too_open(Path(secret), 0o077)
    return out


def probe_posture(ctx: Context) -> list[Finding]:
    h, cfg = ctx.host, ctx.cfg
    state = h.path(cfg.paths.state_dir)
    try:
        drill, meta, last = _db_facts(state / "state.db")
    except sqlite3.DatabaseError as e:
        raise Unknown(Text(f"state.db không đọc được: {e}", f"state.db is unreadable: {e}")) \
            from None
    import json

    try:
        monitor = json.loads(meta["monitor"]) if "monitor" in meta else None
    except ValueError:
        monitor = {"status": "unreadable"}
    k0 = initial_key_path(state)
    facts = posture.Posture(
        now=ctx.now,
        targets=[posture.Target(t.name, parse_repository(t.repository).kind, t.append_only)
                 for t in cfg.backup.targets],
        k0=str(k0) if os.path.lexists(k0) else None,
        last_drill=drill, seal=list(cfg.logs.seal), seal_every=cfg.logs.seal_every_minutes,
        integrity=cfg.integrity.enabled, fanotify=cfg.integrity.fanotify,
        monitor=monitor if isinstance(monitor, dict) else None,
        heartbeat=parse_iso(meta.get("daemon_heartbeat")), unit=_unit(h),
        state_problems=_state_problems(state), config_problems=_config_problems(ctx),
        last_ok={t.name: last.get(t.name) for t in cfg.backup.targets})
    return posture.evaluate(facts)
