"""A realistic, deterministic corpus of a commune's election folder, made of real documents.

Voter lists (UTF-8 CSV with Vietnamese names), candidate dossiers and meeting minutes (DOCX),
tally minutes (PDF), results (XLSX) and scanned forms (JPEG made with Pillow). Every file opens
in the program it is meant for, so that entropy and magic-byte checks see what an office has.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import os
import random
import stat
from collections.abc import Callable
from functools import partial
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from secops.demo.documents import ascii_text, docx_bytes, pdf_bytes, xlsx_bytes
from secops.demo.sample import GIVEN, HAMLETS, MIDDLE, SURNAMES

CANARY_MARK = "secops-canary"
COMMUNE = "xã Tân Kỳ"
# Share of each kind; scans take what is left.
SHARES = {"csv": 0.25, "docx": 0.25, "xlsx": 0.15, "pdf": 0.15}
JPEG_QUALITY = 85
PLACES = ["UBND xã", "Trường tiểu học", "Hợp tác xã", "Trạm y tế", "Hội Nông dân"]


def name(rng: random.Random) -> str:
    return f"{rng.choice(SURNAMES)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"


def _date(rng: random.Random, first: int = 1940, last: int = 2008) -> str:
    return f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(first, last)}"


def voter_csv(rng: random.Random, hamlet: str, rows: int) -> bytes:
    """A voter list of ``rows`` voters (about 95 bytes each), as Excel exports it."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["STT", "Họ và tên", "Ngày sinh", "Giới tính", "Dân tộc", "Số CCCD",
                "Nơi thường trú", "Ghi chú"])
    for i in range(1, rows + 1):
        w.writerow([i, name(rng), _date(rng), rng.choice(["Nam", "Nữ"]),
                    rng.choice(["Kinh", "Kinh", "Kinh", "Mường", "Thái"]),
                    f"0{rng.randint(10**10, 10**11 - 1)}",
                    f"{hamlet.replace('-', ' ').title()}, {COMMUNE}",
                    rng.choice(["", "", "", "Tạm vắng", "Chuyển đến", "Cử tri mới"])])
    return buf.getvalue().encode("utf-8")


def dossier_docx(rng: random.Random, number: int) -> bytes:
    """A candidate's CV ("sơ yếu lý lịch") with a variable work history."""
    who = name(rng)
    paragraphs = [
        f"SƠ YẾU LÝ LỊCH NGƯỜI ỨNG CỬ ĐẠI BIỂU HĐND {COMMUNE.upper()}",
        f"Hồ sơ số {number:03d}", f"Họ và tên: {who}", f"Ngày sinh: {_date(rng, 1960, 1998)}",
        f"Quê quán: {rng.choice(HAMLETS).replace('-', ' ').title()}, {COMMUNE}",
        f"Nghề nghiệp: {rng.choice(['Nông dân', 'Giáo viên', 'Cán bộ', 'Bác sĩ', 'Kỹ sư'])}",
        "QUÁ TRÌNH CÔNG TÁC",
    ]
    for _ in range(rng.randint(10, 250)):
        start = rng.randint(1980, 2024)
        paragraphs.append(
            f"Từ {start} đến {start + rng.randint(1, 6)}: "
            f"{rng.choice(['Công tác tại', 'Giảng dạy tại', 'Làm việc tại', 'Tham gia'])} "
            f"{rng.choice(PLACES)} {rng.choice(HAMLETS).replace('-', ' ')}, "
            f"phụ trách {rng.randint(1, 40)} hộ dân.")
    paragraphs.append(f"Tôi xin cam đoan những lời khai trên là đúng sự thật. Người khai: {who}")
    return docx_bytes(paragraphs)


def minutes_docx(rng: random.Random, number: int) -> bytes:
    """Minutes of a preparation meeting, with a list of attendees and resolutions."""
    paragraphs = [f"BIÊN BẢN HỌP Tổ bầu cử số {number:02d}", f"Ngày {_date(rng, 2026, 2026)}",
                  f"Chủ trì: {name(rng)}", "Thành phần tham dự:"]
    paragraphs += [f"- {name(rng)}, {rng.choice(['tổ trưởng', 'thư ký', 'tổ viên'])}"
                   for _ in range(rng.randint(5, 60))]
    tasks = ["niêm yết danh sách cử tri", "kiểm tra hòm phiếu", "phân công trực",
             "tiếp nhận khiếu nại"]
    paragraphs += [f"Nội dung {i}: {rng.choice(tasks)} tại "
                   f"{rng.choice(HAMLETS).replace('-', ' ')}, "
                   f"hoàn thành trước {_date(rng, 2026, 2026)}."
                   for i in range(1, rng.randint(5, 120))]
    return docx_bytes(paragraphs)


def tally_pdf(rng: random.Random, unit: int) -> bytes:
    """Tally minutes ("biên bản kiểm phiếu") of one polling unit."""
    voters = rng.randint(400, 2500)
    cast = voters - rng.randint(0, 60)
    lines = [f"BIÊN BẢN KIỂM PHIẾU - Tổ bầu cử số {unit:02d}, {COMMUNE}",
             f"Tổng số cử tri: {voters}", f"Số cử tri đã bỏ phiếu: {cast}",
             f"Số phiếu hợp lệ: {cast - rng.randint(0, 25)}", ""]
    lines += [f"{i:3d}. {name(rng)} ........ {rng.randint(0, cast)} phiếu"
              for i in range(1, rng.randint(20, 600))]
    lines += ["", f"Tổ trưởng: {name(rng)}", f"Thư ký: {name(rng)}"]
    return pdf_bytes(lines)


def results_xlsx(rng: random.Random, unit: int) -> bytes:
    """Results per candidate of one polling unit."""
    rows: list[list[str | int]] = [["STT", "Họ và tên", "Tổ bầu cử", "Số phiếu bầu", "Ghi chú"]]
    rows += [[i, name(rng), unit, rng.randint(0, 2000), rng.choice(["", "Trúng cử", ""])]
             for i in range(1, rng.randint(15, 500))]
    return xlsx_bytes(rows)


def scan_jpeg(rng: random.Random) -> bytes:
    """A scanned A4 form: paper grain, ruled lines, typed text, sometimes a red seal.

    The noise comes from ``rng`` (Pillow's own noise generator cannot be seeded); its
    resolution and amplitude and the page size spread the files over about 20-200 KB.
    """
    width = rng.randint(380, 860)
    height = int(width * 1.414)
    grain = rng.choice([2, 2, 3])
    small = (width // grain, height // grain)
    noise = Image.frombytes("L", small, rng.randbytes(small[0] * small[1]))
    amplitude = rng.randint(6, 22)
    floor = 255 - amplitude
    paper = noise.resize((width, height), Image.Resampling.BILINEAR).point(
        lambda v: floor + v * amplitude // 255)
    color = rng.random() < 0.3
    img = paper.convert("RGB") if color else paper
    draw = ImageDraw.Draw(img)
    ink: Callable[[int], int | tuple[int, int, int]] = (
        (lambda v: (v, v, v + 20)) if color else (lambda v: v))
    font = ImageFont.load_default(size=max(10, width // 45))
    draw.text((width // 12, 20), ascii_text(f"PHIEU BAU CU - {COMMUNE}").upper(),
              fill=ink(20), font=font)
    y = 60
    while y < height - 40:
        draw.line((width // 14, y, width - width // 14, y), fill=ink(rng.randint(40, 110)))
        draw.text((width // 12, y + 5), ascii_text(f"{name(rng)}  {_date(rng)}  "
                                                   f"so {rng.randint(1, 99999)}"),
                  fill=ink(rng.randint(10, 60)), font=font)
        y += rng.randint(28, 70)
    if color:
        x, r = rng.randint(width // 2, width - 120), rng.randint(40, 60)
        draw.ellipse((x - r, height - 3 * r, x + r, height - r), outline=(200, 30, 30), width=4)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def kind_counts(n: int) -> dict[str, int]:
    """How many files of each kind a corpus of ``n`` holds."""
    counts = {kind: int(n * share) for kind, share in SHARES.items()}
    counts["jpg"] = n - sum(counts.values())
    return counts


def _plan(rng: random.Random, n: int) -> list[tuple[str, Callable[[], bytes]]]:
    counts = kind_counts(n)
    plan: list[tuple[str, Callable[[], bytes]]] = []
    for i in range(counts["csv"]):
        hamlet = HAMLETS[i % len(HAMLETS)]
        rows = rng.randint(55, 620)
        plan.append((f"danh-sach-cu-tri/{hamlet}/danh-sach-{i + 1:03d}.csv",
                     partial(voter_csv, rng, hamlet, rows)))
    for i in range(counts["docx"]):
        if i % 2 == 0:
            plan.append((f"ho-so-ung-vien/ung-vien-{i + 1:03d}.docx",
                         partial(dossier_docx, rng, i + 1)))
        else:
            plan.append((f"bien-ban/bien-ban-hop-{i + 1:03d}.docx",
                         partial(minutes_docx, rng, i + 1)))
    for i in range(counts["xlsx"]):
        plan.append((f"ket-qua/ket-qua-to-{i + 1:03d}.xlsx", partial(results_xlsx, rng, i + 1)))
    for i in range(counts["pdf"]):
        plan.append((f"bien-ban/kiem-phieu-to-{i + 1:03d}.pdf", partial(tally_pdf, rng, i + 1)))
    for i in range(counts["jpg"]):
        plan.append((f"scan/phieu-{i + 1:04d}.jpg", partial(scan_jpeg, rng)))
    return plan


def make_corpus(root: Path, n: int = 300, seed: int = 0) -> dict[str, str]:
    """Write ``n`` documents under ``root``; return {relative path: sha256 hex}.

    Deterministic for a given ``(n, seed)``. Mix: 25% CSV, 25% DOCX, 15% XLSX, 15% PDF,
    20% JPEG.
    """
    hashes: dict[str, str] = {}
    for rel, data in _documents(n, seed):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        hashes[rel] = hashlib.sha256(data).hexdigest()
    return hashes


@functools.cache
def _documents(n: int, seed: int) -> tuple[tuple[str, bytes], ...]:
    """The documents of ``(n, seed)``, made once per test process (1.7 s for 300)."""
    rng = random.Random(seed)  # noqa: S311 - test data, not security
    return tuple((rel, make()) for rel, make in _plan(rng, n))


def sha_tree(root: Path) -> dict[str, str]:
    """{relative path: sha256 hex} of every regular file under ``root``, canaries excepted."""
    hashes: dict[str, str] = {}
    for folder, _dirs, files in os.walk(root):
        for file_name in files:
            path = Path(folder, file_name)
            if CANARY_MARK in file_name or not stat.S_ISREG(path.lstat().st_mode):
                continue
            with path.open("rb") as f:
                hashes[path.relative_to(root).as_posix()] = hashlib.file_digest(
                    f, "sha256").hexdigest()
    return hashes
