"""Benchmark: what the open gate costs the office's honest software (issue 14).

The bar: LibreOffice's save at most 1.05x with secops watching (fanotify gate and
first-write judgement on) against the same save in a folder nobody watches, and the open
latency p50/p99 of a watched folder against an unwatched one.

One office (the detection tests' corpus of 300 real documents, ``secops init``, the daemon
running as root with fanotify, first backup settled) and, beside it on the same file
system, an unwatched copy of the same documents. Then:

1. LibreOffice (headless, UNO, one soffice per round) opens and saves (``store()``, a
   clerk's Ctrl+S: temp file, rename over the original) each of ``--docs`` .docx and .xlsx
   documents in three copies: watched, unwatched, and a second unwatched one (the control:
   what the method itself reads as a difference, an A/A test). The three copies of a
   document are saved one after another, in an order that turns with each document and
   round; ``--pause`` seconds between load and store and after the close; only ``store()``
   is timed. Ratios document by document (watched / unwatched, control / unwatched): their
   geometric mean with a 95% bootstrap interval, over ``--rounds`` rounds, and the excess
   of the watched ratio over the control's.
2. Open latency: ``open(O_RDONLY)`` + ``close()`` of every document, watched and unwatched
   alternately, by a child process (the gate judges other processes), ``--opens`` times
   each back to back and ``--opens`` times 1 ms apart (a save's rhythm: the gate thread
   sleeps between them); p50 and p99 in microseconds of each side.

Run: ``.venv/bin/python bench/office_bench.py [--docs 20] [--rounds 3] [--opens 5]
[--pause 0.2] [--defer-backups] [--workdir bench/.work-office]``; results in WORKDIR/results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))

from integration.daemon import Daemon, wait_for  # noqa: E402
from integration.detection import FAST, make_office, settled  # noqa: E402

LO_SAVE = PROJECT / "tests" / "integration" / "lo_save.py"
SIDES = ("watched", "unwatched", "control")  # control: a second unwatched copy (A/A)
SECONDS: dict[str, list[float]] = {side: [] for side in SIDES}  # each store()
RATIOS: dict[str, list[float]] = {"watched": [], "control": [], "docx watched": [],
                                  "xlsx watched": []}  # each x / unwatched, per document
OPENER = """
import os, sys, time, json
paths = sys.argv[2:]
rounds = int(sys.argv[1])
out = {"watched": [], "unwatched": [], "watched, 1 ms apart": [], "unwatched, 1 ms apart": []}
half = len(paths) // 2
for r in range(2 * rounds):
    paced = r % 2 == 1  # a save's opens come about a millisecond apart, not back to back
    for a, b in zip(paths[:half], paths[half:]):
        for side, p in (("watched", a), ("unwatched", b)):
            if paced:
                time.sleep(0.001)
            t = time.perf_counter_ns()
            fd = os.open(p, os.O_RDONLY)
            os.close(fd)
            out[side + (", 1 ms apart" if paced else "")].append(
                (time.perf_counter_ns() - t) / 1000)
print(json.dumps(out))
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def interval(values: list[float], rounds: int = 2000) -> tuple[float, float]:
    """A 95% bootstrap interval of the geometric mean (fixed seed: reproducible)."""
    rng = random.Random(14)  # noqa: S311 (resampling, not secrets)
    means = sorted(geomean(rng.choices(values, k=len(values))) for _ in range(rounds))
    return means[int(0.025 * rounds)], means[int(0.975 * rounds) - 1]


def summary(values: list[float]) -> dict[str, object]:
    low, high = interval(values)
    return {"n": len(values), "geomean": round(geomean(values), 4),
            "ci95": [round(low, 4), round(high, 4)], "median": round(statistics.median(values), 4)}


def lo_round(copies: dict[str, list[Path]], profile: Path, round_no: int,
             pause_s: float) -> None:
    """One soffice saves every document in its three copies; the order of the three turns
    with each document and round, so no side is always first after a load."""
    order: list[tuple[str, Path]] = []
    for i in range(len(copies["watched"])):
        turn = (i + round_no) % len(SIDES)
        order += [(side, copies[side][i]) for side in SIDES[turn:] + SIDES[:turn]]
    done = subprocess.run(["/usr/bin/python3", str(LO_SAVE), "--profile", str(profile),
                           "--times", "--pause", str(pause_s), *(str(p) for _, p in order)],
                          capture_output=True, text=True, timeout=3600, check=True)
    times = [json.loads(line)["store_s"] for line in done.stdout.splitlines()
             if line.startswith("{")]
    assert len(times) == len(order), done.stdout[-2000:]
    for start in range(0, len(order), len(SIDES)):
        took = {side: times[start + k] for k, (side, _) in
                enumerate(order[start:start + len(SIDES)])}
        for side in SIDES:
            SECONDS[side].append(took[side])
        kind = order[start][1].suffix.lstrip(".")
        RATIOS["watched"].append(took["watched"] / took["unwatched"])
        RATIOS["control"].append(took["control"] / took["unwatched"])
        RATIOS[f"{kind} watched"].append(took["watched"] / took["unwatched"])


def daemon_cpu_s(d: Daemon) -> float:
    """The daemon's CPU seconds so far (user + system, all its threads)."""
    assert d.proc is not None
    fields = Path(f"/proc/{d.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--docs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--opens", type=int, default=5)
    ap.add_argument("--pause", type=float, default=0.2,
                    help="seconds between a document's load and its store, and after its "
                    "close: each save meets a daemon that has settled, as a clerk's does")
    ap.add_argument("--workdir", type=Path, default=PROJECT / "bench" / ".work-office")
    ap.add_argument("--defer-backups", action="store_true",
                    help="back up only an hour after a change: the gate and the detector "
                    "alone, without restic competing for the CPU")
    args = ap.parse_args(argv)
    work = args.workdir.resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    office = make_office(work / "office", backup_extra="debounce_seconds = 3600\n"
                         "max_delay_seconds = 7200" if args.defer_backups else FAST)
    shadow, control = work / "unwatched", work / "control"
    shutil.copytree(office.data, shadow)
    shutil.copytree(office.data, control)
    half = args.docs // 2
    rel = [p.relative_to(office.data) for p in
           sorted(office.data.glob("ho-so-ung-vien/ung-vien-*.docx"))[:half] +
           sorted(office.data.glob("ket-qua/ket-qua-to-*.xlsx"))[:args.docs - half]]
    copies = {"watched": [office.data / r for r in rel],
              "unwatched": [shadow / r for r in rel], "control": [control / r for r in rel]}
    d = Daemon(office).start()
    try:
        wait_for(lambda: "the open gate are on" in d.log(), 120, "the gate")
        if not args.defer_backups:
            wait_for(lambda: settled(office), 180, "the first backup")
        cpu0 = daemon_cpu_s(d)
        for r in range(args.rounds):
            lo_round(copies, work / "lo-profile", r, args.pause)
            print(f"round {r + 1}: watched/unwatched {geomean(RATIOS['watched']):.3f}, "
                  f"control/unwatched {geomean(RATIOS['control']):.3f}", flush=True)
        cpu_ms = 1000 * (daemon_cpu_s(d) - cpu0) / len(RATIOS["watched"])
        docs = sorted(p for p in office.data.rglob("*") if p.is_file() and
                      "secops-canary" not in p.name)
        twins = [shadow / p.relative_to(office.data) for p in docs]
        opened = subprocess.run([sys.executable, "-c", OPENER, str(args.opens),
                                 *map(str, docs), *map(str, twins)],
                                capture_output=True, text=True, timeout=600, check=True)
        lat = json.loads(opened.stdout)
        alarms = [line for line in d.log().splitlines() if "ransomware.suspected" in line]
    finally:
        d.stop()
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "load": os.getloadavg()},
        "libreoffice_store": {
            "ratios": {k: summary(v) for k, v in RATIOS.items() if v},
            "excess_over_control": round(geomean(RATIOS["watched"]) /
                                         geomean(RATIOS["control"]), 4),
            "ms": {k: {"p25": round(1000 * percentile(v, 0.25), 2),
                       "median": round(1000 * statistics.median(v), 2)}
                   for k, v in SECONDS.items()},
            "pause_s": args.pause,
            "daemon_cpu_ms_per_document": round(cpu_ms, 2)},
        "open_us": {side: {"n": len(v), "p50": percentile(v, 0.5), "p99": percentile(v, 0.99)}
                    for side, v in lat.items()},
        "alarms": len(alarms),
        "backups": "deferred" if args.defer_backups else "as configured (debounce 1 s)",
    }
    (work / "results.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
