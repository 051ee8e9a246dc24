"""The daemon's login watch: the configured log sources read, their lines judged, findings
handed to the loop (which records them as events: the playbooks take them from there)."""

from __future__ import annotations

import queue
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from secops.errors import SecopsError
from secops.intrusion import authlog, follow
from secops.intrusion.rules import Finding, Policy, Rules, parse_hours

if TYPE_CHECKING:
    from collections.abc import Callable

    from secops.config.schema import Config

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
POLL_S = 0.5
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
    def __init__(self, cfg: Config, state_dir: Path) -> None:
        self.cfg = cfg
        self.rules = Rules(policy(cfg))
        self.folder = state_dir / "intrusion"
        self.positions = follow.Positions(self.folder)
        self.sources = sources(cfg)
        self.samba = Path(cfg.intrusion.samba_log) if cfg.intrusion.samba_log else None
        self.lines_read = 0

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
        for source in self.sources:
            if source == "journal":
                for entry in follow.read_journal(self.folder / "journal.cursor"):
                    self.lines_read += 1
                    take(authlog.parse_journal(entry))
                continue
            for text in follow.read_file(Path(source), self.positions):
                self.lines_read += 1
                take(authlog.parse_syslog(text, year=local.year, tz=tz))
        if self.samba is not None:
            for text in follow.read_file(self.samba, self.positions):
                self.lines_read += 1
                take(authlog.samba_line(text))
        findings = [f for ev in events for f in self.rules.feed(ev)]
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
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="secops-logins")

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(POLL_S):
            try:
                findings = self.watch.poll()
            except SecopsError as e:
                if str(e) != self.error:  # said once, until it changes
                    self.error = str(e)
                    self.log("ERROR", f"login watch: {e}")
                continue
            except Exception as e:  # the thread must outlive a bad line
                self.log("ERROR", f"login watch: unexpected {type(e).__name__}: {e}")
                continue
            self.error = None
            for f in findings:
                self.out.put(f)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5.0)
