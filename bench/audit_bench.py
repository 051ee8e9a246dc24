"""Benchmark: the audit log's append and verify rates.

Bars (issue): append at least 5,000 records/s, durable per batch (one fsync of the log and
one atomic replace of the MAC key per batch); verify at least 100,000 records/s.

What is timed (in-process, ``time.perf_counter``), each over ``--rounds`` rounds, median:

* append: ``AuditLog.append`` of ``--records`` realistic records (a backup result with a
  Vietnamese note, about 330 bytes per line) in batches of ``--batch`` (the daemon's writer
  batches; the CLI writes one to three records per command), into a fresh state folder on
  this disk. Also one-record batches, for the per-command cost.
* verify: ``secops.audit.verify.verify`` of the resulting log (chain + signed checkpoints),
  then again with the initial key (every MAC), then ``secops audit verify --no-offsite``
  as a process (start-up included).

Run: ``.venv/bin/python bench/audit_bench.py [--records 100000] [--batch 100] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from secops.audit.log import AuditLog, Item, ensure_keys, initial_key_path
from secops.audit.verify import verify
from secops.keys.signature import load_public_key
from secops.keys.store import ensure_ed25519
from secops.layout import StateDir

APPEND_BAR = 5_000
VERIFY_BAR = 100_000


def make_state(root: Path) -> tuple[Path, bytes]:
    state = root / "state"
    sd = StateDir(state)
    ensure_ed25519(sd.ed25519_key, sd.ed25519_pub)
    ensure_keys(state)
    return state, bytes.fromhex(initial_key_path(state).read_text().strip())


def item(i: int) -> Item:
    return Item("backup.completed", "daemon", {
        "target": "offsite", "snapshot_id": f"{i:064x}", "files_new": i % 7,
        "files_changed": i % 13, "data_added": i * 1024, "duration_s": 1.234,
        "error": None, "note": "sao lưu định kỳ"})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(__file__).parent / ".work-audit"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    appends, singles, verifies, mac_verifies, cli = [], [], [], [], []
    for r in range(args.rounds):
        root = Path(tempfile.mkdtemp(dir=work, prefix=f"r{r}-"))
        state, k0 = make_state(root)
        log = AuditLog(state, "bench")
        started = time.perf_counter()
        for start in range(0, args.records, args.batch):
            log.append([item(i) for i in range(start, min(start + args.batch,
                                                          args.records))])
        appends.append(args.records / (time.perf_counter() - started))
        started = time.perf_counter()
        for i in range(200):
            log.record("cli.single", "cli:bench", {"i": i})
        singles.append(200 / (time.perf_counter() - started))
        log.checkpoint()
        total = args.records + 200
        pub = load_public_key(StateDir(state).ed25519_pub)
        started = time.perf_counter()
        rep = verify(StateDir(state).audit, public_key=pub)
        verifies.append(total / (time.perf_counter() - started))
        assert rep.ok and rep.records == total, rep.as_json()
        started = time.perf_counter()
        rep = verify(StateDir(state).audit, public_key=pub, initial_key=k0)
        mac_verifies.append(total / (time.perf_counter() - started))
        assert rep.ok, rep.as_json()
        cfg = root / "secops.toml"
        (root / "data").mkdir()
        cfg.write_text(f'[office]\nname = "Bench"\ncode = "bench"\n[paths]\n'
                       f'state_dir = "{state}"\nwatch = ["{root}/data"]\n[backup]\n'
                       f'[[backup.targets]]\nname = "l"\nrepository = "{root}/repo"\n')
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "secops", "--config", str(cfg), "audit",
                               "verify", "--no-offsite", "--json"], capture_output=True,
                              text=True, check=False)
        cli.append(time.perf_counter() - started)
        assert done.returncode == 0, done.stdout + done.stderr
        line = (StateDir(state).audit / "audit.jsonl").open("rb").readline()
        print(f"round {r}: append {appends[-1]:,.0f}/s (batches of {args.batch}), "
              f"single {singles[-1]:,.0f}/s, verify {verifies[-1]:,.0f}/s, "
              f"with MACs {mac_verifies[-1]:,.0f}/s, CLI {cli[-1]:.2f} s "
              f"({len(line)} bytes/record)", flush=True)
    res = {"records": args.records, "batch": args.batch,
           "append_per_s": statistics.median(appends),
           "single_record_batches_per_s": statistics.median(singles),
           "verify_per_s": statistics.median(verifies),
           "verify_with_macs_per_s": statistics.median(mac_verifies),
           "cli_verify_s": statistics.median(cli)}
    (work / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
    ok = res["append_per_s"] >= APPEND_BAR and res["verify_with_macs_per_s"] >= VERIFY_BAR
    print("bars met" if ok else "BAR NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
