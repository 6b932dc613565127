"""The Markdown summary: counts, a matrix per suite and the non-passing cases, for CI pages."""

from __future__ import annotations

import html

from harness.report.html import (
    VERDICT_ORDER,
    suite_matrices,
    verdict_rank,
    visible_controls,
    worst_verdict,
)
from harness.results import CaseResult, RunResult, Verdict

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
    flat = " ".join(visible_controls(text).split())
    if limit > 0 and len(flat) > limit:
        flat = flat[: limit - 1] + "\u2026"
    return html.escape(flat, quote=False).translate(_MARKDOWN_SPECIAL)


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


def _header(run: RunResult) -> list[str]:
    worst = worst_verdict(case.verdict for case in run.cases)
    host = run.host.get("hostname", "unknown host")
    peers = ", ".join(
        f"{md_text(peer.name)} {md_text(peer.version)} ({md_text(peer.runtime)})"
        for peer in run.peers
    )
    lines = [
        f"## memif conformance {verdict_label(worst) if worst else ''}".rstrip(),
        "",
        f"Run {md_text(run.run_id)} on **{md_text(str(host))}**, "
        f"commit {md_text(run.commit[:12] or '(unknown)')}"
        + (f"; peers: {peers}" if peers else ""),
        "",
        "| " + " | ".join(verdict_label(v) for v in Verdict) + " | Total |",
        "|" + "---:|" * (len(Verdict) + 1),
        "| " + " | ".join(str(count) for count in run.counts().values()) + f" | {len(run.cases)} |",
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


def render_markdown(run: RunResult, max_listed: int = 100) -> str:
    """Render a run as Markdown for CI job summaries and pull-request comments.

    Args:
        run: The run, as read from results.json.
        max_listed: List at most this many non-passing cases (worst first), so that
            the text stays within comment size limits.

    Returns:
        Summary counts, a server x client matrix per suite with the worst verdict's emoji
        and a tally per cell, then the non-passing cases with their reasons.
    """
    lines = _header(run) + _matrices(run) + _non_passing(run, max_listed)
    return "\n".join(lines) + "\n"
