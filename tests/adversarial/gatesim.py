"""The attacker (and the honest bystander) of the open-gate tests. Run it as its own process.

    python tests/adversarial/gatesim.py MODE --dir DATA --out LOG [options]

The defender may SIGSTOP or kill it, so it is never the test process. Every step is one line
appended to ``--out`` (flushed at once): ``done <path>``, ``failed <path> <ERRNO>``, ``probe
ok`` / ``probe <ERRNO>``, ``finished``.

Modes:

- ``encrypt``: overwrite up to ``--count`` documents under ``--dir`` (seeded order; only
  ``--only SUFFIX`` ones if given) with random bytes in place, until the first refusal;
  then, with ``--probe FILE``, try to read FILE every 50 ms (``probe ...`` lines) until
  ``--stop FILE`` exists. A process that was stopped and resumed shows here whether the gate
  still refuses it.
- ``move-encrypt``: make the new folder ``--into`` (under ``--dir``), move ``--count``
  documents into it, then encrypt each there.
- ``link-encrypt``: hard-link ``--count`` documents into ``--into`` (outside the watched
  tree, same filesystem) and encrypt them through the links.
- ``link-unlink-encrypt``: for each document in turn: hard-link it into ``--into``, open the
  link, unlink it, encrypt through the open file, close it. When its close is reported the
  file has one name again, the watched one.
- ``read``: wait for a line on stdin, then read ``--probe`` once (``probe ...``): the honest
  process that may get a recycled pid.
- ``held-encrypt``: fork ``--workers`` processes (``workers PID...``); each opens its share
  of ``--count`` documents read-write first (``opened N``: honest-looking opens, nothing
  changed yet), and once all have, encrypts them through the descriptors it holds,
  ``--delay`` seconds between files. Worker 0 starts first and closes each file after its
  write (the gate and the alarm name it); the others start a second later and close
  nothing. No open is left for the gate to refuse, and ``chattr +i`` does not stop a write
  through a descriptor opened before it. With ``--same``, each file is written back
  unchanged (an honest program with the same shape: a sync tool).
- ``hold``: the honest bystander: keep ``--probe`` open for writing and append a line to it
  every 0.2 s (``done <path>`` each time) until ``--stop`` exists.

Only the standard library: no import from the test package or from secops.
"""

from __future__ import annotations

import argparse
import errno
import os
import random
import sys
import time
from pathlib import Path

DOCUMENTS = (".docx", ".xlsx", ".pdf", ".jpg", ".csv")


class Log:
    def __init__(self, path: Path) -> None:
        self.f = path.open("a", encoding="utf-8")

    def line(self, text: str) -> None:
        self.f.write(text + "\n")
        self.f.flush()


def documents(root: Path, count: int, seed: int, only: str = "") -> list[Path]:
    kinds = (only,) if only else DOCUMENTS
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in kinds
                   and "secops-canary" not in p.name and not p.name.startswith("."))
    random.Random(seed).shuffle(found)  # noqa: S311 - an order, not a secret
    return found[:count]


def scramble(path: Path) -> None:
    """Encrypt in place: the same size, random bytes (what AES-CTR output looks like)."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.write(os.urandom(size))
        f.flush()
        os.fsync(f.fileno())


def encrypt_all(paths: list[Path], log: Log) -> None:
    for path in paths:
        try:
            scramble(path)
        except OSError as e:
            log.line(f"failed {path} {errno.errorcode.get(e.errno or 0, e.errno)}")
            return
        log.line(f"done {path}")


def link_unlink_encrypt(paths: list[Path], into: Path, log: Log) -> None:
    for i, path in enumerate(paths):
        link = into / f"{i:03d}-{path.name}"
        try:
            os.link(path, link)
            with link.open("r+b") as f:
                link.unlink()
                f.write(os.urandom(os.fstat(f.fileno()).st_size))
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            log.line(f"failed {path} {errno.errorcode.get(e.errno or 0, e.errno)}")
            return
        log.line(f"done {path}")


def held_encrypt(paths: list[Path], log: Log, out: Path, *, workers: int, delay: float,
                 same: bool) -> None:
    start = time.monotonic() + 2.0  # every open is done (and judged) before the first write
    kids = []
    for i in range(workers):
        pid = os.fork()
        if pid == 0:
            # worker 0 goes first and closes each file (its close-writes name it); the others
            # start a second later and never close a file: only inotify sees their writes
            os._exit(_held_worker(paths[i::workers], Log(out), start + (i > 0), delay=delay,
                                  same=same, close=i == 0))
        kids.append(pid)
    log.line("workers " + " ".join(map(str, kids)))
    for pid in kids:
        os.waitpid(pid, 0)


def _held_worker(paths: list[Path], log: Log, start: float, *, delay: float, same: bool,
                 close: bool) -> int:
    held: list[tuple[Path, int]] = []
    for path in paths:
        try:
            held.append((path, os.open(path, os.O_RDWR)))
        except OSError as e:
            log.line(f"failed {path} {errno.errorcode.get(e.errno or 0, e.errno)}")
    log.line(f"opened {len(held)}")
    time.sleep(max(0.0, start - time.monotonic()))
    for path, fd in held:
        try:
            size = os.fstat(fd).st_size
            os.pwrite(fd, os.pread(fd, size, 0) if same else os.urandom(size), 0)
            os.fsync(fd)
        except OSError as e:
            log.line(f"failed {path} {errno.errorcode.get(e.errno or 0, e.errno)}")
        else:
            log.line(f"done {path}")
        if close:
            os.close(fd)
        time.sleep(delay)
    return 0


def hold(path: Path, log: Log, stop: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    while not stop.exists():
        os.write(fd, b"dong ghi nhat ky\n")
        log.line(f"done {path}")
        time.sleep(0.2)


def probe(path: Path, log: Log) -> None:
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as e:
        log.line(f"probe {errno.errorcode.get(e.errno or 0, e.errno)}")
    else:
        log.line("probe ok")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("mode", choices=["encrypt", "move-encrypt", "link-encrypt",
                                     "link-unlink-encrypt", "read", "held-encrypt", "hold"])
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="only documents of this suffix (.csv)")
    ap.add_argument("--into", type=Path)
    ap.add_argument("--probe", type=Path)
    ap.add_argument("--stop", type=Path)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--same", action="store_true")
    args = ap.parse_args(argv)
    log = Log(args.out)
    if args.mode == "read":
        sys.stdin.readline()
        probe(args.probe, log)
        return 0
    if args.mode == "hold":
        hold(args.probe, log, args.stop)
        return 0
    victims = documents(args.dir, args.count, args.seed, args.only)
    if args.mode == "link-unlink-encrypt":
        link_unlink_encrypt(victims, args.into, log)
        log.line("finished")
        return 0
    if args.mode == "held-encrypt":
        held_encrypt(victims, log, args.out, workers=args.workers, delay=args.delay,
                     same=args.same)
        log.line("finished")
        return 0
    if args.mode == "move-encrypt":
        args.into.mkdir()
        moved: list[Path] = []
        for path in victims:
            moved.append(args.into / path.name)
            path.rename(moved[-1])
            log.line(f"moved {path} {moved[-1]}")
        victims = moved
    elif args.mode == "link-encrypt":
        linked: list[Path] = []
        for path in victims:
            linked.append(args.into / f"{len(linked):03d}-{path.name}")
            os.link(path, linked[-1])
            log.line(f"linked {path} {linked[-1]}")
        victims = linked
    encrypt_all(victims, log)
    if args.probe is not None:
        while args.stop is None or not args.stop.exists():
            probe(args.probe, log)
            time.sleep(0.05)
    log.line("finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
