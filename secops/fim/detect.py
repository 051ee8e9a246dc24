"""Ransomware detection from what changes, not from absolute entropy.

Office files, PDFs and JPEGs are compressed already, so "high entropy" says nothing about
them. Each change is compared with the file's *own* baseline instead:

- ``type_changed``: the magic bytes no longer say what the file was (1.0);
- ``container_broken``: still claims to be a zip/PDF/JPEG, no longer parses (1.0);
- ``entropy_jump``: for uncompressed types, +1 bit/byte over its own baseline (0.5);
- ``dissimilar``: a text file whose content sketch shares nothing with its last version (0.5);
- ``encrypted_copy``: a new file named after an existing one (``x.docx.enc``) that is no
  longer of its type (1.0), ``new_then_delete`` when the original then goes (1.0);
- ``opaque_new``: a new file of unknown type and near-random bytes (0.5);
- ``unknown_extension``: a rename to an extension the tree has never held (0.5, not counted
  inside a maintenance window);
- ``ransom_note``: a note-like file appears (2.0);
- ``canary_touched``: a decoy changed, moved or deleted (10: alarm at once).

Each file counts at most 2.0; the score is the sum over the window, so the rate of damage
across the whole tree is what raises it. The alarm fires when the score reaches the
threshold and then starts afresh, with its findings as the evidence.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from secops.fim.baseline import Record
from secops.fim.probe import CONTAINERS, KNOWN, Probe, similarity

FILE_CAP = 2.0
WEIGHTS = {"type_changed": 1.0, "container_broken": 1.0, "entropy_jump": 0.5,
           "dissimilar": 0.5, "encrypted_copy": 1.0, "new_then_delete": 1.0,
           "opaque_new": 0.5, "unknown_extension": 0.5, "ransom_note": 2.0,
           "canary_touched": 10.0}
TEXTUAL = frozenset({"text", "xml"})
COMMON_EXTENSIONS = frozenset({
    "txt", "csv", "tsv", "doc", "docx", "docm", "dot", "dotx", "xls", "xlsx", "xlsm", "xlt",
    "xltx", "ppt", "pptx", "odt", "ods", "odp", "odg", "pdf", "rtf", "jpg", "jpeg", "png",
    "gif", "tif", "tiff", "bmp", "heic", "webp", "zip", "rar", "7z", "gz", "tgz", "bz2", "xz",
    "tar", "gpg", "pgp", "asc", "sig", "p7s", "xml", "json", "html", "htm", "md", "log", "bak",
    "tmp", "old", "eml", "msg", "mp3", "mp4", "wav", "avi", "mov", "mkv", "sqlite", "db",
    "ini", "cfg", "conf", "yaml", "yml", "toml"})
NOTE_NAME = re.compile(
    r"(readme|read_me|how|help|decrypt|recover|restore|instruction|ransom|unlock|your_files|"
    r"!!!).*(decrypt|recover|restore|files|unlock|ransom|instruction)", re.IGNORECASE)
NOTE_WORDS = (b"bitcoin", b"decrypt", b"encrypted", b"ransom", b".onion", b"wallet",
              b"tor browser", b"your files", b"btc", b"monero")


@dataclass(frozen=True)
class Observation:
    time: float                    # wall clock, seconds
    kind: str                      # modified, added, deleted, renamed
    path: str
    before: Record | None = None   # the baseline of this path (old_path for a rename)
    after: Probe | None = None
    old_path: str | None = None
    pid: int | None = None
    canary: bool = False
    text_sample: bytes = b""       # the first KiB of a small new text file (ransom notes)


@dataclass
class Finding:
    key: str                       # the file's original path
    time: float
    weight: float = 0.0
    indicators: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    pids: set[int] = field(default_factory=set)

    def as_json(self) -> dict[str, Any]:
        return {"path": self.key, "paths": self.paths, "indicators": self.indicators,
                "weight": round(self.weight, 2), "pids": sorted(self.pids)}


@dataclass(frozen=True)
class Verdict:
    score: float
    findings: list[Finding]
    first_time: float
    canary: bool

    @property
    def pids(self) -> list[int]:
        return sorted({p for f in self.findings for p in f.pids})

    @property
    def paths(self) -> list[str]:
        return [p for f in self.findings for p in f.paths]


class Detector:
    """Thread-safe: the fanotify thread and the monitor thread both feed it."""

    def __init__(self, threshold: float = 3.0, window: float = 120.0,
                 origin: Callable[[str], Record | None] | None = None,
                 extensions: frozenset[str] = frozenset()) -> None:
        self.threshold = threshold
        self.window = window
        self.origin = origin or (lambda _p: None)
        self.extensions = COMMON_EXTENSIONS | extensions
        self._findings: dict[str, Finding] = {}
        self._alias: dict[str, str] = {}        # current path -> original path
        self._copies: dict[str, str] = {}       # original path -> its derived new file
        self._lock = threading.Lock()

    def observe(self, obs: Observation, maintenance: bool = False) -> Verdict | None:
        indicators, origin = self._indicators(obs, maintenance)
        with self._lock:
            self._expire(obs.time)
            if origin is not None:
                self._copies[origin] = obs.path
            if obs.kind == "deleted" and obs.path in self._copies:
                indicators.append("new_then_delete")
                key = self._copies.pop(obs.path)
            else:
                key = self._key(obs)
            if not indicators:
                return None
            f = self._findings.setdefault(key, Finding(key, obs.time))
            f.time = max(f.time, obs.time)
            for name in indicators:
                if name not in f.indicators:
                    f.indicators.append(name)
            f.weight = min(FILE_CAP if "canary_touched" not in f.indicators else
                           WEIGHTS["canary_touched"],
                           sum(WEIGHTS[i] for i in f.indicators))
            if obs.path not in f.paths:
                f.paths.append(obs.path)
            if obs.pid:
                f.pids.add(obs.pid)
            score = sum(x.weight for x in self._findings.values())
            if score < self.threshold:
                return None
            findings = sorted(self._findings.values(), key=lambda x: x.time)
            self._findings.clear()
            return Verdict(round(score, 2), findings, min(x.time for x in findings),
                           any("canary_touched" in x.indicators for x in findings))

    def score(self, now: float) -> float:
        with self._lock:
            self._expire(now)
            return sum(x.weight for x in self._findings.values())

    def _key(self, obs: Observation) -> str:
        if obs.kind == "renamed" and obs.old_path:
            key = self._alias.pop(obs.old_path, obs.old_path)
            self._alias[obs.path] = key
            return key
        return self._alias.get(obs.path, obs.path)

    def _expire(self, now: float) -> None:
        old = [k for k, f in self._findings.items() if now - f.time > self.window]
        for k in old:
            del self._findings[k]
        if len(self._alias) > 100_000:
            self._alias.clear()
        if len(self._copies) > 100_000:
            self._copies.clear()

    def _indicators(self, obs: Observation, maintenance: bool
                    ) -> tuple[list[str], str | None]:
        """The indicators, and for an encrypted copy the original it was made from."""
        if obs.canary:
            return ["canary_touched"], None
        if obs.kind == "modified" and obs.before is not None and obs.after is not None:
            return changed_indicators(obs.before.ftype, obs.before.parses,
                                      obs.before.entropy, obs.before.fp, obs.after), None
        if obs.kind == "added" and obs.after is not None:
            return self._new_file(obs.path, obs.after, obs.text_sample)
        if obs.kind == "renamed" and obs.old_path:
            new_ext = _ext(obs.path)
            if maintenance or new_ext == _ext(obs.old_path) or new_ext in self.extensions:
                return [], None
            return ["unknown_extension"], None
        return [], None

    def _new_file(self, path: str, after: Probe, text_sample: bytes
                  ) -> tuple[list[str], str | None]:
        name = os.path.basename(path)
        textual = after.ftype in TEXTUAL or name.lower().endswith((".txt", ".html", ".hta"))
        if textual and (NOTE_NAME.search(name) or _note_text(text_sample)):
            return ["ransom_note"], None
        out: list[str] = []
        copied_from = None
        origin = self._derived_origin(path)
        if origin is not None and changed_indicators(origin.ftype, origin.parses,
                                                     origin.entropy, origin.fp, after):
            out.append("encrypted_copy")
            copied_from = origin.path
        if after.ftype == "binary" and after.entropy >= 7.2:
            out.append("opaque_new")
            if _ext(path) not in self.extensions:
                out.append("unknown_extension")
        return out, copied_from

    def _derived_origin(self, path: str) -> Record | None:
        """``x.docx.enc`` or ``x.enc`` next to an existing ``x.docx``."""
        folder, name = os.path.split(path)
        stem, dot, _ = name.rpartition(".")
        if not dot or not stem:
            return None
        return self.origin(os.path.join(folder, stem))


def changed_indicators(ftype: str, parses: bool, ent: float, fp: bytes, after: Probe
                       ) -> list[str]:
    """How a file's new content differs in kind from its previous version."""
    out = []
    if ftype in KNOWN and ftype not in ("empty", after.ftype) and \
            not (ftype in TEXTUAL and after.ftype in TEXTUAL):
        out.append("type_changed")
    elif after.ftype == ftype and parses and not after.parses:
        out.append("container_broken")
    if ftype not in CONTAINERS and after.entropy - ent >= 1.0 and after.entropy >= 5.5:
        out.append("entropy_jump")
    if ftype in TEXTUAL:
        sim = similarity(fp, after.fp)
        if sim is not None and sim < 0.05:
            out.append("dissimilar")
    return out


def _note_text(sample: bytes) -> bool:
    low = sample.lower()
    return sum(1 for w in NOTE_WORDS if w in low) >= 2


def _ext(path: str) -> str:
    name = os.path.basename(path)
    return name.rpartition(".")[2].lower() if "." in name.lstrip(".") else ""
