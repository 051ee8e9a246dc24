"""Ransomware detection from what changes, not from absolute entropy.

Office files, PDFs and JPEGs are compressed already, so "high entropy" says nothing about
them. Each change is compared with the file's *own* last good version instead:

- ``type_changed``: the magic bytes no longer say what the file was (1.0);
- ``container_broken``: still claims to be a zip/PDF/JPEG/PNG/text, its body no longer
  holds together (``structure``: partial encryption keeps head and tail) (1.0);
- ``entropy_jump``: for uncompressed types, +1 bit/byte over its own baseline (0.5);
- ``dissimilar``: a text file whose content sketch shares nothing with its last version (0.5);
- ``truncated``: emptied (0.1); ``deleted``: gone while its folder stays, a wiper's way
  (0.1); ``folder_deleted``: gone with its folder, a person's ``rm -rf`` (0.02);
- ``encrypted_copy``: a new file named after an existing one (``x.docx.enc``) that is no
  longer of its type (1.0), ``new_then_delete`` when the original then goes (1.0);
- ``opaque_new``: a new file of unknown type and near-random bytes (0.5);
- ``unknown_extension``: a rename to an extension the tree has never held (0.5, and only on a
  file whose content is also suspect: a rename alone damages nothing; not counted inside a
  maintenance window);
- ``ransom_note``: a note-like file appears (2.0);
- ``canary_touched``: a decoy's own file written or renamed (10: alarm at once).

A file's content indicators (and ``truncated``/``deleted``) describe its *latest* version:
each save is judged again against the last good version, so the steps of an honest save
(rename to ``x~``, an empty ``x``, then the new content; truncate, then rewrite; delete, then
write anew) end with nothing against the file. The last good version is kept across the
steps (``_origins``, ``_vacated``), so the same steps with ciphertext at the end are judged
against the original, not against the empty intermediate.

Each file counts at most 2.0; the score is the sum over the window, so the rate of damage
across the whole tree is what raises it. The alarm fires when the score reaches the
threshold and then starts afresh, with its findings as the evidence. A second, long window
per writing process (``slow_window``, hours) sums the indicators that alone say a file is
ruined (``SLOW``) over what that process wrote: an attacker pacing one file a minute is
caught by its own total.

Version-control folders (``.git`` ...) are the tool's own store, judged by rule: no score.
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
           "dissimilar": 0.5, "truncated": 0.1, "deleted": 0.1, "folder_deleted": 0.02,
           "encrypted_copy": 1.0, "new_then_delete": 1.0, "opaque_new": 0.5,
           "unknown_extension": 0.5, "ransom_note": 2.0, "canary_touched": 10.0}
# re-judged at each version of the file (the latest replaces them)
STATE = frozenset({"type_changed", "container_broken", "entropy_jump", "dissimilar",
                   "truncated", "deleted", "folder_deleted"})
# what the content of a file says against it (a rename to an unknown extension counts with
# one of these only)
CONTENT = frozenset({"type_changed", "container_broken", "entropy_jump", "dissimilar",
                     "encrypted_copy", "new_then_delete", "opaque_new", "ransom_note"})
# what the long window per process sums: the indicators that alone say a file is ruined
# (a text rewritten from scratch, "dissimilar", is an honest export often enough over hours)
SLOW = frozenset({"type_changed", "container_broken", "encrypted_copy", "new_then_delete",
                  "ransom_note"})
TOOL_DIRS = frozenset({".git", ".svn", ".hg", ".bzr"})
# the names office programs save through: Word's ~WRL0001.tmp and ~$owner files, Excel's
# 8-hex temp names, LibreOffice's luXXXX.tmp and .~lock files, x~ of mogrify and editors
SAVE_NAME = re.compile(r"(~\$.*|~WRL\d+\.tmp|\.~lock\..*#|[0-9A-F]{8}|.*\.tmp|.*~)",
                       re.IGNORECASE)
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
_MEMORY_MAX = 100_000
SWEEP_S = 1.0


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
    folder_gone: bool = False      # a deletion whose folder is gone too


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

    def update(self, sticky: list[str], state: list[str] | None) -> None:
        """Add ``sticky``; replace the state indicators by ``state`` unless None."""
        kept = [i for i in self.indicators if state is None or i not in STATE]
        for name in [*sticky, *(state or ())]:
            if name not in kept:
                kept.append(name)
        self.indicators = kept
        self.weight = _weight(kept)


def _weight(indicators: list[str]) -> float:
    if "canary_touched" in indicators:
        return WEIGHTS["canary_touched"]
    content = any(i in CONTENT for i in indicators)
    total = sum(WEIGHTS[i] for i in indicators if i != "unknown_extension" or content)
    return min(FILE_CAP, total)


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
                 origin: Callable[[str], Record | None] | None = None, *,
                 extensions: frozenset[str] = frozenset(),
                 slow_window: float = 6 * 3600.0,
                 epoch: Callable[[], int] | None = None) -> None:
        self.threshold = threshold
        self.window = window
        self.slow_window = max(slow_window, window)
        self.origin = origin or (lambda _p: None)
        self.extensions = COMMON_EXTENSIONS | extensions
        self._findings: dict[str, Finding] = {}
        self._alias: dict[str, str] = {}        # current path -> original path
        self._copies: dict[str, str] = {}       # original path -> its derived new file
        self._origins: dict[str, tuple[float, Record]] = {}   # key -> last good version
        self._vacated: dict[str, tuple[float, str, Record]] = {}  # path -> (t, key, version)
        self._slow: dict[int, dict[str, Finding]] = {}        # pid -> its findings
        self._swept = float("-inf")
        self._lock = threading.Lock()
        # the release epoch (``freeze-released``): once ``secops unfreeze`` has begun, the
        # lifted attack's findings are gone before the next observation is judged, in
        # whichever thread it comes (a resumed program's next write is not judged against
        # the evidence the office has just called a false alarm)
        self._epoch_of = epoch or (lambda: 0)
        self._epoch = self._epoch_of()

    def observe(self, obs: Observation, maintenance: bool = False) -> Verdict | None:
        if not obs.canary and in_tool_dir(obs.path):
            return None
        with self._lock:
            epoch = self._epoch_of()
            if epoch != self._epoch:
                self._epoch = epoch
                self._drop_findings()
            self._expire(obs.time)
            key, base = self._subject(obs)
            sticky, state, copied_from = self._indicators(obs, base, maintenance)
            if copied_from is not None:
                self._copies[copied_from] = obs.path
            if obs.kind == "deleted" and obs.path in self._copies:
                sticky.append("new_then_delete")
                key = self._copies.pop(obs.path)
            f = self._findings.get(key)
            if f is None:
                if not sticky and not state:
                    return None
                f = self._findings[key] = Finding(key, obs.time)
            f.time = max(f.time, obs.time)
            f.update(sticky, state)
            if obs.path not in f.paths:
                f.paths.append(obs.path)
            if obs.pid:
                f.pids.add(obs.pid)
            if not f.indicators:  # its latest version is good: nothing against it
                del self._findings[key]
                for pid in f.pids:
                    self._slow.get(pid, {}).pop(key, None)
                return None
            return self._judge(f)

    def forget(self) -> None:
        """Drop every finding: an attack's freeze was lifted after review, and a new alarm
        starts afresh."""
        with self._lock:
            self._drop_findings()

    def _drop_findings(self) -> None:
        self._findings.clear()
        self._slow.clear()
        self._copies.clear()

    def score(self, now: float) -> float:
        with self._lock:
            self._expire(now)
            return sum(x.weight for x in self._findings.values())

    def _judge(self, f: Finding) -> Verdict | None:
        score = sum(x.weight for x in self._findings.values())
        if score >= self.threshold:
            findings = sorted(self._findings.values(), key=lambda x: x.time)
        else:
            findings = self._slow_findings(f)
            if not findings:
                return None
            score = sum(x.weight for x in findings)
        for x in findings:
            self._findings.pop(x.key, None)
            for pid in x.pids:
                self._slow.get(pid, {}).pop(x.key, None)
        return Verdict(round(score, 2), findings, min(x.time for x in findings),
                       any("canary_touched" in x.indicators for x in findings))

    def _slow_findings(self, f: Finding) -> list[Finding]:
        """The long window of each process that wrote ``f``: all its suspect files when
        their content indicators reach the threshold."""
        for pid in f.pids:
            mine = self._slow.setdefault(pid, {})
            mine[f.key] = f
            total = sum(_weight([i for i in x.indicators if i in SLOW]) for x in mine.values())
            if total >= self.threshold:
                return sorted(mine.values(), key=lambda x: x.time)
        return []

    def _subject(self, obs: Observation) -> tuple[str, Record | None]:
        """The file's key (its original path) and the version to judge its content by."""
        if obs.kind == "renamed" and obs.old_path:
            key = self._alias.pop(obs.old_path, obs.old_path)
            self._alias[obs.path] = key
            if obs.before is not None:  # its old name is free: a save may write it anew
                self._vacated[obs.old_path] = (obs.time, key, obs.before)
            return key, obs.before
        key = self._alias.get(obs.path, obs.path)
        base = obs.before
        if obs.kind == "deleted":
            if base is not None:
                self._vacated[obs.path] = (obs.time, key, base)
            return key, base
        vacated = self._vacated.pop(obs.path, None)
        if vacated is not None and (base is None or base.ftype == "empty"):
            key, base = vacated[1], vacated[2]
            self._alias[obs.path] = key
        remembered = self._origins.get(key)
        if obs.after is not None and obs.after.ftype == "empty":
            if base is not None and base.ftype != "empty" and remembered is None:
                self._origins[key] = (obs.time, base)  # emptied: the good version stays
            return key, remembered[1] if remembered else base
        if remembered is not None and obs.after is not None:
            del self._origins[key]
            return key, remembered[1]
        return key, base

    def _expire(self, now: float) -> None:
        old = [k for k, f in self._findings.items() if now - f.time > self.window]
        for k in old:
            del self._findings[k]
        if abs(now - self._swept) < SWEEP_S:
            return  # the long-lived memories: swept once a second, not at every observation
        self._swept = now
        for pid in list(self._slow):
            mine = self._slow[pid]
            for k in [k for k, f in mine.items() if now - f.time > self.slow_window]:
                del mine[k]
            if not mine:
                del self._slow[pid]
        for k in [k for k, v in self._vacated.items() if now - v[0] > self.window]:
            del self._vacated[k]
        for k in [k for k, v in self._origins.items() if now - v[0] > self.slow_window]:
            del self._origins[k]
        for memory in (self._alias, self._copies, self._vacated, self._origins, self._slow):
            if len(memory) > _MEMORY_MAX:
                memory.clear()

    def _indicators(self, obs: Observation, base: Record | None, maintenance: bool
                    ) -> tuple[list[str], list[str] | None, str | None]:
        """(sticky indicators, the state indicators of the latest version or None when
        this observation says nothing of the content, the original of an encrypted copy)."""
        if obs.canary:
            return ["canary_touched"], None, None
        if obs.kind == "deleted":
            if _save_name(obs.path):
                return [], None, None
            return [], ["folder_deleted" if obs.folder_gone else "deleted"], None
        if obs.kind == "renamed" and obs.old_path:
            new_ext = _ext(obs.path)
            if maintenance or _save_name(obs.path) or new_ext == _ext(obs.old_path) or \
                    new_ext in self.extensions:
                return [], None, None
            return ["unknown_extension"], None, None
        if obs.after is None:
            return [], None, None
        if base is not None and obs.kind in ("modified", "added"):
            if obs.after.ftype == "empty":
                return [], ["truncated"] if base.ftype != "empty" else [], None
            return [], changed_indicators(base.ftype, base.parses, base.entropy, base.fp,
                                          obs.after), None
        if obs.kind == "added":
            sticky, copied_from = self._new_file(obs.path, obs.after, obs.text_sample)
            return sticky, [], copied_from
        return [], None, None

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


def in_tool_dir(path: str) -> bool:
    return any(part in TOOL_DIRS for part in path.split("/"))


def _save_name(path: str) -> bool:
    return SAVE_NAME.fullmatch(os.path.basename(path)) is not None


def _ext(path: str) -> str:
    name = os.path.basename(path)
    return name.rpartition(".")[2].lower() if "." in name.lstrip(".") else ""
