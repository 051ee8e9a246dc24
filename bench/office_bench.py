"""Benchmark: what the open gate costs the office's honest software (issue 14).

The bar: LibreOffice's save at most 1.05x with secops watching (fanotify gate and
first-write judgement on) against the same save in a folder nobody watches, and the open
latency p50/p99 of a watched folder against an unwatched one.

One office (the detection tests' corpus of 300 real documents, ``secops init``, the daemon
running as root with fanotify, first backup settled) and, beside it on the same file
system, an unwatched copy of the same documents. Then:

1. LibreOffice (headless, UNO, one soffice for the whole run) opens and saves (``store()``,
   a clerk's Ctrl+S: temp file, rename over the original) each of ``--docs`` .docx and
   .xlsx documents, alternating watched and unwatched copies of the same document; only
   ``store()`` is timed. The ratio is taken pair by pair (watched / unwatched), median over
   pairs, over ``--rounds`` rounds.
2. Open latency: ``open(O_RDONLY)`` + ``close()`` of every document, watched and unwatched
   alternately, by a child process (the gate judges other processes), ``--opens`` times
   each back to back and ``--opens`` times 1 ms apart (a save's rhythm: the gate thread
   sleeps between them); p50 and p99 in microseconds of each side.

Run: ``.venv/bin/python bench/office_bench.py [--docs 20] [--rounds 3] [--opens 5]
[--workdir bench/.work-office]``; results in WORKDIR/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
SECONDS: dict[str, list[float]] = {"watched": [], "unwatched": []}  # each store()
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


def lo_pairs(watched: list[Path], unwatched: list[Path], profile: Path) -> list[float]:
    interleaved = [p for pair in zip(watched, unwatched, strict=True) for p in pair]
    done = subprocess.run(["/usr/bin/python3", str(LO_SAVE), "--profile", str(profile),
                           "--times", *map(str, interleaved)],
                          capture_output=True, text=True, timeout=1800, check=True)
    times = [json.loads(line)["store_s"] for line in done.stdout.splitlines()
             if line.startswith("{")]
    SECONDS["watched"] += times[0::2]
    SECONDS["unwatched"] += times[1::2]
    return [times[i] / times[i + 1] for i in range(0, len(times) - 1, 2)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--docs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--opens", type=int, default=5)
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
    shadow = work / "unwatched"
    shutil.copytree(office.data, shadow)
    half = args.docs // 2
    rel = [p.relative_to(office.data) for p in
           sorted(office.data.glob("ho-so-ung-vien/ung-vien-*.docx"))[:half] +
           sorted(office.data.glob("ket-qua/ket-qua-to-*.xlsx"))[:args.docs - half]]
    watched = [office.data / r for r in rel]
    unwatched = [shadow / r for r in rel]
    d = Daemon(office).start()
    try:
        wait_for(lambda: "the open gate are on" in d.log(), 120, "the gate")
        if not args.defer_backups:
            wait_for(lambda: settled(office), 180, "the first backup")
        ratios: list[float] = []
        for r in range(args.rounds):
            ratios += lo_pairs(watched, unwatched, work / "lo-profile")
            print(f"round {r + 1}: median ratio so far {statistics.median(ratios):.3f}",
                  flush=True)
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
        "libreoffice_store": {"pairs": len(ratios), "median_ratio": statistics.median(ratios),
                              "p10": percentile(ratios, 0.1), "p90": percentile(ratios, 0.9),
                              "median_ms": {k: 1000 * statistics.median(v)
                                            for k, v in SECONDS.items()}},
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
