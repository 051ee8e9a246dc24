"""Benchmark: ``secops fim baseline|scan|verify`` against AIDE (``aide --init|--check``).

The bars (issue 18), on bench trees (``bench/tree.py``) of several sizes that are half text
by bytes (``--text-share 0.5``: large CSV exports and logs beside the scans), both sides
hashing with SHA-256 and AIDE hashing in parallel (``--workers``, one per CPU):

* ``secops fim baseline`` at least 2x faster than ``aide --workers=N --init``;
* ``secops fim scan`` of an unchanged tree at least 20x faster than ``aide --workers=N
  --check``.

``secops fim verify`` (a full re-hash, what ``aide --check`` always does) is measured against
``aide --check`` for information.

The two sides:

* secops: ``.venv/bin/secops --config CFG fim baseline|scan|verify --json`` with canaries
  off; no excludes, so it watches all 5,000 files.  ``baseline`` rebuilds the baseline from
  scratch every time.  Every secops process imports a copy of ``secops/`` taken at the start
  (WORKDIR/src, on PYTHONPATH), so that one run measures one version while the project is
  edited.
* AIDE: ``aide --workers=N --init -c CONF`` (then, untimed, ``aide.db.new`` becomes
  ``aide.db``) and ``aide --workers=N --check -c CONF``, CONF holding only the two databases,
  ``R = p+i+n+u+g+s+m+c+sha256`` and the tree with that rule (``^TREE($|/)``: AIDE's
  selection lines are regular expressions).  N is ``--aide-workers`` (default: the number of
  CPUs; 1 is AIDE as packaged); ``--aide-single`` also times AIDE with one worker, for
  information, outside the pairs the bars are judged on.

What is timed is the whole process, ``Popen`` to ``wait4`` (Python start-up included: that is
what a user pays), with the page cache warm: the tree is read once, untimed, before the
rounds, and one untimed run of each command follows.  Each round runs three pairs,
(baseline, init), (scan, check), (verify, check); the side that goes first alternates from
round to round, and ``sync`` plus a short pause (``--pause``) come before every timed
command.  Ratios are AIDE / secops, per round, and the report gives their median (the bars
are judged on it), the ratio of the medians, and min.

Peak RSS comes from GNU ``/usr/bin/time -f %M`` wrapped around each command (about 1 ms of
extra wall time, on both sides).  Without it the fallback is ``wait4``'s ``ru_maxrss``, which
on Linux also counts this harness' own peak: ``Popen`` uses ``vfork``, and ``exec`` folds the
old memory map's high-water mark into the child's.  The report says which was used.

Run: ``.venv/bin/python bench/fim_bench.py [--rounds 5] [--sizes 5000:700,50000:2000]
[--text-share 0.5] [--pause 1] [--aide-workers N] [--aide-single] [--plot docs/x.png]
[--workdir bench/.work-fim]``: one tree per size (WORKDIR/f<files>-t<share>), the rounds on
each, a report per size and a summary over sizes; results also go to WORKDIR/results.json,
and with ``--plot`` (matplotlib, the ``bench`` extra) the ratios and times over tree size go
to a PNG.  The exit status is 1 when a bar is not met at some size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
if __package__ in (None, "") and str(PROJECT) not in sys.path:  # run as bench/fim_bench.py
    sys.path.append(str(PROJECT))
from bench import tree as bench_tree  # noqa: E402

VENV_BIN = PROJECT / ".venv" / "bin"
SECOPS = VENV_BIN / "secops"
PYTHON = VENV_BIN / "python"
GNU_TIME = "/usr/bin/time"

BASELINE_BAR = 2.0  # aide --init / secops fim baseline, at least
SCAN_BAR = 20.0  # aide --check / secops fim scan (unchanged tree), at least
HASH_MB = 256


def log(msg: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


# ------------------------------------------------------------------------------------------
# set-up
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    work: Path

    @property
    def tree(self) -> Path:
        return self.work / "tree"

    @property
    def manifest(self) -> Path:
        return self.work / "tree.manifest.json"

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    @property
    def src(self) -> Path:
        return self.work / "src"

    @property
    def home(self) -> Path:
        return self.work / "home"

    @property
    def state(self) -> Path:
        return self.work / "state"

    @property
    def cfg(self) -> Path:
        return self.work / "secops.toml"

    @property
    def aide_conf(self) -> Path:
        return self.work / "aide.conf"

    @property
    def aide_db(self) -> Path:
        return self.work / "aide.db"

    @property
    def aide_db_new(self) -> Path:
        return self.work / "aide.db.new"


def q(s: str | Path) -> str:
    return json.dumps(str(s), ensure_ascii=False)  # a TOML basic string


def write_configs(lay: Layout) -> None:
    lay.cfg.write_text(
        "# written by bench/fim_bench.py\n"
        f'[office]\nname = "Bench"\ncode = "bench"\n\n'
        f"[paths]\nstate_dir = {q(lay.state)}\nwatch = [{q(lay.tree)}]\n\n"
        f'[backup]\n[[backup.targets]]\nname = "local"\nrepository = {q(lay.work / "repo")}\n\n'
        "[integrity]\ncanaries = false\n", encoding="utf-8")
    for p in (lay.tree, lay.aide_db):
        if re.search(r"\s", str(p)):
            raise SystemExit(f"{p}: AIDE's configuration cannot take white space in a path")
    lay.aide_conf.write_text(
        "# written by bench/fim_bench.py\n"
        f"database_in=file:{lay.aide_db}\n"
        f"database_out=file:{lay.aide_db_new}\n"
        "R = p+i+n+u+g+s+m+c+sha256\n"
        f"{aide_regex(lay.tree)}($|/) R\n", encoding="utf-8")


def aide_regex(path: Path) -> str:
    """``path`` as a regular expression: AIDE's selection lines are PCRE2 matched from the
    start of a path, and unanchored at the end (the caller adds ``($|/)``, or TREE would
    also select the sibling TREE.manifest.json)."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", str(path))


def sources_digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted((root / "secops").rglob("*")):
        if f.is_file() and f.suffix in (".py", ".toml", ".j2"):
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def git_head() -> str:
    """The commit checked out (read from .git, without running git); "" if unknown."""
    try:
        head = (PROJECT / ".git" / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head[5:]
        loose = PROJECT / ".git" / ref
        if loose.exists():
            return loose.read_text().strip()[:12]
        for line in (PROJECT / ".git" / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:12]
    except OSError:
        pass
    return ""


def freeze_source(lay: Layout, origin_root: Path = PROJECT) -> dict[str, str]:
    """Copy ``origin_root``/secops/ to WORKDIR/src; every secops process imports that copy
    (``main`` takes one snapshot at its start, so that every tree size measures it)."""
    if lay.src.exists():
        shutil.rmtree(lay.src)
    shutil.copytree(origin_root / "secops", lay.src / "secops",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    origin = subprocess.run(
        [str(PYTHON), "-c", "import secops; print(secops.__file__)"], env=secops_env(lay),
        capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    if not origin.startswith(str(lay.src)):
        raise SystemExit(f"secops is imported from {origin}, not from the copy in {lay.src}")
    return {"head": git_head(), "digest": sources_digest(lay.src), "imported_from": origin}


def secops_env(lay: Layout) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(lay.home), "LANG": "C.UTF-8",
            "TMPDIR": os.environ.get("TMPDIR", "/tmp"), "PYTHONPATH": str(lay.src)}


def aide_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LANG": "C"}


def tree_dirs(root: Path) -> int:
    """Folders under ``root``, itself included (AIDE counts them as entries)."""
    return sum(1 for _ in os.walk(root))


# ------------------------------------------------------------------------------------------
# running a command
# ------------------------------------------------------------------------------------------


@dataclass
class Run:
    wall_s: float
    returncode: int
    cpu_s: float  # user + system, the command and what it waited for
    maxrss_kib: int
    stdout: str
    stderr: str


def spawn(argv: Sequence[str], env: Mapping[str, str], logs: Path, tag: str) -> Run:
    """Run ``argv`` to completion, stdout and stderr to files; wall time from just before
    ``Popen`` to just after ``wait4``."""
    out, err, rss = logs / f"{tag}.out", logs / f"{tag}.err", logs / f"{tag}.rss"
    wrapped = [GNU_TIME, "-f", "%M", "-o", str(rss), *argv] if Path(GNU_TIME).exists() \
        else list(argv)
    with open(out, "wb") as fo, open(err, "wb") as fe:
        t0 = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
                                env=dict(env))
        _, status, ru = os.wait4(proc.pid, 0)
        t1 = time.perf_counter()
    proc.returncode = os.waitstatus_to_exitcode(status)
    maxrss = ru.ru_maxrss
    if rss.exists():  # GNU time writes "Command exited with non-zero status N" first
        maxrss = int(rss.read_text().split()[-1])
    return Run(t1 - t0, proc.returncode, ru.ru_utime + ru.ru_stime, maxrss,
               out.read_text(errors="replace"), err.read_text(errors="replace"))


def settle(pause: float) -> None:
    """Outside the timed region: the other side's writes go to disk, then a pause."""
    os.sync()
    time.sleep(pause)


def fail(what: str, r: Run) -> SystemExit:
    return SystemExit(f"{what} failed (exit {r.returncode}):\n{r.stdout[-2000:]}\n"
                      f"{r.stderr[-2000:]}")


# ------------------------------------------------------------------------------------------
# the two sides
# ------------------------------------------------------------------------------------------


@dataclass
class Sample:
    wall_s: float
    cpu_s: float
    maxrss_kib: int
    inner_s: float | None = None  # secops: the "seconds" of its JSON (the walk and hashing)


@dataclass
class Bench:
    lay: Layout
    files: int
    dirs: int
    aide_workers: int
    aide_single: bool = False
    problems: list[str] = field(default_factory=list)

    def secops(self, mode: str, tag: str) -> Sample:
        r = spawn([str(SECOPS), "--config", str(self.lay.cfg), "fim", mode, "--json"],
                  secops_env(self.lay), self.lay.logs, tag)
        if r.returncode != 0:
            raise fail(f"secops fim {mode}", r)
        doc = json.loads(r.stdout)
        hashed = 0 if mode == "scan" else self.files
        if doc["files"] != self.files or doc["hashed"] != hashed or doc["changes"] \
                or doc["unreadable"]:
            self.problems.append(f"{tag}: secops fim {mode}: files {doc['files']}, hashed "
                                 f"{doc['hashed']}, {len(doc['changes'])} changes, "
                                 f"{len(doc['unreadable'])} unreadable")
        return Sample(r.wall_s, r.cpu_s, r.maxrss_kib, float(doc["seconds"]))

    def aide(self, mode: str, tag: str, workers: int | None = None) -> Sample:
        workers = self.aide_workers if workers is None else workers
        argv = ["aide", f"--{mode}", "-c", str(self.lay.aide_conf)]
        if workers > 1:
            argv.append(f"--workers={workers}")
        r = spawn(argv, aide_env(), self.lay.logs, tag)
        if r.returncode != 0:  # --check: 1 added, 2 removed, 4 changed; more: errors
            raise fail(f"aide --{mode}", r)
        m = re.search(r"Number of entries:\s+(\d+)", r.stdout)
        entries = int(m.group(1)) if m else -1
        if entries != self.files + self.dirs:
            self.problems.append(f"{tag}: aide --{mode}: {entries} entries, expected "
                                 f"{self.files} files + {self.dirs} folders")
        if mode == "check" and "found NO differences" not in r.stdout:
            self.problems.append(f"{tag}: aide --check reported differences")
        if mode == "init":
            os.replace(self.lay.aide_db_new, self.lay.aide_db)  # untimed
        return Sample(r.wall_s, r.cpu_s, r.maxrss_kib)


PAIRS = (  # (name, secops mode, aide mode)
    ("baseline", "baseline", "init"),
    ("scan", "scan", "check"),
    ("verify", "verify", "check"),
)


def run_round(b: Bench, rnd: int, pause: float) -> dict[str, Any]:
    """One round: the three pairs (AIDE with ``--workers``), secops first in even rounds;
    then, with ``--aide-single``, AIDE with one worker, for information."""
    secops_first = rnd % 2 == 0
    out: dict[str, Any] = {"round": rnd, "first": "secops" if secops_first else "aide"}
    for name, smode, amode in PAIRS:
        pair: dict[str, Sample] = {}
        for side in ("secops", "aide") if secops_first else ("aide", "secops"):
            settle(pause)
            tag = f"r{rnd}-{name}-{side}"
            pair[side] = b.secops(smode, tag) if side == "secops" else b.aide(amode, tag)
        out[name] = {k: asdict(v) for k, v in pair.items()}
        out[name]["ratio"] = pair["aide"].wall_s / pair["secops"].wall_s
        log(f"round {rnd} {name}: secops {pair['secops'].wall_s:.3f} s, aide --{amode} "
            f"--workers={b.aide_workers} {pair['aide'].wall_s:.3f} s, aide/secops "
            f"{out[name]['ratio']:.2f} (load {os.getloadavg()[0]:.2f})")
    out["loadavg"] = os.getloadavg()[0]
    if b.aide_single:
        for amode in ("init", "check"):
            settle(pause)
            s = b.aide(amode, f"r{rnd}-aide-w1-{amode}", 1)
            out[f"aide_1_{amode}"] = asdict(s)
            log(f"round {rnd} aide --{amode} (one worker): {s.wall_s:.3f} s")
    return out


# ------------------------------------------------------------------------------------------
# context: machine, hashing speed
# ------------------------------------------------------------------------------------------

HASH_SPEED = """\
import hashlib, ssl, sys, time
buf = memoryview(bytes({mb} << 20))
best = 0.0
for _ in range(3):
    t0 = time.perf_counter()
    hashlib.sha256(buf).digest()
    best = max(best, ({mb} << 20) / 1e6 / (time.perf_counter() - t0))
print(best, ssl.OPENSSL_VERSION, sep="\\t")
"""


def hash_speed(lay: Layout) -> dict[str, Any]:
    """SHA-256 of 256 MiB in memory with the venv's hashlib, one thread, best of 3; in a
    child process, so that this harness stays small (see the note on ``wait4``)."""
    done = subprocess.run([str(PYTHON), "-c", HASH_SPEED.format(mb=HASH_MB)],
                          env=secops_env(lay), capture_output=True, text=True, check=True,
                          timeout=300)
    mb_s, openssl = done.stdout.strip().split("\t")
    return {"hashlib_sha256_mb_s": float(mb_s), "openssl": openssl, "buffer_mib": HASH_MB}


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines()
                  if ln.startswith("model name")), "")
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    version = subprocess.run(["aide", "--version"], capture_output=True, text=True,
                             check=False, timeout=30)
    text = version.stdout + version.stderr
    backends = [ln.strip() for ln in text.splitlines()
                if ln.startswith(("use Mhash", "use GNU crypto"))]
    py = subprocess.run([str(PYTHON), "-c", "import platform; print(platform.python_version())"],
                        capture_output=True, text=True, check=True, timeout=60)
    return {"nproc": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
            "cpu_model": model, "sha_ni": " sha_ni" in cpuinfo,
            "mem_gib": round(mem_kib / 1024 / 1024, 1), "kernel": platform.release(),
            "python": py.stdout.strip(), "aide": text.splitlines()[0] if text else "",
            "aide_hash_backends": backends, "rss_source": "GNU time %M"
            if Path(GNU_TIME).exists() else "wait4 ru_maxrss (includes the harness' peak)",
            "loadavg_start": os.getloadavg()}


# ------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------


def stat(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(rounds: Sequence[dict[str, Any]], aide_single: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, _s, _a in PAIRS:
        rs = [r[name] for r in rounds]
        out[name] = {
            "secops_wall_s": stat([r["secops"]["wall_s"] for r in rs]),
            "aide_wall_s": stat([r["aide"]["wall_s"] for r in rs]),
            "ratio": stat([r["ratio"] for r in rs]),
            "ratio_of_medians": statistics.median(r["aide"]["wall_s"] for r in rs)
            / statistics.median(r["secops"]["wall_s"] for r in rs),
            "secops_inner_s": stat([r["secops"]["inner_s"] for r in rs]),
            "secops_cpu_s": stat([r["secops"]["cpu_s"] for r in rs]),
            "aide_cpu_s": stat([r["aide"]["cpu_s"] for r in rs]),
            "secops_rss_mib": stat([r["secops"]["maxrss_kib"] / 1024 for r in rs]),
            "aide_rss_mib": stat([r["aide"]["maxrss_kib"] / 1024 for r in rs]),
        }
    out["baseline"]["bar"], out["scan"]["bar"] = BASELINE_BAR, SCAN_BAR
    for name in ("baseline", "scan"):
        out[name]["met"] = out[name]["ratio"]["median"] >= out[name]["bar"]
    out["loadavg"] = stat([r["loadavg"] for r in rounds])
    if aide_single:
        for amode, name in (("init", "baseline"), ("check", "scan")):
            walls = [r[f"aide_1_{amode}"]["wall_s"] for r in rounds]
            out[f"aide_single_{amode}"] = {
                "wall_s": stat(walls),
                "cpu_s": stat([r[f"aide_1_{amode}"]["cpu_s"] for r in rounds]),
                "rss_mib": stat([r[f"aide_1_{amode}"]["maxrss_kib"] / 1024 for r in rounds]),
                "ratio_of_medians": statistics.median(walls)
                / out[name]["secops_wall_s"]["median"]}
    return out


def table(rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def report(res: dict[str, Any]) -> str:
    m, s, t = res["machine"], res["summary"], res["tree"]
    w = res["aide_workers"]
    out = [f"secops FIM vs AIDE, {res['date']}: {t['files']} files in {t['dirs']} folders, "
           f"{t['bytes'] / 1e6:.0f} MB ({t['text_share']:.0%} text by bytes); "
           f"{res['args']['rounds']} rounds; {m['nproc']} CPUs ({m['cpu_model']}, SHA-NI "
           f"{'yes' if m['sha_ni'] else 'no'}); {m['aide']} "
           f"({', '.join(m['aide_hash_backends'])}); Python {m['python']}; warm page cache "
           f"(one untimed read of the tree, {res['warmup_mb']:.0f} MB, before the rounds)", ""]
    aw = f" --workers={w}" if w > 1 else ""
    rows = [["secops command", "AIDE command", "secops median / min s", "AIDE median / min s",
             "AIDE/secops median of pairs (min)", "ratio of medians", "bar", "met"]]
    names = {"baseline": ("`secops fim baseline`", f"`aide{aw} --init`"),
             "scan": ("`secops fim scan` (unchanged)", f"`aide{aw} --check`"),
             "verify": ("`secops fim verify` (re-hash)", f"`aide{aw} --check`")}
    for name, (sc, ac) in names.items():
        x = s[name]
        bar = f">= {x['bar']:g}x" if "bar" in x else "info"
        met = ("**yes**" if x["met"] else "**NO**") if "bar" in x else "-"
        rows.append([sc, ac, f"{x['secops_wall_s']['median']:.3f} / "
                     f"{x['secops_wall_s']['min']:.3f}", f"{x['aide_wall_s']['median']:.3f} / "
                     f"{x['aide_wall_s']['min']:.3f}", f"{x['ratio']['median']:.2f} "
                     f"({x['ratio']['min']:.2f})", f"{x['ratio_of_medians']:.2f}", bar, met])
    for amode, name in (("init", "baseline"), ("check", "scan")):
        one = s.get(f"aide_single_{amode}")
        if one is not None:
            rows.append([names[name][0], f"`aide --{amode}` (one worker)",
                         f"{s[name]['secops_wall_s']['median']:.3f}",
                         f"{one['wall_s']['median']:.3f} / {one['wall_s']['min']:.3f}", "-",
                         f"{one['ratio_of_medians']:.2f}", "info", "-"])
    out.append(table(rows))
    out.append("")
    rows = [["command", "wall median s", "in-process s (JSON `seconds`)", "CPU user+sys s",
             "peak RSS median / max MiB"]]
    for name, (sc, ac) in names.items():
        x = s[name]
        rows.append([sc, f"{x['secops_wall_s']['median']:.3f}",
                     f"{x['secops_inner_s']['median']:.3f}", f"{x['secops_cpu_s']['median']:.2f}",
                     f"{x['secops_rss_mib']['median']:.1f} / {x['secops_rss_mib']['max']:.1f}"])
        if name != "verify":
            rows.append([ac, f"{x['aide_wall_s']['median']:.3f}", "-",
                         f"{x['aide_cpu_s']['median']:.2f}",
                         f"{x['aide_rss_mib']['median']:.1f} / {x['aide_rss_mib']['max']:.1f}"])
    out.append(table(rows))
    h = res["hash_speed"]
    out.append("")
    aide_rate = t["bytes"] / 1e6 / s["baseline"]["aide_wall_s"]["median"]
    out.append(f"hashlib SHA-256, {h['buffer_mib']} MiB in memory, one thread: "
               f"{h['hashlib_sha256_mb_s']:.0f} MB/s ({h['openssl']}); AIDE's effective "
               f"rate in `aide{aw} --init`: {aide_rate:.0f} MB/s; peak RSS from "
               f"{m['rss_source']}")
    v = res["secops_version"]
    out.append(f"secops measured: HEAD {v['head'] or '?'}, sources sha256 {v['digest']} "
               f"(copy imported from {v['imported_from']})")
    for p in res["problems"]:
        out.append(f"WARNING: {p}")
    la = s["loadavg"]
    out.append(f"load average (1 min) over the rounds: median {la['median']:.2f}, max "
               f"{la['max']:.2f}; start {m['loadavg_start'][0]:.2f}, end "
               f"{res['loadavg_end'][0]:.2f}")
    return "\n".join(out)


def over_sizes(results: Sequence[dict[str, Any]]) -> str:
    """One row per tree size: the two bars' ratios (median of pairs) and the load."""
    rows = [["files", "MB", "text", "baseline s", "AIDE init s", "baseline ratio",
             "scan s", "AIDE check s", "scan ratio", "load (median)"]]
    for r in results:
        t, s = r["tree"], r["summary"]
        rows.append([f"{t['files']:,}", f"{t['bytes'] / 1e6:,.0f}", f"{t['text_share']:.0%}",
                     f"{s['baseline']['secops_wall_s']['median']:.3f}",
                     f"{s['baseline']['aide_wall_s']['median']:.3f}",
                     f"{s['baseline']['ratio']['median']:.2f}",
                     f"{s['scan']['secops_wall_s']['median']:.3f}",
                     f"{s['scan']['aide_wall_s']['median']:.3f}",
                     f"{s['scan']['ratio']['median']:.1f}", f"{s['loadavg']['median']:.2f}"])
    return table(rows)


def plot(results: Sequence[dict[str, Any]], path: Path) -> bool:
    """Ratios (left) and wall times (right) over tree size; False without matplotlib."""
    plt = bench_tree.pyplot()
    if plt is None:
        return False
    files = [r["tree"]["files"] for r in results]
    w = results[0]["aide_workers"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, bar, color in (("baseline", BASELINE_BAR, "tab:blue"),
                             ("scan", SCAN_BAR, "tab:orange")):
        ratios = [r["summary"][name]["ratio"] for r in results]
        ax1.plot(files, [x["median"] for x in ratios], "o-", color=color,
                 label=f"fim {name} (bar {bar:g}x)")
        ax1.fill_between(files, [x["min"] for x in ratios], [x["max"] for x in ratios],
                         color=color, alpha=0.15)
        ax1.axhline(bar, color=color, linestyle=":", linewidth=1)
        for side, style in (("secops", "-"), ("aide", "--")):
            ax2.plot(files, [r["summary"][name][f"{side}_wall_s"]["median"] for r in results],
                     "o" + style, color=color,
                     label=f"secops fim {name}" if side == "secops" else
                     f"aide --workers={w} --{'init' if name == 'baseline' else 'check'}")
    ax1.set(xscale="log", yscale="log", xlabel="files in the tree (half text by bytes)",
            ylabel="AIDE / secops, wall (median of pairs)",
            title="secops vs AIDE: speed-up over tree size")
    ax2.set(xscale="log", yscale="log", xlabel="files in the tree",
            ylabel="wall seconds (median)", title="whole-process time, warm page cache")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    sizes = ", ".join(f"{r['tree']['files']:,} files / {r['tree']['bytes'] / 1e6:,.0f} MB"
                      for r in results)
    fig.suptitle(f"{results[0]['date']}, {results[0]['machine']['nproc']} CPUs; {sizes}",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[tuple[int, float]]:
    out = []
    for part in text.split(","):
        files, _, mb = part.partition(":")
        out.append((int(files), float(mb) if mb else bench_tree.MB * int(files) / bench_tree.FILES))
    return out


def run_size(args: argparse.Namespace, lay: Layout, files: int, mb: float,
             snapshot: Path) -> dict[str, Any]:
    for d in (lay.logs, lay.state):
        if d.exists():
            shutil.rmtree(d)
    for d in (lay.logs, lay.home):
        d.mkdir(parents=True, exist_ok=True)
    os.chdir(lay.work)  # no secops/ in the current folder to shadow the copy measured
    res: dict[str, Any] = {"date": dt.date.today().isoformat(), "machine": machine(),
                           "args": {k: str(v) for k, v in vars(args).items()},
                           "aide_workers": args.aide_workers,
                           "secops_version": freeze_source(lay, snapshot)}
    entries = bench_tree.ensure_tree(lay.tree, lay.manifest, files, mb,
                                     seed=bench_tree.SEED, log=log, text_share=args.text_share)
    b = Bench(lay, len(entries), tree_dirs(lay.tree), args.aide_workers, args.aide_single)
    text = sum(e.size for e in entries if e.kind in ("csv", "txt", "export"))
    total = sum(e.size for e in entries)
    res["tree"] = {"files": b.files, "dirs": b.dirs, "bytes": total,
                   "text_share": text / total if total else 0.0}
    write_configs(lay)
    res["hash_speed"] = hash_speed(lay)
    res["warmup_mb"] = bench_tree.read_tree(lay.tree) / 1e6
    log(f"warm-up read of the tree (untimed): {res['warmup_mb']:.0f} MB")
    log("untimed warm-up of both sides (baseline, scan, init, check)")
    b.secops("baseline", "warmup-baseline")
    b.secops("scan", "warmup-scan")
    b.aide("init", "warmup-init")
    b.aide("check", "warmup-check")

    rounds = [run_round(b, rnd, args.pause) for rnd in range(args.rounds)]
    res["rounds"] = rounds
    res["summary"] = summarise(rounds, args.aide_single)
    res["loadavg_end"] = os.getloadavg()
    if sources_digest(PROJECT) != res["secops_version"]["digest"]:
        b.problems.append("secops/ in the project changed since the start; the copy measured "
                          "is the one taken then")
    res["problems"] = b.problems
    res["report"] = report(res)
    return res


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the three pairs")
    ap.add_argument("--sizes", default=f"{bench_tree.FILES}:{bench_tree.MB:g}",
                    help="trees to measure, FILES:MB,... (default: the standard 5000:700)")
    ap.add_argument("--text-share", type=float, default=0.5,
                    help="share of the tree's bytes in text files (0: the binary tree)")
    ap.add_argument("--pause", type=float, default=1.0,
                    help="seconds to wait after sync before every timed command")
    ap.add_argument("--aide-workers", type=int, default=os.cpu_count() or 1,
                    help="AIDE's --workers in the pairs (1: AIDE as packaged)")
    ap.add_argument("--aide-single", action="store_true",
                    help="also time AIDE with one worker, for information")
    ap.add_argument("--plot", type=Path, help="write the ratios over tree size to this PNG")
    ap.add_argument("--workdir", type=Path, default=PROJECT / "bench" / ".work-fim")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if shutil.which("aide") is None:
        raise SystemExit("aide is not installed (apt-get install aide, or make bench)")
    sizes = parse_sizes(args.sizes)
    plot_to = args.plot.resolve() if args.plot is not None else None  # before any chdir
    work = args.workdir.resolve()
    snapshot = work / "snapshot"
    if snapshot.exists():
        shutil.rmtree(snapshot)
    shutil.copytree(PROJECT / "secops", snapshot / "secops",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    results = []
    for files, mb in sizes:
        lay = Layout(work / f"f{files}-t{args.text_share:g}")
        lay.work.mkdir(parents=True, exist_ok=True)
        log(f"tree of {files} files / {mb:g} MB, text share {args.text_share:g}: {lay.work}")
        res = run_size(args, lay, files, mb, snapshot)
        (lay.work / "results.json").write_text(json.dumps(res, indent=1, ensure_ascii=False),
                                               encoding="utf-8")
        print(res["report"], "\n", flush=True)
        results.append(res)
    work.mkdir(parents=True, exist_ok=True)
    (work / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False),
                                       encoding="utf-8")
    print(over_sizes(results))
    if plot_to is not None and plot(results, plot_to):
        print(f"plot: {plot_to}")
    print(f"\nresults: {work / 'results.json'}")
    met = all(r["summary"]["baseline"]["met"] and r["summary"]["scan"]["met"] for r in results)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
