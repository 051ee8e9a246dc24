"""Canary (decoy) files: real documents secops places in each watched folder and its first
subfolders, named to sort first and last, that no legitimate user opens for writing.

A canary is *its file*, not its name: a write to it, a rename of it to another name, or a
read of it by a process that then writes ciphertext to a new file in the tree (its content
taken and encrypted elsewhere; the gate reports the decoys' reads), is ``canary.touched``,
an alarm at once. A copy that ``cp -r``, ``zip``/``unzip`` or a person's
copy of a folder carries along is a new file with the same name and is nothing (only the
recorded paths are canaries); a folder moved with its canaries keeps them (same name, same
content: the record follows); one deleted counts as any deleted file does, and is placed
again at the next scan. Backups and the baseline leave them out (``CANARY_MARK`` in the
name); their expected hashes are kept in the FIM metadata so a change made while the
daemon was down is found at start.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
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
    is evidence. One that is gone is placed again (a deletion is judged when it happens);
    the record of one whose folder is gone is dropped.
    """
    expected: dict[str, str] = load(baseline)
    altered: list[str] = []
    contents = {n: _content(n) for n in NAMES}
    wanted = set()
    for folder in folders(roots, depth, excludes):
        for name in NAMES:
            path = os.path.join(folder, name)
            wanted.add(path)
            want = hashlib.sha256(contents[name]).hexdigest()
            try:
                have = hashlib.sha256(Path(path).read_bytes()).hexdigest() \
                    if not os.path.islink(path) else "link"
            except FileNotFoundError:
                have = None
            except OSError:
                continue
            if have == want:
                expected[path] = want
                continue
            if have is not None:
                if path in expected:
                    altered.append(path)
                continue  # a file of the same name that is not ours: left alone
            try:
                _write(path, contents[name])
                expected[path] = want
            except OSError:
                expected.pop(path, None)  # a read-only or frozen folder: no canary there
    for path in [p for p in expected if p not in wanted and
                 not os.path.isdir(os.path.dirname(p))]:
        del expected[path]
    save(baseline, expected)
    return sorted(expected), altered


def load(baseline: Baseline) -> dict[str, str]:
    """path -> SHA-256 of every canary secops placed."""
    found = json.loads(baseline.meta("canaries") or "{}")
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def save(baseline: Baseline, expected: dict[str, str]) -> None:
    baseline.set_meta("canaries", json.dumps(expected))


def intact(path: str, want: str) -> bool:
    """The file at ``path`` (never through a link) holds what secops wrote."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return intact_fd(fd, want)
    finally:
        os.close(fd)


def intact_fd(fd: int, want: str) -> bool:
    try:
        size = os.fstat(fd).st_size
        return size <= 1 << 20 and hashlib.sha256(os.pread(fd, size, 0)).hexdigest() == want
    except OSError:
        return False


def rearm(path: str) -> str | None:
    """Write the decoy's content again into its own file (the same inode keeps the gate's
    mark on its reads); its SHA-256, or None when there is no file of its own to write (not
    a regular file, or one with another name too: a hard link to a document is never
    overwritten)."""
    data = _content(os.path.basename(path))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return None
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    return hashlib.sha256(data).hexdigest()


def check_canaries(baseline: Baseline) -> tuple[list[str], list[str]]:
    """(all canaries, those changed or gone since secops placed them)."""
    expected = load(baseline)
    touched = [path for path, want in sorted(expected.items()) if not intact(path, want)]
    return sorted(expected), touched


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
