"""Canary (decoy) files: real documents secops places in each watched folder and its first
subfolders, named to sort first and last, that no legitimate user opens for writing.

Any write, rename or deletion of one is ``canary.touched``: an alarm at once. Backups and the
baseline leave them out (``CANARY_MARK`` in the name); their expected hashes are kept in the
FIM metadata so a change made while the daemon was down is found at start.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from secops.fim.baseline import Baseline
from secops.layout import CANARY_MARK

NAMES = (f"0000-{CANARY_MARK}.docx", f"zzzz-{CANARY_MARK}.xlsx")
NOTICE = ("Tệp canh gác của hệ thống secops: không mở, không sửa, không xóa. "
          "secops decoy file: do not open, edit or delete.")


def is_canary(path: str) -> bool:
    return os.path.basename(path) in NAMES


def _content(name: str) -> bytes:
    from secops.demo.documents import docx_bytes, xlsx_bytes

    if name.endswith(".docx"):
        return docx_bytes([NOTICE, "Danh sách cử tri - bản lưu trữ", "Biên bản kiểm phiếu"])
    return xlsx_bytes([["STT", "Họ và tên", "Ghi chú"], [1, "Nguyễn Văn An", NOTICE]])


def folders(roots: Sequence[str], depth: int, excludes: Sequence[str]) -> list[str]:
    from secops.manifest.scan import excluded

    out: list[str] = []
    for root in roots:
        stack = [(root, 0)]
        while stack:
            folder, d = stack.pop()
            out.append(folder)
            if d >= depth:
                continue
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            stack.extend((e.path, d + 1) for e in entries
                         if e.is_dir(follow_symlinks=False)
                         and not excluded(e.name, e.path, excludes))
    return out


def place(roots: Sequence[str], depth: int, excludes: Sequence[str], baseline: Baseline
          ) -> tuple[list[str], list[str]]:
    """Create missing canaries; returns (all canaries, those found altered).

    An existing canary whose content is not what secops wrote is reported, not replaced: it
    is evidence.
    """
    expected: dict[str, str] = json.loads(baseline.meta("canaries") or "{}")
    altered: list[str] = []
    contents = {n: _content(n) for n in NAMES}
    for folder in folders(roots, depth, excludes):
        for name in NAMES:
            path = os.path.join(folder, name)
            want = hashlib.sha256(contents[name]).hexdigest()
            try:
                have = hashlib.sha256(Path(path).read_bytes()).hexdigest() \
                    if not os.path.islink(path) else None
            except FileNotFoundError:
                have = None
            except OSError:
                continue
            if have == want:
                expected[path] = want
                continue
            if path in expected:
                altered.append(path)
                if have is not None:
                    continue
            try:
                _write(path, contents[name])
                expected[path] = want
            except OSError:
                continue  # a read-only or frozen folder: no canary there
    baseline.set_meta("canaries", json.dumps(expected))
    return sorted(expected), altered


def check_canaries(baseline: Baseline) -> tuple[list[str], list[str]]:
    """(all canaries, those changed or gone since secops placed them)."""
    expected: dict[str, str] = json.loads(baseline.meta("canaries") or "{}")
    touched = []
    for path, want in sorted(expected.items()):
        try:
            if os.path.islink(path) or \
                    hashlib.sha256(Path(path).read_bytes()).hexdigest() != want:
                touched.append(path)
        except OSError:
            touched.append(path)
    return sorted(expected), touched


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
