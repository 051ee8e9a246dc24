"""The debouncer (pure), with property tests."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from secops.watch.debounce import Debouncer


def test_quiet_burst_fires_debounce_after_last_change() -> None:
    d = Debouncer(debounce=5, max_delay=60)
    assert not d.pending and d.deadline() is None
    for t in (0.0, 1.0, 2.0):
        d.change(t)
    assert not d.due(6.9)
    assert d.due(7.0)
    d.fired()
    assert not d.pending


def test_endless_stream_still_fires_every_max_delay() -> None:
    d = Debouncer(debounce=5, max_delay=60)
    t = 0.0
    while t < 59.9:
        d.change(t)
        assert not d.due(t)
        t += 1.0
    d.change(60.0)
    assert d.due(60.0)


def test_max_delay_zero_means_only_debounce() -> None:
    d = Debouncer(debounce=2, max_delay=0)
    for t in range(100):
        d.change(float(t))
    assert not d.due(100.5)
    assert d.due(101.0)


@given(st.lists(st.floats(min_value=0, max_value=0.99), min_size=1, max_size=2000),
       st.floats(min_value=0.5, max_value=10), st.floats(min_value=1, max_value=120))
def test_backups_during_a_storm_are_bounded(gaps: list[float], debounce: float,
                                            max_delay: float) -> None:
    """However a storm's changes come (never pausing as long as ``debounce``), a storm of
    length L causes at most ceil(L/max_delay)+1 backups: one per max_delay window, plus the
    settle after the last change."""
    d = Debouncer(debounce=debounce, max_delay=max_delay)
    t, fired = 0.0, 0
    for g in gaps:
        t += g * debounce
        if d.due(t):
            d.fired()
            fired += 1
        d.change(t)
    end = t
    t = end + debounce
    if d.due(t):
        d.fired()
        fired += 1
    assert fired <= math.ceil(end / max_delay) + 1
    assert not d.pending  # and nothing is left behind
