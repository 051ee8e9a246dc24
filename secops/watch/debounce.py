"""When to back up after changes (pure).

A backup starts ``debounce`` seconds after the last change of a burst, and at least
``max_delay`` seconds after the first change of a burst that never pauses.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Debouncer:
    debounce: float
    max_delay: float
    first: float | None = None
    last: float | None = None

    def change(self, now: float) -> None:
        if self.first is None:
            self.first = now
        self.last = now

    @property
    def pending(self) -> bool:
        return self.first is not None

    def deadline(self) -> float | None:
        """The monotonic time at which a backup is due, if any change is pending."""
        if self.first is None or self.last is None:
            return None
        quiet = self.last + self.debounce
        if self.max_delay > 0:
            return min(quiet, self.first + self.max_delay)
        return quiet

    def due(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def fired(self) -> None:
        self.first = self.last = None
