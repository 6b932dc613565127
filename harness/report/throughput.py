"""Throughput tables for the reports: a run's measurements per (topology, direction, mode),
rows = peer pair x frame size, columns = the four cases, with the text of each cell."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from harness.report.text import format_value, one_line
from harness.results import RunResult, Verdict
from harness.traffic.measurement import (
    CASES,
    DIRECTIONS,
    MEASUREMENT_VERDICTS,
    MODES,
    TOPOLOGIES,
    Measurement,
    Rate,
)

#: How a direction and a mode read in a heading.
DIRECTION_LABELS = {"c2s": "client \u2192 server", "s2c": "server \u2192 client"}
MODE_LABELS = {"mrr": "MRR", "ndrpdr": "NDR/PDR"}
#: A SKIP cell shows its reason cut to this many characters; the full text is listed below.
SHORT_REASON = 40


def measurements_of(run: RunResult) -> list[Measurement]:
    """The run's measurements as `Measurement`s.

    Raises:
        ValueError: An entry outside the schema, naming its position in the list.
    """
    parsed = []
    for index, data in enumerate(run.measurements):
        try:
            parsed.append(Measurement.from_json(data))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"measurements[{index}]: {exc}") from None
    return parsed


def measurement_id(measurement: Measurement) -> str:
    """A readable id that names every part of the measurement's key, e.g.
    'same-node-zc[testpmd-server--reference-client]-memif-c2s-64B-mrr'."""
    m = measurement
    return (
        f"{m.case}[{m.server_peer}-server--{m.client_peer}-client]"
        f"-{m.topology}-{m.direction}-{m.frame_size}B-{m.mode}"
    )


@dataclasses.dataclass(frozen=True)
class TableRow:
    """One row of a throughput table.

    Attributes:
        server: Server peer kind.
        client: Client peer kind.
        frame_size: Frame size in bytes.
        repeat: 0 for the first measurement of this point, 1 for a repeat, ...
    """

    server: str
    client: str
    frame_size: int
    repeat: int = 0

    @property
    def pair(self) -> tuple[str, str]:
        """(server, client)."""
        return (self.server, self.client)

    @property
    def size_label(self) -> str:
        """'64 B', or '64 B (run 2)' for a repeat."""
        return f"{self.frame_size} B" + (f" (run {self.repeat + 1})" if self.repeat else "")


@dataclasses.dataclass(frozen=True)
class ThroughputTable:
    """The measurements of one (topology, direction, mode).

    Attributes:
        topology: One of TOPOLOGIES.
        direction: One of DIRECTIONS.
        mode: One of MODES.
        rows: Peer pairs in order of first appearance, frame sizes ascending within a pair.
        cells: The measurement of each (row, case); absent cells were not measured.
    """

    topology: str
    direction: str
    mode: str
    rows: tuple[TableRow, ...]
    cells: dict[tuple[TableRow, str], Measurement]

    @property
    def title(self) -> str:
        """E.g. 'memif topology, client \u2192 server, MRR'."""
        direction = DIRECTION_LABELS[self.direction]
        return f"{self.topology} topology, {direction}, {MODE_LABELS[self.mode]}"

    def cell(self, row: TableRow, case: str) -> Measurement | None:
        """The measurement of one case in one row, or None when it was not measured."""
        return self.cells.get((row, case))

    def measurements(self) -> list[Measurement]:
        """Every measurement of the table, row by row, cases in CASES order."""
        found = (self.cell(row, case) for row in self.rows for case in CASES)
        return [m for m in found if m is not None]


#: A measurement's key (see `Measurement.key`) and its repeat: 0 for the first
#: measurement of that key in a run, 1 for the next, ...
RepeatKey = tuple[tuple[str, str, str, str, str, int, str], int]


def with_repeats(measurements: Iterable[Measurement]) -> dict[RepeatKey, Measurement]:
    """The measurements by (key, repeat), in run order, so that none hides another."""
    keyed: dict[RepeatKey, Measurement] = {}
    seen: dict[tuple[str, str, str, str, str, int, str], int] = {}
    for m in measurements:
        repeat = seen.get(m.key, 0)
        seen[m.key] = repeat + 1
        keyed[m.key, repeat] = m
    return keyed


def throughput_tables(measurements: Iterable[Measurement]) -> list[ThroughputTable]:
    """The measurements arranged in tables, in TOPOLOGIES x DIRECTIONS x MODES order.

    A point measured more than once (same key) gets one row per repeat, so that no
    measurement is hidden.
    """
    groups: dict[tuple[str, str, str], dict[tuple[TableRow, str], Measurement]] = {}
    pair_order: dict[tuple[str, str], int] = {}
    for (_, repeat), m in with_repeats(measurements).items():
        pair_order.setdefault((m.server_peer, m.client_peer), len(pair_order))
        row = TableRow(m.server_peer, m.client_peer, m.frame_size, repeat)
        groups.setdefault((m.topology, m.direction, m.mode), {})[row, m.case] = m
    tables = []
    for topology in TOPOLOGIES:
        for direction in DIRECTIONS:
            for mode in MODES:
                cells = groups.get((topology, direction, mode))
                if not cells:
                    continue
                rows = sorted(
                    {row for row, _ in cells},
                    key=lambda r: (pair_order[r.pair], r.frame_size, r.repeat),
                )
                tables.append(ThroughputTable(topology, direction, mode, tuple(rows), cells))
    return tables


def format_pps(pps: float) -> str:
    """A frame rate with a readable unit: '9.12 Mpps', '812.5 kpps', '950 pps'."""
    for scale, unit, decimals in ((1e9, "Gpps", 2), (1e6, "Mpps", 2), (1e3, "kpps", 1)):
        if abs(pps) >= scale:
            return f"{pps / scale:.{decimals}f} {unit}"
    return f"{pps:.0f} pps"


def rate_text(pps: float, gbps: float, loss: float) -> str:
    """'9.12 Mpps / 4.67 Gbps, loss 0.00 %' (loss is a fraction, shown in percent)."""
    return f"{format_pps(pps)} / {gbps:.2f} Gbps, loss {loss * 100:.2f} %"


def cell_lines(m: Measurement) -> list[str]:
    """The text of a table cell, one line per fact, unescaped.

    PASS: the rate (NDR and PDR in ndrpdr mode), latency p50/p99 when measured, and a
    note when the rate is generator-bound. SKIP: 'SKIP: ' and the reason cut short.
    ERROR: 'ERROR'.
    """
    if m.verdict is Verdict.SKIP:
        return [f"SKIP: {one_line(m.reason, SHORT_REASON)}"]
    if m.verdict is Verdict.ERROR:
        return ["ERROR"]
    assert m.pps is not None and m.gbps is not None and m.loss is not None  # PASS has them
    if m.mode == "ndrpdr":
        ndr = m.ndr if m.ndr is not None else Rate(m.pps, m.gbps, m.loss)
        lines = [f"NDR {rate_text(ndr.pps, ndr.gbps, ndr.loss)}"]
        if m.pdr is not None:
            lines.append(f"PDR {rate_text(m.pdr.pps, m.pdr.gbps, m.pdr.loss)}")
    else:
        lines = [rate_text(m.pps, m.gbps, m.loss)]
    if m.latency is not None:
        lines.append(
            f"latency p50 {m.latency.p50_us:.1f} \u00b5s, p99 {m.latency.p99_us:.1f} \u00b5s"
        )
    if m.generator_bound:
        generator = f" ({format_pps(m.generator_pps)} self-test)" if m.generator_pps else ""
        lines.append(f"generator-bound{generator}")
    return lines


#: The per-peer placement facts a table cell shows, with their labels.
PLACEMENT_FACTS = (("cpus", "cpus"), ("memory_node", "mem node"), ("nic_node", "NIC node"))


def _placement_fact(value: object) -> str:
    if isinstance(value, list | tuple):
        return ",".join(format_value(item) for item in value)
    return format_value(value)


def placement_text(m: Measurement) -> str:
    """Where the peers ran, on one line, e.g.
    'same-node: server cpus 0, mem node 0; client cpus 1, mem node 0'.

    Only each peer's CPUs, memory node and NIC node are shown; results.json keeps the rest.
    """
    placement = m.placement
    peers = placement.get("peers")
    described = []
    for peer in peers if isinstance(peers, list) else []:
        if isinstance(peer, dict):
            facts = ", ".join(
                f"{label} {_placement_fact(peer[key])}"
                for key, label in PLACEMENT_FACTS
                if peer.get(key) is not None
            )
            described.append(f"{format_value(peer.get('peer', '?'))} {facts}".strip())
    case = format_value(placement["case"]) if placement.get("case") else ""
    text = "; ".join(described)
    return one_line(f"{case}: {text}" if case and text else case or text)


def headline(run: RunResult, measurements: Sequence[Measurement]) -> tuple[str, dict[Verdict, int]]:
    """What a report is about, and the verdict counts its header shows.

    Returns:
        ("conformance", a count per verdict of the run's cases), or for a benchmark run
        (measurements and no cases) ("throughput", a count per measurement verdict).
    """
    if run.cases or not measurements:
        verdicts = [case.verdict for case in run.cases]
        return "conformance", {verdict: verdicts.count(verdict) for verdict in Verdict}
    verdicts = [m.verdict for m in measurements]
    return "throughput", {verdict: verdicts.count(verdict) for verdict in MEASUREMENT_VERDICTS}
