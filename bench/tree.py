"""The bench tree: one deterministic generator shared by every benchmark.

About 5,000 files / 700 MB of commune election data, nested ``kind/hamlet/lo-NNN/``: voter
lists as CSV (most files, few bytes), text minutes, random-content office documents, a few
Office lock and temp files (``kind`` "junk", which backups exclude) and random-content
``.jpg``/``.pdf`` scans that carry most of the bytes.  The same ``files``, ``mb`` and ``seed``
give the same bytes under the same names.

With ``text_share`` (0.5: "half text"), every other large file is a text export instead of a
scan (``xuat-du-lieu/``: a commune-wide voter list as CSV, or a log), sized so that text
holds that share of the tree's bytes: what a real office's archive looks like, and where a
per-byte cost on text shows.  0 (the default) is the standard tree, byte for byte.

A manifest (JSON: the key and every entry with its size) sits beside the tree; a later run
with the same key reuses the tree and rewrites only the files whose size is no longer the
planned one (a benchmark appended to some).

Used as ``from bench import tree`` by the scripts in ``bench/``; they put the project root on
``sys.path`` when run as ``.venv/bin/python bench/NAME.py``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

GENERATOR_VERSION = 1  # part of the manifest key: bump it when the output changes
SEED = 2026  # the standard bench tree
FILES = 5000
MB = 700.0

SURNAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng",
            "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý")
MIDDLE = ("Văn", "Thị", "Hữu", "Đức", "Minh", "Ngọc", "Thanh", "Quốc", "Xuân", "Thu")
GIVEN = ("An", "Bình", "Cường", "Dũng", "Giang", "Hà", "Hải", "Hạnh", "Hoa", "Hùng", "Lan",
         "Linh", "Long", "Mai", "Nam", "Nga", "Phúc", "Quang", "Sơn", "Tâm", "Thảo", "Trang",
         "Tuấn", "Vân", "Yến")
HAMLETS = ("thon-1", "thon-2", "thon-3", "thon-dong", "thon-tay", "thon-bac")
HEADERS = {
    "jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
    "docx": b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00",
    "xlsx": b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00",
}
SCANS = "phieu-scan"  # the top folder of the large files
EXPORTS = "xuat-du-lieu"  # the top folder of the large text files (text_share > 0)


@dataclass(frozen=True)
class Entry:
    """One file of the tree: enough to write it again byte for byte."""

    rel: str
    kind: str  # csv, txt, bin (office documents, scans), junk (excluded by the config),
    #            export (a large CSV or log: text_share > 0)
    seed: int
    param: int  # rows for csv, lines for txt, size in bytes for bin, junk and export
    size: int = 0  # filled once written

    @property
    def is_scan(self) -> bool:
        return self.rel.startswith(SCANS + "/")


def _name(rng: random.Random) -> str:
    return f"{rng.choice(SURNAMES)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"


def content(e: Entry) -> bytes:
    """The bytes of one file."""
    rng = random.Random(e.seed)  # noqa: S311 - sample data, not security
    if e.kind == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["STT", "Họ và tên", "Ngày sinh", "Giới tính", "Dân tộc", "Nơi thường trú"])
        hamlet = rng.choice(HAMLETS)
        for i in range(1, e.param + 1):
            born = f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(1940, 2008)}"
            w.writerow([i, _name(rng), born, rng.choice(["Nam", "Nữ"]), "Kinh", hamlet])
        return buf.getvalue().encode("utf-8")
    if e.kind == "txt":
        lines = [f"BIÊN BẢN số {e.seed % 100000} - {rng.choice(HAMLETS)}"]
        for _ in range(e.param):
            voters = rng.randint(800, 1500)
            lines.append(f"{_name(rng)}: tổng số cử tri {voters}, đã bỏ phiếu "
                         f"{voters - rng.randint(0, 40)}, hợp lệ {rng.randint(700, 1400)}")
        return ("\n".join(lines) + "\n").encode("utf-8")
    if e.kind == "export":
        return _export(e, rng)
    ext = e.rel.rsplit(".", 1)[-1]
    header = HEADERS.get(ext, b"")
    return (header + rng.randbytes(max(0, e.param - len(header))))[: e.param]


def _export(e: Entry, rng: random.Random) -> bytes:
    """``e.param`` bytes of a large text export, whole lines: a voter list (CSV) or a log."""
    names = [_name(rng) for _ in range(1024)]
    bits = rng.getrandbits
    log = e.rel.endswith(".log")
    parts = ["thoi_gian,may,su_kien,nguoi_dung,chi_tiet\n" if log else
             "STT,Họ và tên,Ngày sinh,Giới tính,Số CCCD,Nơi thường trú\n"]
    size = len(parts[0].encode("utf-8"))
    i = 0
    while size < e.param - 160:
        i += 1
        who = names[bits(10)]
        if log:
            line = (f"2026-{bits(3) % 12 + 1:02d}-{bits(5) % 28 + 1:02d} {bits(5) % 24:02d}:"
                    f"{bits(6) % 60:02d}:{bits(6) % 60:02d},may-{bits(4)},"
                    f"{('mo-tep', 'luu-tep', 'in', 'dang-nhap')[bits(2)]},{who},"
                    f"to-khai-{bits(14):05d}.pdf\n")
        else:
            line = (f"{i},{who},{bits(5) % 28 + 1:02d}/{bits(4) % 12 + 1:02d}/"
                    f"{1940 + bits(6)},{('Nam', 'Nữ')[bits(1)]},0{bits(36):011d},"
                    f"{HAMLETS[bits(8) % len(HAMLETS)]}\n")
        parts.append(line)
        size += len(line.encode("utf-8"))
    pad = e.param - size
    if pad > 0:  # an ASCII last line makes the exact size
        parts.append("#" * (pad - 1) + "\n")
    return "".join(parts).encode("utf-8")[: e.param]


def plan_tree(files: int, mb: float, seed: int, text_share: float = 0.0) -> list[Entry]:
    """The deterministic list of files: mostly small CSV/text, some large incompressible
    (with ``text_share``, every other large one a text export instead)."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not security
    n_junk = max(3, files // 500)
    n_scan = max(1, round(files * 0.15))
    n_doc = round(files * 0.10)
    n_txt = round(files * 0.30)
    n_csv = max(1, files - n_junk - n_scan - n_doc - n_txt)
    entries: list[Entry] = []

    def place(top: str, i: int, name: str) -> str:
        return f"{top}/{HAMLETS[i % len(HAMLETS)]}/lo-{i // 40:03d}/{name}"

    for i in range(n_csv):
        entries.append(Entry(place("danh-sach-cu-tri", i, f"danh-sach-{i:05d}.csv"), "csv",
                             rng.getrandbits(63), rng.randint(20, 600)))
    for i in range(n_txt):
        entries.append(Entry(place("bien-ban", i, f"bien-ban-{i:05d}.txt"), "txt",
                             rng.getrandbits(63), rng.randint(5, 120)))
    for i in range(n_doc):
        ext = "docx" if i % 3 else "xlsx"
        entries.append(Entry(place("ho-so-ung-cu-vien", i, f"ho-so-{i:05d}.{ext}"), "bin",
                             rng.getrandbits(63), rng.randint(20_000, 200_000)))
    junk_names = ("~$ho-so-{i:05d}.docx", "tam-{i:05d}.tmp", ".~lock.bien-ban-{i:05d}.odt#")
    for i in range(n_junk):
        name = junk_names[i % len(junk_names)].format(i=i)
        entries.append(Entry(place("ho-so-ung-cu-vien", i * 7, name), "junk",
                             rng.getrandbits(63), rng.randint(100, 4000)))
    scan_seeds = [rng.getrandbits(63) for _ in range(n_scan)]
    weights = [rng.uniform(0.4, 1.6) for _ in range(n_scan)]
    # the text sizes are known only once written: write them to size the scans
    fixed = sum(len(content(e)) if e.kind in ("csv", "txt") else e.param for e in entries)
    if not text_share:
        budget = max(n_scan * 4096, int(mb * 1_000_000) - fixed)
        total_w = sum(weights)
        for i, (s, w) in enumerate(zip(scan_seeds, weights, strict=True)):
            ext = "jpg" if i % 4 else "pdf"
            size = max(4096, int(budget * w / total_w))
            entries.append(Entry(place(SCANS, i, f"to-khai-{i:05d}.{ext}"), "bin", s, size))
        return entries
    small_text = sum(len(content(e)) for e in entries if e.kind in ("csv", "txt"))
    budgets = {"export": max(0, int(mb * 1_000_000 * text_share) - small_text),
               "bin": max(0, int(mb * 1_000_000 * (1 - text_share)) - (fixed - small_text))}
    kinds = ["export" if i % 2 else "bin" for i in range(n_scan)]
    totals = {k: sum(w for w, x in zip(weights, kinds, strict=True) if x == k) or 1.0
              for k in budgets}
    for i, (s, w, kind) in enumerate(zip(scan_seeds, weights, kinds, strict=True)):
        size = max(4096, int(budgets[kind] * w / totals[kind]))
        if kind == "bin":
            ext = "jpg" if i % 4 else "pdf"
            entries.append(Entry(place(SCANS, i, f"to-khai-{i:05d}.{ext}"), kind, s, size))
        else:
            name = f"nhat-ky-{i:05d}.log" if i % 4 == 3 else f"danh-sach-xa-{i:05d}.csv"
            entries.append(Entry(place(EXPORTS, i, name), kind, s, size))
    return entries


def ensure_tree(root: Path, manifest: Path, files: int, mb: float, *, seed: int,
                log: Callable[[str], None], text_share: float = 0.0) -> list[Entry]:
    """Generate the tree, or reuse it: rewrite only files whose size is not the planned one
    (an earlier run appended to some)."""
    key: dict[str, float] = {"version": GENERATOR_VERSION, "files": files, "mb": mb,
                             "seed": seed}
    if text_share:
        key["text_share"] = text_share
    if manifest.exists() and root.is_dir():
        doc = json.loads(manifest.read_text())
        if doc.get("key") == key:
            entries = [Entry(**e) for e in doc["entries"]]
            fixed = 0
            for e in entries:
                p = root / e.rel
                try:
                    ok = p.stat().st_size == e.size
                except FileNotFoundError:
                    ok = False
                if not ok:
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_bytes(content(e))
                    fixed += 1
            log(f"tree: reusing {root} ({len(entries)} files, {fixed} restored)")
            return entries
    log(f"tree: generating {files} files / {mb:g} MB under {root} (seed {seed}, "
        f"text share {text_share:g})")
    if root.exists():
        shutil.rmtree(root)
    entries = []
    for e in plan_tree(files, mb, seed, text_share):
        data = content(e)
        p = root / e.rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        entries.append(Entry(e.rel, e.kind, e.seed, e.param, len(data)))
    manifest.write_text(json.dumps({"key": key, "entries": [asdict(e) for e in entries]}))
    return entries


def read_tree(root: Path) -> int:
    """Read every file once (page-cache warm-up); return the bytes read."""
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            with open(os.path.join(dirpath, n), "rb") as f:
                while chunk := f.read(1 << 20):
                    total += len(chunk)
    return total


def pyplot() -> Any:
    """matplotlib's pyplot drawing to files (Agg), or None without matplotlib (the
    ``bench`` extra)."""
    try:
        import matplotlib
    except ImportError:
        print("no matplotlib (pip install -e '.[bench]'): no plot", flush=True)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
