"""Classify restic failures (pure).

restic 0.14 exits only with 0, 1 or 3, so the kind of failure is read from stderr; newer
versions add exit codes 10 (no repository), 11 (lock failed) and 12 (wrong password), which
are used when present.  Samples of real stderr live in ``tests/data/restic_stderr/``.
"""

from __future__ import annotations

import enum
import re


class Failure(enum.Enum):
    NO_REPOSITORY = "no repository"
    WRONG_PASSWORD = "wrong password"  # noqa: S105 - a failure kind, not a secret
    LOCKED = "locked"
    HOST_KEY_MISMATCH = "host key mismatch"
    CREDENTIALS = "credentials refused"
    UNREACHABLE = "unreachable"
    APPEND_ONLY_REFUSED = "refused by append-only server"
    DISK_FULL = "disk full"
    PERMISSION = "permission denied"
    INTERRUPTED = "interrupted"
    UNKNOWN = "failed"


_EXIT_CODES = {10: Failure.NO_REPOSITORY, 11: Failure.LOCKED, 12: Failure.WRONG_PASSWORD,
               130: Failure.INTERRUPTED}

# Order matters: the first pattern that matches wins.
_PATTERNS: tuple[tuple[Failure, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(rx, re.IGNORECASE | re.MULTILINE))
    for kind, rx in (
        (Failure.HOST_KEY_MISMATCH, r"host key verification failed|"
                                    r"REMOTE HOST IDENTIFICATION HAS CHANGED|"
                                    r"No \S+ host key is known for|subprocess ssh: @{20,}"),
        (Failure.WRONG_PASSWORD, r"wrong password or no key found"),
        (Failure.LOCKED, r"repository is already locked|unable to create lock in backend"),
        (Failure.CREDENTIALS, r"InvalidAccessKeyId|SignatureDoesNotMatch|Access Denied|"
                              r"AccessDenied|access key id you provided does not exist|"
                              r"signature we calculated does not match|"
                              r"Permission denied \(publickey|401 Unauthorized|"
                              r"unexpected HTTP response \(401\)"),
        (Failure.UNREACHABLE, r"connection refused|no such host|i/o timeout|"
                              r"network is unreachable|no route to host|"
                              r"ssh: connect to host|connection reset by peer|"
                              r"Connection closed by|connection timed out|"
                              r"ssh command exited|context deadline exceeded|"
                              r"server unexpectedly closed connection|EOF$|"
                              r"unable to start the sftp session"),
        (Failure.NO_REPOSITORY, r"Is there a repository at the following location\?|"
                                r"unable to open config file|repository does not exist|"
                                r"The specified bucket does not exist"),
        (Failure.DISK_FULL, r"no space left on device|disk quota exceeded"),
        (Failure.APPEND_ONLY_REFUSED, r"not removed, server response: 403|403 Forbidden|"
                                      r"unexpected HTTP response \(40[35]\)"),
        (Failure.PERMISSION, r"permission denied|read-only file system"),
    )
)


def classify(returncode: int, stderr: str) -> Failure:
    """The kind of a failed restic run, from its exit code and stderr."""
    by_code = _EXIT_CODES.get(returncode)
    if by_code is not None:
        return by_code
    for kind, rx in _PATTERNS:
        if rx.search(stderr):
            return kind
    return Failure.UNKNOWN


_NOISE = re.compile(r"^(\s*$|Load\(|repository [0-9a-f]+ opened|created restic repository|"
                    r"Please note that knowledge of your password|"
                    r"Losing your password means|the `unlock` command can be used|"
                    r"using parent snapshot|scan finished|no parent snapshot found|"
                    r"\[\d+:\d+(:\d+)?\] )", re.I)  # a progress line


_TRACE = re.compile(r"^(\s+\S+\.go:\d+|github\.com/|golang\.org/|main\.|runtime\.|"
                    r"\S+ returned error, retrying after)")


# terminal control: escape sequences (restic's progress clears its line with ESC [2K) and the
# other control characters; a carriage return ends a line as a newline does
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def essential_lines(stderr: str, limit: int = 4) -> str:
    """The lines of stderr worth showing a person: the ``Fatal:`` line first, as plain text
    (no terminal control reaches a log, an alert, ``secops status`` or a report)."""
    text = _CONTROL.sub("", stderr.replace("\r", "\n"))
    text = re.sub(r"(?<=\S)(Fatal: )", r"\n\1", text)  # restic may glue "Fatal:" on
    lines = [ln.strip() for ln in text.splitlines()
             if not _NOISE.match(ln) and not _TRACE.match(ln)]
    fatal = [ln for ln in lines if ln.startswith("Fatal:")]
    chosen = (fatal + [ln for ln in lines if ln not in fatal])[:limit]
    return " | ".join(chosen) if chosen else "(restic printed nothing on stderr)"
