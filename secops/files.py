"""File primitives: atomic writes, private folders and secret files.

Every state file is written atomically (temp file in the same folder, fsync, ``os.replace``).
Secret files are created 0600 and refused when group or others can read them.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from secops.errors import SecretFileError


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # not at import: it costs every command's start-up a few ms

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_private_dir(path: Path) -> bool:
    """Create ``path`` with mode 0700 (and parents as needed); return True if created.

    An existing folder that others can enter is tightened to 0700.
    """
    created = not path.exists()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        path.chmod(0o700)
    return created


def check_secret_file(path: Path, what: str) -> None:
    """Refuse a secret file that is missing or that group/others may access."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SecretFileError(f"{what} {path} does not exist") from None
    except OSError as e:
        raise SecretFileError(f"{what} {path} cannot be read: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SecretFileError(f"{what} {path} is not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise SecretFileError(
            f"{what} {path} is readable by others (mode {mode:04o}); refusing to use it",
            hint=f"chmod 600 {path}",
        )
    if st.st_uid != os.geteuid():
        raise SecretFileError(
            f"{what} {path} is owned by uid {st.st_uid}, not by the user running secops "
            f"(uid {os.geteuid()})",
            hint=f"chown {os.geteuid()} {path}",
        )


def read_secret(path: Path, what: str) -> str:
    """Read a secret file after checking its permissions; trailing newline stripped."""
    check_secret_file(path, what)
    return path.read_text(encoding="utf-8").rstrip("\r\n")


def write_secret(path: Path, text: str) -> None:
    """Create a secret file, 0600, atomically."""
    atomic_write(path, text.encode("utf-8"), mode=0o600)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``KEY=VALUE`` env file (``#`` comments, optional quotes), checking it is 0600."""
    text = read_secret(path, "env_file")
    env: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise SecretFileError(f"env_file {path}, line {lineno}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key] = value
    return env


def walk_lstat(roots: list[str], skip: Callable[[os.DirEntry[str]], bool] | None = None
               ) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry below ``roots`` that is not a folder, with its lstat: links are never
    followed, unreadable folders and vanished entries are passed over, and an entry for which
    ``skip`` is true is left out (a folder with everything below it)."""
    stack = list(roots)
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            if skip is not None and skip(e):
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(e.path)
            else:
                yield e.path, st


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``lock_file`` (created 0600) for the ``with`` block."""
    import fcntl

    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
