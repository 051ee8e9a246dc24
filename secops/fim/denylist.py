"""Whom the open gate refuses: exactly the processes secops stopped, while their freeze lasts.

An entry is a pid with the start time of the process secops stopped under it (see
:mod:`secops.fim.procid`) and the *epoch* it was stopped in: the id in ``freeze-released``
(:func:`secops.fim.state.read_released`) at that moment. The gate refuses an open only when
all three still hold:

- the pid is in the map (a dict lookup: every other open costs nothing more);
- the pid's start time is the recorded one (a recycled pid is another process: allowed);
- no release has begun since (``secops unfreeze`` writes the marker before it resumes
  anyone, so a resumed program is allowed at once, not one daemon tick later).

The map is replaced, never changed in place, so the gate thread reads it without a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from secops.fim import procid
from secops.fim.state import read_released

Entry = tuple[int, int]  # start time, epoch


class DenyList:
    def __init__(self, released: Path) -> None:
        self.released = released
        self._map: dict[int, Entry] = {}
        self._lock = threading.Lock()  # writers only

    def __len__(self) -> int:
        return len(self._map)

    def denies(self, pid: int) -> bool:
        """The gate's question, in its own thread; reads /proc only for a pid in the map."""
        entry = self._map.get(pid)
        if entry is None:
            return False
        start, epoch = entry
        return procid.start_time(pid) == start and read_released(self.released) == epoch

    def deny(self, pid: int, start: int) -> None:
        """Record a process that was just stopped (after its SIGSTOP succeeded)."""
        epoch = read_released(self.released)
        with self._lock:
            self._map = {**self._map, pid: (start, epoch)}

    def refresh(self, processes: Iterable[dict[str, Any]], freeze_id: int | None) -> list[int]:
        """From the daemon's tick: drop exited processes and entries of a released freeze;
        add the stopped processes recorded in the active freeze ``freeze_id`` (stopped by the
        CLI, a playbook, or before a restart). The pids dropped."""
        epoch = read_released(self.released)
        wanted: dict[int, Entry] = {}
        if freeze_id is not None and freeze_id > epoch:
            for p in processes:
                if p.get("stopped") and isinstance(p.get("start"), int):
                    wanted[int(p["pid"])] = (int(p["start"]), epoch)
        current = self._map
        keep = {pid: e for pid, e in current.items() if e[1] == epoch}
        keep.update(wanted)
        keep = {pid: e for pid, e in keep.items() if procid.start_time(pid) == e[0]}
        with self._lock:
            # an entry the gate thread added meanwhile stays
            added = {pid: e for pid, e in self._map.items() if current.get(pid) != e}
            self._map = {**keep, **added}
        return sorted(set(current) - set(self._map))

    def clear(self) -> None:
        with self._lock:
            self._map = {}
