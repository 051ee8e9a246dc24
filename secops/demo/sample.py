"""A realistic, generated sample of a commune's election folder (deterministic by seed).

Voter lists as CSV with Vietnamese names, candidate dossiers, tally minutes and scanned forms.
Used by ``secops demo``, the tests and the benchmarks (which ask for thousands of files).
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from pathlib import Path

SURNAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng",
            "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý"]
MIDDLE = ["Văn", "Thị", "Hữu", "Đức", "Minh", "Ngọc", "Thanh", "Quốc", "Xuân", "Thu"]
GIVEN = ["An", "Bình", "Cường", "Dũng", "Giang", "Hà", "Hải", "Hạnh", "Hoa", "Hùng", "Lan",
         "Linh", "Long", "Mai", "Nam", "Nga", "Phúc", "Quang", "Sơn", "Tâm", "Thảo", "Trang",
         "Tuấn", "Vân", "Yến"]
HAMLETS = ["thon-1", "thon-2", "thon-3", "thon-dong", "thon-tay", "thon-bac"]
JPEG_HEADER = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
PDF_HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"


@dataclass(frozen=True)
class SampleStats:
    files: int
    bytes: int


def _name(rng: random.Random) -> str:
    return f"{rng.choice(SURNAMES)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"


def _voter_csv(rng: random.Random, hamlet: str, rows: int) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["STT", "Họ và tên", "Ngày sinh", "Giới tính", "Dân tộc", "Nơi thường trú"])
    for i in range(1, rows + 1):
        born = f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(1940, 2008)}"
        w.writerow([i, _name(rng), born, rng.choice(["Nam", "Nữ"]), "Kinh", hamlet])
    return buf.getvalue().encode("utf-8")


def _dossier(rng: random.Random, n: int) -> bytes:
    name = _name(rng)
    text = (f"HỒ SƠ ỨNG CỬ VIÊN số {n}\nHọ và tên: {name}\n"
            f"Ứng cử: Đại biểu Hội đồng nhân dân xã nhiệm kỳ 2026-2031\n"
            f"Nghề nghiệp: {rng.choice(['Nông dân', 'Giáo viên', 'Cán bộ', 'Bác sĩ'])}\n")
    return text.encode("utf-8")


def _tally(rng: random.Random, unit: int) -> bytes:
    voters = rng.randint(800, 1500)
    cast = voters - rng.randint(0, 40)
    return (f"BIÊN BẢN KIỂM PHIẾU - Tổ bầu cử số {unit}\n"
            f"Tổng số cử tri: {voters}\nSố cử tri đã bỏ phiếu: {cast}\n"
            f"Số phiếu hợp lệ: {cast - rng.randint(0, 10)}\n").encode()


def generate(root: Path, *, seed: int = 2026, voters_per_hamlet: int = 200,
             candidates: int = 12, units: int = 6, scans: int = 20, scan_bytes: int = 60_000,
             ) -> SampleStats:
    """Write the sample under ``root`` (created if needed); return what was written."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not security
    files: dict[Path, bytes] = {}
    for h in HAMLETS:
        files[root / "danh-sach-cu-tri" / f"{h}.csv"] = _voter_csv(rng, h, voters_per_hamlet)
    for n in range(1, candidates + 1):
        files[root / "ho-so-ung-cu-vien" / f"ung-cu-vien-{n:02d}.txt"] = _dossier(rng, n)
        files[root / "ho-so-ung-cu-vien" / f"ung-cu-vien-{n:02d}.pdf"] = (
            PDF_HEADER + rng.randbytes(8_000) + b"\n%%EOF\n")
    for u in range(1, units + 1):
        files[root / "bien-ban-kiem-phieu" / f"to-bau-cu-{u:02d}.txt"] = _tally(rng, u)
    for s in range(1, scans + 1):
        size = max(64, int(rng.uniform(0.5, 1.5) * scan_bytes))
        files[root / "phieu-scan" / f"to-khai-{s:05d}.jpg"] = (
            JPEG_HEADER + rng.randbytes(size) + b"\xff\xd9")
    total = 0
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        total += len(data)
    return SampleStats(len(files), total)
