"""Benchmark: ``secops backup now`` against the same ``restic backup`` run by hand.

The bar (issue): on a tree of about 5,000 files / 700 MB, ``secops backup now`` to a local
target takes at most 1.10x the wall time of the same ``restic backup`` run by hand, for the
first backup and for an incremental one with one changed file; the secops process itself
(not restic) peaks under 150 MB RSS.

What is timed is the whole command, process start to exit (``posix_spawn`` to ``wait4``),
for both sides, each against its own repository and its own restic cache:

* secops: ``.venv/bin/secops --config CFG backup now --target local --json``
* by hand: ``restic backup --json --tag ... --exclude ... -- TREE`` with the argv and the
  environment that secops itself passes to restic.  They are not typed in here: an untimed
  warm-up run of secops goes through a recording wrapper (``restic_binary``) that writes
  down the argv and environment secops gives restic, and the anchor reuses them, with only
  the repository, password file, cache folder and HOME swapped for its own, and only the
  watched paths: secops also backs up its signed manifest folder, which a person running
  restic by hand would not have, so that and building the manifest count as secops' cost.

A "first backup" is a first backup for both: fresh repositories and caches, and on the
secops side also no hash cache (``state.db``) and no manifest, so secops hashes every file.

Rounds alternate which side goes first; ``sync`` and a short pause come before every timed
command and every repository is created (``restic init``) outside the timed region.  The
tree is read once before the rounds so that both sides find it in the page cache.  Besides
the median of the paired ratios (secops/restic, same round) the report gives an
order-balanced ratio, the geometric mean of the median ratio with secops first and with
restic first: on a shared machine the second run of a first-backup pair is often slower,
and an odd number of rounds would hand that bias to one side.  An A/A control (restic
against restic) measures that order effect, the noise floor of the paired ratios.

Peak RSS of the secops Python process is VmHWM from ``/proc/PID/status`` polled every 10 ms
(restic's own peak is its polled VmHWM and the ``wait4`` rusage of the by-hand run).

After the timed rounds a diagnostic pass runs secops under a small driver that timestamps
its phases in-process (interpreter start, imports, building the manifest, the restic run,
the stability rescan, snapshot id lookup, the rest, shutdown), for first and incremental
backups, and records ``PYTHONPROFILEIMPORTTIME``.  "Outside restic" (wall minus the restic
run inside secops) is what secops adds; the projected ratio is (restic by hand + outside
restic) / restic by hand, free of the order effect.  The report gives the verdict on both
the measured (order-balanced) and the projected ratio.

Every secops process imports a copy of secops/ taken at the start (from the working tree,
or from ``--source-rev REV``) so that one run measures one version while the project is
being edited; ``--live-source`` imports the project itself.

Run: ``.venv/bin/python bench/backup_bench.py [--files 5000] [--mb 700] [--rounds 5]
[--first-rounds 4] [--control-rounds 4] [--phase-runs 3] [--pause 2] [--source-rev REV]
[--workdir bench/.work]``; results also go to WORKDIR/results.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
if __package__ in (None, "") and str(PROJECT) not in sys.path:  # run as bench/backup_bench.py
    sys.path.append(str(PROJECT))
from bench.tree import SEED, Entry, ensure_tree, read_tree  # noqa: E402

VENV_BIN = PROJECT / ".venv" / "bin"
SECOPS = VENV_BIN / "secops"
PYTHON = VENV_BIN / "python"

OFFICE_CODE = "bench"
TARGET = "local"
EXCLUDES = ("*.tmp", "~$*", ".~lock.*#")
# What secops is documented to run; the anchor uses what secops was *seen* to run, and the
# report says whether the two agree.
EXPECTED_TAGS = f"secops,office:{OFFICE_CODE},reason:manual"

RATIO_BAR = 1.10
RSS_BAR_MIB = 150.0
POLL_S = 0.010

# ------------------------------------------------------------------------------------------
# running a command
# ------------------------------------------------------------------------------------------


@dataclass
class Run:
    wall_s: float
    returncode: int
    cpu_s: float  # user + system of the process and of the children it waited for
    # wait4 ru_maxrss: max over the process, the children it waited for and (Linux counts
    # the memory it had at exec; posix_spawn shares ours until then) this harness
    maxrss_kib: int
    hwm_kib: int  # VmHWM of the process itself, polled; 0 when never seen
    t_spawn: float = 0.0  # time.monotonic() just before the spawn
    t_reaped: float = 0.0  # time.monotonic() just after wait4


def _read_hwm(pid: int, parent: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    ppid = re.search(r"^PPid:\s+(\d+)", text, re.M)
    if ppid is None or int(ppid.group(1)) != parent:  # a reused pid is not ours
        return None
    m = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else None


class HwmPoller(threading.Thread):
    """Polls /proc/PID/status VmHWM (a high-water mark: missing a sample loses nothing but
    the last few milliseconds)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.parent = os.getpid()
        self.peak_kib = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            v = _read_hwm(self.pid, self.parent)
            if v is not None and v > self.peak_kib:
                self.peak_kib = v
            self.done.wait(POLL_S)

    def stop(self) -> int:
        self.done.set()
        self.join()
        return self.peak_kib


def spawn(argv: Sequence[str], env: Mapping[str, str], out: Path, err: Path) -> Run:
    """Run ``argv`` (absolute path first) to completion; stdout and stderr to files."""
    wr = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(out), wr, 0o600),
        (os.POSIX_SPAWN_OPEN, 2, str(err), wr, 0o600),
    ]
    t_spawn = time.monotonic()
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], list(argv), dict(env), file_actions=actions)
    poller = HwmPoller(pid)
    poller.start()
    _, status, ru = os.wait4(pid, 0)
    t1 = time.perf_counter()
    t_reaped = time.monotonic()
    hwm = poller.stop()
    return Run(t1 - t0, os.waitstatus_to_exitcode(status), ru.ru_utime + ru.ru_stime,
               ru.ru_maxrss, hwm, t_spawn, t_reaped)


def capture(argv: Sequence[str], env: Mapping[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), env=None if env is None else dict(env),
                          capture_output=True, text=True, timeout=timeout, check=False)


# ------------------------------------------------------------------------------------------
# the two sides
# ------------------------------------------------------------------------------------------


@dataclass
class Layout:
    work: Path
    tree: Path
    manifest: Path
    logs: Path
    cfg: Path  # the secops config
    cfg_record: Path  # the same, with restic_binary = the recording wrapper
    recorder: Path
    record_log: Path
    state: Path  # secops state_dir
    secops_repo: Path
    restic_dir: Path  # everything of the by-hand side
    restic_repo: Path
    restic_cache: Path
    restic_password: Path

    @classmethod
    def at(cls, work: Path) -> Layout:
        rd = work / "by-hand"
        return cls(work=work, tree=work / "tree", manifest=work / "tree.manifest.json",
                   logs=work / "logs", cfg=work / "secops.toml",
                   cfg_record=work / "secops-record.toml", recorder=work / "record-restic",
                   record_log=work / "record.jsonl", state=work / "secops-state",
                   secops_repo=work / "repo-secops", restic_dir=rd,
                   restic_repo=rd / "repo", restic_cache=rd / "cache",
                   restic_password=rd / "restic.password")

    @property
    def secops_password(self) -> Path:
        return self.state / "keys" / f"restic-{TARGET}.password"

    @property
    def secops_cache(self) -> Path:
        return self.state / "cache"


def write_config(path: Path, lay: Layout, restic_binary: str | None) -> None:
    def q(s: str | Path) -> str:
        return json.dumps(str(s), ensure_ascii=False)  # a TOML basic string

    backup = f"[backup]\nrestic_binary = {q(restic_binary)}\n\n" if restic_binary else ""
    path.write_text(
        "# written by bench/backup_bench.py\n"
        f'[office]\nname = "Bench"\ncode = "{OFFICE_CODE}"\n\n'
        f"[paths]\nstate_dir = {q(lay.state)}\nwatch = [{q(lay.tree)}]\n"
        f"exclude = [{', '.join(q(x) for x in EXCLUDES)}]\n\n"
        f"{backup}"
        f'[[backup.targets]]\nname = "{TARGET}"\nrepository = {q(lay.secops_repo)}\n',
        encoding="utf-8")


RECORDER = """\
#!{python}
# Records the argv and environment secops gives restic, then becomes restic.
import json, os, sys
with open({log!r}, "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "env": dict(os.environ)}}) + "\\n")
os.execv({restic!r}, [{restic!r}, *sys.argv[1:]])
"""


def base_env(home: Path) -> dict[str, str]:
    """The environment secops documents for restic (used until the recorded one is known)."""
    return {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": str(home),
            "LANG": "C.UTF-8", "TMPDIR": os.environ.get("TMPDIR", "/tmp")}


def restic_env(base: Mapping[str, str], repo: Path, password: Path, cache: Path,
               home: Path) -> dict[str, str]:
    env = dict(base)
    env.update(RESTIC_REPOSITORY=str(repo), RESTIC_PASSWORD_FILE=str(password),
               RESTIC_CACHE_DIR=str(cache), HOME=str(home))
    return env


# PYTHONPATH of a frozen copy of secops/ (see --live-source), set by main()
SECOPS_EXTRA_ENV: dict[str, str] = {}


def secops_env() -> dict[str, str]:
    env = dict(os.environ)
    for k in ("SECOPS_CONFIG", "PYTHONPROFILEIMPORTTIME", "PYTHONTRACEMALLOC", "PYTHONDEVMODE",
              "PYTHONPATH"):
        env.pop(k, None)
    env.update(SECOPS_EXTRA_ENV)
    return env


def freeze_source(dest: Path, rev: str | None) -> None:
    """Copy secops/ (as in the working tree, or as in git revision ``rev``) to
    ``dest``/secops; every secops process then imports that copy, so one run measures one
    version even while others edit the project."""
    if dest.exists():
        shutil.rmtree(dest)
    if rev is None:
        shutil.copytree(PROJECT / "secops", dest / "secops",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        tar = subprocess.run(["git", "-C", str(PROJECT), "archive", "--format=tar", rev,
                              "secops"], capture_output=True, check=True, timeout=120).stdout
        dest.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
            tf.extractall(dest, filter="data")
    SECOPS_EXTRA_ENV["PYTHONPATH"] = str(dest)


def clear_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


@dataclass
class Sides:
    lay: Layout
    restic: str
    anchor_args: list[str]  # restic's argv after the binary, as secops passes it
    anchor_base_env: dict[str, str]  # the environment secops passes, minus the per-side keys

    def fresh_repo(self, repo: Path, pw: Path, cache: Path, home: Path) -> None:
        """A new, empty repository and an empty cache (untimed)."""
        if repo.exists():
            shutil.rmtree(repo)
        clear_dir(cache)
        done = capture([self.restic, "init"],
                       restic_env(self.anchor_base_env, repo, pw, cache, home))
        if done.returncode != 0:
            raise SystemExit(f"restic init {repo} failed: {done.stderr.strip()}")

    def fresh_repos(self) -> None:
        """New, empty repositories and caches for both sides (untimed).  On the secops side
        also its hash cache and manifest folder: a first backup hashes every file."""
        lay = self.lay
        for db in lay.state.glob("state.db*"):
            db.unlink()
        shutil.rmtree(lay.state / "snapshot-manifest", ignore_errors=True)
        self.fresh_repo(lay.secops_repo, lay.secops_password, lay.secops_cache, lay.state)
        self.fresh_repo(lay.restic_repo, lay.restic_password, lay.restic_cache, lay.restic_dir)

    def secops_argv(self, cfg: Path | None = None) -> list[str]:
        return [str(SECOPS), "--config", str(cfg or self.lay.cfg), "backup", "now", "--target",
                TARGET, "--json"]

    def run_secops(self, label: str, cfg: Path | None = None) -> tuple[Run, dict[str, Any]]:
        out, err = self.lay.logs / f"{label}.secops.out", self.lay.logs / f"{label}.secops.err"
        run = spawn(self.secops_argv(cfg), secops_env(), out, err)
        try:
            doc = json.loads(out.read_text())
            res: dict[str, Any] = doc["results"][0]
        except (ValueError, KeyError, IndexError):
            res = {}
        if run.returncode != 0 or not res.get("ok"):
            raise SystemExit(f"{label}: secops failed (exit {run.returncode}): "
                             f"{err.read_text()[-2000:]}{out.read_text()[-2000:]}")
        return run, res

    def run_restic(self, label: str, repo: Path | None = None,
                   cache: Path | None = None) -> tuple[Run, dict[str, Any]]:
        lay = self.lay
        out, err = lay.logs / f"{label}.restic.out", lay.logs / f"{label}.restic.err"
        env = restic_env(self.anchor_base_env, repo or lay.restic_repo, lay.restic_password,
                         cache or lay.restic_cache, lay.restic_dir)
        run = spawn([self.restic, *self.anchor_args], env, out, err)
        summary: dict[str, Any] = {}
        for line in out.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"summary"' in line:
                summary = json.loads(line)
        if run.returncode != 0 or not summary:
            raise SystemExit(f"{label}: restic by hand failed (exit {run.returncode}): "
                             f"{err.read_text()[-2000:]}")
        return run, summary


# ------------------------------------------------------------------------------------------
# set-up
# ------------------------------------------------------------------------------------------


def log(msg: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def setup(lay: Layout, restic: str) -> None:
    for d in (lay.work, lay.logs, lay.restic_dir):
        d.mkdir(parents=True, exist_ok=True)
    write_config(lay.cfg, lay, None)
    write_config(lay.cfg_record, lay, str(lay.recorder))
    lay.recorder.write_text(RECORDER.format(python=PYTHON, log=str(lay.record_log),
                                            restic=restic))
    lay.recorder.chmod(0o755)
    if not lay.secops_password.exists():
        log("secops init (state folder, keys incl. GPG, repository; once)")
        done = capture([str(SECOPS), "--config", str(lay.cfg), "init", "--json"], secops_env(),
                       timeout=1800)
        if done.returncode != 0:
            raise SystemExit(f"secops init failed: {done.stderr.strip()} {done.stdout.strip()}")
    if not lay.restic_password.exists():
        fd = os.open(lay.restic_password, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(lay.secops_password.read_bytes())


@dataclass
class Parity:
    restic_calls: int
    argv: list[str]  # what secops runs (after the binary)
    anchor_argv: list[str]  # what the anchor runs: the same, on the watched paths only
    extra_paths: list[str]  # what secops backs up besides the watched paths (its manifest)
    argv_as_documented: bool  # anchor_argv == the documented restic call
    env_keys: list[str]
    env_as_documented: bool


def record_secops_call(sides: Sides) -> Parity:
    """Untimed warm-up of the secops side through the recording wrapper: what does secops
    give restic?  The anchor then uses exactly that argv and environment, except for paths
    secops adds to the watched ones (its signed manifest folder): a person running restic
    by hand backs up the watched folders, and what secops adds is secops' cost."""
    lay = sides.lay
    if lay.record_log.exists():
        lay.record_log.unlink()
    sides.run_secops("warmup-record", lay.cfg_record)
    calls = [json.loads(x) for x in lay.record_log.read_text().splitlines() if x.strip()]
    backups = [c for c in calls if "backup" in c["argv"]]
    if len(backups) != 1:
        raise SystemExit(f"expected one restic backup call from secops, saw {calls}")
    argv: list[str] = backups[0]["argv"]
    env: dict[str, str] = backups[0]["env"]
    expected = ["backup", "--json", "--tag", EXPECTED_TAGS]
    for pat in EXCLUDES:
        expected += ["--exclude", pat]
    expected += ["--", str(lay.tree)]
    documented = {**base_env(lay.state), "RESTIC_REPOSITORY": str(lay.secops_repo),
                  "RESTIC_PASSWORD_FILE": str(lay.secops_password),
                  "RESTIC_CACHE_DIR": str(lay.secops_cache)}
    cut = argv.index("--") + 1 if "--" in argv else len(argv)
    extra = [a for a in argv[cut:] if a != str(lay.tree)]
    anchor = [*argv[:cut], *(a for a in argv[cut:] if a == str(lay.tree))]
    sides.anchor_args = anchor
    sides.anchor_base_env = {k: v for k, v in env.items()
                             if k not in ("RESTIC_REPOSITORY", "RESTIC_PASSWORD_FILE",
                                          "RESTIC_CACHE_DIR", "HOME")}
    return Parity(len(calls), argv, anchor, extra, anchor == expected, sorted(env),
                  env == documented)


# ------------------------------------------------------------------------------------------
# the measurements
# ------------------------------------------------------------------------------------------


@dataclass
class Pair:
    round: int
    first: str  # which side ran first
    secops: Run
    restic: Run
    secops_result: dict[str, Any]
    restic_summary: dict[str, Any]

    @property
    def ratio(self) -> float:
        return self.secops.wall_s / self.restic.wall_s


def settle(pause: float) -> None:
    """Outside the timed region: the other side's writes go to disk, then a pause."""
    os.sync()
    time.sleep(pause)


def run_pair(sides: Sides, label: str, rnd: int, pause: float) -> Pair:
    order = ("secops", "restic") if rnd % 2 == 0 else ("restic", "secops")
    s_run: tuple[Run, dict[str, Any]] | None = None
    r_run: tuple[Run, dict[str, Any]] | None = None
    for side in order:
        settle(pause)
        if side == "secops":
            s_run = sides.run_secops(f"{label}-{rnd}")
        else:
            r_run = sides.run_restic(f"{label}-{rnd}")
    assert s_run is not None and r_run is not None
    pair = Pair(rnd, order[0], s_run[0], r_run[0], s_run[1], r_run[1])
    log(f"{label} round {rnd} ({order[0]} first): secops {pair.secops.wall_s:.3f} s, "
        f"restic {pair.restic.wall_s:.3f} s, ratio {pair.ratio:.3f}, "
        f"secops VmHWM {pair.secops.hwm_kib / 1024:.1f} MiB")
    return pair


def append_line(path: Path, rnd: int) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{90000 + rnd},Bổ sung Nguyễn Văn Bench {rnd},01/01/1990,Nam,Kinh,thon-1\n")


def changed_file(entries: Sequence[Entry], tree: Path, rnd: int) -> Path:
    csvs = [e for e in entries if e.kind == "csv"]
    return tree / csvs[(rnd * 97 + 13) % len(csvs)].rel


@dataclass
class Stat:
    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, xs: Iterable[float]) -> Stat:
        v = list(xs)
        return cls(statistics.median(v), min(v), max(v), len(v))


def balanced_ratio(pairs: Sequence[Pair]) -> float:
    """Geometric mean of the median ratio with secops first and with restic first: an order
    effect (the second run of a pair is slower, or faster) cancels out even when the rounds
    do not split evenly between the two orders."""
    by_order = [[p.ratio for p in pairs if p.first == side] for side in ("secops", "restic")]
    if not all(by_order):
        return statistics.median(p.ratio for p in pairs)
    return math.sqrt(statistics.median(by_order[0]) * statistics.median(by_order[1]))


def summarise_pairs(pairs: Sequence[Pair]) -> dict[str, Any]:
    return {
        "secops_wall_s": asdict(Stat.of(p.secops.wall_s for p in pairs)),
        "restic_wall_s": asdict(Stat.of(p.restic.wall_s for p in pairs)),
        "ratio": asdict(Stat.of(p.ratio for p in pairs)),
        "ratio_secops_first": [p.ratio for p in pairs if p.first == "secops"],
        "ratio_restic_first": [p.ratio for p in pairs if p.first == "restic"],
        "ratio_balanced": balanced_ratio(pairs),
        "ratio_of_medians": statistics.median(p.secops.wall_s for p in pairs)
        / statistics.median(p.restic.wall_s for p in pairs),
        "overhead_ms": asdict(Stat.of(1000 * (p.secops.wall_s - p.restic.wall_s)
                                      for p in pairs)),
        "secops_cpu_s": asdict(Stat.of(p.secops.cpu_s for p in pairs)),
        "restic_cpu_s": asdict(Stat.of(p.restic.cpu_s for p in pairs)),
        "secops_hwm_mib": asdict(Stat.of(p.secops.hwm_kib / 1024 for p in pairs)),
        "restic_hwm_mib": asdict(Stat.of(p.restic.hwm_kib / 1024 for p in pairs)),
        "restic_maxrss_mib": asdict(Stat.of(p.restic.maxrss_kib / 1024 for p in pairs)),
        "rounds": [
            {"round": p.round, "first": p.first, "secops": asdict(p.secops),
             "restic": asdict(p.restic), "ratio": p.ratio,
             "secops_result": p.secops_result,
             "restic_summary": {k: v for k, v in p.restic_summary.items()
                                if k != "message_type"}}
            for p in pairs
        ],
    }


def check_same_work(pairs: Sequence[Pair], incremental: bool, extra_files: int
                    ) -> list[str]:
    """Both sides must have backed up the same thing (secops: plus ``extra_files`` of its
    own, the manifest and its signature)."""
    problems = []
    for p in pairs:
        s, r = p.secops_result, p.restic_summary
        keys = ("files_new", "files_changed") if incremental else ("files_new",)
        for k in keys:
            sv, rv = s.get(k), r.get(k)
            if not isinstance(sv, int) or not isinstance(rv, int) or not (
                    rv <= sv <= rv + extra_files):
                problems.append(f"round {p.round}: {k} secops {sv} vs restic {rv}")
        if incremental and r.get("files_changed") != 1:
            problems.append(f"round {p.round}: restic saw {r.get('files_changed')} changed files")
        if len(str(s.get("snapshot_id", ""))) != 64:
            problems.append(f"round {p.round}: secops snapshot id {s.get('snapshot_id')!r}")
    return problems


def startup(lay: Layout, restic: str, runs: int) -> dict[str, Any]:
    """Start-up alone: commands interleaved round-robin, median and min wall."""
    cmds: dict[str, list[str]] = {
        "python -I -S -c pass": [str(PYTHON), "-I", "-S", "-c", "pass"],
        "python -c pass (venv)": [str(PYTHON), "-c", "pass"],
        "secops --help": [str(SECOPS), "--help"],
        "secops config check --json": [str(SECOPS), "--config", str(lay.cfg), "config",
                                       "check", "--json"],
        "restic version": [restic, "version"],
    }
    env = secops_env()
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for i in range(runs + 1):
        for name, argv in cmds.items():
            r = spawn(argv, env, lay.logs / "startup.out", lay.logs / "startup.err")
            if r.returncode != 0:
                raise SystemExit(f"{name} failed: {(lay.logs / 'startup.err').read_text()}")
            if i:  # the first pass warms the caches
                times[name].append(r.wall_s)
    return {name: asdict(Stat.of(ts)) for name, ts in times.items()}


PHASE_DRIVER = """\
import time
t_main = time.monotonic()
import json
import sys
marks = {"main": t_main}
spans = {}
calls = []


def _span(name, fn):
    def timed(*a, **k):
        t0 = time.monotonic()
        try:
            return fn(*a, **k)
        finally:
            spans[name] = spans.get(name, 0.0) + time.monotonic() - t0
    return timed


try:  # before anything binds process.run (Restic's default runner)
    import secops.process as _process

    _orig_run = _process.run

    def _run(argv, *a, **k):
        t0 = time.monotonic()
        try:
            return _orig_run(argv, *a, **k)
        finally:
            calls.append({"args": [str(x) for x in list(argv)[1:3]], "start": t0,
                          "end": time.monotonic()})

    _process.run = _run
    marks["module"] = _process.__file__
except Exception as e:
    marks["patch_error_process"] = repr(e)
try:
    import secops.backup.engine as _engine

    if hasattr(_engine.Engine, "build_manifest"):
        _engine.Engine.build_manifest = _span("manifest", _engine.Engine.build_manifest)
    if hasattr(_engine, "changed_since"):
        _engine.changed_since = _span("rescan", _engine.changed_since)
    _restic = sys.modules.get("secops.backup.restic")
    if _restic is not None and hasattr(_restic.Restic, "_full_id"):
        _restic.Restic._full_id = _span("full_id", _restic.Restic._full_id)
except Exception as e:
    marks["patch_error_engine"] = repr(e)
marks["engine"] = time.monotonic()
from secops.cli.main import main
marks["imported"] = time.monotonic()
code = 0
try:
    main(sys.argv[2:])
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
finally:
    marks["main_done"] = time.monotonic()
    with open(sys.argv[1], "w") as f:
        json.dump({"marks": marks, "spans": spans, "calls": calls}, f)
sys.exit(code)
"""

PHASE_ROWS = (
    "interpreter start (exec, site, venv .pth)",
    "import secops.process, secops.backup.engine (lazy in the CLI)",
    "import CLI (click, secops.cli.*)",
    "manifest: scan, hash changed files, sign, write",
    "restic run inside secops (spawn to exit)",
    "stability rescan after restic",
    "snapshot id lookup",
    "CLI parse, config load, set-up, JSON output (rest)",
    "interpreter shutdown",
    "secops outside restic (wall - restic run)",
    "wall",
)


def phase_breakdown(sides: Sides, entries: Sequence[Entry], kind: str, runs: int,
                    pause: float) -> dict[str, Any]:
    """Diagnostic: where the secops wall time goes, each run split in-process (so that no
    order effect between two commands enters), in first backups (``kind`` "first", fresh
    repositories) or incremental ones (one changed file); each followed by a by-hand run."""
    lay = sides.lay
    rows: list[dict[str, float]] = []
    restic_walls: list[float] = []
    imported_from = ""
    for i in range(runs):
        if kind == "first":
            sides.fresh_repos()
        else:
            append_line(changed_file(entries, lay.tree, 2000 + i), 2000 + i)
        settle(pause)
        name = f"phases-{kind}-{i}"
        out = lay.logs / f"{name}.json"
        argv = [str(PYTHON), "-c", PHASE_DRIVER, str(out), *sides.secops_argv()[1:]]
        run = spawn(argv, secops_env(), lay.logs / f"{name}.out", lay.logs / f"{name}.err")
        if run.returncode != 0:
            raise SystemExit(f"phase run failed: {(lay.logs / f'{name}.err').read_text()}")
        settle(pause)
        restic_walls.append(sides.run_restic(name)[0].wall_s)
        doc = json.loads(out.read_text())
        m, spans = doc["marks"], doc["spans"]
        imported_from = str(m.get("module", "?"))
        restic_in = sum(c["end"] - c["start"] for c in doc["calls"] if "backup" in c["args"])
        shutdown = run.t_reaped - m["main_done"]
        named = [m["main"] - run.t_spawn, m["engine"] - m["main"], m["imported"] - m["engine"],
                 spans.get("manifest", 0.0), restic_in, spans.get("rescan", 0.0),
                 spans.get("full_id", 0.0)]
        values = [*named, run.wall_s - sum(named) - shutdown, shutdown,
                  run.wall_s - restic_in, run.wall_s]
        row = dict(zip(PHASE_ROWS, values, strict=True))
        row["restic calls"] = float(len(doc["calls"]))
        for k in ("patch_error_process", "patch_error_engine"):
            if k in m:
                log(f"{name}: {k}: {m[k]}")
        rows.append(row)
        log(f"{name}: " + ", ".join(f"{k.split(' (')[0]} {1000 * v:.0f}"
                                         for k, v in row.items() if k != "restic calls"))
    keys = list(rows[0])
    med = {k: statistics.median(r.get(k, 0.0) for r in rows) for k in keys}
    return {"median_s": med, "restic_by_hand_wall_s": asdict(Stat.of(restic_walls)),
            "runs": rows, "imported_from": imported_from}


def order_control(sides: Sides, rounds: int, pause: float) -> dict[str, Any]:
    """A/A control: restic by hand against restic by hand, two fresh repositories, the same
    first backup one after the other.  The ratio second/first is the order effect of this
    machine, the noise floor any first-backup ratio has to be read against."""
    lay = sides.lay
    repos = [(lay.restic_dir / f"control-{x}", lay.restic_dir / f"control-{x}-cache")
             for x in ("a", "b")]
    ratios: list[float] = []
    for rnd in range(rounds):
        for repo, cache in repos:
            sides.fresh_repo(repo, lay.restic_password, cache, lay.restic_dir)
        walls: list[float] = []
        for repo, cache in repos if rnd % 2 == 0 else repos[::-1]:
            settle(pause)
            walls.append(sides.run_restic(f"control-{rnd}-{repo.name}", repo, cache)[0].wall_s)
        ratios.append(walls[1] / walls[0])
        log(f"control round {rnd}: restic {walls[0]:.3f} s then restic {walls[1]:.3f} s, "
            f"second/first {ratios[-1]:.3f}")
    for repo, cache in repos:
        shutil.rmtree(repo)
        shutil.rmtree(cache)
    return {"second_over_first": asdict(Stat.of(ratios)), "ratios": ratios}


def import_profile(sides: Sides, runs: int) -> dict[str, Any]:
    """PYTHONPROFILEIMPORTTIME on the real command (no file changed): top-level modules by
    cumulative import time, median over ``runs``. The profiler itself adds overhead."""
    per: dict[str, list[float]] = {}
    self_ms: dict[str, list[float]] = {}
    totals: list[float] = []
    for i in range(runs):
        err = sides.lay.logs / f"importtime-{i}.err"
        env = {**secops_env(), "PYTHONPROFILEIMPORTTIME": "1"}
        r = spawn(sides.secops_argv(), env, sides.lay.logs / f"importtime-{i}.out", err)
        if r.returncode != 0:
            raise SystemExit(f"importtime run failed: {err.read_text()[-2000:]}")
        total = 0.0
        children: list[tuple[str, float]] = []  # depth 1, printed before their parent
        for line in err.read_text().splitlines():
            parts = line.split("|")
            if not line.startswith("import time:") or "cumulative" in line or len(parts) != 3:
                continue
            raw = parts[2].rstrip()
            name = raw.strip()
            depth = (len(raw) - len(raw.lstrip()) - 1) // 2
            cum = int(parts[1]) / 1000
            self_ms.setdefault(name, []).append(int(parts[0].split(":")[1]) / 1000)
            if depth == 1:
                children.append((name, cum))
            elif depth == 0:
                per.setdefault(name, []).append(cum)
                for child, c in children:
                    per.setdefault(f"{name} > {child}", []).append(c)
                children = []
                total += cum
        totals.append(total)

    def top(d: dict[str, list[float]], n: int) -> dict[str, float]:
        best = sorted(((statistics.median(v), k) for k, v in d.items()), reverse=True)[:n]
        return {k: v for v, k in best}

    return {"total_ms": statistics.median(totals), "cumulative_ms": top(per, 16),
            "self_ms": top(self_ms, 12)}


# ------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------


def secops_version(src: Path, rev: str | None = None) -> dict[str, Any]:
    """Which secops is measured: commit (``rev``, else HEAD), files of secops/ that differ
    from HEAD, a digest of the sources under ``src``/secops."""
    git = ["git", "-C", str(PROJECT)]
    commit = capture([*git, "rev-parse", "--short=12", rev or "HEAD"]).stdout.strip()
    dirty = [] if rev else capture([*git, "status", "--porcelain", "--",
                                    "secops"]).stdout.splitlines()
    h = hashlib.sha256()
    for f in sorted((src / "secops").rglob("*")):
        if f.is_file() and f.suffix in (".py", ".toml", ".j2"):
            h.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes())
    digest = h.hexdigest()[:12]
    return {"commit": commit, "uncommitted": len(dirty), "digest": digest,
            "text": f"commit {commit}, {len(dirty)} uncommitted file(s) in secops/, "
                    f"sources sha256 {digest}"}


def machine(restic: str) -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    py = capture([str(PYTHON), "-c", "import sys; print(sys.version.split()[0])"])
    return {
        "nproc": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model, "mem_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(), "restic": capture([restic, "version"]).stdout.strip(),
        "python": py.stdout.strip(), "loadavg_start": os.getloadavg(),
    }


def fmt_table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(res: dict[str, Any]) -> str:
    out: list[str] = []
    m, t = res["machine"], res["tree"]
    out.append(f"secops backup benchmark, {res['date']}: {t['files']} files, "
               f"{t['bytes'] / 1e6:.0f} MB; {m['nproc']} CPUs, {m['restic']}, "
               f"Python {m['python']}")
    rows = [["backup", "rounds", "secops med s", "secops min s", "restic med s",
             "restic min s", "ratio med of pairs", "order-balanced", "diff med ms",
             "outside restic ms", "projected", f"bar {RATIO_BAR:.2f}x: measured / projected"]]
    for key, name in (("first", "first"), ("incremental", "incremental (1 changed file)")):
        s = res[key]
        proj = s.get("projected_ratio")
        rows.append([
            name, str(s["ratio"]["n"]), f"{s['secops_wall_s']['median']:.3f}",
            f"{s['secops_wall_s']['min']:.3f}", f"{s['restic_wall_s']['median']:.3f}",
            f"{s['restic_wall_s']['min']:.3f}", f"{s['ratio']['median']:.3f}",
            f"{s['ratio_balanced']:.3f}", f"{s['overhead_ms']['median']:.0f}",
            f"{s['outside_restic_ms']:.0f}" if proj else "-",
            f"{proj:.3f}" if proj else "-",
            f"{verdict(s['ratio_balanced'] <= RATIO_BAR)} / "
            + (verdict(proj <= RATIO_BAR) if proj else "-")])
    out.append(fmt_table(rows))
    for key in ("first", "incremental"):
        sc, rc = res[key]["secops_cpu_s"]["median"], res[key]["restic_cpu_s"]["median"]
        out.append(f"CPU user+sys, {key}: secops (with its restic) {sc:.2f} s, restic by hand "
                   f"{rc:.2f} s, ratio {sc / rc:.3f} (median)")
    if "control" in res:
        c = res["control"]["second_over_first"]
        out.append(f"order effect on this machine (A/A: restic then restic, first backups): "
                   f"second/first median {c['median']:.3f}, range {c['min']:.3f}-"
                   f"{c['max']:.3f}, {c['n']} rounds")
    rss = res["rss"]
    out.append("")
    out.append(fmt_table([
        ["peak RSS", "max MiB", "median MiB", "bar"],
        ["secops Python process (VmHWM, polled)", f"{rss['secops_hwm_mib_max']:.1f}",
         f"{rss['secops_hwm_mib_median']:.1f}",
         f"{verdict(rss['secops_hwm_mib_max'] < RSS_BAR_MIB)} (< {RSS_BAR_MIB:.0f} MiB)"],
        ["restic by hand (VmHWM, polled)", f"{rss['restic_hwm_mib_max']:.1f}",
         f"{rss['restic_hwm_mib_median']:.1f}", "context"],
        ["restic by hand (wait4 ru_maxrss)", f"{rss['restic_maxrss_mib_max']:.1f}",
         f"{rss['restic_maxrss_mib_median']:.1f}", "context"],
    ]))
    out.append("")
    su = [["start-up alone", "median ms", "min ms"]]
    for name, st in res["startup"].items():
        su.append([name, f"{1000 * st['median']:.1f}", f"{1000 * st['min']:.1f}"])
    out.append(fmt_table(su))
    if "phases" in res:
        out.append("")
        ph = res["phases"]
        kinds = list(ph)
        tab = [["secops wall time by phase (in-process, median ms)", *kinds]]
        keys = [k for k in ph[kinds[0]]["median_s"] if k != "restic calls"]
        for k in keys:
            tab.append([k, *(f"{1000 * ph[x]['median_s'].get(k, 0.0):.1f}" for x in kinds)])
        tab.append(["restic by hand, same rounds",
                    *(f"{1000 * ph[x]['restic_by_hand_wall_s']['median']:.1f}" for x in kinds)])
        out.append(fmt_table(tab))
    if "imports" in res:
        out.append("")
        im = [["imports, depth 0 and 1 (PYTHONPROFILEIMPORTTIME, median)", "cumulative ms"]]
        for k, v in res["imports"]["cumulative_ms"].items():
            im.append([k, f"{v:.1f}"])
        im.append(["all top-level imports", f"{res['imports']['total_ms']:.1f}"])
        out.append(fmt_table(im))
        out.append("")
        im = [["heaviest single modules (self time)", "self ms"]]
        for k, v in res["imports"]["self_ms"].items():
            im.append([k, f"{v:.1f}"])
        out.append(fmt_table(im))
    p = res["parity"]
    out.append("")
    out.append(f"secops runs: restic {' '.join(p['argv'])}")
    out.append(f"anchor runs: restic {' '.join(p['anchor_argv'])}")
    out.append(f"  paths secops adds: {', '.join(p['extra_paths']) or 'none'}; restic calls "
               f"per secops backup: {p['restic_calls']}; anchor argv as documented: "
               f"{p['argv_as_documented']}; env as documented: {p['env_as_documented']} "
               f"({', '.join(p['env_keys'])})")
    v = res["secops_version"]
    out.append(f"secops measured: {v['start']['text']}, imported from {v['source']}")
    for problem in res.get("problems", []):
        out.append(f"WARNING: {problem}")
    out.append(f"load average start {m['loadavg_start']}, end {res['loadavg_end']}")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--files", type=int, default=5000, help="files in the tree")
    ap.add_argument("--mb", type=float, default=700.0, help="size of the tree, MB (10^6)")
    ap.add_argument("--rounds", type=int, default=5, help="incremental rounds")
    ap.add_argument("--first-rounds", type=int, default=4,
                    help="first-backup rounds (even: as many with either side first)")
    ap.add_argument("--pause", type=float, default=2.0,
                    help="seconds to wait after sync before every timed run")
    ap.add_argument("--startup-runs", type=int, default=15)
    ap.add_argument("--phase-runs", type=int, default=3,
                    help="diagnostic runs splitting secops' time into phases (0: skip)")
    ap.add_argument("--control-rounds", type=int, default=4,
                    help="A/A rounds, restic against restic, measuring the order effect")
    ap.add_argument("--live-source", action="store_true",
                    help="import secops from the project as it is edited, not from a copy "
                         "taken at the start (WORKDIR/src)")
    ap.add_argument("--source-rev", metavar="REV",
                    help="measure secops/ as in this git revision (copied to WORKDIR/src)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--workdir", type=Path, default=PROJECT / "bench" / ".work")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.first_rounds < 1:
        ap.error("--rounds and --first-rounds must be at least 1")
    if args.live_source and args.source_rev:
        ap.error("--live-source and --source-rev exclude each other")

    restic = shutil.which("restic")
    if restic is None:
        raise SystemExit("restic is not installed (apt-get install restic)")
    lay = Layout.at(args.workdir.resolve())
    lay.work.mkdir(parents=True, exist_ok=True)
    os.chdir(lay.work)  # no secops/ in the current folder to shadow the one measured
    src = PROJECT
    if not args.live_source:
        src = lay.work / "src"
        freeze_source(src, args.source_rev)
    res: dict[str, Any] = {"date": dt.date.today().isoformat(), "machine": machine(restic),
                           "secops_version": {"start": secops_version(src, args.source_rev),
                                              "source": str(src / "secops")},
                           "args": {k: str(v) for k, v in vars(args).items()},
                           "bars": {"ratio": RATIO_BAR, "rss_mib": RSS_BAR_MIB}}

    entries = ensure_tree(lay.tree, lay.manifest, args.files, args.mb, seed=args.seed, log=log)
    res["tree"] = {"files": len(entries), "bytes": sum(e.size for e in entries),
                   "by_kind": {k: sum(1 for e in entries if e.kind == k)
                               for k in ("csv", "txt", "bin", "junk")},
                   "excluded_files": sum(1 for e in entries if e.kind == "junk")}
    setup(lay, restic)
    log(f"warm-up read of the tree: {read_tree(lay.tree) / 1e6:.0f} MB")

    measure(res, Sides(lay, restic, [], base_env(lay.restic_dir)), entries, args)
    res["secops_version"]["end"] = secops_version(src, args.source_rev)
    res["secops_version"]["project_end"] = secops_version(PROJECT)
    if res["secops_version"]["end"]["digest"] != res["secops_version"]["start"]["digest"]:
        res["problems"].append("secops/ changed during the run: the figures mix versions "
                               f"({res['secops_version']['end']['text']} at the end)")
    (lay.work / "results.json").write_text(json.dumps(res, indent=2, ensure_ascii=False))
    print(report(res))
    print(f"\nresults: {lay.work / 'results.json'}")
    return 0


def measure(res: dict[str, Any], sides: Sides, entries: Sequence[Entry],
            args: argparse.Namespace) -> None:
    """Every measurement, in order; fills ``res``."""
    lay = sides.lay
    sides.fresh_repos()
    log("warm-up backup through the recording wrapper (untimed)")
    parity = record_secops_call(sides)
    res["parity"] = asdict(parity)
    sides.run_restic("warmup")
    log(f"secops runs: restic {' '.join(parity.argv)}")

    first: list[Pair] = []
    for rnd in range(args.first_rounds):
        sides.fresh_repos()
        first.append(run_pair(sides, "first", rnd, args.pause))
    res["first"] = summarise_pairs(first)
    if args.control_rounds > 0:
        res["control"] = order_control(sides, args.control_rounds, args.pause)

    # incremental: both repositories hold the last first backup; one untimed settle run
    append_line(changed_file(entries, lay.tree, 1000), 1000)
    run_pair(sides, "settle", 0, args.pause)
    incr: list[Pair] = []
    for rnd in range(args.rounds):
        append_line(changed_file(entries, lay.tree, rnd), rnd)
        incr.append(run_pair(sides, "incremental", rnd, args.pause))
    res["incremental"] = summarise_pairs(incr)

    pairs = first + incr
    res["rss"] = {
        "secops_hwm_mib_max": max(p.secops.hwm_kib for p in pairs) / 1024,
        "secops_hwm_mib_median": statistics.median(p.secops.hwm_kib for p in pairs) / 1024,
        "restic_hwm_mib_max": max(p.restic.hwm_kib for p in pairs) / 1024,
        "restic_hwm_mib_median": statistics.median(p.restic.hwm_kib for p in pairs) / 1024,
        "restic_maxrss_mib_max": max(p.restic.maxrss_kib for p in pairs) / 1024,
        "restic_maxrss_mib_median": statistics.median(p.restic.maxrss_kib for p in pairs) / 1024,
    }
    extra = 2 * len(res["parity"]["extra_paths"])  # a manifest and its signature
    res["problems"] = check_same_work(first, False, extra) + check_same_work(incr, True, extra)

    log("start-up alone")
    res["startup"] = startup(lay, sides.restic, args.startup_runs)
    if args.phase_runs > 0:
        log("diagnostic: phases of secops' wall time, import profile")
        # first: fresh repositories each run; the last leaves both with one snapshot, the
        # parent of the incremental runs
        res["phases"] = {kind: phase_breakdown(sides, entries, kind, args.phase_runs, args.pause)
                         for kind in ("first", "incremental")}
        res["imports"] = import_profile(sides, args.phase_runs)
        for kind, ph in res["phases"].items():
            outside = ph["median_s"].get("secops outside restic (wall - restic run)")
            if outside is not None:
                restic_med = res[kind]["restic_wall_s"]["median"]
                res[kind]["outside_restic_ms"] = 1000 * outside
                res[kind]["projected_ratio"] = (restic_med + outside) / restic_med
    res["loadavg_end"] = os.getloadavg()


if __name__ == "__main__":
    sys.exit(main())
