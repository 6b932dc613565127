"""The Markdown summary for CI pages: counts, a matrix per suite, the non-passing cases and
the throughput tables."""

from __future__ import annotations

import html
from collections.abc import Sequence

from harness.report.html import (
    VERDICT_ORDER,
    suite_matrices,
    verdict_rank,
    worst_verdict,
)
from harness.report.text import one_line
from harness.report.throughput import (
    ThroughputTable,
    cell_lines,
    headline,
    measurement_id,
    measurements_of,
    throughput_tables,
)
from harness.results import CaseResult, RunResult, Verdict
from harness.traffic.measurement import CASES, Measurement

#: Emoji per verdict; the label is always written next to it.
VERDICT_EMOJI: dict[Verdict, str] = {
    Verdict.PASS: "\u2705",  # white heavy check mark
    Verdict.FAIL: "\u274c",  # cross mark
    Verdict.ERROR: "\U0001f4a5",  # collision
    Verdict.SKIP: "\u23ed\ufe0f",  # next track
    Verdict.XFAIL: "\u26a0\ufe0f",  # warning sign
}

_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]|#~"})


def md_text(text: str, limit: int = 0) -> str:
    """Text made inert for Markdown (and the HTML it may contain), on one line.

    Args:
        text: Any text from the run (peer names, reasons, case ids).
        limit: Cut to this many characters (with an ellipsis) when positive.

    Returns:
        The text with HTML escaped, Markdown punctuation backslash-escaped and line
        breaks folded into spaces, safe inside a table cell.
    """
    return html.escape(one_line(text, limit), quote=False).translate(_MARKDOWN_SPECIAL)


def verdict_label(verdict: Verdict) -> str:
    """Emoji plus the verdict's name, e.g. '\u274c FAIL'."""
    return f"{VERDICT_EMOJI[verdict]} {verdict.value}"


def _cell(cases: tuple[CaseResult, ...]) -> str:
    worst = worst_verdict(case.verdict for case in cases)
    if worst is None:
        return "\u00b7"
    tally = ", ".join(
        f"{count} {verdict.value}"
        for verdict in reversed(VERDICT_ORDER)
        if (count := sum(case.verdict is verdict for case in cases))
    )
    return f"{VERDICT_EMOJI[worst]} {tally}"


def _header(run: RunResult, measurements: Sequence[Measurement]) -> list[str]:
    kind, counts = headline(run, measurements)
    worst = worst_verdict(verdict for verdict, count in counts.items() if count)
    host = run.host.get("hostname", "unknown host")
    peers = ", ".join(
        f"{md_text(peer.name)} {md_text(peer.version)} ({md_text(peer.runtime)})"
        for peer in run.peers
    )
    lines = [
        f"## memif {kind} {verdict_label(worst) if worst else ''}".rstrip(),
        "",
        f"Run {md_text(run.run_id)} on **{md_text(str(host))}**, "
        f"commit {md_text(run.commit[:12] or '(unknown)')}"
        + (f"; peers: {peers}" if peers else ""),
        "",
        "| " + " | ".join(verdict_label(v) for v in counts) + " | Total |",
        "|" + "---:|" * (len(counts) + 1),
        "| " + " | ".join(str(n) for n in counts.values()) + f" | {sum(counts.values())} |",
    ]
    return lines


def _matrices(run: RunResult) -> list[str]:
    lines: list[str] = []
    for matrix in suite_matrices(run):
        lines += [
            "",
            f"### Suite {md_text(matrix.suite)}",
            "",
            "| server \u2193 / client \u2192 | "
            + " | ".join(md_text(client) for client in matrix.clients)
            + " |",
            "|---|" + "---|" * len(matrix.clients),
        ]
        for server in matrix.servers:
            cells = " | ".join(_cell(matrix.cell(server, client)) for client in matrix.clients)
            lines.append(f"| **{md_text(server)}** | {cells} |")
    return lines


def _non_passing(run: RunResult, max_listed: int) -> list[str]:
    failing = sorted(
        (case for case in run.cases if case.verdict is not Verdict.PASS),
        key=lambda case: -verdict_rank(case.verdict),
    )
    if not failing:
        return ["", "All cases passed." if run.cases else "This run has no cases."]
    lines = ["", f"### Not passing ({len(failing)})", ""]
    for case in failing[:max_listed]:
        reason = md_text(case.reason, 300) if case.reason else "(no reason given)"
        lines.append(
            f"- {verdict_label(case.verdict)} {md_text(case.case_id)} "
            f"({md_text(case.suite)}: {md_text(case.server_peer)} server, "
            f"{md_text(case.client_peer)} client): {reason}"
        )
        if case.verdict in (Verdict.FAIL, Verdict.ERROR):
            if case.expected:
                lines.append(f"  - expected: {md_text(case.expected, 300)}")
            if case.observed:
                lines.append(f"  - observed: {md_text(case.observed, 300)}")
    if len(failing) > max_listed:
        lines.append(f"- \u2026 and {len(failing) - max_listed} more (see the HTML report)")
    return lines


def _throughput_table(table: ThroughputTable) -> list[str]:
    lines = [
        "",
        f"### Throughput: {md_text(table.title)}",
        "",
        "| server / client | frame | " + " | ".join(md_text(case) for case in CASES) + " |",
        "|---|---:|" + "---|" * len(CASES),
    ]
    for row in table.rows:
        cells = []
        for case in CASES:
            m = table.cell(row, case)
            cells.append("<br>".join(md_text(line) for line in cell_lines(m)) if m else "\u00b7")
        lines.append(
            f"| {md_text(row.server)} / {md_text(row.client)} | {md_text(row.size_label)} | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def _throughput(measurements: Sequence[Measurement], max_listed: int) -> list[str]:
    if not measurements:
        return []
    lines = [
        "",
        "Rates received by the sink; Gbps counts L2 bytes; unsent frames count as lost; "
        "NDR/PDR: 0 % / 0.5 % loss.",
    ]
    for table in throughput_tables(measurements):
        lines += _throughput_table(table)
    listed = sorted(
        (m for m in measurements if m.verdict is not Verdict.PASS),
        key=lambda m: -verdict_rank(m.verdict),
    )
    if listed:
        lines += ["", f"### Not measured ({len(listed)})", ""]
        lines += [
            f"- {verdict_label(m.verdict)} {md_text(measurement_id(m))}: {md_text(m.reason, 300)}"
            for m in listed[:max_listed]
        ]
        if len(listed) > max_listed:
            lines.append(f"- \u2026 and {len(listed) - max_listed} more (see the HTML report)")
    return lines


def render_markdown(run: RunResult, max_listed: int = 100) -> str:
    """Render a run as Markdown for CI job summaries and pull-request comments.

    Args:
        run: The run, as read from results.json.
        max_listed: List at most this many non-passing cases (worst first), so that
            the text stays within comment size limits.

    Returns:
        Summary counts, a server x client matrix per suite with the worst verdict's emoji
        and a tally per cell, then the non-passing cases with their reasons. When the run
        has measurements, a table per (topology, direction, mode): rows = peer pair x frame
        size, columns = the four cases; then the SKIP/ERROR measurements with their
        reasons. A run with measurements and no cases is headed as a throughput run, with
        the measurements' counts and no case matrix.

    Raises:
        ValueError: A measurement outside the schema.
    """
    measurements = measurements_of(run)
    lines = _header(run, measurements)
    if run.cases or not measurements:
        lines += _matrices(run) + _non_passing(run, max_listed)
    lines += _throughput(measurements, max_listed)
    return "\n".join(lines) + "\n"
