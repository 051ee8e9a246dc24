"""Benign office work that a ransomware detector must NOT alarm on.

Each function does one thing an office really does to its election folder, the way the
program that does it touches the file system: LibreOffice's lock file and save-by-replace,
a CSV edited in place, a batch of scans imported, an archive made, one file encrypted with
GnuPG by its owner, a bulk rename. All deterministic for the same input.

The user touches their own documents: ``make_zip`` and ``bulk_rename`` leave hidden files
and secops' canary files alone (what a canary touch means is the detector's business).
"""

from __future__ import annotations

import csv
import io
import os
import random
import shutil
import stat
import subprocess
import zipfile
import zlib
from pathlib import Path

from PIL import Image

from integration.corpus import CANARY_MARK, name, scan_jpeg
from secops.demo.documents import (
    ZIP_DATE,
    docx_bytes,
    docx_paragraphs,
    pdf_jpeg_bytes,
    xlsx_bytes,
    xlsx_rows,
)

LOCK_OWNER = ",Cán bộ Văn phòng,may-tinh-ubnd,01.03.2026 08:00,file:///home/canbo/.config/libreoffice/4;"
GPG_PASSPHRASE = "mat-khau-cua-chu-tich-2026"  # a user's own passphrase, test only
SCAN_PDF_SHARE = 0.35


def _own_document(path: Path) -> bool:
    return not path.name.startswith(".") and CANARY_MARK not in path.name


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def office_save(path: Path, new_text: str) -> None:
    """Save ``path`` (.docx or .xlsx) as LibreOffice does, with ``new_text`` added to it.

    Lock file ``.~lock.<name>#``, the whole new document in ``lu<digits>.tmp`` in the same
    folder, fsync, ``os.replace`` over the original (mode kept), lock file removed. Each line
    of ``new_text`` becomes a paragraph (DOCX) or a one-cell row (XLSX).
    """
    old = path.read_bytes()
    lines = new_text.splitlines()
    match path.suffix.lower():
        case ".docx":
            data = docx_bytes([*docx_paragraphs(old), *lines])
        case ".xlsx":
            added: list[list[str | int]] = [[line] for line in lines]
            data = xlsx_bytes([*xlsx_rows(old), *added])
        case _:
            raise ValueError(f"office_save writes .docx or .xlsx, not {path.name}")
    lock = path.with_name(f".~lock.{path.name}#")
    temp = path.with_name(f"lu{zlib.crc32(path.name.encode()) % 10**8:08d}.tmp")
    lock.write_text(LOCK_OWNER + "\n", encoding="utf-8")
    try:
        _write_synced(temp, data)
        temp.chmod(stat.S_IMODE(path.stat().st_mode))
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
        lock.unlink(missing_ok=True)


def edit_csv(path: Path, rows: int = 3) -> None:
    """Append ``rows`` voters to a voter list in place, numbered after the last row."""
    old = path.read_bytes()
    existing = list(csv.reader(io.StringIO(old.decode("utf-8"))))
    width = len(existing[0]) if existing else 8
    last = existing[-1][0] if existing else "0"
    start = int(last) + 1 if last.isdigit() else len(existing)
    rng = random.Random(f"{path.name}:{len(old)}")  # noqa: S311 - test data
    newline = "\r\n" if old.endswith(b"\r\n") or not old.endswith(b"\n") else "\n"
    buf = io.StringIO()
    if old and not old.endswith(b"\n"):
        buf.write(newline)
    writer = csv.writer(buf, lineterminator=newline)
    for i in range(start, start + rows):
        row = [str(i), name(rng), f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/2008",
               rng.choice(["Nam", "Nữ"]), "Kinh", f"0{rng.randint(10**10, 10**11 - 1)}",
               "Thôn 1, xã Tân Kỳ", "Cử tri mới"]
        writer.writerow((row + [""] * width)[:width])
    with path.open("ab") as f:
        f.write(buf.getvalue().encode("utf-8"))


def import_scans(dest: Path, n: int = 200, seed: int = 1) -> list[Path]:
    """Import ``n`` scanned forms into the new folder ``dest``: JPEGs and scanned PDFs."""
    rng = random.Random(seed)  # noqa: S311 - test data
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(1, n + 1):
        jpeg = scan_jpeg(rng)
        if rng.random() < SCAN_PDF_SHARE:
            with Image.open(io.BytesIO(jpeg)) as img:
                width, height, gray = img.width, img.height, img.mode == "L"
            path = dest / f"scan-{i:04d}.pdf"
            path.write_bytes(pdf_jpeg_bytes(jpeg, width, height, gray=gray))
        else:
            path = dest / f"IMG_{i:04d}.jpg"
            path.write_bytes(jpeg)
        paths.append(path)
    return paths


def make_zip(src_dir: Path, zip_path: Path, count: int = 8) -> None:
    """Archive about ``count`` documents of ``src_dir`` (spread over the tree) in ``zip_path``."""
    files = sorted(p for p in src_dir.rglob("*")
                   if p.is_file() and not p.is_symlink() and _own_document(p) and p != zip_path)
    step = max(1, len(files) // count)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files[::step][:count]:
            info = zipfile.ZipInfo(path.relative_to(src_dir).as_posix(), date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())


def gpg_encrypt_one(path: Path, gnupghome: Path, *, passphrase: str = GPG_PASSPHRASE) -> Path:
    """Encrypt ``path`` to ``<path>.gpg`` with a passphrase (AES256), keeping the original.

    The passphrase goes through stdin; ``gnupghome`` is created 0700 and must be short
    enough for gpg-agent's socket (about 80 characters). The agent gpg starts there is
    stopped before returning.
    """
    gnupghome.mkdir(mode=0o700, parents=True, exist_ok=True)
    gnupghome.chmod(0o700)
    out = path.with_name(path.name + ".gpg")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "HOME": os.environ.get("HOME", str(gnupghome)), "GNUPGHOME": str(gnupghome)}
    gpg = shutil.which("gpg") or "gpg"
    argv = [gpg, "--batch", "--symmetric", "--cipher-algo", "AES256", "--pinentry-mode",
            "loopback", "--passphrase-fd", "0", "-o", str(out), str(path)]
    try:
        done = subprocess.run(argv, input=passphrase.encode() + b"\n", capture_output=True,
                              env=env, timeout=60, check=False)
    finally:
        subprocess.run([str(Path(gpg).with_name("gpgconf")), "--homedir", str(gnupghome),
                        "--kill", "all"], env=env, capture_output=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"gpg exited {done.returncode} encrypting {path}: "
                           f"{done.stderr.decode(errors='replace').strip()}")
    return out


def bulk_rename(folder: Path, n: int = 50, prefix: str = "2026-") -> list[Path]:
    """Rename the first ``n`` documents under ``folder`` (sorted) to ``<prefix><name>``."""
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and not p.is_symlink() and _own_document(p)
                   and not p.name.startswith(prefix))
    renamed = []
    for path in files[:n]:
        target = path.with_name(prefix + path.name)
        path.rename(target)
        renamed.append(target)
    return renamed
