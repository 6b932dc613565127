"""Inline SVG bar charts of throughput tables: rate per case and frame size, grouped by peer pair.

The charts are plain SVG text (no script, no external asset), so the HTML report stays one
self-contained file. Every string from the run is escaped.
"""

from __future__ import annotations

import dataclasses
import math

from harness.report.text import html_text as _e
from harness.report.throughput import TableRow, ThroughputTable, format_pps
from harness.results import Verdict
from harness.traffic.measurement import CASES, Measurement

#: Bar colour per case: blues on one NUMA node, oranges across nodes; dark = zero-copy.
CASE_COLOURS: dict[str, str] = {
    "same-node-zc": "#1565c0",
    "same-node-copy": "#64b5f6",
    "cross-node-zc": "#e65100",
    "cross-node-copy": "#ffb74d",
}

BAR_WIDTH = 34
BAR_GAP = 3
CLUSTER_GAP = 14
PAIR_GAP = 30
LEFT = 70
RIGHT = 16
TOP = 44
PLOT_HEIGHT = 220
BOTTOM = 58
FONT = 'font-family="system-ui, sans-serif"'


@dataclasses.dataclass(frozen=True)
class Scale:
    """A linear y scale from 0 to `top` frames per second, shown in `unit`.

    Attributes:
        top: The value at the top of the plot area, in frames per second.
        step: Distance between tick marks, in frames per second.
        divisor: Frames per second per `unit`.
        unit: 'Mpps', 'kpps' or 'pps'.
    """

    top: float
    step: float
    divisor: float
    unit: str

    @classmethod
    def for_maximum(cls, maximum: float, ticks: int = 4) -> Scale:
        """A scale whose top is a round number at or above `maximum`, ~`ticks` ticks."""
        divisor, unit = next(
            ((d, u) for d, u in ((1e6, "Mpps"), (1e3, "kpps")) if maximum >= d), (1.0, "pps")
        )
        if maximum <= 0:
            return cls(top=divisor, step=divisor, divisor=divisor, unit=unit)
        rough = maximum / ticks
        magnitude = 10 ** math.floor(math.log10(rough))
        step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= rough)
        return cls(top=math.ceil(maximum / step) * step, step=step, divisor=divisor, unit=unit)

    def height(self, pps: float) -> float:
        """Bar height in pixels for a rate."""
        return round(max(pps, 0.0) / self.top * PLOT_HEIGHT, 1)

    def label(self, pps: float) -> str:
        """A rate in this scale's unit, 3 significant digits, without the unit."""
        value = pps / self.divisor
        return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def _cluster_x(rows: tuple[TableRow, ...]) -> list[float]:
    """Left x of each row's cluster: clusters of one pair side by side, pairs further apart."""
    cluster_width = len(CASES) * (BAR_WIDTH + BAR_GAP)
    positions, x = [], float(LEFT + CLUSTER_GAP)
    for index, row in enumerate(rows):
        if index and row.pair != rows[index - 1].pair:
            x += PAIR_GAP
        positions.append(x)
        x += cluster_width + CLUSTER_GAP
    return positions


def _bar(m: Measurement, x: float, scale: Scale) -> str:
    pps = m.pps or 0.0
    height = scale.height(pps)
    y = TOP + PLOT_HEIGHT - height
    lines = f"{m.case}, {m.frame_size} B: {format_pps(pps)}"
    return (
        f'<g class="point"><rect class="bar" x="{x}" y="{y}" width="{BAR_WIDTH}" '
        f'height="{height}" fill="{CASE_COLOURS[m.case]}" data-case="{_e(m.case)}" '
        f'data-server="{_e(m.server_peer)}" data-client="{_e(m.client_peer)}" '
        f'data-frame-size="{m.frame_size}" data-pps="{pps!r}">'
        f"<title>{_e(lines)}</title></rect>"
        f'<text class="value" x="{x + BAR_WIDTH / 2}" y="{y - 4}" text-anchor="middle" '
        f'font-size="10" {FONT}>{_e(scale.label(pps))}</text></g>'
    )


def _gap(m: Measurement, x: float) -> str:
    """A labelled gap where a SKIP or ERROR measurement would stand."""
    colour = "#757575" if m.verdict is Verdict.SKIP else "#6a1b9a"
    middle, base = x + BAR_WIDTH / 2, TOP + PLOT_HEIGHT
    return (
        f'<g class="gap" data-verdict="{m.verdict.value}" data-case="{_e(m.case)}" '
        f'data-frame-size="{m.frame_size}"><title>{_e(m.verdict.value)}: {_e(m.reason)}</title>'
        f'<rect x="{x}" y="{base - 60}" width="{BAR_WIDTH}" height="60" fill="none" '
        f'stroke="{colour}" stroke-dasharray="3 3"/>'
        f'<text x="{middle}" y="{base - 30}" fill="{colour}" font-size="10" {FONT} '
        f'text-anchor="middle" dominant-baseline="middle" '
        f'transform="rotate(-90 {middle} {base - 30})">{_e(m.verdict.value)}</text></g>'
    )


def _axes(scale: Scale, width: float, y_title: str) -> list[str]:
    base = TOP + PLOT_HEIGHT
    parts = [
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="#5f6368"/>',
        f'<line x1="{LEFT}" y1="{base}" x2="{width - RIGHT}" y2="{base}" stroke="#5f6368"/>',
    ]
    ticks = round(scale.top / scale.step)
    for index in range(ticks + 1):
        value = index * scale.step
        y = base - scale.height(value)
        parts.append(
            f'<line x1="{LEFT - 4}" y1="{y}" x2="{width - RIGHT}" y2="{y}" '
            f'stroke="#d0d4d9" stroke-width="{1 if index else 0}"/>'
            f'<text class="tick" x="{LEFT - 7}" y="{y}" text-anchor="end" '
            f'dominant-baseline="middle" font-size="10" {FONT}>{_e(scale.label(value))}</text>'
        )
    middle = TOP + PLOT_HEIGHT / 2
    parts.append(
        f'<text class="axis-title" x="18" y="{middle}" text-anchor="middle" font-size="11" '
        f'{FONT} transform="rotate(-90 18 {middle})">{_e(y_title)}</text>'
    )
    return parts


def _legend() -> tuple[list[str], float]:
    """Swatches naming the cases, and the x where the legend ends."""
    parts, x = [], float(LEFT)
    for case in CASES:
        parts.append(
            f'<rect x="{x}" y="10" width="12" height="12" fill="{CASE_COLOURS[case]}"/>'
            f'<text x="{x + 16}" y="20" font-size="11" {FONT}>{_e(case)}</text>'
        )
        x += 16 + 7 * len(case) + 18
    return parts, x


def _x_labels(table: ThroughputTable, positions: list[float]) -> list[str]:
    cluster_width = len(CASES) * (BAR_WIDTH + BAR_GAP) - BAR_GAP
    base = TOP + PLOT_HEIGHT
    parts = []
    pair_spans: dict[tuple[str, str], list[float]] = {}
    for row, x in zip(table.rows, positions, strict=True):
        parts.append(
            f'<text class="frame-size" x="{x + cluster_width / 2}" y="{base + 16}" '
            f'text-anchor="middle" font-size="11" {FONT}>{_e(row.size_label)}</text>'
        )
        pair_spans.setdefault(row.pair, []).append(x)
    for (server, client), xs in pair_spans.items():
        middle = (xs[0] + xs[-1] + cluster_width) / 2
        parts.append(
            f'<text class="pair" x="{middle}" y="{base + 36}" text-anchor="middle" '
            f'font-size="12" font-weight="600" {FONT}>'
            f"{_e(server)} server / {_e(client)} client</text>"
        )
    parts.append(
        f'<text class="axis-title" x="{LEFT}" y="{base + BOTTOM - 4}" font-size="11" '
        f'fill="#5f6368" {FONT}>frame size (L2 bytes), grouped by peer pair</text>'
    )
    return parts


def throughput_chart(table: ThroughputTable) -> str:
    """An SVG bar chart of one throughput table.

    One cluster of bars per table row (peer pair x frame size), one bar per case in CASES
    order, clusters of a pair side by side. PASS measurements are bars of height
    proportional to their rate (NDR in ndrpdr mode) with the value above; SKIP and ERROR
    are dashed, labelled gaps (the reason in a tooltip); unmeasured cases are left empty.

    Args:
        table: One (topology, direction, mode) table.

    Returns:
        An <svg> element as text.
    """
    passed = [m for m in table.measurements() if m.verdict is Verdict.PASS]
    scale = Scale.for_maximum(max((m.pps or 0.0 for m in passed), default=0.0))
    positions = _cluster_x(table.rows)
    cluster_width = len(CASES) * (BAR_WIDTH + BAR_GAP)
    legend, legend_end = _legend()
    plot_end = (positions[-1] if positions else LEFT) + cluster_width + CLUSTER_GAP
    width = max(plot_end, legend_end) + RIGHT
    height = TOP + PLOT_HEIGHT + BOTTOM
    rate = "NDR" if table.mode == "ndrpdr" else "received rate"
    parts = [
        f'<svg class="chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img">'
        f"<title>{_e(f'Throughput: {table.title}')}</title>",
        *legend,
        *_axes(scale, width, f"{rate} ({scale.unit})"),
    ]
    for row, x in zip(table.rows, positions, strict=True):
        for slot, case in enumerate(CASES):
            m = table.cell(row, case)
            left = x + slot * (BAR_WIDTH + BAR_GAP)
            if m is None:
                continue
            parts.append(_bar(m, left, scale) if m.verdict is Verdict.PASS else _gap(m, left))
    parts += _x_labels(table, positions)
    parts.append("</svg>")
    return "".join(parts)
