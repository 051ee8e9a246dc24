"""Output: one JSON document on stdout for ``--json``, rich tables for people."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def emit_json(doc: Any) -> None:
    """Always valid UTF-8: a file name that is not UTF-8 appears as ``b64:...``
    (:mod:`secops.pathtext`, the form the stores keep)."""
    from secops.pathtext import encode_tree

    sys.stdout.write(json.dumps(encode_tree(doc), ensure_ascii=False, indent=2) + "\n")


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def error(message: str) -> None:
    sys.stderr.write(f"secops: error: {message}\n")


def warn(message: str) -> None:
    sys.stderr.write(f"secops: warning: {message}\n")


def local_time(dt: datetime) -> str:
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
