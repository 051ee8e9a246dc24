"""Charts for the printed reports: inline SVG strings (pure: values in, markup out).

No script, no external font or style sheet: the SVG sits inside the HTML page and is drawn by
WeasyPrint for the PDF, so colours are explicit hex values (named colours may not render) and
text uses "DejaVu Sans", which has the Vietnamese glyphs. Every text is escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

FONT = "DejaVu Sans"
OK_COLOR = "#4682b4"
FAILED_COLOR = "#c0392b"
AXIS_COLOR = "#444444"
GRID_COLOR = "#dddddd"
TEXT_COLOR = "#222222"
PALETTE = ("#4682b4", "#e67e22", "#2e8b57", "#8e44ad", "#c0392b", "#7f8c8d")
WIDTH = 640


def _t(text: str) -> str:
    return escape(text, quote=True)


def _text(x: float, y: float, text: str, *, size: float = 10, anchor: str = "middle",
          weight: str = "normal", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-family="{FONT}" font-size="{size}" '
            f'font-weight="{weight}" fill="{TEXT_COLOR}" text-anchor="{anchor}"{extra}>'
            f"{_t(text)}</text>")


def _rect(x: float, y: float, w: float, h: float, *, fill: str, extra: str = "") -> str:
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
            f'fill="{fill}"{extra}/>')


def _line(x1: float, y1: float, x2: float, y2: float, *, color: str, width: float = 1
          ) -> str:
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="{color}" stroke-width="{width}"/>')


def nice_ticks(top: int, most: int = 5) -> list[int]:
    """0 and round steps (1, 2, 5 x 10^k) up to at least ``top``, at most ``most`` + 1 ticks."""
    if top <= 0:
        return [0, 1]
    step = 1
    for k in range(12):
        found = next((m * 10**k for m in (1, 2, 5) if math.ceil(top / (m * 10**k)) <= most),
                     None)
        if found is not None:
            step = found
            break
    return list(range(0, step * math.ceil(top / step) + 1, step))


def _svg(height: float, title: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
            f'viewBox="0 0 {WIDTH} {height:.0f}" role="img" aria-label="{_t(title)}">'
            f"<title>{_t(title)}</title>" + "".join(body) + "</svg>")


def _legend(x: float, y: float, items: Sequence[tuple[str, str]]) -> list[str]:
    out = []
    for label, color in items:
        out.append(_rect(x, y - 9, 10, 10, fill=color))
        out.append(_text(x + 14, y, label, anchor="start"))
        x += 24 + 6.5 * len(label)
    return out


def _y_axis(left: float, right: float, top: float, bottom: float, ticks: list[int]
            ) -> list[str]:
    out = []
    for v in ticks:
        y = bottom - (bottom - top) * v / ticks[-1]
        out.append(_line(left, y, right, y, color=GRID_COLOR))
        out.append(_text(left - 5, y + 3.5, str(v), size=9, anchor="end"))
    out.append(_line(left, top, left, bottom, color=AXIS_COLOR))
    out.append(_line(left, bottom, right, bottom, color=AXIS_COLOR))
    return out


def backups_per_day(days: Sequence[str], targets: Sequence[tuple[str, Sequence[tuple[int, int]]]],
                    words: Mapping[str, str]) -> str:
    """One panel per target, one stacked bar per day: successful (blue) under failed (red).

    ``days``: the x labels; ``targets``: (name, [(ok, failed) per day]); ``words``: "title",
    "ok", "failed", "y" (the y axis label), "target" (the panel caption prefix).
    """
    panel_h, top_pad, left, right = 158.0, 44.0, 56.0, WIDTH - 16.0
    height = top_pad + panel_h * max(len(targets), 1) + 8
    body = [_text(left, 16, words["title"], size=12, anchor="start", weight="bold")]
    body += _legend(left, 34, [(words["ok"], OK_COLOR), (words["failed"], FAILED_COLOR)])
    if not targets:
        body.append(_text(WIDTH / 2, top_pad + 40, words.get("none", "-")))
    for i, (name, counts) in enumerate(targets):
        y0 = top_pad + i * panel_h
        top, bottom = y0 + 34, y0 + panel_h - 28    # room for a full bar's label
        body.append(f'<g class="panel" data-target="{_t(name)}">')
        body.append(_text(left, y0 + 14, f'{words["target"]}: {name}', size=10.5,
                          anchor="start", weight="bold"))
        ticks = nice_ticks(max((ok + bad for ok, bad in counts), default=0))
        body += _y_axis(left, right, top, bottom, ticks)
        body.append(_text(14, (top + bottom) / 2, words["y"], size=9,
                          extra=f' transform="rotate(-90 14 {(top + bottom) / 2:.1f})"'))
        slot = (right - left) / max(len(days), 1)
        scale = (bottom - top) / ticks[-1]
        for d, label in enumerate(days):
            ok, bad = counts[d] if d < len(counts) else (0, 0)
            x, w = left + d * slot + slot * 0.2, slot * 0.6
            body.append(f'<g class="bar" data-day="{_t(label)}" data-ok="{ok}" '
                        f'data-failed="{bad}">')
            body.append(_rect(x, bottom - ok * scale, w, ok * scale, fill=OK_COLOR))
            body.append(_rect(x, bottom - (ok + bad) * scale, w, bad * scale, fill=FAILED_COLOR))
            total_label = f"{ok}" + (f" + {bad}" if bad else "")
            body.append(_text(x + w / 2, bottom - (ok + bad) * scale - 3, total_label, size=8.5))
            body.append("</g>")
            body.append(_text(x + w / 2, bottom + 13, label, size=9))
        body.append("</g>")
    return _svg(height, words["title"], body)


def rpo_histogram(bins: Sequence[str], targets: Sequence[tuple[str, Sequence[int]]],
                  words: Mapping[str, str]) -> str:
    """How often each target was exposed for how long: grouped bars per duration bin.

    ``bins``: the x labels (duration ranges); ``targets``: (name, [count per bin]);
    ``words``: "title", "x" (the x axis label), "y" (the y axis label), "none".
    """
    left, right, top, bottom = 56.0, WIDTH - 16.0, 60.0, 230.0
    height = bottom + 44
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(targets))]
    body = [_text(left, 16, words["title"], size=12, anchor="start", weight="bold")]
    body += _legend(left, 36, [(name, colors[i]) for i, (name, _) in enumerate(targets)])
    ticks = nice_ticks(max((c for _, counts in targets for c in counts), default=0))
    body += _y_axis(left, right, top, bottom, ticks)
    body.append(_text(14, (top + bottom) / 2, words["y"], size=9,
                      extra=f' transform="rotate(-90 14 {(top + bottom) / 2:.1f})"'))
    slot = (right - left) / max(len(bins), 1)
    scale = (bottom - top) / ticks[-1]
    group_w = slot * 0.76
    bar_w = group_w / max(len(targets), 1)
    for b, label in enumerate(bins):
        gx = left + b * slot + (slot - group_w) / 2
        for i, (name, counts) in enumerate(targets):
            n = counts[b] if b < len(counts) else 0
            x = gx + i * bar_w
            body.append(f'<g class="bin" data-bin="{_t(label)}" data-target="{_t(name)}" '
                        f'data-count="{n}">')
            body.append(_rect(x, bottom - n * scale, bar_w - 1, n * scale, fill=colors[i]))
            if n:
                body.append(_text(x + bar_w / 2, bottom - n * scale - 3, str(n), size=8))
            body.append("</g>")
        body.append(_text(left + b * slot + slot / 2, bottom + 13, label, size=9))
    body.append(_text((left + right) / 2, bottom + 34, words["x"], size=9.5))
    if not targets or not any(any(c) for _, c in targets):
        body.append(_text((left + right) / 2, (top + bottom) / 2, words["none"], size=10))
    return _svg(height, words["title"], body)
