"""Secrets out of command lines (pure): what evidence and alerts keep of a process.

A command line is evidence; the passwords on it are not ours to copy into ``processes.json``,
an alert or a report. These become ``****``, and everything else is kept, so the record
still says what ran:

- the value of a secret-bearing flag: ``--password x``, ``--token=x``, ``--secret``,
  ``--key``, ``--api-key``, ``-storepass`` (never ``--password-file PATH``, ``--no-password``);
- ``-p`` where it means a password without doubt: ``mysql -pX``, ``sshpass -p X``; the
  password half of ``curl -u user:pass`` and ``smbclient -U user%pass``; openssl ``pass:X``;
- assignments to secret names: ``DB_PASSWORD=x``, ``API_KEY=x``, ``GITHUB_TOKEN=x``, and
  ``password=x`` inside an option list or a URL query (``-o user=u,password=x``, ``?token=x``);
- the password of a URL: ``scheme://user:****@host``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

MASK = "****"
_WORDS = ("password", "passwd", "passphrase", "token", "secret")
_REFERENCE = {"file", "files", "fd", "stdin", "env", "command", "cmd", "path", "prompt",
              "dir", "type", "length", "policy"}
_FLAGS = {"key", "api-key", "apikey", "access-key", "auth-key", "secret-key", "pass", "pw",
          "pwd"}
_MYSQL = {"mysql", "mysqldump", "mysqladmin", "mysqlcheck", "mysqlimport", "mysqlshow",
          "mariadb", "mariadb-dump", "mariadb-admin"}
_SMB = {"smbclient", "rpcclient", "smbcacls", "smbget", "smbmap", "net", "mount.cifs"}
_CURL = {"curl"}
_OPENSSL = {"openssl"}
_SSHPASS = {"sshpass"}
PROGRAMS = _MYSQL | _SMB | _CURL | _OPENSSL | _SSHPASS

_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):([^/\s]*)@")
_ENV = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
_EMBEDDED = re.compile(r"(^|[,;&?\s])([A-Za-z0-9_.-]+)=([^,;&\s]*)")

Rule = Callable[[str], str]


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[-_.]", name.lower()) if w]


def secret_name(name: str) -> bool:
    """``DB_PASSWORD``, ``api_key``, ``token``: a name whose value is a secret."""
    words = _words(name)
    if not words or words[-1] in _REFERENCE:
        return False
    n = "_".join(words)
    return words[-1] == "key" or any(w in n for w in _WORDS) or words[-1] in ("pass", "pwd")


def secret_flag(flag: str) -> bool:
    """``--password``, ``--token``, ``--key``, ``-storepass``: a flag whose value is one."""
    name = flag.lstrip("-").lower()
    words = _words(name)
    if not words or words[0] == "no" or words[-1] in _REFERENCE:
        return False
    return (name in _FLAGS or any(w in name for w in _WORDS)
            or (name.endswith("pass") and name != "bypass"))


def _split(sep: str) -> Rule:
    def rule(value: str) -> str:
        user, found, _secret = value.partition(sep)
        return f"{user}{sep}{MASK}" if found else value
    return rule


def _openssl(value: str) -> str:
    return f"pass:{MASK}" if value.startswith("pass:") else value


def _whole(value: str) -> str:
    return MASK if value else value


def _program_rule(program: str, flag: str) -> Rule | None:
    if program in _SSHPASS and flag == "-p":
        return _whole
    if program in _CURL and flag in ("-u", "--user", "-U", "--proxy-user"):
        return _split(":")
    if program in _SMB and flag in ("-U", "--user"):
        return _split("%")
    if program in _OPENSSL and flag in ("-pass", "-passin", "-passout"):
        return _openssl
    if program in _OPENSSL and flag == "-k":
        return _whole
    return None


def _attached(program: str, arg: str) -> str | None:
    """Short options with their value attached: ``-pSECRET``, ``-Uuser%pass``."""
    if len(arg) <= 2 or arg.startswith("--"):
        return None
    head, value = arg[:2], arg[2:]
    if head == "-p" and program in _MYSQL | _SSHPASS:
        return head + MASK
    if head == "-U" and program in _SMB:
        return head + _split("%")(value)
    if head == "-u" and program in _CURL:
        return head + _split(":")(value)
    return None


def redact_text(arg: str) -> str:
    """One argument on its own: URL passwords and secret assignments."""
    text = _URL_PASSWORD.sub(rf"\1:{MASK}@", arg)
    env = _ENV.match(text)
    if env and secret_name(env.group(1)):
        return f"{env.group(1)}={MASK}" if env.group(2) else text

    def embedded(m: re.Match[str]) -> str:
        name = m.group(2)
        secret = secret_flag(name) if name.startswith("-") else secret_name(name)
        if not secret or not m.group(3):
            return m.group(0)
        return f"{m.group(1)}{m.group(2)}={MASK}"

    return _EMBEDDED.sub(embedded, text)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with its secrets masked, every other argument as it was."""
    out = [redact_text(a) for a in argv]
    program = ""
    i = 0
    while i < len(out):
        arg = out[i]
        base = arg.rsplit("/", 1)[-1]
        attached = _attached(program, arg)
        if base in PROGRAMS:
            program = base
        elif attached is not None:
            out[i] = attached
        elif arg.startswith("-") and len(arg) > 1:
            flag, eq, value = arg.partition("=")
            rule = _program_rule(program, flag) or (_whole if secret_flag(flag) else None)
            if rule is not None and eq:
                out[i] = f"{flag}={rule(value)}"
            elif rule is not None and i + 1 < len(out):
                out[i + 1] = rule(out[i + 1])
                i += 1
        elif program in _SSHPASS:
            program = ""  # the command sshpass runs: its options are its own
        i += 1
    return out
