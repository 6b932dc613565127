"""The HTML report: one self-contained page with a server x client matrix per suite."""

from __future__ import annotations

import dataclasses
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import Any

from harness.report.plots import throughput_chart
from harness.report.text import format_value
from harness.report.text import html_text as _e
from harness.report.throughput import (
    ThroughputTable,
    cell_lines,
    format_pps,
    headline,
    measurement_id,
    measurements_of,
    placement_text,
    throughput_tables,
)
from harness.results import SCHEMA_VERSION, CaseResult, PeerInfo, RunResult, Verdict
from harness.traffic.measurement import CASES, Measurement

#: Verdicts from worst to best: the colour of a matrix cell is that of its worst case.
#: ERROR and FAIL rank as in `Verdict.severity`; a known deviation (XFAIL) ranks above a
#: case that did not run (SKIP), which ranks above PASS.
VERDICT_ORDER: tuple[Verdict, ...] = (
    Verdict.ERROR,
    Verdict.FAIL,
    Verdict.XFAIL,
    Verdict.SKIP,
    Verdict.PASS,
)

#: (strong colour, light background) per verdict; the strong one marks chips and badges.
VERDICT_COLOURS: dict[Verdict, tuple[str, str]] = {
    Verdict.PASS: ("#2e7d32", "#c8e6c9"),
    Verdict.FAIL: ("#c62828", "#ffcdd2"),
    Verdict.ERROR: ("#6a1b9a", "#e1bee7"),
    Verdict.SKIP: ("#757575", "#e0e0e0"),
    Verdict.XFAIL: ("#f2c200", "#fff59d"),
}

#: Verdicts whose strong colour is light, so that their chips and badges take dark text.
DARK_TEXT_VERDICTS = frozenset({Verdict.XFAIL})

#: A glyph per verdict, so that the matrix does not rely on colour alone.
VERDICT_GLYPHS: dict[Verdict, str] = {
    Verdict.PASS: "\u2713",  # check mark
    Verdict.FAIL: "\u2717",  # ballot x
    Verdict.ERROR: "!",
    Verdict.SKIP: "\u2013",  # en dash
    Verdict.XFAIL: "~",
}


def verdict_rank(verdict: Verdict) -> int:
    """How bad a verdict is: 0 for PASS up to 4 for ERROR."""
    return len(VERDICT_ORDER) - 1 - VERDICT_ORDER.index(verdict)


def worst_verdict(verdicts: Iterable[Verdict]) -> Verdict | None:
    """The worst of some verdicts by `VERDICT_ORDER`, or None when there are none."""
    return max(verdicts, key=verdict_rank, default=None)


@dataclasses.dataclass(frozen=True)
class SuiteMatrix:
    """The cases of one suite arranged by (server peer, client peer).

    Attributes:
        suite: The suite name.
        servers: Row peers, in the run's peer order.
        clients: Column peers, in the run's peer order.
        cells: Cases of each (server, client) pair, in run order; absent pairs did not run.
    """

    suite: str
    servers: tuple[str, ...]
    clients: tuple[str, ...]
    cells: dict[tuple[str, str], tuple[CaseResult, ...]]

    def cell(self, server: str, client: str) -> tuple[CaseResult, ...]:
        """The cases of one pair (empty when the pair did not run in this suite)."""
        return self.cells.get((server, client), ())


def peer_order(run: RunResult) -> list[str]:
    """Peer names: those of `run.peers` first, then any others in order of appearance."""
    names = [peer.name for peer in run.peers]
    for case in run.cases:
        for name in (case.server_peer, case.client_peer):
            if name not in names:
                names.append(name)
    return names


def suite_matrices(run: RunResult) -> list[SuiteMatrix]:
    """One matrix per suite, suites in order of their first case."""
    order = {name: index for index, name in enumerate(peer_order(run))}
    by_suite: dict[str, list[CaseResult]] = {}
    for case in run.cases:
        by_suite.setdefault(case.suite, []).append(case)
    matrices = []
    for suite, cases in by_suite.items():
        cells: dict[tuple[str, str], list[CaseResult]] = {}
        for case in cases:
            cells.setdefault((case.server_peer, case.client_peer), []).append(case)
        servers = sorted({case.server_peer for case in cases}, key=order.__getitem__)
        clients = sorted({case.client_peer for case in cases}, key=order.__getitem__)
        matrices.append(
            SuiteMatrix(
                suite=suite,
                servers=tuple(servers),
                clients=tuple(clients),
                cells={pair: tuple(found) for pair, found in cells.items()},
            )
        )
    return matrices


def format_timestamp(seconds: float) -> str:
    """A POSIX time as 'YYYY-MM-DD HH:MM:SS UTC', or '' for 0."""
    if not seconds:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def _artifact_href(path: str) -> str | None:
    """A safe relative link for an artifact path, or None when it is not a relative path."""
    parsed = urllib.parse.urlsplit(path)
    if not path or parsed.scheme or parsed.netloc or path.startswith(("/", "\\")):
        return None
    return urllib.parse.quote(path, safe="/._-~")


_TRACE_DIRECTION_KEYS = ("direction", "dir")
_TRACE_TYPE_KEYS = ("type", "message", "msg_type")
_TRACE_TIME_KEYS = ("time", "t", "timestamp")


def _first_key(entry: dict[str, Any], keys: Sequence[str]) -> str | None:
    return next((key for key in keys if key in entry), None)


def trace_row(entry: dict[str, Any]) -> tuple[str, str, str, list[tuple[str, str]]]:
    """Split one trace entry into (time, direction, type, decoded fields).

    A trace entry is a dict with a direction ("direction"), a message type ("type"), an
    optional time ("time") and the decoded fields, either under "fields" or as the
    remaining keys; every key that is not one of those shows up as a field too.
    """
    keys = {
        name: _first_key(entry, candidates)
        for name, candidates in (
            ("time", _TRACE_TIME_KEYS),
            ("direction", _TRACE_DIRECTION_KEYS),
            ("type", _TRACE_TYPE_KEYS),
        )
    }
    used = {key for key in keys.values() if key is not None}
    fields: list[tuple[str, str]] = []
    nested = entry.get("fields")
    if isinstance(nested, dict):
        used.add("fields")
        fields.extend((str(k), format_value(v)) for k, v in nested.items())
    fields.extend((str(k), format_value(v)) for k, v in entry.items() if k not in used)
    when = entry.get(keys["time"], "") if keys["time"] else ""
    if isinstance(when, float):
        when = f"{when:.6f}"
    return (
        format_value(when),
        format_value(entry[keys["direction"]]) if keys["direction"] else "",
        format_value(entry[keys["type"]]) if keys["type"] else "",
        fields,
    )


_CSS = """
:root { --fg: #1b1b1b; --muted: #5f6368; --line: #d0d4d9; --bg-soft: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
  color: var(--fg); margin: 0 auto; padding: 16px 24px 48px; max-width: 1400px; }
h1 { font-size: 22px; margin: 4px 0 8px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
h4 { font-size: 13px; margin: 10px 0 4px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .04em; }
code, pre, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: 12.5px; }
pre { background: var(--bg-soft); border: 1px solid var(--line); border-radius: 4px;
  padding: 6px 8px; margin: 0; white-space: pre-wrap; word-break: break-word; }
a { color: #0b57d0; }
.muted { color: var(--muted); }
table { border-collapse: collapse; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left;
  vertical-align: top; }
.facts { display: flex; flex-wrap: wrap; gap: 12px 32px; margin: 8px 0 4px;
  align-items: flex-start; }
.facts caption { text-align: left; font-weight: 600; }
.facts table th { background: var(--bg-soft); font-weight: 600; }
.counts { display: flex; flex-wrap: wrap; gap: 8px; margin: 12px 0; }
.count { border-radius: 14px; padding: 3px 12px; font-weight: 600; border: 1px solid; }
.badge { display: inline-block; min-width: 52px; text-align: center; border-radius: 3px;
  padding: 0 6px; color: #fff; font-weight: 700; font-size: 12px; }
.toolbar { position: sticky; top: 0; background: #fff; z-index: 2; padding: 6px 0;
  border-bottom: 1px solid var(--line); display: flex; gap: 12px; align-items: center;
  flex-wrap: wrap; }
.toolbar button { font: inherit; padding: 2px 10px; cursor: pointer; }
.toolbar nav a { margin-right: 10px; text-decoration: none; white-space: nowrap; }
table.matrix th.corner { font-weight: 400; color: var(--muted); font-size: 12px; }
table.matrix th { background: var(--bg-soft); }
table.matrix td.cell { min-width: 150px; cursor: pointer; border-left-width: 6px; }
table.matrix td.cell:hover { outline: 2px solid #0b57d0; outline-offset: -2px; }
table.matrix td.empty { cursor: default; color: var(--muted); text-align: center;
  background: repeating-linear-gradient(45deg, #fff, #fff 6px, #f3f3f3 6px, #f3f3f3 12px); }
.cell-summary { font-size: 12px; font-weight: 600; margin-bottom: 3px; }
.chips { list-style: none; margin: 0; padding: 0; }
.chips li { margin: 2px 0; }
a.chip { display: inline-block; border-radius: 3px; padding: 0 6px; color: #fff;
  text-decoration: none; font-size: 12.5px; }
a.chip:hover { filter: brightness(1.15); text-decoration: underline; }
section.pair { margin: 10px 0 14px; padding: 0 0 4px 10px; border-left: 4px solid; }
section.pair > h3 { margin: 0 0 4px -10px; padding: 4px 10px; }
section.suite, section.pair, details.case { scroll-margin-top: 56px; }
section.pair.focused, details.case.focused { box-shadow: 0 0 0 3px #0b57d0; }
details.case { border: 1px solid var(--line); border-left-width: 6px; border-radius: 4px;
  margin: 6px 0; background: #fff; }
details.case > summary { cursor: pointer; padding: 4px 8px; list-style-position: inside; }
details.case > summary .reason { color: var(--muted); margin-left: 6px; }
details.case[open] > summary { border-bottom: 1px solid var(--line); }
.case-body { padding: 6px 12px 10px; }
.case-body dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px;
  margin: 4px 0; }
.case-body dt { font-weight: 600; }
.case-body dd { margin: 0; }
.pairs2 { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; }
@media (max-width: 800px) { .pairs2 { grid-template-columns: 1fr; } }
table.trace td, table.trace th { font-size: 12.5px; }
table.trace td.fields span { display: inline-block; margin-right: 10px; }
table.trace td.fields b { font-weight: 600; }
body.hide-pass details.case.v-PASS { display: none; }
.chart-box { overflow-x: auto; margin: 6px 0 10px; }
table.throughput th { background: var(--bg-soft); }
table.throughput td.tp { min-width: 190px; font-size: 12.5px; border-left-width: 4px; }
table.throughput td.tp.generator-bound .tp-rate { font-style: italic; }
table.throughput td.empty { color: var(--muted); text-align: center; }
table.throughput td.frame { white-space: nowrap; text-align: right; }
.tp-note { font-size: 11.5px; }
ul.not-measured li { margin: 3px 0; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
"""

_SCRIPT = """
(function () {
  "use strict";
  function focus(element) {
    document.querySelectorAll(".focused").forEach(function (other) {
      other.classList.remove("focused");
    });
    element.classList.add("focused");
    element.scrollIntoView({block: "start"});
  }
  function remember(id) {
    try { history.replaceState(null, "", "#" + id); } catch (ignored) { /* file: URL */ }
  }
  function openCase(id) {
    var details = document.getElementById(id);
    if (!details || details.tagName !== "DETAILS") { return false; }
    details.open = true;
    focus(details);
    return true;
  }
  function openPair(id) {
    var section = document.getElementById(id);
    if (!section) { return false; }
    section.querySelectorAll("details.case").forEach(function (details) {
      details.open = true;
    });
    focus(section);
    return true;
  }
  document.addEventListener("click", function (event) {
    var chip = event.target.closest("a.chip");
    if (chip) {
      event.preventDefault();
      var caseId = chip.getAttribute("href").slice(1);
      if (openCase(caseId)) { remember(caseId); }
      return;
    }
    var cell = event.target.closest("td.cell[data-pair]");
    if (cell) {
      var pairId = cell.getAttribute("data-pair");
      if (openPair(pairId)) { remember(pairId); }
      return;
    }
    var button = event.target.closest("button[data-action]");
    if (button) {
      var open = button.getAttribute("data-action") === "expand";
      document.querySelectorAll("details.case").forEach(function (details) {
        details.open = open;
      });
    }
  });
  var hidePass = document.getElementById("hide-pass");
  if (hidePass) {
    hidePass.addEventListener("change", function () {
      document.body.classList.toggle("hide-pass", hidePass.checked);
    });
  }
  if (location.hash.length > 1) {
    var target = location.hash.slice(1);
    if (!openCase(target)) { openPair(target); }
  }
})();
"""


def _verdict_css() -> str:
    rules = []
    for verdict, (strong, light) in VERDICT_COLOURS.items():
        name = verdict.value
        rules.append(
            f".badge.v-{name}, a.chip.v-{name} {{ background: {strong}; }}\n"
            f"td.cell.v-{name} {{ background: {light}; border-left-color: {strong}; }}\n"
            f"details.case.v-{name} {{ border-left-color: {strong}; }}\n"
            f"section.pair.v-{name} {{ border-left-color: {strong}; }}\n"
            f"section.pair.v-{name} > h3 {{ background: {light}; }}\n"
            f".count.v-{name} {{ background: {light}; border-color: {strong}; }}\n"
            f"td.tp.v-{name} {{ border-left-color: {strong}; }}"
        )
        if verdict in DARK_TEXT_VERDICTS:
            rules.append(f".badge.v-{name}, a.chip.v-{name} {{ color: #3b2f00; }}")
    return "\n".join(rules)


def _badge(verdict: Verdict) -> str:
    return f'<span class="badge v-{verdict.value}">{_e(verdict.value)}</span>'


def _key_value_table(rows: Iterable[tuple[str, Any]], caption: str) -> str:
    body = "".join(f"<tr><th>{_e(key)}</th><td>{_e(value)}</td></tr>" for key, value in rows)
    return f'<table class="kv"><caption class="muted">{_e(caption)}</caption>{body}</table>'


def _peers_table(peers: Sequence[PeerInfo]) -> str:
    rows = "".join(
        f"<tr><td>{_e(p.name)}</td><td>{_e(p.version)}</td><td>{_e(p.runtime)}</td></tr>"
        for p in peers
    )
    return (
        '<table class="peers"><caption class="muted">peers</caption>'
        f"<tr><th>peer</th><th>version</th><th>runtime</th></tr>{rows}</table>"
    )


def _header(run: RunResult, measurements: Sequence[Measurement]) -> str:
    kind, counts = headline(run, measurements)
    noun = "cases" if kind == "conformance" else "measurements"
    total = f"{sum(counts.values())} {noun}"
    worst = worst_verdict(verdict for verdict, count in counts.items() if count)
    duration = run.finished - run.started if run.finished and run.started else 0.0
    run_rows: list[tuple[str, Any]] = [
        ("run id", run.run_id),
        ("commit", run.commit or "(unknown)"),
        ("started", format_timestamp(run.started)),
        ("finished", format_timestamp(run.finished)),
        ("duration", f"{duration:.1f} s" if duration else ""),
    ]
    parts = [
        f"<h1>memif {kind} report {_badge(worst) if worst else ''}</h1>",
        f'<div class="muted">run <code>{_e(run.run_id)}</code>'
        f" on <b>{_e(run.host.get('hostname', 'unknown host'))}</b>"
        f" at commit <code>{_e(run.commit[:12] or '(unknown)')}</code></div>",
        '<div class="counts">',
        f'<span class="count total">{total}</span>',
    ]
    for verdict, count in counts.items():
        parts.append(
            f'<span class="count v-{verdict.value}" data-verdict="{verdict.value}">'
            f"{VERDICT_GLYPHS[verdict]} {_e(verdict.value)} {count}</span>"
        )
    parts.append("</div>")
    parts.append('<div class="facts">')
    parts.append(_key_value_table(run_rows, "run"))
    parts.append(_peers_table(run.peers))
    parts.append(_key_value_table(sorted(run.host.items()), "host"))
    if run.placement:
        parts.append(_key_value_table(sorted(run.placement.items()), "placement"))
    parts.append("</div>")
    return "\n".join(parts)


def _toolbar(matrices: Sequence[SuiteMatrix], run: RunResult) -> str:
    links = []
    for index, matrix in enumerate(matrices):
        worst = worst_verdict(case.verdict for cases in matrix.cells.values() for case in cases)
        glyph = VERDICT_GLYPHS[worst] if worst else ""
        links.append(f'<a href="#suite-{index}">{_e(glyph)} {_e(matrix.suite)}</a>')
    if run.measurements:
        links.append('<a href="#measurements">throughput</a>')
    controls = (
        '<button type="button" data-action="expand">expand all</button>'
        '<button type="button" data-action="collapse">collapse all</button>'
        '<label><input type="checkbox" id="hide-pass"> hide passing cases</label>'
    )
    return (
        '<div class="toolbar"><nav>'
        + "".join(links)
        + "</nav>"
        + (controls if run.cases else "")
        + "</div>"
    )


def _cell_summary(cases: Sequence[CaseResult]) -> str:
    passed = sum(case.verdict is Verdict.PASS for case in cases)
    return f"{passed}/{len(cases)} pass"


def _matrix_table(
    matrix: SuiteMatrix, suite_index: int, case_ids: dict[int, str], versions: dict[str, str]
) -> str:
    def peer_label(name: str) -> str:
        version = versions.get(name, "")
        extra = f'<br><span class="muted mono">{_e(version)}</span>' if version else ""
        return f"{_e(name)}{extra}"

    head = "".join(
        f'<th scope="col" class="client">{peer_label(client)}</th>' for client in matrix.clients
    )
    rows = [
        f'<table class="matrix" data-suite="{_e(matrix.suite)}">'
        '<thead><tr><th class="corner">server \u2193 / client \u2192</th>'
        f"{head}</tr></thead><tbody>"
    ]
    for row, server in enumerate(matrix.servers):
        cells = [f'<tr><th scope="row" class="server">{peer_label(server)}</th>']
        for column, client in enumerate(matrix.clients):
            cases = matrix.cell(server, client)
            worst = worst_verdict(case.verdict for case in cases)
            if worst is None:
                cells.append(
                    f'<td class="cell empty" data-server="{_e(server)}" '
                    f'data-client="{_e(client)}" title="not run">\u00b7</td>'
                )
                continue
            chips = "".join(
                f'<li><a class="chip v-{case.verdict.value}" href="#{case_ids[id(case)]}" '
                f'data-verdict="{case.verdict.value}" '
                f'title="{_e(case.verdict.value)}: {_e(case.reason or case.case_id)}">'
                f"{VERDICT_GLYPHS[case.verdict]} {_e(case.scenario)}</a></li>"
                for case in cases
            )
            cells.append(
                f'<td class="cell v-{worst.value}" data-verdict="{worst.value}" '
                f'data-server="{_e(server)}" data-client="{_e(client)}" '
                f'data-pair="pair-{suite_index}-{row}-{column}">'
                f'<div class="cell-summary">{_e(_cell_summary(cases))}</div>'
                f'<ul class="chips">{chips}</ul></td>'
            )
        cells.append("</tr>")
        rows.append("".join(cells))
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _pre_block(title: str, text: str) -> str:
    shown = _e(text) if text else "\u2014"
    return f"<div><h4>{_e(title)}</h4><pre>{shown}</pre></div>"


def _trace_table(trace: Sequence[dict[str, Any]]) -> str:
    if not trace:
        return '<p class="muted">no control messages recorded</p>'
    rows = []
    for number, entry in enumerate(trace, start=1):
        when, direction, kind, fields = trace_row(entry)
        rendered = "".join(f"<span><b>{_e(k)}</b>={_e(v)}</span>" for k, v in fields)
        rows.append(
            f'<tr><td class="mono">{number}</td><td class="mono">{_e(when)}</td>'
            f"<td>{_e(direction)}</td><td><b>{_e(kind)}</b></td>"
            f'<td class="fields mono">{rendered}</td></tr>'
        )
    return (
        '<table class="trace"><thead><tr><th>#</th><th>time</th><th>direction</th>'
        "<th>type</th><th>decoded fields</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _artifact_list(case: CaseResult) -> str:
    if not case.artifacts:
        return '<p class="muted">none</p>'
    items = []
    for artifact in case.artifacts:
        href = _artifact_href(artifact.path)
        name = (
            f'<a href="{_e(href)}">{_e(artifact.path)}</a>'
            if href is not None
            else f'<span class="mono">{_e(artifact.path)}</span>'
        )
        note = f" \u2014 {_e(artifact.description)}" if artifact.description else ""
        items.append(f'<li><span class="muted">[{_e(artifact.kind)}]</span> {name}{note}</li>')
    return f'<ul class="artifacts">{"".join(items)}</ul>'


def _case_details(case: CaseResult, element_id: str) -> str:
    reason = f'<span class="reason">{_e(case.reason)}</span>' if case.reason else ""
    facts: list[tuple[str, str]] = [
        ("verdict", _badge(case.verdict)),
        ("case", f"<code>{_e(case.case_id)}</code>"),
        ("server / client", f"{_e(case.server_peer)} / {_e(case.client_peer)}"),
        ("reason", _e(case.reason) if case.reason else '<span class="muted">\u2014</span>'),
        ("duration", f"{case.duration:.3f} s"),
    ]
    body = [
        "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>",
        '<div class="pairs2 expectation">',
        _pre_block("Expected", case.expected),
        _pre_block("Observed", case.observed),
        "</div>",
    ]
    if case.steps or case.verify:
        body += [
            '<div class="pairs2 plan">',
            _pre_block("Steps", case.steps),
            _pre_block("Verify", case.verify),
            "</div>",
        ]
    body += [
        "<h4>Control-channel trace</h4>",
        _trace_table(case.trace),
        "<h4>Artifacts</h4>",
        _artifact_list(case),
    ]
    return (
        f'<details class="case v-{case.verdict.value}" id="{element_id}" '
        f'data-case-id="{_e(case.case_id)}" data-verdict="{case.verdict.value}">'
        f"<summary>{_badge(case.verdict)} <b>{_e(case.scenario)}</b> "
        f'<code class="muted">{_e(case.case_id)}</code>{reason}</summary>'
        f'<div class="case-body">{"".join(body)}</div></details>'
    )


def _suite_section(
    matrix: SuiteMatrix, suite_index: int, case_ids: dict[int, str], versions: dict[str, str]
) -> str:
    parts = [
        f'<section class="suite" id="suite-{suite_index}" data-suite="{_e(matrix.suite)}">',
        f"<h2>Suite {_e(matrix.suite)}</h2>",
        _matrix_table(matrix, suite_index, case_ids, versions),
    ]
    for row, server in enumerate(matrix.servers):
        for column, client in enumerate(matrix.clients):
            cases = matrix.cell(server, client)
            worst = worst_verdict(case.verdict for case in cases)
            if worst is None:
                continue
            parts.append(
                f'<section class="pair v-{worst.value}" id="pair-{suite_index}-{row}-{column}">'
                f"<h3>{_e(server)} server \u2192 {_e(client)} client "
                f'<span class="muted">({_e(_cell_summary(cases))})</span></h3>'
            )
            parts.extend(_case_details(case, case_ids[id(case)]) for case in cases)
            parts.append("</section>")
    parts.append("</section>")
    return "\n".join(parts)


_UNITS_NOTE = (
    "Rates are frames per second received by the sink; Gbps counts L2 bytes (no preamble "
    "or inter-frame gap); loss counts unsent frames as lost. In NDR/PDR mode the bar is "
    "the NDR (0 % loss) and PDR allows 0.5 % loss. The generator's self-test rate "
    "(generator \u2192 sink, no DUT) bounds what can be measured."
)


def _throughput_cell(m: Measurement | None, case: str) -> str:
    if m is None:
        return f'<td class="tp empty" data-case="{_e(case)}" title="not measured">\u00b7</td>'
    lines = "<br>".join(_e(line) for line in cell_lines(m))
    extra = []
    if m.verdict is Verdict.PASS and m.generator_pps:
        extra.append(f"generator self-test {format_pps(m.generator_pps)}")
    placement = placement_text(m)
    if placement:
        extra.append(f"placement {placement}")
    notes = "".join(f'<div class="muted tp-note">{_e(note)}</div>' for note in extra)
    bound = " generator-bound" if m.generator_bound else ""
    return (
        f'<td class="tp v-{m.verdict.value}{bound}" data-case="{_e(case)}" '
        f'data-verdict="{m.verdict.value}" title="{_e(m.reason)}">'
        f'<div class="tp-rate">{lines}</div>{notes}</td>'
    )


def _throughput_table(table: ThroughputTable) -> str:
    head = "".join(f'<th scope="col">{_e(case)}</th>' for case in CASES)
    rows = []
    for row in table.rows:
        cells = [table.cell(row, case) for case in CASES]
        versions = next((m.peer_versions for m in cells if m and m.peer_versions), {})
        version_text = ", ".join(f"{role} {version}" for role, version in versions.items())
        version_html = (
            f'<br><span class="muted mono">{_e(version_text)}</span>' if version_text else ""
        )
        rows.append(
            f'<tr data-server="{_e(row.server)}" data-client="{_e(row.client)}" '
            f'data-frame-size="{row.frame_size}"><th scope="row">{_e(row.server)} server / '
            f'{_e(row.client)} client{version_html}</th><td class="frame">{_e(row.size_label)}</td>'
            + "".join(_throughput_cell(m, case) for m, case in zip(cells, CASES, strict=True))
            + "</tr>"
        )
    return (
        '<table class="throughput"><thead><tr><th>server / client</th><th>frame</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _not_measured(measurements: Sequence[Measurement]) -> str:
    """SKIP and ERROR measurements with their full reasons and the placement they had."""
    listed = [m for m in measurements if m.verdict is not Verdict.PASS]
    if not listed:
        return ""
    items = []
    for m in sorted(listed, key=lambda m: -verdict_rank(m.verdict)):
        placement = m.placement.get("reason") or placement_text(m)
        where = f'<br><span class="muted">placement: {_e(placement)}</span>' if placement else ""
        items.append(
            f'<li data-verdict="{m.verdict.value}">{_badge(m.verdict)} '
            f"<code>{_e(measurement_id(m))}</code>: {_e(m.reason)}{where}</li>"
        )
    return f'<h3>Not measured ({len(listed)})</h3><ul class="not-measured">{"".join(items)}</ul>'


def _throughput_section(measurements: Sequence[Measurement]) -> str:
    if not measurements:
        return ""
    parts = [
        '<section id="measurements" class="throughput"><h2>Throughput</h2>',
        f'<p class="muted">{_e(_UNITS_NOTE)}</p>',
    ]
    for index, table in enumerate(throughput_tables(measurements)):
        parts += [
            f'<section class="throughput-table" id="throughput-{index}" '
            f'data-topology="{_e(table.topology)}" data-direction="{_e(table.direction)}" '
            f'data-mode="{_e(table.mode)}"><h3>{_e(table.title)}</h3>',
            f'<div class="chart-box">{throughput_chart(table)}</div>',
            _throughput_table(table),
            "</section>",
        ]
    parts += [_not_measured(measurements), "</section>"]
    return "\n".join(part for part in parts if part)


def render_html(run: RunResult) -> str:
    """Render a run as one self-contained HTML page (inline CSS and script, no network).

    The page has the run's header (host, commit, peers with versions, verdict counts),
    then per suite a server x client matrix whose cells list the scenarios of that pair
    coloured by verdict (the cell takes its worst verdict's colour), and below it every
    case's details: verdict, reason, expected vs observed, Steps/Verify, the decoded
    control-channel trace and links to artifacts. Clicking a scenario opens its details;
    clicking a cell opens all of its pair's. When the run has measurements, a throughput
    section follows: per (topology, direction, mode) an inline SVG bar chart and a table
    of the four cases per peer pair and frame size, with placement and the generator's
    self-test rate. A run with measurements and no cases is headed as a throughput report.
    Every piece of text from the run is escaped.

    Args:
        run: The run, as read from results.json.

    Returns:
        The HTML document; the same run always gives the same text.

    Raises:
        ValueError: A measurement outside the schema.
    """
    matrices = suite_matrices(run)
    measurements = measurements_of(run)
    case_ids = {id(case): f"case-{index}" for index, case in enumerate(run.cases)}
    versions = {peer.name: peer.version for peer in run.peers}
    title = f"memif conformance: {run.run_id}"
    body = [
        _header(run, measurements),
        _toolbar(matrices, run),
        *(
            _suite_section(matrix, index, case_ids, versions)
            for index, matrix in enumerate(matrices)
        ),
    ]
    if not matrices and not measurements:
        body.append('<p class="muted">This run has no cases.</p>')
    body.append(_throughput_section(measurements))
    body.append(
        '<footer>Rendered from <a href="results.json">results.json</a> (schema '
        f'{SCHEMA_VERSION}); also <a href="summary.md">summary.md</a> and '
        '<a href="junit.xml">junit.xml</a>.</footer>'
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n"
        f"<title>{_e(title)}</title>\n"
        f"<style>{_CSS}\n{_verdict_css()}\n</style>\n</head>\n<body>\n"
        + "\n".join(part for part in body if part)
        + f"\n<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )
