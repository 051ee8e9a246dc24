"""``journalctl --verify``: the systemd journal's own integrity check.

When it runs: ``[logs] journald = "off"`` never; ``"on"`` always (no journalctl is then an
error); ``"auto"`` only where journald keeps persistent journals (``/var/log/journal``).

The FSS verification key is never passed to journalctl, even when ``journald_verify_key``
is configured (the result then says so). journalctl takes the key only on its command line
(``--verify-key=``), where every local user can read it in /proc until journalctl blanks
it, and secrets stay off command lines here. Besides, the verification key can regenerate
the sealing keys: kept on the server it protects, it lets a root attacker re-seal a doctored
journal. Keep it off the server and check sealed journals there, on a copy
(``journalctl --verify --verify-key=KEY --file=...``). Without the key journalctl still
checks each file's structure and object hashes; a sealed file is reported as ``sealed``.
Newer systemd versions refuse to check a sealed file without the key ("Required key not
available"): such files are listed as ``unverified``, a warning rather than a failure
(a limitation: a doctored file that also sets the sealed flag would only be ``unverified``).

``journalctl --verify`` can report false corruption on the journal file journald is writing
at that moment (systemd issue #27532): a FAIL on an online file (``system.journal``,
``user-1000.journal``: no ``@`` in the name) is checked again alone, up to twice, and counts
only if it fails every time. Archived files (``system@...journal``) do not change.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from secops.config.schema import Config
from secops.errors import OperationalError
from secops.process import base_env, run

JOURNAL_DIR = Path("/var/log/journal")
TIMEOUT_S = 900.0
RECHECKS = 2
KEY_NOT_USED = ("journald_verify_key is not passed to journalctl (it would show on its "
                "command line); verify sealed journals off this server with the key")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_PASS = re.compile(r"^PASS: (?P<file>.+?)$")
_FAIL = re.compile(r"^FAIL: (?P<file>.+) \((?P<reason>[^()]*)\)$")
_SEALED = re.compile(r"^Journal file (?P<file>.+?) has sealing enabled")
_NO_KEY = ("Required key not available", "verification key required")


def parse_verify(output: str, returncode: int) -> dict[str, Any]:
    """The result of one ``journalctl --verify`` run, from its output (pure)."""
    passed: list[str] = []
    failed: list[str] = []
    unverified: list[str] = []
    reasons: dict[str, str] = {}
    sealed = False
    other: list[str] = []
    for raw in output.splitlines():
        line = _ANSI.sub("", raw).strip()
        if m := _PASS.match(line):
            passed.append(m["file"])
        elif m := _FAIL.match(line):
            if any(k in m["reason"] for k in _NO_KEY):
                unverified.append(m["file"])
                sealed = True
            else:
                failed.append(m["file"])
                reasons[m["file"]] = m["reason"]
        elif _SEALED.match(line) or line.startswith("=> Validated from"):
            sealed = True
        elif line:
            other.append(line)
    error = None
    if returncode != 0 and not failed and not unverified:
        error = other[-1] if other else f"journalctl --verify exited with {returncode}"
    result = {"ran": True, "ok": not failed and error is None, "passed": len(passed),
              "failed": failed, "unverified": unverified, "reasons": reasons,
              "sealed": sealed, "error": error, "detail": ""}
    result["detail"] = _detail(result, other)
    return result


def _detail(r: dict[str, Any], other: list[str]) -> str:
    if r["error"]:
        return f"journalctl --verify failed: {r['error']}"
    parts = [f"{r['passed']} journal file(s) passed"]
    if r["failed"]:
        parts.append(f"{len(r['failed'])} FAILED: " + "; ".join(
            f"{f} ({r['reasons'].get(f, '')})" for f in r["failed"]))
    if r["unverified"]:
        parts.append(f"{len(r['unverified'])} sealed file(s) checkable only with the "
                     "verification key, off this server")
    if not r["passed"] and not r["failed"] and not r["unverified"] and other:
        parts.append(other[-1].rstrip("."))
    return "; ".join(parts)


def _not_run(ok: bool, detail: str, error: str | None = None) -> dict[str, Any]:
    return {"ran": False, "ok": ok, "passed": 0, "failed": [], "unverified": [],
            "reasons": {}, "sealed": False, "error": error, "detail": detail}


def _env() -> dict[str, str]:
    env = base_env()
    env.update({"SYSTEMD_LOG_TARGET": "console", "SYSTEMD_LOG_LEVEL": "info",
                "SYSTEMD_COLORS": "0", "SYSTEMD_LOG_COLOR": "0"})
    return env


def _verify(exe: str, file: str | None, timeout: float) -> dict[str, Any]:
    argv = [exe, "--verify", "--no-pager", *([f"--file={file}"] if file else [])]
    done = run(argv, env=_env(), timeout=timeout)
    return parse_verify(done.stdout + "\n" + done.stderr, done.returncode)


def _recheck_online(exe: str, result: dict[str, Any], timeout: float) -> None:
    """Drop the failures of online files that pass when checked again (systemd#27532)."""
    for f in list(result["failed"]):
        if "@" in os.path.basename(f):
            continue
        for _ in range(RECHECKS):
            again = _verify(exe, f, timeout)
            if again["passed"] and not again["failed"] and not again["error"]:
                result["failed"].remove(f)
                result["reasons"].pop(f, None)
                result["passed"] += 1
                result.setdefault("rechecked", []).append(f)
                break
    result["ok"] = not result["failed"] and result["error"] is None
    result["detail"] = _detail(result, [])


def journal_check(cfg: Config, *, journal_dir: Path = JOURNAL_DIR,
                  journalctl: str | None = None, timeout: float = TIMEOUT_S
                  ) -> dict[str, Any]:
    """Run ``journalctl --verify`` as ``[logs] journald`` says; never raises.

    ``{"ran", "ok", "passed", "failed": [files], "unverified": [files], "reasons":
    {file: reason}, "sealed", "error", "detail"}``; ``ok`` is False on a FAIL and when
    the check was required (``"on"``) but could not run.
    """
    mode = cfg.logs.journald
    if mode == "off":
        return _not_run(True, 'not checked: [logs] journald = "off"')
    exe = journalctl or shutil.which("journalctl")
    if exe is None:
        if mode == "on":
            return _not_run(False, "journalctl is not installed",
                            error="journalctl is not installed")
        return _not_run(True, "not checked: journalctl is not installed")
    if mode == "auto" and not journal_dir.is_dir():
        return _not_run(True, f"not checked: no persistent journal ({journal_dir})")
    try:
        result = _verify(exe, None, timeout)
        if result["failed"]:
            _recheck_online(exe, result, timeout)
    except OperationalError as e:
        return _not_run(False, f"journalctl --verify could not run: {e}", error=str(e))
    if cfg.logs.journald_verify_key:
        result["detail"] += "; " + KEY_NOT_USED
    return result
