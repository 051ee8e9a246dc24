"""Benchmark: the login watch's reading rate against fail2ban's, on the same auth.log.

Bar (issue 16): at least 50,000 log lines per second; anchor fail2ban-regex 1.0 with its
``sshd`` filter on the same file.

The file: a day of a busy office server in Debian 12's rsyslog format, ``--lines`` lines
(default 50,000 and 200,000): 55 % noise (CRON and sudo sessions, systemd-logind,
pam_unix session lines), 45 % sshd (honest key logins from the office's PCs, password
guessing from 400 addresses on the Internet with their PAM lines, invalid users, preauth
closes). Lines are drawn with a fixed seed: each run reads the same bytes.

What is timed:

* in-process (``time.perf_counter``, median of ``--rounds``): ``follow.read_file`` +
  ``authlog.parse_syslog`` + ``authlog.auth_event`` + ``Rules.feed`` over the whole file
  from offset 0, what the daemon's watch thread does;
* whole processes with ``farm-bench`` (start-up included), A = this script's ``read`` mode,
  B = ``fail2ban-regex FILE sshd``, pair by pair.

Run: ``.venv/bin/python bench/login_bench.py [--lines 50000 200000] [--rounds 5]``
(``make bench-deps`` installs fail2ban).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from secops.intrusion import authlog, follow
from secops.intrusion.rules import Policy, Rules

BAR = 50_000
ICT = timezone(timedelta(hours=7))


def make_log(path: Path, lines: int, seed: int = 16) -> None:
    rnd = random.Random(seed)  # noqa: S311 - test data with a fixed seed, not a secret
    t = datetime(2026, 12, 3, 0, 0, tzinfo=ICT)
    attackers = [f"203.0.{rnd.randrange(256)}.{rnd.randrange(1, 255)}" for _ in range(400)]
    office = [f"192.168.1.{i}" for i in range(10, 40)]
    users = ["root", "admin", "ubuntu", "test", "oracle", "postgres", "user", "pi"]
    out = []
    pid = 1000
    for _ in range(lines):
        t += timedelta(milliseconds=rnd.randrange(1, 1700))
        stamp = t.isoformat(timespec="microseconds")
        pid += 1
        r = rnd.random()
        port = rnd.randrange(30000, 65000)
        if r < 0.2:
            out.append(f"{stamp} vm CRON[{pid}]: pam_unix(cron:session): session opened for "
                       "user root(uid=0) by (uid=0)")
        elif r < 0.3:
            out.append(f"{stamp} vm CRON[{pid}]: pam_unix(cron:session): session closed for "
                       "user root")
        elif r < 0.4:
            out.append(f"{stamp} vm sudo[{pid}]:   canbo : TTY=pts/0 ; PWD=/home/canbo ; "
                       "USER=root ; COMMAND=/usr/bin/systemctl status secops")
        elif r < 0.55:
            out.append(f"{stamp} vm systemd-logind[412]: New session {pid} of user canbo.")
        elif r < 0.62:
            ip = rnd.choice(office)
            out.append(f"{stamp} vm sshd[{pid}]: Accepted publickey for canbo from {ip} "
                       f"port {port} ssh2: ED25519 SHA256:q1w2e3r4t5y6u7i8o9p0")
        elif r < 0.82:
            ip, user = rnd.choice(attackers), rnd.choice(users)
            out.append(f"{stamp} vm sshd[{pid}]: pam_unix(sshd:auth): authentication "
                       f"failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}")
            out.append(f"{stamp} vm sshd[{pid}]: Failed password for {user} from {ip} port "
                       f"{port} ssh2")
        elif r < 0.9:
            ip, user = rnd.choice(attackers), rnd.choice(users) + "x"
            out.append(f"{stamp} vm sshd[{pid}]: Invalid user {user} from {ip} port {port}")
            out.append(f"{stamp} vm sshd[{pid}]: Connection closed by invalid user {user} {ip} "
                       f"port {port} [preauth]")
        else:
            out.append(f"{stamp} vm sshd[{pid}]: Received disconnect from "
                       f"{rnd.choice(attackers)} port {port}:11: Bye Bye [preauth]")
    path.write_text("\n".join(out[:lines]) + "\n", encoding="utf-8")


def read_all(path: Path) -> tuple[int, int, float]:
    """Lines read, findings, seconds: what the watch thread does, from offset 0."""
    start = time.perf_counter()
    positions = follow.Positions(path.parent / "pos")
    positions.files[str(path)] = follow.Position(path.stat().st_ino, 0)
    rules = Rules(Policy(tz=ICT))
    lines = findings = 0
    while True:
        batch = follow.read_file(path, positions)
        if not batch:
            break
        for text in batch:
            lines += 1
            line = authlog.parse_syslog(text, year=2026, tz=ICT)
            if line is None:
                continue
            ev = authlog.auth_event(line, 0.0)
            if ev is not None:
                findings += len(rules.feed(ev))
    return lines, findings, time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", nargs="?", default="bench", choices=["bench", "read"])
    ap.add_argument("--file", type=Path)
    ap.add_argument("--lines", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if args.mode == "read":
        n, f, s = read_all(args.file)
        print(json.dumps({"lines": n, "findings": f, "seconds": s}))
        return 0
    work = Path(tempfile.mkdtemp(prefix="secops-login-bench-"))
    results = []
    try:
        for n in args.lines:
            log = work / f"auth-{n}.log"
            make_log(log, n)
            runs = [read_all(log) for _ in range(args.rounds)]
            secs = statistics.median(r[2] for r in runs)
            row: dict[str, object] = {
                "lines": runs[0][0], "findings": runs[0][1], "seconds": round(secs, 3),
                "lines_per_s": round(runs[0][0] / secs)}
            if shutil.which("farm-bench") and shutil.which("fail2ban-regex"):
                done = subprocess.run(
                    ["farm-bench", "-n", str(args.rounds), "--timeout", "900", "--vs",
                     f"fail2ban-regex {log} sshd", "--", sys.executable, __file__, "read",
                     "--file", str(log)], capture_output=True, text=True, check=False)
                row["farm_bench"] = done.stdout.strip().splitlines()[-6:]
            results.append(row)
            print(json.dumps(row, ensure_ascii=False), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ok = all(int(str(r["lines_per_s"])) >= BAR for r in results)
    print(f"bar {BAR} lines/s: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
