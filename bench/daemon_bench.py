"""Benchmark: the daemon (``secops run``): recovery point, event storms, idle cost.

The bars (issue), measured on the real daemon with two targets, a local repository and an
append-only REST repository (``rclone serve restic --append-only`` on a free loopback port):

1. RPO.  On a 5,000-file tree with ``debounce_seconds = 2``: the time from a file write
   finishing to a snapshot containing it on EVERY target, p95 at most 6 s.  The daemon is
   started and left to settle (``status --json``: ``pending_changes`` 0, every target
   ``last_ok``, no restic child, two checks in a row), then N times (``--samples``, >= 20):
   write one new file (10-200 KB, a different file each time), take ``time.time()`` when
   ``close()`` returns, and wait for a ``backup.completed target=NAME`` line of every target
   after it.  The daemon's log is polled every 20 ms and each line is timestamped when it
   appears; the sample is the last target's line time minus the write time.  A 1 s pause
   and a settle check separate samples.  Afterwards every snapshot id named in those lines
   is looked up with ``secops snapshots --target NAME --json``: its time (restic's start
   time of that backup, second precision) must be at or after the write's second, which
   proves the backup began after the write, so contains it.
   Where the time goes: restic children of the daemon are watched (``/proc`` every 20 ms;
   start time from ``/proc/PID/stat`` at 10 ms resolution, end when first seen gone or a
   zombie), which splits each sample into write -> first restic (debounce, manifest scan and
   signing, preflight), each restic run, and the gaps between and after them.
2. Event storm.  20,000 writes within 10 s (2,000 files of the 5,000-file tree each
   overwritten in place 10 times, 912 bytes at offset 0, writes paced evenly) with
   ``max_delay_seconds = 60`` and then ``5``: the number of ``backup.completed
   target=local`` lines from the storm's start until the daemon has settled again, against
   ``ceil(10 / max_delay) + 1``; the daemon's VmRSS sampled every 100 ms, peak during the
   storm and after it.
3. Idle.  A tree of 50,000 small files in 500 folders; ``init``, start, wait for the first
   backup and for the daemon to settle, 5 s more, then 60 s of idleness: CPU% of the daemon
   process (utime + stime delta from ``/proc/PID/stat`` over wall time; children not
   included, none should run) below 1 %, RSS below 200 MB.  Also reported: RSS when the
   daemon is ready (before its first backup), VmHWM (the first backup's peak), the
   ``smaps_rollup`` split (anonymous heap vs mapped files), threads, context switches/s.

Every scenario gets its own fresh office under WORKDIR (tree, state folder, repositories);
the daemon runs as ``.venv/bin/secops --config CFG run`` in its own session with a minimal
environment, its stdout and stderr in WORKDIR/SCENARIO/daemon.log.  The daemon and rclone
are always stopped (SIGTERM, then SIGKILL after a grace period).

Run: ``.venv/bin/python bench/daemon_bench.py [--only rpo|storm|idle] [--samples 40]
[--storm-delays 60,5] [--idle-seconds 60] [--workdir bench/.work-daemon]``; results go to
WORKDIR/results.json (a run with ``--only`` keeps the other scenarios' earlier results).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import itertools
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

PROJECT = Path(__file__).resolve().parents[1]
VENV_BIN = PROJECT / ".venv" / "bin"
SECOPS = VENV_BIN / "secops"
TARGETS = ("local", "offsite")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

RPO_BAR_P95_S = 6.0
IDLE_CPU_BAR_PCT = 1.0
IDLE_RSS_BAR_MB = 200.0

COMPLETED_RE = re.compile(r"backup\.completed target=(?P<target>\S+) snapshot=(?P<snap>\S*)")
FAILED_RE = re.compile(r"backup\.failed target=(?P<target>\S+)")


# ---------------------------------------------------------------- small helpers


def log(message: str) -> None:
    print(f"[{dt.datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), as numpy's default."""
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "min": round(min(values), 3),
            "median": round(statistics.median(values), 3),
            "p95": round(percentile(values, 95), 3), "max": round(max(values), 3),
            "mean": round(statistics.fmean(values), 3)}


def minimal_env(home: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(home), "LANG": "C.UTF-8"}


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def boot_offset() -> float:
    """Wall time of boot as /proc/PID/stat's starttime counts it (CLOCK_BOOTTIME)."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, ...] (index 0 = 3rd)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    head, _, rest = text.rpartition(")")
    return [head.partition("(")[2], *rest.split()]


def status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def smaps_rollup(pid: int) -> dict[str, int]:
    """Rss, Pss, Anonymous and the like (kB) from /proc/PID/smaps_rollup."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB" and parts[0].rstrip(":") in (
                    "Rss", "Pss_Anon", "Pss_File", "Anonymous", "Shared_Clean",
                    "Private_Clean", "Private_Dirty"):
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


def thread_ticks(pid: int) -> dict[int, int]:
    """utime + stime per thread id (the main thread's id is ``pid``)."""
    out: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue
        f = text.rpartition(")")[2].split()
        out[int(task.name)] = int(f[11]) + int(f[12])
    return out


def io_counters(pid: int) -> dict[str, int]:
    """/proc/PID/io: syscr, syscw, read_bytes, write_bytes, ..."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            key, _, value = line.partition(":")
            out[key] = int(value)
    return out


def cpu_ticks(pid: int) -> tuple[int, int] | None:
    """(utime + stime, cutime + cstime) of ``pid`` in clock ticks."""
    f = proc_stat(pid)
    if f is None:
        return None
    # f[0] = comm, f[1] = state, f[2] = ppid ... utime is field 14 of stat -> f[12]
    return int(f[12]) + int(f[13]), int(f[14]) + int(f[15])


def context_switches(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


# ---------------------------------------------------------------- trees


def make_tree(root: Path, files: int, folders: int, size: Callable[[random.Random], int],
              seed: int) -> tuple[list[Path], int]:
    """``files`` files spread over ``folders`` leaf folders (two levels); (paths, bytes)."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not security
    if root.exists():
        shutil.rmtree(root)
    tops = max(1, round(math.sqrt(folders / 2)))
    per_top = math.ceil(folders / tops)
    leaves = [root / f"khu-{t:02d}" / f"to-{s:03d}" for t in range(tops)
              for s in range(per_top)][:folders]
    for leaf in leaves:
        leaf.mkdir(parents=True)
    paths: list[Path] = []
    total = 0
    for i in range(files):
        leaf = leaves[i % len(leaves)]
        n = size(rng)
        p = leaf / f"tep-{i:06d}.{('csv', 'txt', 'docx', 'pdf')[i % 4]}"
        with open(p, "wb") as f:
            f.write(rng.randbytes(n))
        paths.append(p)
        total += n
    return paths, total


def log_uniform(lo: int, hi: int) -> Callable[[random.Random], int]:
    def draw(rng: random.Random) -> int:
        return round(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return draw


# ---------------------------------------------------------------- servers, office, daemon


class RestLike(Protocol):
    port: int

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def url(self, name: str) -> str: ...


def rest_server(root: Path, workdir: Path) -> RestLike:
    """``tests/integration/servers.py``'s RestServer (append-only)."""
    tests = str(PROJECT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    servers = importlib.import_module("integration.servers")
    server: RestLike = servers.RestServer(root, workdir, append_only=True)
    return server


CONFIG = """\
[office]
name = "Bench"
code = "bench"

[paths]
state_dir = {state}
watch = [{tree}]

[backup]
debounce_seconds = {debounce}
max_delay_seconds = {max_delay}

[schedule]
backup_every_minutes = 0
rescan_every_minutes = 0
check_daily_at = ""
retention_daily_at = ""
drill_weekday = ""

[[backup.targets]]
name = "local"
repository = {local}

[[backup.targets]]
name = "offsite"
repository = {offsite}
append_only = true
"""


@dataclass
class Office:
    root: Path
    rest_url: str

    @property
    def tree(self) -> Path:
        return self.root / "tree"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def config(self) -> Path:
        return self.root / "secops.toml"

    def write_config(self, debounce: float, max_delay: float) -> None:
        self.config.write_text(CONFIG.format(
            state=json.dumps(str(self.state)), tree=json.dumps(str(self.tree)),
            debounce=debounce, max_delay=max_delay,
            local=json.dumps(str(self.root / "repo")), offsite=json.dumps(self.rest_url)),
            encoding="utf-8")

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SECOPS), "--config", str(self.config), *args],
                              capture_output=True, text=True, env=minimal_env(self.root),
                              timeout=timeout, check=False)

    def init(self) -> None:
        done = self.run("init")
        if done.returncode != 0:
            raise RuntimeError(f"secops init failed ({done.returncode}):\n{done.stdout}\n"
                               f"{done.stderr}")

    def status(self) -> dict[str, Any]:
        done = self.run("status", "--json", timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"secops status failed: {done.stderr}")
        doc: dict[str, Any] = json.loads(done.stdout)
        return doc

    def snapshots(self, target: str) -> list[dict[str, Any]]:
        done = self.run("snapshots", "--target", target, "--json", timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"secops snapshots --target {target} failed: {done.stderr}")
        rows: list[dict[str, Any]] = json.loads(done.stdout)
        return rows


class LogTail:
    """Polls a log file every ``interval`` s and timestamps every line as it appears."""

    def __init__(self, path: Path, interval: float = 0.02) -> None:
        self.path = path
        self.interval = interval
        self._lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="log-tail", daemon=True)

    def start(self) -> LogTail:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        pos = 0
        partial = b""
        while not self._stop.is_set():
            try:
                with open(self.path, "rb") as f:
                    f.seek(pos)
                    chunk = f.read()
            except FileNotFoundError:
                chunk = b""
            now = time.time()
            if chunk:
                pos += len(chunk)
                parts = (partial + chunk).split(b"\n")
                partial = parts.pop()
                with self._lock:
                    self._lines += [(now, p.decode("utf-8", "replace")) for p in parts]
            self._stop.wait(self.interval)

    def count(self) -> int:
        with self._lock:
            return len(self._lines)

    def since(self, index: int) -> list[tuple[float, str]]:
        with self._lock:
            return self._lines[index:]

    def text(self) -> str:
        with self._lock:
            return "\n".join(line for _, line in self._lines)


@dataclass
class Child:
    pid: int
    argv: list[str]
    repository: str
    start: float
    end: float | None = None

    @property
    def op(self) -> str:
        ops = [a for a in self.argv[1:] if not a.startswith("-")]
        return ops[0] if ops else "?"

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.start


class ChildWatch:
    """Restic children of one process: start (10 ms, from starttime) and end (polled)."""

    def __init__(self, parent: int, interval: float = 0.02) -> None:
        self.parent = parent
        self.interval = interval
        self.children: list[Child] = []
        self._lock = threading.Lock()
        self._seen: set[int] = set()
        self._ppid: dict[int, int] = {}
        self._boot = boot_offset()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="child-watch", daemon=True)

    def start(self) -> ChildWatch:
        self._seen = {int(p) for p in os.listdir("/proc") if p.isdigit()}
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def active(self) -> list[Child]:
        with self._lock:
            return [c for c in self.children if c.end is None]

    def between(self, t0: float, t1: float) -> list[Child]:
        with self._lock:
            return [c for c in self.children if t0 <= c.start <= t1]

    def _descends(self, stat: list[str]) -> bool:
        """A child of the daemon, or of the daemon's job process (secops.childjob)."""
        ppid = int(stat[2])
        for _ in range(3):
            if ppid == self.parent:
                return True
            up = proc_stat(ppid)
            if up is None:
                return False
            ppid = int(up[2])
        return False

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            pids = {int(p) for p in os.listdir("/proc") if p.isdigit()}
            fresh, self._seen = pids - self._seen, pids  # pids get reused: new since last poll
            for pid in fresh:
                f = proc_stat(pid)
                if f is None or not self._descends(f):
                    continue
                if f[0] != "restic":  # forked but not exec'd yet: look again next poll
                    self._seen.discard(pid)
                    continue
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                except OSError:
                    argv, env = [], []
                if not any(argv):  # inside execve: the new arguments are not mapped yet
                    self._seen.discard(pid)
                    continue
                repo = next((e.split(b"=", 1)[1].decode() for e in env
                             if e.startswith(b"RESTIC_REPOSITORY=")), "")
                start = self._boot + int(f[20]) / CLK_TCK
                with self._lock:
                    self.children.append(Child(pid, [a.decode() for a in argv if a], repo,
                                               start))
                    self._ppid[pid] = int(f[2])  # the daemon, or its job process
            with self._lock:
                for c in self.children:
                    if c.end is None:
                        f = proc_stat(c.pid)
                        if f is None or f[1] == "Z" or int(f[2]) != self._ppid.get(c.pid):
                            c.end = now
            self._stop.wait(self.interval)


class RssSampler:
    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []  # (time, VmRSS kB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss", daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            rss = status_kb(self.pid, "VmRSS")
            if rss is not None:
                self.samples.append((time.time(), rss))
            self._stop.wait(self.interval)

    def peak_mb(self, t0: float, t1: float) -> float | None:
        xs = [kb for t, kb in self.samples if t0 <= t <= t1]
        return round(max(xs) / 1024, 1) if xs else None


class Daemon:
    """``secops --config CFG run`` in its own session; output into ``log_path``."""

    def __init__(self, office: Office, log_path: Path) -> None:
        self.office = office
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.tail: LogTail | None = None
        self.children: ChildWatch | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Daemon:
        with self.log_path.open("ab") as out:
            out.write(f"--- bench: starting the daemon at {time.time():.3f}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [str(SECOPS), "--config", str(self.office.config), "run"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=minimal_env(self.office.root), start_new_session=True)
        self.tail = LogTail(self.log_path).start()
        self.children = ChildWatch(self.proc.pid).start()
        wait_until(lambda: "daemon ready" in self.log_text() or not self.running(), 60,
                   "the daemon to start")
        if not self.running():
            raise RuntimeError(f"the daemon exited at start:\n{self.log_text()[-3000:]}")
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.tail.text() if self.tail is not None else ""

    def stop(self, grace: float = 20.0) -> int | None:
        """SIGTERM; SIGKILL (the whole session's group) after ``grace`` seconds."""
        proc, self.proc = self.proc, None
        code: int | None = None
        try:
            if proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    code = proc.wait(grace)
                except subprocess.TimeoutExpired:
                    log(f"the daemon (pid {proc.pid}) ignored SIGTERM for {grace:.0f} s: "
                        "SIGKILL")
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    code = proc.wait(30)
        finally:
            time.sleep(0.1)  # let the tail read the last lines
            if self.children is not None:
                self.children.stop()
            if self.tail is not None:
                self.tail.stop()
        return code

    # -- observations ----------------------------------------------------------------------

    def settled(self) -> bool:
        assert self.children is not None
        if not self.running() or self.children.active():
            return False
        doc = self.office.status()
        return (doc["daemon"] == "running" and doc["pending_changes"] == 0
                and all(t["last_ok"] is True for t in doc["targets"].values()))

    def wait_settled(self, timeout: float, what: str) -> None:
        """Settled on two checks in a row, at least 1 s apart."""
        deadline = time.monotonic() + timeout
        streak = 0
        while streak < 2:
            if not self.running():
                raise RuntimeError(f"the daemon died:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}; "
                                   f"log tail:\n{self.log_text()[-2000:]}")
            streak = streak + 1 if self.settled() else 0
            time.sleep(1.0)


@contextlib.contextmanager
def office_with_server(workdir: Path, name: str) -> Iterator[Office]:
    """A fresh scenario folder with its own append-only REST server, always stopped."""
    root = (workdir / name).resolve()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    server = rest_server(root / "rest-data", root / "rclone")
    server.start()
    try:
        yield Office(root, server.url("bench"))
    finally:
        server.stop()
        gnupg = root / "state" / "gnupg"
        if gnupg.is_dir():  # the agent ``secops init`` started for this office only
            subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "gpg-agent"],
                           capture_output=True, timeout=30, check=False)


@contextlib.contextmanager
def running_daemon(office: Office) -> Iterator[Daemon]:
    d = Daemon(office, office.root / "daemon.log")
    try:
        d.start()
        yield d
    finally:
        code = d.stop()
        log(f"daemon stopped (exit {code})")


# ---------------------------------------------------------------- scenario 1: RPO


@dataclass
class RpoSample:
    index: int
    path: str
    size: int
    write_time: float
    done: dict[str, float] = field(default_factory=dict)
    snapshots: dict[str, str] = field(default_factory=dict)
    rpo_s: float = math.nan
    restic: list[dict[str, Any]] = field(default_factory=list)
    verified: bool | None = None


def rpo_scenario(workdir: Path, samples: int, pause: float, n_files: int = 5000
                 ) -> dict[str, Any]:
    """The 5,000-file tree as before; a larger one (``--rpo-files``) of smaller files (0.5-16
    KB, ~5 KB mean: 200,000 files are about 1 GB) in folders of 100."""
    folders = max(50, n_files // 100)
    size = log_uniform(1024, 256 * 1024) if n_files <= 5000 else log_uniform(512, 16 * 1024)
    with office_with_server(workdir, "rpo" if n_files == 5000 else f"rpo-{n_files}") as office:
        t = time.monotonic()
        files, nbytes = make_tree(office.tree, n_files, folders, size, 1)
        log(f"rpo: tree of {len(files)} files, {nbytes / 1e6:.0f} MB in "
            f"{time.monotonic() - t:.1f} s")
        office.write_config(debounce=2, max_delay=60)
        office.init()
        with running_daemon(office) as d:
            t = time.monotonic()
            d.wait_settled(900, "the first backup")
            first_backup_s = time.monotonic() - t
            log(f"rpo: first backup done and settled after {first_backup_s:.0f} s")
            rng = random.Random(2)  # noqa: S311 - sample data, not security
            out: list[RpoSample] = []
            for i in range(samples):
                d.wait_settled(120, f"the daemon to settle before sample {i}")
                time.sleep(pause)
                out.append(_rpo_sample(d, office, rng, i))
                s = out[-1]
                log(f"rpo: sample {i:2d}: {s.rpo_s:6.3f} s  " + "  ".join(
                    f"{c['target']}:{c['op']} {c['duration_s']}" for c in s.restic))
        _verify_rpo(office, out)
    values = [s.rpo_s for s in out]
    verified = all(s.verified for s in out)
    return {
        "tree": {"files": n_files, "folders": folders, "bytes": nbytes},
        "debounce_seconds": 2, "first_backup_settled_s": round(first_backup_s, 1),
        "rpo_s": summary(values), "bar_p95_s": RPO_BAR_P95_S,
        "bar_met": bool(values) and percentile(values, 95) <= RPO_BAR_P95_S and verified,
        "all_snapshots_verified": verified,
        "breakdown_median_s": _rpo_breakdown(out),
        # The daemon's loop notices a finished job only when its 0.5 s wait for watcher
        # events times out: completions land on a 0.5 s grid after the debounce fires.
        "after_debounce_mod_0_5_s": summary([(v - 2.0) % 0.5 for v in values]),
        "samples": [asdict(s) for s in out],
    }


def _rpo_sample(d: Daemon, office: Office, rng: random.Random, i: int) -> RpoSample:
    assert d.tail is not None and d.children is not None
    folders = sorted(p for p in office.tree.glob("*/*") if p.is_dir())
    # A voter-list-like CSV: what an office writes. (Random bytes under an unknown
    # extension, once a second, is what ransomware writes: the integrity monitor would
    # rightly contain the benchmark.)
    path = folders[rng.randrange(len(folders))] / f"rpo-{i:03d}.csv"
    size = rng.randint(10 * 1024, 200 * 1024)
    rows = [f"{n},Nguyen Van {rng.randrange(10**6):06d},{rng.randrange(1, 29):02d}/"
            f"{rng.randrange(1, 13):02d}/19{rng.randrange(40, 99)},Thon {n % 7}\n"
            for n in range(size // 40 + 1)]
    data = "".join(rows).encode()[:size]
    index = d.tail.count()
    with open(path, "wb") as f:
        f.write(data)
    sample = RpoSample(i, str(path), size, time.time())
    deadline = time.monotonic() + 180
    while set(sample.done) != set(TARGETS):
        if time.monotonic() > deadline:
            raise TimeoutError(f"sample {i}: no backup.completed on every target after 180 s:"
                               f"\n{d.log_text()[-2000:]}")
        for when, line in d.tail.since(index):
            if FAILED_RE.search(line):
                raise RuntimeError(f"sample {i}: {line}")
            m = COMPLETED_RE.search(line)
            if m and m["target"] not in sample.done:
                sample.done[m["target"]] = when
                sample.snapshots[m["target"]] = m["snap"]
        time.sleep(0.02)
    end = max(sample.done.values())
    sample.rpo_s = round(end - sample.write_time, 3)
    time.sleep(0.05)  # the child watch's last poll
    for c in d.children.between(sample.write_time, end):
        sample.restic.append({
            "target": _target_of(c.repository, office), "op": c.op,
            "start_s": round(c.start - sample.write_time, 3),
            "duration_s": None if c.duration is None else round(c.duration, 3)})
    return sample


def _target_of(repository: str, office: Office) -> str:
    return "local" if repository == str(office.root / "repo") else \
        "offsite" if repository == office.rest_url else repository


def _verify_rpo(office: Office, out: list[RpoSample]) -> None:
    """Every completion line's snapshot began at or after the write's second."""
    times: dict[str, dict[str, float]] = {}
    for target in TARGETS:
        times[target] = {
            str(s["id"])[:8]: dt.datetime.fromisoformat(
                str(s["time"]).replace("Z", "+00:00")).timestamp()
            for s in office.snapshots(target)}
    for s in out:
        s.verified = all(
            snap in times[t] and times[t][snap] >= math.floor(s.write_time)
            for t, snap in s.snapshots.items())


def _rpo_breakdown(out: list[RpoSample]) -> dict[str, Any]:
    """Medians of: write -> first restic start, each restic run, gaps, last exit -> log."""
    parts: dict[str, list[float]] = {}
    for s in out:
        runs = [r for r in s.restic if r["duration_s"] is not None]
        if not runs:
            continue
        parts.setdefault("write_to_first_restic_start", []).append(runs[0]["start_s"])
        prev_end = None
        for k, r in enumerate(runs):
            key = f"{k}:{r['target']}:{r['op']}"
            parts.setdefault(key, []).append(r["duration_s"])
            if prev_end is not None:
                parts.setdefault(f"gap_before_{key}", []).append(r["start_s"] - prev_end)
            prev_end = r["start_s"] + r["duration_s"]
        if prev_end is not None:
            parts.setdefault("last_restic_exit_to_log_line", []).append(s.rpo_s - prev_end)
        parts.setdefault("restic_runs_per_sample", []).append(float(len(runs)))
    return {k: round(statistics.median(v), 3) for k, v in parts.items()}


# ---------------------------------------------------------------- scenario 2: storm


def storm_scenario(workdir: Path, delays: Sequence[float], writes: int,
                   files: int, seconds: float) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    with office_with_server(workdir, "storm") as office:
        tree, nbytes = make_tree(office.tree, 5000, 50, log_uniform(1024, 256 * 1024), 3)
        targets = random.Random(4).sample(tree, files)  # noqa: S311 - sample data
        office.write_config(debounce=2, max_delay=delays[0])
        office.init()
        for max_delay in delays:
            office.write_config(debounce=2, max_delay=max_delay)
            with running_daemon(office) as d:
                d.wait_settled(900, "the first backup / catch-up after start")
                time.sleep(2)
                results.append(_storm_run(d, office, targets, writes=writes, seconds=seconds,
                                          max_delay=max_delay))
    return {"tree": {"files": 5000, "folders": 50, "bytes": nbytes}, "runs": results}


def _storm_run(d: Daemon, office: Office, targets: list[Path], *, writes: int,
               seconds: float, max_delay: float) -> dict[str, Any]:
    assert d.tail is not None and d.children is not None
    rss = RssSampler(d.pid).start()
    try:
        time.sleep(2)
        index = d.tail.count()
        hwm_before = status_kb(d.pid, "VmHWM")
        cpu0 = cpu_ticks(d.pid) or (0, 0)
        threads0, io0 = thread_ticks(d.pid), io_counters(d.pid)
        t0 = time.time()
        for k in range(writes):
            ahead = t0 + k * seconds / writes - time.time()
            if ahead > 0:
                time.sleep(ahead)
            # In place, as a database or an office suite saves: rewriting with O_TRUNC
            # makes ext4 start writeback on every close (auto_da_alloc), which alone
            # stretches 20,000 writes well past 10 s on this machine's disk.
            fd = os.open(targets[k % len(targets)], os.O_WRONLY)
            try:
                os.pwrite(fd, f"storm write {k:06d}\n".encode() * 48, 0)  # 912 bytes
            finally:
                os.close(fd)
        t1 = time.time()
        cpu1 = cpu_ticks(d.pid) or cpu0
        threads1, io1 = thread_ticks(d.pid), io_counters(d.pid)
        log(f"storm (max_delay {max_delay:g}): {writes} writes to {len(targets)} files in "
            f"{t1 - t0:.2f} s")
        d.wait_settled(900, "the daemon to settle after the storm")
        settled = time.time()
        cpu2 = cpu_ticks(d.pid) or cpu1
        time.sleep(10)
        t_end = time.time()
    finally:
        rss.stop()
    lines = d.tail.since(index)
    completions = [(w, m["target"]) for w, line in lines
                   if (m := COMPLETED_RE.search(line))]
    local = [w for w, tgt in completions if tgt == "local"]
    failed = [line for _, line in lines if FAILED_RE.search(line)]
    rescans = [line.split(" ", 3)[-1] for _, line in lines if "rescan (" in line]
    runs = [c for c in d.children.between(t0, t_end) if c.op == "backup"]
    local_runs = [c for c in runs if _target_of(c.repository, office) == "local"]
    bound = math.ceil(seconds / max_delay) + 1
    return {
        "max_delay_seconds": max_delay, "writes": writes, "files": len(targets),
        "storm_s": round(t1 - t0, 2), "settled_after_storm_s": round(settled - t1, 1),
        "bound": bound, "storm_on_time": t1 - t0 <= seconds * 1.05,
        "bound_for_actual_storm_length": math.ceil((t1 - t0) / max_delay) + 1,
        "backups_local_until_storm_end_plus_10s": sum(1 for w in local if w <= t1 + 10),
        "backups_local_until_settled": len(local),
        "bar_met": len(local) <= bound,
        "completion_times_after_storm_start_s": [round(w - t0, 1) for w in local],
        "restic_backup_runs_local": len(local_runs),
        "restic_backup_runs_local_started_s": [round(c.start - t0, 1) for c in local_runs],
        "restic_backup_runs_all_targets": len(runs),
        "failed_lines": failed, "rescans": rescans,
        # the daemon's own CPU (its threads: watcher, loop, worker hashing and scanning);
        # restic's is "children" (counted when reaped)
        "daemon_cpu_s": {"storm": round((cpu1[0] - cpu0[0]) / CLK_TCK, 2),
                         "storm_end_to_settled": round((cpu2[0] - cpu1[0]) / CLK_TCK, 2),
                         "children_storm_start_to_settled":
                             round((cpu2[1] - cpu0[1]) / CLK_TCK, 2),
                         # per thread id during the storm ("main" = the daemon's loop)
                         "storm_by_thread": {
                             ("main" if tid == d.pid else str(tid)):
                                 round((ticks - threads0.get(tid, 0)) / CLK_TCK, 2)
                             for tid, ticks in threads1.items()}},
        # /proc/PID/io during the storm: syscalls and bytes the daemon itself issued
        "daemon_io_storm": {k: io1.get(k, 0) - io0.get(k, 0)
                            for k in ("syscr", "syscw", "wchar", "write_bytes")},
        "rss_mb": {
            "before": rss.peak_mb(t0 - 2.5, t0),
            "peak_during_storm": rss.peak_mb(t0, t1),
            "peak_after_storm": rss.peak_mb(t1, t_end),
            "at_end": round(rss.samples[-1][1] / 1024, 1) if rss.samples else None,
            "vmhwm_before_kb": hwm_before, "vmhwm_end_kb": status_kb(d.pid, "VmHWM"),
        },
        "rss_series_mb": [(round(t - t0, 1), round(kb / 1024, 1))
                          for t, kb in rss.samples[::5]],
    }


# ---------------------------------------------------------------- scenario 3: idle


def idle_scenario(workdir: Path, files: int, folders: int, seconds: float) -> dict[str, Any]:
    with office_with_server(workdir, "idle") as office:
        t = time.monotonic()
        _, nbytes = make_tree(office.tree, files, folders, log_uniform(100, 4096), 5)
        log(f"idle: tree of {files} files in {folders} folders, {nbytes / 1e6:.0f} MB in "
            f"{time.monotonic() - t:.1f} s")
        office.write_config(debounce=2, max_delay=60)
        office.init()
        with running_daemon(office) as d:
            assert d.tail is not None and d.children is not None
            rss_ready = status_kb(d.pid, "VmRSS")
            t = time.monotonic()
            d.wait_settled(1800, "the first backup")
            first_s = time.monotonic() - t
            log(f"idle: first backup done and settled after {first_s:.0f} s; measuring")
            time.sleep(5)
            index = d.tail.count()
            threads = len(list(Path(f"/proc/{d.pid}/task").glob("*")))
            c0, ch0 = cpu_ticks(d.pid) or (0, 0)
            sw0 = context_switches(d.pid)
            w0 = time.monotonic()
            series: list[tuple[float, int, int]] = []  # (t, ticks, rss kB)
            while time.monotonic() - w0 < seconds:
                time.sleep(1.0)
                ticks = cpu_ticks(d.pid)
                rss = status_kb(d.pid, "VmRSS")
                if ticks is not None and rss is not None:
                    series.append((time.monotonic() - w0, ticks[0], rss))
            c1, ch1 = cpu_ticks(d.pid) or (c0, ch0)
            sw1 = context_switches(d.pid)
            wall = time.monotonic() - w0
            hwm = status_kb(d.pid, "VmHWM")
            rollup = smaps_rollup(d.pid)
            new_lines = [line for _, line in d.tail.since(index)]
            kids = d.children.between(time.time() - wall, time.time())
    cpu_pct = 100 * (c1 - c0) / CLK_TCK / wall
    rss_mb = [kb / 1024 for _, _, kb in series]
    per_s = [100 * (b[1] - a[1]) / CLK_TCK / (b[0] - a[0])
             for a, b in itertools.pairwise(series)]
    return {
        "tree": {"files": files, "folders": folders, "bytes": nbytes},
        "first_backup_settled_s": round(first_s, 1), "window_s": round(wall, 1),
        "cpu_pct": round(cpu_pct, 3), "cpu_s": round((c1 - c0) / CLK_TCK, 2),
        "children_cpu_s": round((ch1 - ch0) / CLK_TCK, 2),
        "cpu_pct_per_second_max": round(max(per_s), 1) if per_s else None,
        "rss_mb": {"max": round(max(rss_mb), 1), "min": round(min(rss_mb), 1),
                   "at_ready": None if rss_ready is None else round(rss_ready / 1024, 1),
                   "vmhwm_mb": None if hwm is None else round(hwm / 1024, 1),
                   "smaps_rollup": {k: round(v / 1024, 1) for k, v in rollup.items()}},
        "threads": threads, "context_switches_per_s": round((sw1 - sw0) / wall, 1),
        "log_lines_in_window": new_lines, "restic_children_in_window": len(kids),
        "bar_cpu_pct": IDLE_CPU_BAR_PCT, "bar_rss_mb": IDLE_RSS_BAR_MB,
        "bar_met": cpu_pct < IDLE_CPU_BAR_PCT and max(rss_mb) < IDLE_RSS_BAR_MB,
    }


# ---------------------------------------------------------------- main


def machine() -> dict[str, Any]:
    restic = subprocess.run(["restic", "version"], capture_output=True, text=True, check=False)
    rclone = subprocess.run(["rclone", "version"], capture_output=True, text=True, check=False)
    head = subprocess.run(["git", "-C", str(PROJECT), "log", "-1", "--format=%h %cI",
                           "--", "secops"], capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "-C", str(PROJECT), "status", "--porcelain", "--", "secops"],
                           capture_output=True, text=True, check=False)
    return {"python": platform.python_version(), "cpus": os.cpu_count(),
            "secops_last_commit": head.stdout.strip(),
            "secops_uncommitted_changes": bool(dirty.stdout.strip()),
            "restic": restic.stdout.strip(), "rclone": rclone.stdout.splitlines()[0],
            "loadavg_at_start": os.getloadavg(), "kernel": platform.release()}


def plot_rpo(results: dict[str, Any], path: Path) -> bool:
    """RPO (median, p95) and its parts over tree size, from every ``rpo``/``rpo-N`` result
    in ``results``; False without matplotlib or with fewer than two sizes."""
    runs = sorted((r for k, r in results.items() if k == "rpo" or k.startswith("rpo-")),
                  key=lambda r: r["tree"]["files"])
    if len(runs) < 2:
        return False
    if str(PROJECT) not in sys.path:
        sys.path.append(str(PROJECT))
    from bench.tree import pyplot

    plt = pyplot()
    if plt is None:
        return False
    files = [r["tree"]["files"] for r in runs]

    def restic_median(r: dict[str, Any]) -> float:
        runs_s = [v for k, v in r["breakdown_median_s"].items()
                  if k[:1].isdigit() and k.endswith(":backup")]
        return statistics.median(runs_s) if runs_s else math.nan

    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(files, [r["rpo_s"]["median"] for r in runs], "o-", label="RPO, median")
    ax.plot(files, [r["rpo_s"]["p95"] for r in runs], "s-", label="RPO, p95")
    ax.plot(files, [r["breakdown_median_s"].get("write_to_first_restic_start", math.nan)
                    for r in runs], "^--",
            label="write -> restic starts (debounce 2 s, manifest)")
    ax.plot(files, [restic_median(r) for r in runs], "v--",
            label="one restic backup (both targets side by side)")
    ax.axhline(RPO_BAR_P95_S, color="tab:red", linestyle=":", label="bar: p95 6 s")
    ax.set(xscale="log", xlabel="files in the watched tree", ylabel="seconds",
           title="RPO of a one-file change over tree size (2 targets)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--only", choices=["rpo", "storm", "idle"])
    ap.add_argument("--workdir", type=Path, default=PROJECT / "bench" / ".work-daemon")
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--plot", type=Path, metavar="PNG",
                    help="draw the RPO over tree size from WORKDIR/results.json and exit")
    ap.add_argument("--rpo-files", type=int, default=5000,
                    help="the RPO tree's size (results key rpo, or rpo-N when not 5000)")
    ap.add_argument("--pause", type=float, default=1.0)
    ap.add_argument("--storm-delays", default="60,5")
    ap.add_argument("--storm-writes", type=int, default=20_000)
    ap.add_argument("--storm-files", type=int, default=2_000)
    ap.add_argument("--storm-seconds", type=float, default=10.0)
    ap.add_argument("--idle-files", type=int, default=50_000)
    ap.add_argument("--idle-folders", type=int, default=500)
    ap.add_argument("--idle-seconds", type=float, default=60.0)
    args = ap.parse_args(argv)
    # SIGTERM (and SIGINT, ignored in background jobs) unwind normally: every ``finally``
    # stops the daemon and rclone this run started.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    if args.samples < 20:
        ap.error("--samples must be at least 20")
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    out_path = workdir / "results.json"
    results: dict[str, Any] = {}
    if out_path.exists():
        with contextlib.suppress(ValueError):
            results = json.loads(out_path.read_text())
    results["machine"] = machine()

    if args.plot is not None:
        return 0 if plot_rpo(results, args.plot) else 1

    def save() -> None:
        out_path.write_text(json.dumps(results, indent=2) + "\n")

    if args.only in (None, "rpo"):
        key = "rpo" if args.rpo_files == 5000 else f"rpo-{args.rpo_files}"
        results[key] = rpo_scenario(workdir, args.samples, args.pause, args.rpo_files)
        save()
        r = results[key]["rpo_s"]
        log(f"RPO ({args.rpo_files} files): median {r['median']} s, p95 {r['p95']} s, max "
            f"{r['max']} s; bar p95 <= {RPO_BAR_P95_S} s: {results[key]['bar_met']}")
    if args.only in (None, "storm"):
        delays = [float(x) for x in args.storm_delays.split(",") if x]
        results["storm"] = storm_scenario(workdir, delays, args.storm_writes,
                                          args.storm_files, args.storm_seconds)
        save()
        for run in results["storm"]["runs"]:
            log(f"storm max_delay {run['max_delay_seconds']:g}: "
                f"{run['backups_local_until_settled']} backups (bound {run['bound']}), "
                f"peak RSS {run['rss_mb']['peak_during_storm']} / "
                f"{run['rss_mb']['peak_after_storm']} MB")
    if args.only in (None, "idle"):
        results["idle"] = idle_scenario(workdir, args.idle_files, args.idle_folders,
                                        args.idle_seconds)
        save()
        i = results["idle"]
        log(f"idle: CPU {i['cpu_pct']} %, RSS max {i['rss_mb']['max']} MB; "
            f"bar met: {i['bar_met']}")
    results["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
