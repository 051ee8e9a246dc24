"""The daemon's login watch: the configured log sources read, their lines judged, findings
handed to the loop (which records them as events: the playbooks take them from there)."""

from __future__ import annotations

import queue
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from secops.errors import OperationalError, SecopsError
from secops.intrusion import authlog, follow
from secops.intrusion.host import HostWatch
from secops.intrusion.rules import Finding, Policy, Rules, parse_hours

if TYPE_CHECKING:
    from collections.abc import Callable

    from secops.config.schema import Config

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
POLL_S = 0.5
HOST_EVERY_S = 5.0  # listeners, USB storage, SSH keys: a look every few seconds
AUTH_LOG = Path("/var/log/auth.log")


def policy(cfg: Config) -> Policy:
    start, end = parse_hours(cfg.intrusion.office_hours)
    return Policy(max_failures=cfg.intrusion.max_failures,
                  find_seconds=cfg.intrusion.find_minutes * 60.0,
                  office_start_min=start, office_end_min=end,
                  office_days=frozenset(WEEKDAYS.index(d) for d in cfg.intrusion.office_days),
                  tz=datetime.now().astimezone().tzinfo)


def sources(cfg: Config) -> list[str]:
    """"journal" and file paths; "auto" is the journal where journald runs, else auth.log."""
    out: list[str] = []
    for given in cfg.intrusion.sources:
        s = given
        if given == "auto":
            s = "journal" if follow.journal_available() else str(AUTH_LOG)
        if s not in out:
            out.append(s)
    return out


class LoginWatch:
    def __init__(self, cfg: Config, state_dir: Path, *,
                 previous: LoginWatch | None = None) -> None:
        """``previous``: the watch this one replaces (a reload), no longer polled: what it
        counted goes on counting under the new policy."""
        self.cfg = cfg
        self.rules: Rules = previous.rules if previous else Rules(policy(cfg))
        self.rules.policy = policy(cfg)
        self.samba_records: authlog.SambaRecords = (
            previous.samba_records if previous else authlog.SambaRecords())
        self.folder = state_dir / "intrusion"
        self.positions = follow.Positions(self.folder)
        self.sources = sources(cfg)
        self.samba = Path(cfg.intrusion.samba_log) if cfg.intrusion.samba_log else None
        self.lines_read = 0
        self.host: HostWatch = previous.host if previous else HostWatch(self.folder)
        self.host_at: float | None = None
        self.errors: list[SecopsError] = []  # the sources the last poll could not read

    def prime(self) -> list[Finding]:
        """Meet every source now: a new one at its end (what is there already is history),
        a known one from where it was read to (what came while the daemon was down), so
        that a line written once the daemon says it watches is news."""
        return self.poll()

    def poll(self, now: float | None = None) -> list[Finding]:
        """Everything the sources gained since the last poll, judged."""
        now = time.time() if now is None else now
        local = datetime.now().astimezone()
        tz = local.tzinfo
        assert tz is not None
        events: list[authlog.AuthEvent] = []

        def take(line: authlog.Line | None) -> None:
            if line is not None:
                ev = authlog.auth_event(line, now)
                if ev is not None:
                    events.append(ev)

        before = {k: (p.inode, p.offset) for k, p in self.positions.files.items()}
        errors: list[SecopsError] = []
        every: list[str | Path] = [*self.sources, *([self.samba] if self.samba else [])]
        for source in every:
            try:  # one source that cannot be read does not blind the others
                if source == "journal":
                    for entry in follow.read_journal(self.folder / "journal.cursor"):
                        self.lines_read += 1
                        take(authlog.parse_journal(entry))
                elif isinstance(source, Path):  # smbd's own log: its JSON audit records
                    for text in follow.read_file(source, self.positions):
                        self.lines_read += 1
                        take(self.samba_records.feed(text))
                else:
                    for text in follow.read_file(Path(source), self.positions):
                        self.lines_read += 1
                        take(authlog.parse_syslog(text, year=local.year, tz=tz,
                                                  now=now))
            except SecopsError as e:
                errors.append(e)
        findings = [f for ev in events for f in self.rules.feed(ev)]
        if self.host_at is None or not 0 <= now - self.host_at < HOST_EVERY_S:
            self.host_at = now
            try:  # listeners, USB storage, SSH keys: reads never fail, keeping them may
                findings += self.host.poll(now)
            except OSError as e:
                errors.append(OperationalError(f"cannot keep {self.host.path}: {e}"))
        self.errors = errors
        after = {k: (p.inode, p.offset) for k, p in self.positions.files.items()}
        if after != before:
            self.positions.save()  # after judging: a crash re-reads, never skips
        return findings


class LoginWatchThread:
    """``LoginWatch`` polled in a thread of its own (journalctl may take a while); findings
    and errors wait in ``out`` for the daemon's loop, which alone writes state.db."""

    def __init__(self, watch: LoginWatch, log: Callable[[str, str], None]) -> None:
        self.watch = watch
        self.log = log
        self.out: queue.SimpleQueue[Finding] = queue.SimpleQueue()
        self.stop = threading.Event()
        # what prime() could not read was said by the daemon already
        self.error: str | None = "; ".join(str(e) for e in watch.errors) or None
        self.thread = threading.Thread(target=self._run, daemon=True, name="secops-logins")

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(POLL_S):
            findings: list[Finding] = []
            try:
                findings = self.watch.poll()
                error = "; ".join(str(e) for e in self.watch.errors) or None
            except Exception as e:  # the thread must outlive a bad line, a full disk...
                error = f"unexpected {type(e).__name__}: {e}"
            if error is not None and error != self.error:  # said once, until it changes
                self.log("ERROR", f"login watch: {error}")
            self.error = error
            for f in findings:
                self.out.put(f)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5.0)
