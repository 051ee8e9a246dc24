"""The one error hierarchy of secops.

Every exception carries a message meant for a person (which file, which key, which target,
what to do) and a class-level exit code that the CLI returns.  Foreign exceptions are
translated into these at the adapter boundary.
"""

from __future__ import annotations


class SecopsError(Exception):
    """Root of every error secops reports to a person."""

    exit_code: int = 3

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(SecopsError):
    """Bad input on the command line (unknown snapshot, bad option value)."""

    exit_code = 2


class ConfigError(SecopsError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = 2


class IntegrityError(SecopsError):
    """Tampering, a mismatch or a bad signature was found."""

    exit_code = 1


class OperationalError(SecopsError):
    """Something outside secops failed: a program, a disk, a network."""

    exit_code = 3


class Stalled(OperationalError):
    """A program showed no progress within its bound and was stopped."""


class ToolMissing(OperationalError):
    """A required external program is not installed."""


class BackupError(OperationalError):
    """restic failed on a target."""

    def __init__(self, message: str, *, target: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.target = target


class BackupStalled(BackupError):
    """A restic run on a target showed no progress within ``backup.stall_seconds``."""


class TargetUnreachable(BackupError):
    """A backup target cannot be reached over the network."""


class RepositoryLocked(BackupError):
    """Another restic process holds a lock on the repository."""


class RepositoryMissing(BackupError):
    """There is no restic repository at the target's location."""


class WrongPassword(BackupError):
    """The password file does not open the target's repository."""


class SecretFileError(ConfigError):
    """A secret file is missing, unreadable or readable by others (exit 2: fix the setup)."""


class SigningError(OperationalError):
    """GnuPG or Ed25519 signing, encryption or decryption failed, or a PAdES signature
    could not be made (certificate not valid now, no chain to a configured root, token
    absent, PIN refused, time-stamping service unreachable)."""
