"""The review's window on the server (adapter): files under a root, programs, ``/proc``.

Every check reads files below ``root`` (``/`` on the server; tests lay out a tree like a
real system). Reads are bounded and refuse what is not a regular file (a FIFO would block,
``/dev/zero`` would never end); programs run through :func:`secops.process.run` with a
minimal environment and a timeout. What cannot be read or run raises :class:`Unknown`
with the reason, in both languages.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from secops import process
from secops.config.schema import Config
from secops.errors import OperationalError, ToolMissing
from secops.review.model import Text, Unknown

MAX_FILE = 1 << 20          # a config file larger than 1 MiB is not a config file
PROGRAM_TIMEOUT_S = 20.0


@dataclass
class Host:
    root: Path = Path("/")
    timeout: float = PROGRAM_TIMEOUT_S
    # tool name -> argv prefix (tests: ``ip netns exec NAME nft``); default: the name
    programs: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def path(self, p: str | Path) -> Path:
        """``p`` (an absolute path on the server) inside the root."""
        rel = str(p).lstrip("/")
        return self.root / rel if rel else self.root

    @property
    def live(self) -> bool:
        """True on the server itself (root ``/``): state only the kernel knows is ours."""
        return self.root.resolve() == Path("/")

    def read_text(self, p: Path, limit: int = MAX_FILE) -> str | None:
        """The text of the regular file ``p`` (not mapped: pass ``path()``'s result); None
        when it does not exist. Too large, not a regular file, unreadable: Unknown."""
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise Unknown(Text(f"không đọc được {p}: {e.strerror}",
                               f"cannot read {p}: {e.strerror}")) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise Unknown(Text(f"{p} không phải tệp thông thường",
                                   f"{p} is not a regular file"))
            if st.st_size > limit:
                raise Unknown(Text(f"{p} quá lớn ({st.st_size} byte, tối đa {limit})",
                                   f"{p} is too large ({st.st_size} bytes, at most {limit})"))
            data = _read_up_to(fd, limit + 1)
        except OSError as e:
            raise Unknown(Text(f"không đọc được {p}: {e.strerror}",
                               f"cannot read {p}: {e.strerror}")) from None
        finally:
            os.close(fd)
        if len(data) > limit:
            raise Unknown(Text(f"{p} quá lớn (tối đa {limit} byte)",
                               f"{p} is too large (at most {limit} bytes)"))
        if b"\0" in data:
            raise Unknown(Text(f"{p} chứa dữ liệu nhị phân, không phải tệp cấu hình",
                               f"{p} holds binary data, not a config file"))
        return data.decode("utf-8", "replace")

    def lstat(self, p: Path) -> os.stat_result | None:
        try:
            return os.lstat(p)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise Unknown(Text(f"không xem được {p}: {e.strerror}",
                               f"cannot stat {p}: {e.strerror}")) from None

    def stat(self, p: Path) -> os.stat_result | None:
        """Like :meth:`lstat`, following a link (what a program opening ``p`` gets)."""
        try:
            return os.stat(p)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise Unknown(Text(f"không xem được {p}: {e.strerror}",
                               f"cannot stat {p}: {e.strerror}")) from None

    def listdir(self, p: Path) -> list[str]:
        """Names in folder ``p``, sorted; [] when it does not exist."""
        try:
            return sorted(os.listdir(p))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as e:
            raise Unknown(Text(f"không liệt kê được {p}: {e.strerror}",
                               f"cannot list {p}: {e.strerror}")) from None

    def run(self, tool: str, args: Sequence[str], timeout: float | None = None,
            env: Mapping[str, str] | None = None) -> process.Completed:
        """Run ``tool`` (its argv prefix from ``programs``) with ``args``; a missing program
        or one that does not finish in time is Unknown. A non-zero exit is the caller's."""
        argv = [*self.programs.get(tool, [tool]), *args]
        full_env = process.base_env()
        # sshd, nft and testparm live in sbin, which a non-root PATH may lack
        full_env["PATH"] = full_env["PATH"] + ":/usr/sbin:/sbin"
        full_env.update(env or {})
        resolved = _which(argv[0], full_env["PATH"])
        if resolved is None:
            raise Unknown(Text(f"chương trình {argv[0]} chưa được cài đặt",
                               f"the program {argv[0]} is not installed"))
        try:
            return process.run([resolved, *argv[1:]], env=full_env,
                               timeout=timeout or self.timeout)
        except ToolMissing:
            raise Unknown(Text(f"chương trình {argv[0]} chưa được cài đặt",
                               f"the program {argv[0]} is not installed")) from None
        except OperationalError as e:  # a timeout, or not allowed to run it
            raise Unknown(Text(f"không chạy được {argv[0]}: {e.message}",
                               f"{argv[0]}: {e.message}")) from None


@dataclass
class Context:
    """What every probe gets: the host, the secops config, and the time of the review."""

    host: Host
    cfg: Config
    now: float


def _which(name: str, path: str) -> str | None:
    if "/" in name:
        return name if os.access(name, os.X_OK) else None
    for folder in path.split(":"):
        candidate = os.path.join(folder or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _read_up_to(fd: int, n: int) -> bytes:
    """Up to ``n`` bytes: /proc files come a page per read, whatever their size says."""
    chunks, left = [], n
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def first_line(text: str, limit: int = 300) -> str:
    """The first non-empty line of a program's message, cut to ``limit`` characters."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""
