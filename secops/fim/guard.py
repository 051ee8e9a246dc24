"""The monitor's fanotify side: what the gate, sentry and dirs threads do with each event.

These threads run these callbacks, never the monitor thread. They read the monitor's index
(never change it), feed its detector (thread-safe), note what they judged in ``fan_seen`` and
hand alarms to the monitor thread through its queue. Neither ever opens a watched file: the
gate thread would wait on itself, and both read through the event's descriptor instead.

- **The gate thread** judges every close-after-write in a marked folder before the writer's
  next open is answered, and refuses an open only to a process secops stopped
  (:class:`~secops.fim.denylist.DenyList`).
- **The sentry thread** sees every close-after-write on the filesystems of the watched
  folders. One under a watched root in a folder the gate has no mark on (a new folder) gets
  the folder and its unmarked parents marked at once and is judged here; so is one through a
  hard link from outside the tree to a file the index knows (same device and inode). Folders
  the gate marks are left out of the sentry by ignore marks: their writes are the gate's.
- **The dirs thread** (:mod:`secops.fim.dirwatch`) hears of every folder created or moved in
  and has the gate mark it (and what it holds) before anything is written there.
- **Once only**: in a folder marked less than ``FRESH_S`` ago both groups may report the same
  write. The thread that judges a file first records its state (device, inode, size, mtime,
  ctime); the other skips that exact state. Until the file changes again it holds the same
  bytes (its writer's next open waits on the gate), so nothing is lost.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from secops.fim import procid
from secops.fim.canary import intact_fd, is_canary
from secops.fim.denylist import DenyList
from secops.fim.detect import TEXTUAL, Observation, Verdict, in_tool_dir
from secops.fim.dirwatch import DirWatch
from secops.fim.fanotify import Event, FanotifyUnavailable
from secops.fim.gate import Gate, Sentry
from secops.fim.probe import SAMPLE, Probe, entropy, file_type, probe_fd
from secops.fim.state import RELEASED
from secops.manifest.scan import excluded

if TYPE_CHECKING:
    from secops.fim.monitor import Monitor

FRESH_S = 2.0
CIPHER_HEAD_ENTROPY = 7.0  # bits/byte of a 4 KiB head: ciphertext reaches 7.95
DECOY_READ_S = 60.0  # a decoy read this long before a write of ciphertext by the same pid
OPAQUE_ENTROPY = 7.2  # as the detector's opaque_new
State = tuple[int, int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns
_CLAIMS_MAX = 10_000


class Guard:
    def __init__(self, monitor: Monitor) -> None:
        self.m = monitor
        self.deny = DenyList(monitor.db_path.parent / RELEASED)
        self.gate: Gate | None = None
        self.sentry: Sentry | None = None
        self.dirwatch: DirWatch | None = None
        self._stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.roots = tuple(os.path.join(r, "") for r in monitor.cfg.paths.watch)
        self._claimed: dict[str, dict[State, None]] = {"gate": {}, "sentry": {}}
        self._claims_lock = threading.Lock()
        self._writing: dict[tuple[int, int, int], None] = {}  # (pid, dev, ino) mid-write
        self._judged: dict[State, None] = {}  # file states the gate judged (insertion order)
        self._canary_readers: dict[int, float] = {}  # pid -> when it last read a decoy
        self._quiet_full = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> bool:
        """Gate, marks, sentry; False when fanotify cannot be used here."""
        own = self.own_files()
        try:
            self.gate = Gate(self._survive(self.on_gate), self.m.log, self.m.degraded,
                             ignore=own)
        except FanotifyUnavailable as e:
            self.m.log("WARNING", f"fanotify unavailable ({e.message}); ransomware detection "
                       "works from inotify alone: no writer pids, slower containment")
            return False
        self.gate.start()
        for root in self.m.cfg.paths.watch:
            self.mark_tree(root)
        try:
            sentry = Sentry(self._survive(self.on_sentry), self.m.log, self.m.degraded,
                            ignore=own)
            for root in self.m.cfg.paths.watch:
                sentry.watch(root)
        except (FanotifyUnavailable, OSError) as e:
            self.m.log("WARNING", f"fanotify: no filesystem mark ({e}); new folders are "
                       "guarded once inotify reports them")
        else:
            self.sentry = sentry
            for folder in list(self.gate.dirs):
                self._quiet(folder)
            sentry.start()
        self._start_dirwatch()
        return True

    def _start_dirwatch(self) -> None:
        try:
            dirwatch = DirWatch()
        except FanotifyUnavailable as e:
            self.m.log("WARNING", f"fanotify: no folder-creation events ({e.message}); a new "
                       "folder is marked at its first write")
            return
        try:
            for root in self.m.cfg.paths.watch:
                dirwatch.watch(root)
        except OSError as e:
            dirwatch.close()
            self.m.log("WARNING", f"fanotify: no folder-creation events ({e}); a new folder "
                       "is marked at its first write")
            return
        self.dirwatch = dirwatch
        t = threading.Thread(target=self._dir_loop, args=(dirwatch,), name="secops-dirs",
                             daemon=True)
        t.start()
        self.threads.append(t)

    def _dir_loop(self, dirwatch: DirWatch) -> None:
        try:
            dirwatch.run(self.on_new_dir, self._dirs_overflowed, self._stop)
        except Exception as e:
            self.m.log("ERROR", f"fanotify: folder-creation events stopped: {e!r}; a new "
                       "folder is marked at its first write")

    def on_new_dir(self, path: str) -> None:
        """In the dirs thread: a folder created or moved in; under a watched root, the gate
        marks it (and what it holds) before anything is written there."""
        if path.startswith(self.roots) and self._guard(path):
            self.mark_tree(path)

    def _dirs_overflowed(self) -> None:
        self.m.degraded("dirs_overflow", {})
        for root in self.m.cfg.paths.watch:
            self.m.q.put(("mark", root))

    def own_files(self) -> list[str]:
        """The daemon's state folder and the files in it (its SQLite database above all):
        fanotify must never hand us a descriptor onto them (see Fanotify.ignore)."""
        top = str(self.m.db_path.parent)
        try:
            names = sorted(os.listdir(top))
        except OSError:
            names = []
        return [top] + [os.path.join(top, n) for n in names
                        if os.path.isfile(os.path.join(top, n))]

    def stop(self) -> None:
        self._stop.set()
        if self.dirwatch is not None:
            self.dirwatch.close()
        for t in self.threads:
            t.join(timeout=2)
        if self.sentry is not None:
            self.sentry.stop()
        if self.gate is not None:
            self.gate.stop()

    def answering(self) -> bool:
        return self.gate is None or self.gate.answering()

    # -- marks -------------------------------------------------------------------------------

    def mark_tree(self, top: str) -> None:
        """Mark ``top`` and every folder below it that is not excluded."""
        gate = self.gate
        if gate is None:
            return
        for folder, dirs, _files in os.walk(top):
            dirs[:] = [d for d in dirs
                       if not excluded(d, os.path.join(folder, d), self.m.excludes)]
            if not self._mark(gate, folder):
                return

    def _mark(self, gate: Gate, folder: str) -> bool:
        try:
            gate.watch_dir(folder)
        except FileNotFoundError:
            pass  # removed meanwhile
        except OSError as e:
            self.m.log("WARNING", f"fanotify: {e}")
            if e.errno == errno.ENOSPC:
                return False  # out of marks: the rest is inotify's
        else:
            self._quiet(folder)
        return True

    def _quiet(self, folder: str) -> None:
        """The sentry leaves a folder the gate marks to the gate: an ignore mark, so the
        kernel does not even queue those writes for it (nor does it compete with the gate
        thread for the interpreter over them)."""
        sentry = self.sentry
        if sentry is None or self._quiet_full:
            return
        try:
            sentry.fan.ignore(folder)
        except (OSError, ValueError) as e:
            if getattr(e, "errno", None) == errno.ENOSPC:
                self._quiet_full = True
                self.m.log("WARNING", "fanotify: out of marks for the sentry's ignore marks; "
                           "it sees (and skips) writes in marked folders from here on")

    def _guard(self, folder: str) -> bool:
        """Mark a new folder (under a watched root) and its unmarked parents up to the root,
        at once (in the sentry or dirs thread); False when it is not ours (excluded)."""
        gate = self.gate
        if gate is None:
            return False
        chain = []
        while gate.marked_at(folder) is None:
            if self.m._excluded(folder):
                return False
            chain.append(folder)
            if os.path.join(folder, "") in self.roots:
                break
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
        for d in reversed(chain):
            self._mark(gate, d)
        if chain:
            self.m.q.put(("mark", chain[0]))  # and below it, in the monitor thread
        return True

    # -- the callbacks ---------------------------------------------------------------------

    def _survive(self, callback: Callable[[Event], bool]) -> Callable[[Event], bool]:
        """One event's error (a bug, a database that cannot be read this moment) costs the
        judgement of that one event, never the thread that judges all the others: the event
        is allowed and the error counted and said (``judge_failed``)."""
        def judged(ev: Event) -> bool:
            try:
                return callback(ev)
            except Exception as e:
                self.m.degraded("judge_failed", {"event": ev.kind, "error": repr(e)})
                return True
        return judged

    def on_gate(self, ev: Event) -> bool:
        """In the gate thread: keep it lean; never open a watched file here."""
        if ev.kind == "open_perm":
            return not self.deny.denies(ev.pid)
        if ev.kind in ("modify", "close_write") and ev.path and \
                not ev.path.startswith(self.roots):
            # a folder outside the tree, gated since a hard link into it was written
            linked = self._linked(ev)
            if linked is None:
                return True
            ev = Event(ev.kind, ev.pid, linked, ev.fd)
        if ev.kind == "access":
            if ev.path in self.m.canaries:  # a decoy read: who, and when
                if len(self._canary_readers) >= _CLAIMS_MAX:
                    self._canary_readers.clear()
                self._canary_readers[ev.pid] = time.monotonic()
        elif ev.kind == "modify" and ev.path:
            self._first_write(ev.fd, ev.path, ev.pid)
        elif ev.kind == "close_write" and ev.path:
            writer = _writer(ev.fd, ev.pid)
            if writer is not None:
                self._writing.pop(writer, None)  # its next write is a first again
            gate = self.gate
            marked = gate.marked_at(os.path.dirname(ev.path)) if gate is not None else None
            if marked is None or time.monotonic() - marked > FRESH_S or \
                    self._claim("gate", ev.fd):
                self._judge(ev.fd, ev.path, ev.pid)
        elif ev.kind == "overflow":
            self.m.q.put(("rescan",))
            self.m.degraded("gate_overflow", {})
        elif ev.kind == "fd_exhausted":
            self.m.degraded("out_of_fds", {})
        return True

    def on_sentry(self, ev: Event) -> bool:
        """In the sentry thread: writes the gate cannot see (yet)."""
        if ev.kind == "overflow":
            self.m.degraded("sentry_overflow", {})
            for root in self.m.cfg.paths.watch:
                self.m.q.put(("mark", root))  # a new folder may have gone unnoticed
            self.m.q.put(("rescan",))
            return True
        if ev.kind != "close_write" or not ev.path:
            return True
        path = ev.path
        if path.startswith(self.roots):
            folder = os.path.dirname(path)
            gate = self.gate
            marked = gate.marked_at(folder) if gate is not None else None
            if marked is None:
                if self._guard(folder) and self._claim("sentry", ev.fd):
                    self._judge(ev.fd, path, ev.pid)
            elif time.monotonic() - marked <= FRESH_S and self._claim("sentry", ev.fd):
                self._judge(ev.fd, path, ev.pid)
            return True
        linked = self._linked(ev)
        if linked is not None:
            self.m.log("WARNING", f"integrity: {linked} written through the hard link {path}")
            self._gate_outside(os.path.dirname(path))
            self._judge(ev.fd, linked, ev.pid)
        return True

    def _gate_outside(self, folder: str) -> None:
        """A watched file was written through a hard link in ``folder``, outside the tree:
        the gate marks that folder too, so the next open there waits for the judgement of
        this write (and a stopped writer's opens there are refused), as in the tree."""
        gate = self.gate
        if gate is None or gate.marked_at(folder) is not None:
            return
        if self._mark(gate, folder):
            self.m.log("WARNING", f"integrity: {folder} (outside the watched folders) is "
                       "gated from now on: a watched file was written through a hard link "
                       "there")

    def _linked(self, ev: Event) -> str | None:
        """A file outside the tree that is a hard link to a file the index knows. The link
        may be gone by the time the event is read (or before the write: open the link,
        unlink it, write, close): a file with one name left that is no longer at the
        event's path is looked up as well."""
        try:
            st = os.fstat(ev.fd)
        except OSError:
            return None
        if st.st_nlink < 2 and not ev.unlinked:
            return None  # a file outside the tree with its one name there: not ours
        known = self.m.index.path_of_inode(st.st_ino)
        if known is None:
            return None
        try:
            there = os.stat(known, follow_symlinks=False)
        except OSError:
            return None
        return known if (there.st_dev, there.st_ino) == (st.st_dev, st.st_ino) else None

    def _claim(self, via: str, fd: int) -> bool:
        """Whether this thread judges the file's present state (see "Once only")."""
        try:
            st = os.fstat(fd)
        except OSError:
            return True
        state = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        theirs = self._claimed["sentry" if via == "gate" else "gate"]
        with self._claims_lock:
            if state in theirs:
                del theirs[state]
                return False  # the other thread judged exactly this
            mine = self._claimed[via]
            if len(mine) >= _CLAIMS_MAX:
                mine.clear()
            mine[state] = None
        return True

    # -- judging ---------------------------------------------------------------------------

    def _first_write(self, fd: int, path: str, pid: int) -> None:
        """The first write of a process to a file since it opened it (or last closed it):
        a file opened before the attack was known is judged now, not at its close, which an
        attacker can put off until every file is written. Only what a partly written file
        can already show is judged: a decoy written to, or a known file whose head is no
        longer its type and looks like ciphertext. Its close judges it in full."""
        writer = _writer(fd, pid)
        if writer is None or writer in self._writing:
            return
        if len(self._writing) >= _CLAIMS_MAX:
            self._writing.clear()
        self._writing[writer] = None
        m = self.m
        now = time.time()
        if is_canary(path):
            if path in m.canaries:
                self._observe(Observation(now, "modified", path, pid=pid, canary=True))
            return
        before = m.index.get(path) or m._renamed_from(fd)
        if before is None or before.ftype == "empty" or m._excluded(path):
            return
        try:
            head = os.pread(fd, SAMPLE, 0)
        except OSError:
            return
        ftype = file_type(head)
        ent = entropy(head)
        if ftype in (before.ftype, "empty") or ent < CIPHER_HEAD_ENTROPY or \
                (ftype in TEXTUAL and before.ftype in TEXTUAL):
            return
        self._observe(Observation(now, "modified", path, before=before, pid=pid,
                                  after=Probe(ftype, True, round(ent, 3), b"")))

    def _took_a_decoy(self, pid: int, path: str, probe: Probe) -> bool:
        """``pid`` read a decoy a moment ago and now writes a new file that reads as
        ciphertext: the decoy's content, taken and encrypted elsewhere (a copy that ``cp`` or
        ``zip`` makes is a document or an archive, not opaque; ``git add`` reads every file
        and writes zlib objects into its own store, judged by rule)."""
        read = self._canary_readers.get(pid)
        return read is not None and time.monotonic() - read <= DECOY_READ_S and \
            probe.ftype == "binary" and probe.entropy >= OPAQUE_ENTROPY and \
            not in_tool_dir(path)

    def watch_canary_reads(self, paths: list[str]) -> None:
        """Reads of each decoy are reported to the gate (an inode mark per decoy)."""
        gate = self.gate
        if gate is None:
            return
        for path in paths:
            if path in gate.read_marks:
                continue
            try:
                gate.watch_reads(path)
            except (OSError, ValueError) as e:
                if getattr(e, "errno", None) == errno.ENOSPC:
                    self.m.log("WARNING", "fanotify: out of marks for the decoys' reads")
                    return

    def _observe(self, obs: Observation) -> None:
        verdict = self.m.detector.observe(obs, self.m.in_maintenance)
        if verdict is not None:
            self._contain(verdict)

    def _judge(self, fd: int, path: str, pid: int) -> None:
        m = self.m
        now = time.time()
        if is_canary(path):
            want = m.canaries.get(path)
            if want is None or intact_fd(fd, want):
                return  # a copy carried along by cp/unzip, or the decoy as it was
            obs = Observation(now, "modified", path, pid=pid, canary=True)
        else:
            if m._excluded(path):
                return
            try:
                st = os.fstat(fd)
            except OSError:
                return
            state = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if state in self._judged:
                # judged already in this very state: a save's temp file renamed over the
                # document (the monitor compares it with what it replaced), or a close
                # after an open for writing that wrote nothing
                return
            if len(self._judged) >= _CLAIMS_MAX:
                self._judged.clear()
            self._judged[state] = None
            before = m.index.get(path) or m._renamed_from(fd)
            if before is not None and before.same_stat(st):
                return  # opened for writing, nothing written
            try:
                size = st.st_size
                # the body's structure matters only against a version whose body held:
                # a new file's (a save's temp file) is not checked while an open waits
                probe = probe_fd(fd, size, deep=before is not None and before.parses)
                sample = os.pread(fd, 4096, 0) if size <= 65536 and \
                    probe.ftype in TEXTUAL and path not in m.index else b""
            except OSError:
                return
            obs = Observation(now, "modified" if before else "added", path, before=before,
                              after=probe, pid=pid, text_sample=sample,
                              canary=before is None and self._took_a_decoy(pid, path, probe))
            m.fan_seen[path] = now
            if len(m.fan_seen) > 50_000:
                m.fan_seen.clear()
        self._observe(obs)

    def _contain(self, verdict: Verdict) -> None:
        """Stop the writers now (this thread), refuse them from now on, tell the monitor.

        A writer is recorded in the deny list only after its SIGSTOP succeeded, under its
        start time; one already stopped is not stopped (nor reported) again. Describing the
        processes (``/proc/PID/cmdline`` can block) is left to the monitor thread.
        """
        stopped: list[dict[str, object]] = []
        if self.m.cfg.integrity.contain:
            skip = {os.getpid(), os.getppid(), 0, 1}
            for pid in verdict.pids:
                if pid in skip or self.deny.denies(pid):
                    continue
                record = procid.stop(pid)
                start = record.get("start")
                if record["stopped"] and isinstance(start, int):
                    self.deny.deny(pid, start)
                stopped.append(record)
        self.m.q.put(("alarm", verdict, stopped))


def _writer(fd: int, pid: int) -> tuple[int, int, int] | None:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return pid, st.st_dev, st.st_ino
