"""Benchmark: ``secops drill`` against ``restic restore`` + ``sha256sum -c`` by hand.

The bar (issue): on a tree of about 5,000 files / 700 MB, ``secops drill`` takes at most
1.3x the wall time of ``restic restore`` followed by ``sha256sum -c`` by hand, on the same
snapshot.

Set-up (outside any timing): the standard bench tree (``bench/tree.py``: many small CSV and
text files, some office documents and larger incompressible scans, in nested folders) under
WORKDIR/tree, reused while its parameters match (files whose size changed are rewritten),
a checkfile ``<sha256>  <relative path>`` for every file, hashed from that source tree, and
an office (``secops init`` + one ``secops backup now``) whose snapshot both sides restore.
The office is reused while its snapshot is still in the repository and the checkfile has not
changed (``--fresh`` redoes it).

What is timed, process start to exit, per round:

* anchor (by hand): ``restic restore SNAPSHOT_ID --target SCRATCH`` with the environment
  secops gives restic (``RESTIC_REPOSITORY``, ``RESTIC_PASSWORD_FILE``, ``RESTIC_CACHE_DIR``
  = the office's own cache, ``HOME`` = the state folder), then, in SCRATCH's restored copy
  of the tree, ``sha256sum --quiet --strict -c CHECKFILE``.  The anchor's time is the two
  back to back.  ``rm -rf SCRATCH`` is timed separately (secops removes its scratch folder
  inside the drill), and the report gives the ratio with and without it.
* secops: ``.venv/bin/secops --config CFG drill --json``; it must exit 0 with ``"ok":
  true`` and every file checked.  Its own ``rto_s`` (snapshots, manifest, restore, verify,
  measured in-process by secops: ``run_restore`` only, so neither the scratch removal nor
  start-up, report and exit) is reported too.

One untimed warm-up of each side comes first; rounds alternate which side goes first;
``sync`` and a short pause come before every timed side.  Page caches cannot be dropped
here (no root): everything runs warm.

Diagnostics after the timed rounds: (1) a driver runs the same drill in-process with
timestamps around each phase (imports, config, ``restic snapshots``, manifest restore,
signature, data restore, hashing, scratch removal, report, state.db, shutdown), each run
paired with an anchor run, so that secops' time splits into what the anchor also does and
what it adds; (2) one run under ``python -X importtime`` for the import cost; (3) the fixed
cost of one restic run on this repository (scrypt key derivation, lock) and of the
alternatives for fetching the manifest.

Run: ``.venv/bin/python bench/drill_bench.py [--files 5000] [--mb 700] [--rounds 3]
[--phase-runs 3] [--pause 2] [--fresh] [--workdir bench/.work-drill]``; results also go to
WORKDIR/results.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
if __package__ in (None, "") and str(PROJECT) not in sys.path:  # run as bench/drill_bench.py
    sys.path.append(str(PROJECT))
from bench import tree as bench_tree  # noqa: E402

VENV_BIN = PROJECT / ".venv" / "bin"
SECOPS = VENV_BIN / "secops"
PYTHON = VENV_BIN / "python"

RATIO_BAR = 1.30
SEED = bench_tree.SEED
TARGET = "local"
OFFICE_CODE = "bench"

# ------------------------------------------------------------------------------------------
# the tree
# ------------------------------------------------------------------------------------------


@dataclass
class TreeInfo:
    root: str
    files: int
    bytes: int
    small_files: int
    scans: int
    scan_bytes: int


def ensure_tree(root: Path, stamp: Path, files: int, mb: float,
                log: Callable[[str], None]) -> TreeInfo:
    """The standard bench tree (``bench/tree.py``), generated or reused; ``stamp`` is its
    manifest."""
    entries = bench_tree.ensure_tree(root, stamp, files, mb, seed=SEED, log=log)
    scans = [e for e in entries if e.is_scan]
    info = TreeInfo(str(root), len(entries), sum(e.size for e in entries),
                    len(entries) - len(scans), len(scans), sum(e.size for e in scans))
    log(f"tree: {info.files} files, {info.bytes / 1e6:.1f} MB ({info.scans} scans, "
        f"{info.scan_bytes / 1e6:.1f} MB)")
    return info


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def ensure_checkfile(root: Path, checkfile: Path, tree_stamp: Path,
                     log: Callable[[str], None]) -> str:
    """``<sha256>  <relative path>`` for every file of the source tree; returns its own
    SHA-256 (the identity of the tree's content)."""
    key_file = checkfile.with_suffix(".key")
    tree_key = hashlib.sha256(tree_stamp.read_bytes()).hexdigest()
    if checkfile.exists() and key_file.exists() and key_file.read_text() == tree_key:
        return sha256_of(checkfile)
    log("checkfile: hashing the source tree")
    rels: list[str] = []
    for dirpath, _dirs, names in os.walk(root):
        rels += [os.path.relpath(os.path.join(dirpath, n), root) for n in names]
    lines = []
    for rel in sorted(rels):
        if "\n" in rel or "\\" in rel:
            raise SystemExit(f"file name unsuitable for sha256sum -c: {rel!r}")
        lines.append(f"{sha256_of(root / rel)}  {rel}\n")
    checkfile.write_text("".join(lines), encoding="utf-8")
    key_file.write_text(tree_key)
    return sha256_of(checkfile)


# ------------------------------------------------------------------------------------------
# running a command
# ------------------------------------------------------------------------------------------


@dataclass
class Run:
    wall_s: float
    returncode: int
    cpu_s: float  # user + system of the process and of the children it reaped
    t_spawn: float  # time.monotonic() just before the spawn
    t_reaped: float  # time.monotonic() just after wait4
    stdout: str = ""
    stderr: str = ""


def spawn(argv: Sequence[str], env: Mapping[str, str], logs: Path, tag: str,
          cwd: Path | None = None) -> Run:
    """Run ``argv`` to completion (stdout and stderr to files: no pipe to drain)."""
    out, err = logs / f"{tag}.out", logs / f"{tag}.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        t_spawn = time.monotonic()
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
                                env=dict(env), cwd=cwd)
        _, status, ru = os.wait4(proc.pid, 0)
        t_reaped = time.monotonic()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(t_reaped - t_spawn, proc.returncode, ru.ru_utime + ru.ru_stime, t_spawn,
               t_reaped, out.read_text(errors="replace"), err.read_text(errors="replace"))


def capture(argv: Sequence[str], env: Mapping[str, str] | None = None,
            timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), env=None if env is None else dict(env),
                          capture_output=True, text=True, timeout=timeout, check=False)


def must(done: subprocess.CompletedProcess[str] | Run, what: str) -> None:
    if done.returncode != 0:
        raise SystemExit(f"{what} failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n"
                         f"{done.stderr[-4000:]}")


def settle(pause: float) -> None:
    os.sync()
    time.sleep(pause)


# ------------------------------------------------------------------------------------------
# the office
# ------------------------------------------------------------------------------------------


@dataclass
class Layout:
    work: Path
    tree: Path
    tree_stamp: Path
    checkfile: Path
    state: Path
    repo: Path
    cfg: Path
    scratch: Path
    home: Path
    logs: Path

    @classmethod
    def under(cls, work: Path) -> Layout:
        return cls(work, work / "tree", work / "tree.json", work / "tree.sha256",
                   work / "state", work / "repo", work / "secops.toml", work / "scratch",
                   work / "home", work / "logs")

    @property
    def password_file(self) -> Path:
        return self.state / "keys" / f"restic-{TARGET}.password"

    @property
    def restored_root(self) -> Path:
        """Where ``restic restore --target SCRATCH`` puts the tree (absolute paths kept)."""
        return self.scratch / str(self.tree).lstrip("/")


def config_text(lay: Layout) -> str:
    return (f'[office]\nname = "Bench"\ncode = "{OFFICE_CODE}"\n\n'
            f"[paths]\nstate_dir = {json.dumps(str(lay.state))}\n"
            f"watch = [{json.dumps(str(lay.tree))}]\n\n"
            f'[[backup.targets]]\nname = "{TARGET}"\n'
            f"repository = {json.dumps(str(lay.repo))}\n")


def secops_env(lay: Layout) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(lay.home), "LANG": "C.UTF-8",
            "TMPDIR": os.environ.get("TMPDIR", "/tmp")}


def restic_env(lay: Layout) -> dict[str, str]:
    """What secops passes restic (``Repo.env``): minimal base, HOME = state folder."""
    return {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(lay.state), "LANG": "C.UTF-8",
            "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
            "RESTIC_REPOSITORY": str(lay.repo),
            "RESTIC_PASSWORD_FILE": str(lay.password_file),
            "RESTIC_CACHE_DIR": str(lay.state / "cache")}


def restic_snapshot_ids(lay: Layout) -> list[str]:
    done = capture(["restic", "snapshots", "--json"], restic_env(lay), timeout=600)
    if done.returncode != 0:
        return []
    return [str(s["id"]) for s in json.loads(done.stdout or "[]") or []]


def ensure_office(lay: Layout, check_digest: str, fresh: bool,
                  log: Callable[[str], None]) -> str:
    """``secops init`` + one ``secops backup now``; returns the snapshot's full id."""
    stamp = lay.work / "office.json"
    text = config_text(lay)
    if not fresh and stamp.exists() and lay.password_file.exists():
        doc = json.loads(stamp.read_text())
        if doc.get("checkfile") == check_digest and doc.get("config") == text \
                and doc.get("snapshot_id") in restic_snapshot_ids(lay):
            log(f"office: reusing {lay.state} and snapshot {doc['snapshot_id'][:8]}")
            return str(doc["snapshot_id"])
    log("office: secops init + secops backup now (untimed)")
    for p in (lay.state, lay.repo, lay.home):
        if p.exists():
            shutil.rmtree(p)
    stamp.unlink(missing_ok=True)
    lay.home.mkdir(parents=True)
    lay.cfg.write_text(text, encoding="utf-8")
    env = secops_env(lay)
    t0 = time.monotonic()
    done = capture([str(SECOPS), "--config", str(lay.cfg), "init", "--json"], env)
    must(done, "secops init")
    log(f"office: init took {time.monotonic() - t0:.1f} s")
    t0 = time.monotonic()
    done = capture([str(SECOPS), "--config", str(lay.cfg), "backup", "now", "--json"], env)
    must(done, "secops backup now")
    log(f"office: backup took {time.monotonic() - t0:.1f} s")
    results = json.loads(done.stdout)["results"]
    if not results or not results[0].get("ok") or not results[0].get("snapshot_id"):
        raise SystemExit(f"secops backup now: unexpected output {done.stdout[:2000]}")
    short = str(results[0]["snapshot_id"])
    full = [s for s in restic_snapshot_ids(lay) if s.startswith(short)]
    if len(full) != 1:
        raise SystemExit(f"snapshot {short} not found by restic snapshots")
    stamp.write_text(json.dumps({"checkfile": check_digest, "config": text,
                                 "snapshot_id": full[0]}, indent=1))
    return full[0]


# ------------------------------------------------------------------------------------------
# the two sides
# ------------------------------------------------------------------------------------------


@dataclass
class AnchorRun:
    restore_s: float
    sha256sum_s: float
    total_s: float  # restore start to sha256sum exit
    rm_s: float
    restore_cpu_s: float
    sha256sum_cpu_s: float


@dataclass
class SecopsRun:
    wall_s: float
    cpu_s: float
    rto_s: float
    files_checked: int
    bytes: int


def run_anchor(lay: Layout, snap: str, tag: str) -> AnchorRun:
    if lay.scratch.exists():
        shutil.rmtree(lay.scratch)
    r1 = spawn(["restic", "restore", snap, "--target", str(lay.scratch)], restic_env(lay),
               lay.logs, f"{tag}-restore")
    must(r1, "restic restore")
    r2 = spawn(["sha256sum", "--quiet", "--strict", "-c", str(lay.checkfile)],
               secops_env(lay), lay.logs, f"{tag}-sha256sum", cwd=lay.restored_root)
    must(r2, "sha256sum -c")
    # right away, as by hand (secops removes its scratch as soon as it has hashed it)
    r3 = spawn(["rm", "-rf", str(lay.scratch)], secops_env(lay), lay.logs, f"{tag}-rm")
    must(r3, "rm -rf")
    return AnchorRun(r1.wall_s, r2.wall_s, r2.t_reaped - r1.t_spawn, r3.wall_s,
                     r1.cpu_s, r2.cpu_s)


def run_secops(lay: Layout, tree: TreeInfo, tag: str) -> SecopsRun:
    r = spawn([str(SECOPS), "--config", str(lay.cfg), "drill", "--json"], secops_env(lay),
              lay.logs, tag)
    must(r, "secops drill")
    doc = json.loads(r.stdout)
    if not doc.get("ok") or doc.get("files_checked") != tree.files:
        raise SystemExit(f"secops drill: not ok or wrong file count: {r.stdout[:2000]}")
    left = list((lay.state / "drill-scratch").glob("*"))
    if left:
        raise SystemExit(f"secops drill left its scratch folder behind: {left}")
    return SecopsRun(r.wall_s, r.cpu_s, float(doc["rto_s"]), int(doc["files_checked"]),
                     int(doc["bytes"]))


# ------------------------------------------------------------------------------------------
# the in-process phase driver (run as a child: ``drill_bench.py --phase-driver CFG OUT``)
# ------------------------------------------------------------------------------------------


def phase_driver(cfg: str, out: str) -> int:
    """Run ``secops --config CFG drill --json`` in this process with timestamps around its
    phases (``time.monotonic`` is system-wide: the parent adds spawn and reap)."""
    entry = time.monotonic()
    import secops.backup.engine as engine_mod
    import secops.backup.restic as restic_mod
    import secops.cli.context as ctx_mod
    import secops.cli.main as cli_main
    import secops.reports.drill_report as report_mod
    import secops.restore.drill as drill_mod
    import secops.restore.restore as restore_mod
    from secops.cli import restore_cmd

    imported = time.monotonic()
    events: list[tuple[str, float, float]] = []

    def wrap(owner: object, name: str, label: str | Callable[..., str]) -> None:
        orig: Callable[..., Any] = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            lab = label if isinstance(label, str) else label(*args, **kwargs)
            start = time.monotonic()
            try:
                return orig(*args, **kwargs)
            finally:
                events.append((lab, start, time.monotonic()))

        setattr(owner, name, wrapper)

    def restic_label(_self: object, _repo: object, args: Sequence[str], **_: Any) -> str:
        if args[0] == "restore":
            return "restic restore (manifest)" if "--include" in args else \
                "restic restore (data)"
        return f"restic {args[0]}"

    def rm_label(path: object, *_: Any, **__: Any) -> str:
        return "rm drill scratch" if "drill-scratch" in str(path) else "rm manifest scratch"

    wrap(ctx_mod.AppContext, "config", "config load")
    wrap(engine_mod.Engine, "from_config", "engine")
    wrap(engine_mod.Engine, "open", "open target")
    wrap(restic_mod.Restic, "_run", restic_label)
    wrap(restore_mod, "load_public_key", "load public key")
    wrap(restore_mod, "_fetch_manifest", "fetch manifest")
    wrap(restore_mod, "verify", "manifest signature")
    wrap(restore_mod, "parse", "manifest parse")
    wrap(restore_mod, "verify_tree", "verify (hash)")
    wrap(drill_mod, "run_restore", "run_restore")
    wrap(drill_mod, "run_drill", "run_drill")
    wrap(drill_mod, "record", "record state.db")
    wrap(report_mod, "write_report", "write report")
    wrap(restore_cmd, "emit_json", "emit json")
    wrap(shutil, "rmtree", rm_label)
    code = 0
    try:
        cli_main.main(["--config", cfg, "drill", "--json"])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    done = time.monotonic()
    Path(out).write_text(json.dumps({"entry": entry, "imported": imported, "done": done,
                                     "events": events}))
    sys.stdout.flush()
    return code


PHASES = (
    # (name, start boundary, end boundary); boundaries: "spawn", "entry", "imported",
    # "done", "reaped" or "LABEL.start" / "LABEL.end" of the first event with that label
    ("python start-up (interpreter, site, driver module)", "spawn", "entry"),
    ("imports (secops CLI + drill modules)", "entry", "imported"),
    ("CLI parsing, config load, engine", "imported", "run_drill.start"),
    ("open target, public key", "run_drill.start", "restic snapshots.start"),
    ("restic snapshots --json", "restic snapshots.start", "restic snapshots.end"),
    ("resolve snapshot", "restic snapshots.end", "restic restore (manifest).start"),
    ("restic restore --include manifest", "restic restore (manifest).start",
     "restic restore (manifest).end"),
    ("manifest rm + signature + parse", "restic restore (manifest).end", "fetch manifest.end"),
    ("destination checks, byte total", "fetch manifest.end", "restic restore (data).start"),
    ("restic restore (data)", "restic restore (data).start", "restic restore (data).end"),
    ("glue before verify", "restic restore (data).end", "verify (hash).start"),
    ("verify: hash every file (2 threads)", "verify (hash).start", "verify (hash).end"),
    ("glue before rm", "verify (hash).end", "rm drill scratch.start"),
    ("rm scratch folder (shutil.rmtree)", "rm drill scratch.start", "rm drill scratch.end"),
    ("glue before report", "rm drill scratch.end", "write report.start"),
    ("write signed report (JSON, sig, HTML)", "write report.start", "write report.end"),
    ("record in state.db", "write report.end", "record state.db.end"),
    ("return, JSON output", "record state.db.end", "done"),
    ("interpreter shutdown", "done", "reaped"),
)


def phase_run(lay: Layout, tag: str) -> dict[str, Any]:
    """One instrumented drill; returns its phases (seconds) and the wall time."""
    out = lay.logs / f"{tag}.phases.json"
    r = spawn([str(PYTHON), str(Path(__file__).resolve()), "--phase-driver", str(lay.cfg),
               str(out)], secops_env(lay), lay.logs, tag)
    must(r, "phase driver")
    if not json.loads(r.stdout).get("ok"):
        raise SystemExit(f"phase driver: drill not ok: {r.stdout[:2000]}")
    doc = json.loads(out.read_text())
    points: dict[str, float] = {"spawn": r.t_spawn, "reaped": r.t_reaped,
                                "entry": doc["entry"], "imported": doc["imported"],
                                "done": doc["done"]}
    for label, start, end in doc["events"]:
        points.setdefault(f"{label}.start", start)
        points.setdefault(f"{label}.end", end)
    phases = {name: points[b] - points[a] for name, a, b in PHASES}
    return {"wall_s": r.wall_s, "phases": phases, "events": doc["events"]}


def import_profile(lay: Layout) -> dict[str, Any]:
    """``python -X importtime`` on the real CLI: total and the heaviest top-level imports."""
    r = spawn([str(PYTHON), "-X", "importtime", str(SECOPS), "--config", str(lay.cfg),
               "drill", "--json"], secops_env(lay), lay.logs, "importtime")
    must(r, "secops drill under -X importtime")
    total_us = 0
    top: list[tuple[str, int]] = []
    pat = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
    for line in r.stderr.splitlines():
        m = pat.match(line)
        if not m:
            continue
        total_us += int(m.group(1))
        if len(m.group(3)) == 1:  # top level: one space after the bar
            top.append((m.group(4), int(m.group(2))))
    top.sort(key=lambda t: -t[1])
    return {"total_import_s": total_us / 1e6, "wall_s": r.wall_s,
            "top": [{"module": n, "cumulative_s": us / 1e6} for n, us in top[:12]]}


def restic_costs(lay: Layout, snap: str, runs: int = 3) -> dict[str, Any]:
    """The fixed cost of one restic run on this repository (key derivation, lock, index),
    and the alternatives for fetching the manifest: median wall of ``runs`` runs each."""
    folder = str(lay.state / "snapshot-manifest")
    tmp = lay.work / "restic-costs"
    env = restic_env(lay)
    cases: dict[str, list[str]] = {
        "restic version (process only)": ["restic", "version"],
        "restic cat config (open: scrypt key derivation)": ["restic", "cat", "config"],
        "restic snapshots --json": ["restic", "snapshots", "--json"],
        "restic --no-lock snapshots --json": ["restic", "--no-lock", "snapshots", "--json"],
        "restic restore --include MANIFEST_DIR": ["restic", "restore", snap, "--target",
                                                  str(tmp), "--include", folder],
        "restic dump SNAP MANIFEST_DIR/secops-manifest.json":
            ["restic", "dump", snap, f"{folder}/secops-manifest.json"],
    }
    out: dict[str, Any] = {}
    for name, argv in cases.items():
        walls = []
        for k in range(runs):
            if tmp.exists():
                shutil.rmtree(tmp)
            r = spawn(argv, env, lay.logs, f"restic-cost-{len(out)}-{k}")
            must(r, name)
            walls.append(r.wall_s)
        out[name] = statistics.median(walls)
    if tmp.exists():
        shutil.rmtree(tmp)
    keys = sorted((lay.repo / "keys").iterdir())
    kdf = json.loads(keys[0].read_text()) if keys else {}
    out["kdf"] = {k: kdf.get(k) for k in ("kdf", "N", "r", "p")}
    return out


def hash_speeds(lay: Layout, n: int = 40) -> dict[str, float]:
    """SHA-256 throughput (MB/s) on the ``n`` largest files of the tree, warm: GNU
    sha256sum versus Python's hashlib (OpenSSL) on one thread, as secops hashes."""
    files = sorted((p for p in lay.tree.rglob("*") if p.is_file()),
                   key=lambda p: p.stat().st_size)[-n:]
    size = sum(p.stat().st_size for p in files)
    for p in files:
        sha256_of(p)  # into the page cache
    r = spawn(["sha256sum", *map(str, files)], secops_env(lay), lay.logs, "hash-speed")
    must(r, "sha256sum")
    t0 = time.monotonic()
    for p in files:
        sha256_of(p)
    py_s = time.monotonic() - t0
    return {"bytes": size, "sha256sum_mb_s": size / 1e6 / r.wall_s,
            "hashlib_1_thread_mb_s": size / 1e6 / py_s}


def python_startup(runs: int = 5) -> float:
    walls = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run([str(PYTHON), "-c", "pass"], check=True)
        walls.append(time.monotonic() - t0)
    return statistics.median(walls)


# ------------------------------------------------------------------------------------------
# the report
# ------------------------------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        flags = "sha_ni" in Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = False
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "sha_ni": flags,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "restic": capture(["restic", "version"]).stdout.strip(),
        "sha256sum": capture(["sha256sum", "--version"]).stdout.splitlines()[0],
        "loadavg_start": os.getloadavg(),
    }


def stats(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


@dataclass
class Round:
    index: int
    order: str  # "secops-first" or "anchor-first"
    anchor: AnchorRun
    secops: SecopsRun
    loadavg: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def ratio(self) -> float:
        return self.secops.wall_s / self.anchor.total_s

    @property
    def ratio_with_rm(self) -> float:
        return self.secops.wall_s / (self.anchor.total_s + self.anchor.rm_s)


@dataclass
class Results:
    params: dict[str, Any]
    machine: dict[str, Any]
    tree: dict[str, Any]
    snapshot_id: str
    rounds: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, Any] = field(default_factory=dict)
    imports: dict[str, Any] = field(default_factory=dict)
    restic_costs: dict[str, Any] = field(default_factory=dict)


def summarise(rounds: Sequence[Round]) -> dict[str, Any]:
    ratios = [r.ratio for r in rounds]
    by_order: dict[str, float] = {}
    for order in ("secops-first", "anchor-first"):
        rs = [r.ratio for r in rounds if r.order == order]
        if rs:
            by_order[order] = statistics.median(rs)
    balanced = geomean(list(by_order.values())) if len(by_order) == 2 else None
    return {
        "anchor_restore_s": stats([r.anchor.restore_s for r in rounds]),
        "anchor_sha256sum_s": stats([r.anchor.sha256sum_s for r in rounds]),
        "anchor_total_s": stats([r.anchor.total_s for r in rounds]),
        "anchor_rm_s": stats([r.anchor.rm_s for r in rounds]),
        "anchor_total_with_rm_s": stats([r.anchor.total_s + r.anchor.rm_s for r in rounds]),
        "anchor_cpu_s": stats([r.anchor.restore_cpu_s + r.anchor.sha256sum_cpu_s
                               for r in rounds]),
        "secops_wall_s": stats([r.secops.wall_s for r in rounds]),
        "secops_rto_s": stats([r.secops.rto_s for r in rounds]),
        "secops_outside_rto_s": stats([r.secops.wall_s - r.secops.rto_s for r in rounds]),
        "secops_cpu_s": stats([r.secops.cpu_s for r in rounds]),
        "ratio": stats(ratios),
        "ratio_with_rm": stats([r.ratio_with_rm for r in rounds]),
        "ratio_by_order": by_order,
        "ratio_order_balanced": balanced,
        "bar": RATIO_BAR,
        "met": statistics.median(ratios) <= RATIO_BAR,
    }


def print_report(res: Results, log: Callable[[str], None]) -> None:
    s = res.summary
    m = res.machine
    t = res.tree
    log("")
    log(f"machine: nproc {m['nproc']}, {m['cpu']} (sha_ni: {m['sha_ni']}), {m['restic']}, "
        f"{m['sha256sum']}, Python {m['python']}")
    log(f"tree: {t['files']} files, {t['bytes'] / 1e6:.1f} MB "
        f"({t['scans']} scans = {t['scan_bytes'] / 1e6:.1f} MB); snapshot "
        f"{res.snapshot_id[:8]}; {len(res.rounds)} rounds")
    log("")
    log(f"{'':44} {'median':>8} {'min':>8} {'max':>8}")
    rows = [
        ("anchor: restic restore", "anchor_restore_s"),
        ("anchor: sha256sum -c", "anchor_sha256sum_s"),
        ("anchor A = restore + sha256sum -c", "anchor_total_s"),
        ("anchor: rm -rf scratch (untimed in A)", "anchor_rm_s"),
        ("anchor A' = A + rm -rf", "anchor_total_with_rm_s"),
        ("anchor CPU (user+sys)", "anchor_cpu_s"),
        ("secops S = secops drill --json (wall)", "secops_wall_s"),
        ("secops rto_s (its JSON)", "secops_rto_s"),
        ("secops wall - rto_s", "secops_outside_rto_s"),
        ("secops CPU (user+sys, incl. restic)", "secops_cpu_s"),
    ]
    for label, key in rows:
        v = s[key]
        log(f"{label:44} {v['median']:8.2f} {v['min']:8.2f} {v['max']:8.2f}  s")
    for label, key in (("ratio S/A (paired, per round)", "ratio"),
                       ("ratio S/A' (paired, per round)", "ratio_with_rm")):
        v = s[key]
        log(f"{label:44} {v['median']:8.3f} {v['min']:8.3f} {v['max']:8.3f}  x")
    for order, v in s["ratio_by_order"].items():
        log(f"  median S/A, {order:34} {v:8.3f}  x")
    if s["ratio_order_balanced"] is not None:
        log(f"  order-balanced S/A (geomean of the two)  {s['ratio_order_balanced']:8.3f}  x")
    verdict = "MET" if s["met"] else "NOT MET"
    log(f"bar: S/A <= {RATIO_BAR}: {verdict} (median paired ratio {s['ratio']['median']:.3f})")
    if res.phases:
        ph = res.phases
        log("")
        log(f"secops phases (in-process driver, median of {ph['runs']} runs; driver wall "
            f"{ph['wall_s']:.2f} s):")
        for name, v in ph["median"].items():
            log(f"  {name:62} {v:7.3f} s")
        log(f"  (the phases tile the driver's wall time; the timed secops median was "
            f"{s['secops_wall_s']['median']:.2f} s)")
        o = ph["overhead"]
        log(f"overhead over the anchor (each instrumented drill minus an anchor run paired "
            f"with it; median of {ph['runs']} pairs):")
        for name, v in o.items():
            unit = "x" if name.startswith("ratio") else "s"
            log(f"  {name:62} {v:+7.3f} {unit}")
    if res.imports:
        im = res.imports
        log("")
        log(f"imports (-X importtime): {im['total_import_s']:.3f} s in all; bare python "
            f"start-up {im['python_startup_s']:.3f} s; heaviest top-level:")
        for row in im["top"][:8]:
            log(f"  {row['module']:40} {row['cumulative_s']:.3f} s")
    if res.restic_costs:
        rc = res.restic_costs
        log("")
        log(f"fixed cost of one restic run (median of 3; key {rc['kdf']}):")
        for name, v in rc.items():
            if name not in ("kdf", "hash_speeds"):
                log(f"  {name:62} {v:7.3f} s")
        hs = rc["hash_speeds"]
        log(f"SHA-256 speed, warm, {hs['bytes'] / 1e6:.0f} MB: sha256sum "
            f"{hs['sha256sum_mb_s']:.0f} MB/s, hashlib one thread "
            f"{hs['hashlib_1_thread_mb_s']:.0f} MB/s")


def overhead(p: Mapping[str, float], wall_s: float, a: AnchorRun) -> dict[str, float]:
    """Where one instrumented drill's time goes beyond the anchor run paired with it (the
    items add up to the drill's wall time minus the anchor's A)."""
    restic_extra = p["restic snapshots --json"] + p["restic restore --include manifest"]
    python_fixed = (p["python start-up (interpreter, site, driver module)"]
                    + p["imports (secops CLI + drill modules)"]
                    + p["CLI parsing, config load, engine"] + p["interpreter shutdown"]
                    + p["return, JSON output"])
    glue = sum(v for k, v in p.items() if k.startswith(("glue", "open target", "resolve",
                                                        "destination", "manifest rm")))
    return {
        "data restore: secops restic restore - anchor restic restore":
            p["restic restore (data)"] - a.restore_s,
        "verify: secops hashing (2 threads) - sha256sum -c":
            p["verify: hash every file (2 threads)"] - a.sha256sum_s,
        "extra restic runs (snapshots + manifest restore)": restic_extra,
        "rm scratch inside the drill (not in A)": p["rm scratch folder (shutil.rmtree)"],
        "python start-up, imports, CLI, config, output, exit": python_fixed,
        "report + state.db": p["write signed report (JSON, sig, HTML)"]
        + p["record in state.db"],
        "other glue (open, resolve, checks, manifest parse)": glue,
        "anchor's gap between restore and sha256sum (negative)":
            -(a.total_s - a.restore_s - a.sha256sum_s),
        "TOTAL: drill wall - anchor A": wall_s - a.total_s,
        "ratio: drill wall / anchor A": wall_s / a.total_s,
        "for reference: shutil.rmtree in drill - anchor rm -rf":
            p["rm scratch folder (shutil.rmtree)"] - a.rm_s,
    }


# ------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------


def timed_rounds(lay: Layout, tree: TreeInfo, snap: str, *, n: int, pause: float,
                 log: Callable[[str], None]) -> list[Round]:
    """``n`` paired rounds; even rounds run secops first, odd rounds the anchor first."""
    rounds: list[Round] = []
    for i in range(n):
        secops_first = i % 2 == 0
        a: AnchorRun | None = None
        s: SecopsRun | None = None
        for side in (("secops", "anchor") if secops_first else ("anchor", "secops")):
            settle(pause)
            if side == "anchor":
                a = run_anchor(lay, snap, f"round{i}-anchor")
            else:
                s = run_secops(lay, tree, f"round{i}-secops")
        assert a is not None and s is not None
        r = Round(i, "secops-first" if secops_first else "anchor-first", a, s,
                  os.getloadavg())
        rounds.append(r)
        log(f"round {i} ({r.order}): anchor {a.total_s:.2f} s (restore {a.restore_s:.2f} + "
            f"sha256sum {a.sha256sum_s:.2f}; rm {a.rm_s:.2f}), secops {s.wall_s:.2f} s "
            f"(rto_s {s.rto_s:.2f}), ratio {r.ratio:.3f}; load {r.loadavg[0]:.2f}")
    return rounds


def diagnose(lay: Layout, snap: str, n: int, pause: float) -> dict[str, Any]:
    """``n`` instrumented drills, each paired with an anchor run (order alternating): the
    median of each phase, and the median of each overhead item over the pairs."""
    runs: list[dict[str, Any]] = []
    pairs: list[dict[str, float]] = []
    for j in range(n):
        ph: dict[str, Any] = {}
        a: AnchorRun | None = None
        for side in (("anchor", "drill") if j % 2 else ("drill", "anchor")):
            settle(pause)
            if side == "anchor":
                a = run_anchor(lay, snap, f"phases{j}-anchor")
            else:
                ph = phase_run(lay, f"phases{j}")
        assert a is not None
        runs.append(ph)
        pairs.append(overhead(ph["phases"], ph["wall_s"], a))
    med = {name: statistics.median(r["phases"][name] for r in runs) for name, _a, _b in PHASES}
    return {
        "runs": len(runs),
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "median": med,
        "each": [{k: v for k, v in r.items() if k != "events"} for r in runs],
        "overhead_each": pairs,
        "overhead": {k: statistics.median(p[k] for p in pairs) for k in pairs[0]},
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--mb", type=float, default=700)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--phase-runs", type=int, default=3)
    ap.add_argument("--pause", type=float, default=2.0, help="seconds after sync, per side")
    ap.add_argument("--fresh", action="store_true", help="redo secops init + backup")
    ap.add_argument("--workdir", type=Path, default=PROJECT / "bench" / ".work-drill")
    ap.add_argument("--phase-driver", nargs=2, metavar=("CFG", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase_driver:
        return phase_driver(*args.phase_driver)

    def log(msg: str) -> None:
        print(msg, flush=True)

    lay = Layout.under(args.workdir.resolve())
    lay.work.mkdir(parents=True, exist_ok=True)
    if lay.logs.exists():
        shutil.rmtree(lay.logs)
    lay.logs.mkdir()
    started = dt.datetime.now(dt.UTC)
    machine = machine_facts()
    tree = ensure_tree(lay.tree, lay.tree_stamp, args.files, args.mb, log)
    digest = ensure_checkfile(lay.tree, lay.checkfile, lay.tree_stamp, log)
    snap = ensure_office(lay, digest, args.fresh, log)
    res = Results(params={**{k: (str(v) if isinstance(v, Path) else v)
                             for k, v in vars(args).items() if k != "phase_driver"},
                          "started": started.isoformat(timespec="seconds")},
                  machine=machine, tree=asdict(tree), snapshot_id=snap)

    log("warm-up: one untimed run of each side")
    run_anchor(lay, snap, "warmup-anchor")
    run_secops(lay, tree, "warmup-secops")
    rounds = timed_rounds(lay, tree, snap, n=args.rounds, pause=args.pause, log=log)
    res.rounds = [{"index": r.index, "order": r.order, "anchor": asdict(r.anchor),
                   "secops": asdict(r.secops), "ratio": r.ratio,
                   "ratio_with_rm": r.ratio_with_rm, "loadavg": r.loadavg} for r in rounds]
    res.summary = summarise(rounds)
    if args.phase_runs > 0:
        log(f"diagnostics: {args.phase_runs} instrumented drill(s), one -X importtime run")
        res.phases = diagnose(lay, snap, args.phase_runs, args.pause)
        settle(args.pause)
        res.imports = import_profile(lay)
        res.imports["python_startup_s"] = python_startup()
        res.restic_costs = restic_costs(lay, snap)
        res.restic_costs["hash_speeds"] = hash_speeds(lay)
    res.machine["loadavg_end"] = os.getloadavg()
    print_report(res, log)
    out = lay.work / "results.json"
    out.write_text(json.dumps(asdict(res), indent=1, ensure_ascii=False), encoding="utf-8")
    log(f"\nresults: {out}")
    return 0 if res.summary["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
