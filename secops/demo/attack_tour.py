"""Step 9 of ``secops demo``: the demo attacker (:mod:`secops.demo.attack`) against the real
daemon. Detection, containment, the pinned snapshot, ``unfreeze --kill``, a verified restore,
and the incident's signed evidence bundle."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from secops import process
from secops.cli.render import console
from secops.clock import iso_utc
from secops.config.schema import Config
from secops.daemon.state import StateDB
from secops.demo.attack import MARKER, is_demo_folder
from secops.errors import OperationalError, SecopsError
from secops.fim.canary import is_canary
from secops.fim.state import FimState

# -- step 9: an attack, detected and contained -------------------------------------------------

WAIT_S = 60.0
FANOTIFY_ON = "fanotify: writer pids and the open gate are on"


def attack_step(cfg: Config, step: str) -> bool:
    """The demo attacker against the real daemon; True when it was contained and every file
    is back as it was before the attack."""
    console().print(f"[bold]{step}[/] An attack, detected and contained:")
    root = Path(cfg.paths.watch[0])
    if not is_demo_folder(root):
        _say(f"[red]skipped[/]: {root} holds no {MARKER} file (the demo did not generate "
             "it), so the demo attacker refuses it; delete the folder to start afresh")
        return False
    lab = _Lab(cfg, root)
    try:
        return lab.run()
    except (SecopsError, OSError, subprocess.SubprocessError, ValueError) as e:
        _say(f"[red]FAILED[/] {e}")
        return False
    finally:
        lab.close()


def _say(text: str) -> None:
    console().print(f"   {text}", soft_wrap=True)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


class _Lab:
    """The daemon and the attacker as child processes; ``close`` always stops both and
    releases a freeze left behind."""

    def __init__(self, cfg: Config, root: Path) -> None:
        self.cfg = cfg
        self.root = root
        self.log_path = Path(cfg.paths.state_dir).parent / "demo-daemon.log"
        self.db = StateDB(Path(cfg.paths.state_dir) / "state.db")
        self.daemon: subprocess.Popen[bytes] | None = None
        self.attacker: subprocess.Popen[bytes] | None = None
        self.maintenance = False

    def run(self) -> bool:
        self._start_daemon()
        mode = "fanotify (writer pids, open gate)" if FANOTIFY_ON in self._log() else \
            "inotify only (no fanotify: slower; writers looked up in /proc)"
        _say(f"daemon started, first backup settled; detection: {mode}")
        before = _hashes(self.root)
        decoys = {p: Path(p).read_bytes() for p in before if is_canary(p)}
        since = iso_utc(datetime.now(UTC))
        self.attacker = subprocess.Popen(
            [sys.executable, "-m", "secops.demo.attack", str(self.root)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=process.base_env())
        _say(f"demo attacker started (pid {self.attacker.pid}): encrypts every file in "
             "place, AES-256-CTR, random order")
        frozen = self._wait_event("integrity.frozen", since)
        if frozen is None:
            _say(f"[red]not contained within {WAIT_S:.0f} s[/]; see {self.log_path}")
            return False
        time.sleep(0.5)  # a write in flight lands now
        damaged = [p for p, h in _hashes(self.root).items() if before.get(p) != h]
        if not self._show_containment(since, frozen["details"], damaged, before):
            return False
        fid = frozen["details"]["freeze_id"]
        pinned = self._wait_event("integrity.snapshot_pinned", since,
                                  lambda d: d.get("freeze_id") == fid)
        if pinned is None:
            _say(f"[red]no snapshot pinned within {WAIT_S:.0f} s[/]")
            return False
        snap = _show_pinned(pinned["details"]["snapshots"])
        if not self._unfreeze():
            return False
        files = sorted(p for p in damaged if not is_canary(p))
        # restoring changes protected files (the voter lists): inside a maintenance window
        self.maintenance, _ = _cli(self.cfg, "maintenance", "start", "--minutes", "10",
                                   "--reason", "secops demo: restore after the demo attack")
        if not files:
            _say("no document damaged, so nothing to restore from the snapshot")
        elif snap is None or not self._restore(snap, files):
            return False
        self._settle_and_stop()
        for p in damaged:  # the daemon is stopped: putting a decoy back is no alarm now
            if p in decoys:
                Path(p).write_bytes(decoys[p])
        return self._verify(before, len(files), len(damaged) - len(files))

    def _show_containment(self, since: str, frozen: dict[str, Any], damaged: list[str],
                          before: dict[str, str]) -> bool:
        """Print what the daemon did; True if the folder refuses writes now."""
        suspected = self._events("ransomware.suspected", since)
        if suspected:
            d = suspected[0]["details"]
            _say(f"[bold red]ransomware.suspected[/]: score {d['score']}, indicators "
                 f"{', '.join(d['indicators'])}")
        for p in frozen.get("processes") or []:
            state = "stopped (SIGSTOP)" if p.get("stopped") else f"NOT stopped ({p.get('error')})"
            _say(f"writer {state}: pid {p['pid']}, "
                 f"{' '.join(p.get('cmdline') or [p.get('exe', '?')])}")
        if not frozen.get("processes"):
            _say("no writer left to stop (it had finished, or was not found)")
        hit = sum(is_canary(p) for p in damaged)
        total = sum(is_canary(p) for p in before)
        _say(f"damaged before containment: {len(damaged) - hit} of "
             f"{_n(len(before) - total, 'file')}, {hit} of {_n(total, 'decoy')}")
        sample = next(p for p in sorted(before) if not is_canary(p))
        who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
        refused = _write_refused(sample)
        _say(f"the folder is read-only for everyone now, root included: "
             f"{frozen.get('paths_frozen')} paths immutable (chattr +i); a write as {who} "
             "was " + ("refused" if refused else "[red]NOT refused[/]"))
        return refused

    def _unfreeze(self) -> bool:
        ok, doc = _cli(self.cfg, "unfreeze", "--kill", "--json")
        if not ok:
            _say(f"[red]secops unfreeze --kill failed[/]: {doc}")
            return False
        procs = ", ".join(f"pid {p['pid']} {p['result']}" for p in doc.get("processes", []))
        _say(f"secops unfreeze --kill: {doc.get('paths_released')} paths writable again; "
             f"{procs or 'no process to end'}")
        if self.attacker is not None:
            out, _ = self.attacker.communicate(timeout=10)
            if self.attacker.returncode == 0:
                _say(f"(the attacker had finished: {out.decode().strip()})")
        return True

    def _restore(self, snap: tuple[str, str], files: list[str]) -> bool:
        """``secops restore --in-place``, as the officer would type it: audited
        (restore.completed), so the incident report counts it as the incident's restore."""
        target, sid = snap
        includes = [arg for f in files for arg in ("--include", f)]
        ok, doc = _cli(self.cfg, "restore", sid, "--target", target, "--in-place", *includes,
                       "--json")
        if not isinstance(doc, dict):
            _say(f"[red]secops restore --in-place failed[/]: {doc}")
            return False
        _say(f"secops restore {sid[:8]} --target {target} --in-place: {_n(len(files), 'file')} "
             f"after a safety snapshot ({(doc.get('safety_snapshot') or '')[:8]}) of the damaged "
             "state; " + ("verified against the signed manifest" if ok and doc.get("ok") else
                          "[red]VERIFICATION FAILED[/]"))
        return ok and bool(doc.get("ok"))

    def _settle_and_stop(self) -> None:
        """Let the daemon back up the restored folder, then stop it."""
        time.sleep(1.0)  # the restore's changes reach the daemon's state first
        if _wait(lambda: self._settled() or not self._alive()) and self._alive():
            last = [self.db.target(t.name) for t in self.cfg.backup.targets]
            _say("the daemon's backups caught up: " + ", ".join(
                f"{t.name} {(t.last_snapshot_id or '')[:8]}" for t in last))
        else:
            _say(f"[yellow]the daemon's backups did not settle[/]; see {self.log_path}")
        self._stop_daemon()

    def _verify(self, before: dict[str, str], restored: int, decoys: int) -> bool:
        after = _hashes(self.root)
        bad = [p for p, h in before.items() if after.get(p) != h]
        if bad:
            _say(f"[red]{_n(len(bad), 'file')} differ from before the attack[/], e.g. {bad[0]}")
            return False
        _say(f"[green]{_n(restored + decoys, 'file')} restored, all verified[/] "
             f"({restored} from the snapshot, {_n(decoys, 'decoy')} put back): "
             f"{len(before)} files as they were before the attack")
        _say(f"daemon log: {self.log_path}")
        self._incident_report()
        return True

    def _incident_report(self) -> None:
        """The playbook's incident, and its signed evidence bundle for the police."""
        ok, listed = _cli(self.cfg, "incident", "list", "--json")
        if not ok or not listed:
            _say("[yellow]no incident was opened[/] (no playbook matched)")
            return
        inc = listed[0]
        _say(f"incident {inc['id']} ({inc['playbook']}): {inc['state']}; "
             f"secops incident show {inc['id']}")
        ok, doc = _cli(self.cfg, "report", "incident", inc["id"], "--json")
        if ok:
            _say(f"signed evidence bundle for the police: {doc['bundle']} "
                 f"(check: secops keys export-public --out DIR, then secops bundle verify "
                 f"{doc['bundle']} --office-key DIR/office-gpg.asc --audit-root "
                 "DIR/audit-root.pub)")
        else:
            _say(f"[red]the incident report failed[/]: {doc}")

    # -- the child processes -----------------------------------------------------------------

    def _start_daemon(self) -> None:
        with self.log_path.open("wb") as log:
            self.daemon = subprocess.Popen(
                [sys.executable, "-m", "secops", "--config", self.cfg.source, "run"],
                stdout=log, stderr=subprocess.STDOUT, env=process.base_env())
        ready = _wait(lambda: "secops daemon ready" in self._log() or not self._alive()) \
            and _wait(lambda: self._settled() or not self._alive())
        if not ready or not self._alive():
            raise OperationalError(f"the daemon stopped, or was not ready and settled within "
                                   f"{WAIT_S:.0f} s; its log {self.log_path} ends:\n"
                                   f"{self._log()[-1500:]}")

    def _settled(self) -> bool:
        targets = [self.db.target(t.name) for t in self.cfg.backup.targets]
        return self.db.pending_count() == 0 and \
            all(t.last_ok_time and t.failing_since is None for t in targets)

    def _alive(self) -> bool:
        return self.daemon is not None and self.daemon.poll() is None

    def _log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") \
            if self.log_path.exists() else ""

    def _events(self, kind: str, since: str) -> list[dict[str, Any]]:
        """Events of ``kind`` since ``since``, oldest first."""
        return [e for e in reversed(self.db.recent_events(500))
                if e["kind"] == kind and e["time"] >= since]

    def _wait_event(self, kind: str, since: str,
                    match: Callable[[dict[str, Any]], bool] = lambda d: True
                    ) -> dict[str, Any] | None:
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found[:] = [e for e in self._events(kind, since) if match(e["details"])]
            return bool(found) or not self._alive()

        _wait(seen)
        return found[0] if found else None

    def _stop_daemon(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()

    def close(self) -> None:
        if self.attacker is not None and self.attacker.poll() is None:
            self.attacker.kill()
            self.attacker.wait()
        self._stop_daemon()
        state = FimState(self.db.path)
        try:
            frozen = state.active_freeze() is not None
        finally:
            state.close()
        self.db.close()
        if frozen:
            _cli(self.cfg, "unfreeze", "--kill")
        if self.maintenance:
            _cli(self.cfg, "maintenance", "stop")


def _show_pinned(snapshots: dict[str, Any]) -> tuple[str, str] | None:
    """Print the pinned snapshots; return (target, id) to restore from, "local" first."""
    chosen = None
    for name, s in snapshots.items():
        if not s.get("id"):
            _say(f"pinned on {name}: [red]none[/] ({s.get('error')})")
            continue
        when = datetime.fromisoformat(str(s["time"]).replace("Z", "+00:00")).astimezone()
        how = "tagged pinned" if s.get("tagged") else "kept by the append-only server"
        _say(f"pre-attack snapshot pinned on {name}: {s['short_id']} of {when:%H:%M:%S}, {how}")
        if chosen is None or name == "local":
            chosen = (name, str(s["id"]))
    return chosen


def _cli(cfg: Config, *args: str) -> tuple[bool, Any]:
    """``secops --config CFG ARGS``: (ok, its JSON document with ``--json``, or its error)."""
    done = subprocess.run([sys.executable, "-m", "secops", "--config", cfg.source, *args],
                          capture_output=True, text=True, env=process.base_env(), timeout=60,
                          check=False)
    if done.returncode != 0:
        return False, done.stderr.strip() or f"exit code {done.returncode}"
    return True, json.loads(done.stdout) if "--json" in args else done.stdout


def _wait(condition: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every regular file under ``root``, by absolute path."""
    out = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    out[path] = hashlib.file_digest(f, "sha256").hexdigest()
    return out


def _write_refused(path: str) -> bool:
    """Open ``path`` for writing (nothing is written): refused?"""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except PermissionError:
        return True
    os.close(fd)
    return False
