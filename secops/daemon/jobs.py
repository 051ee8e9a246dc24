"""Slow work for the daemon, run one job at a time in each worker thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Job:
    kind: str  # backup, rescan, check, drill, retention
    run: Callable[[], Any]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Done:
    job: Job
    result: Any = None
    error: BaseException | None = None


class Worker:
    def __init__(self, on_done: Callable[[], None] | None = None,
                 name: str = "secops-worker") -> None:
        self.on_done = on_done
        self.todo: queue.Queue[Job | None] = queue.Queue(maxsize=64)
        self.done: queue.SimpleQueue[Done] = queue.SimpleQueue()
        self.busy = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> bool:
        try:
            self.todo.put_nowait(job)
            return True
        except queue.Full:
            return False

    def idle(self) -> bool:
        return not self.busy.is_set() and self.todo.empty()

    def queued(self, kind: str) -> bool:
        with self.todo.mutex:
            return any(j is not None and j.kind == kind for j in self.todo.queue)

    def stop(self, timeout: float) -> bool:
        self.todo.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            job = self.todo.get()
            if job is None:
                return
            self.busy.set()
            try:
                self.done.put(Done(job, result=job.run()))
            except BaseException as e:  # reported to the loop, which decides
                self.done.put(Done(job, error=e))
            finally:
                self.busy.clear()
                if self.on_done is not None:
                    self.on_done()  # wake the loop now rather than at its next timeout
