"""Tests of the throughput parts of the reports: tables, SVG charts, JUnit and run diffs."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.report import diff, write
from harness.report.html import render_html
from harness.report.junit import render_junit
from harness.report.markdown import render_markdown
from harness.report.plots import Scale
from harness.report.throughput import format_pps, throughput_tables
from harness.results import RunResult, Verdict
from harness.traffic.measurement import Latency, Measurement, Rate, gbps
from tests.test_report import EVIL, _find, _parse, _text, sample_run

HARNESS = [sys.executable, "-m", "harness.cli"]
SKIP_REASON = "host has 1 NUMA node: cross-node needs 2 (would place client on node 1)"
SIZES = (64, 1024, 1518)
#: (server, client) -> case -> frame size -> pps; ERROR where the value is None.
RATES: dict[tuple[str, str], dict[str, dict[int, float | None]]] = {
    ("testpmd", "testpmd"): {
        "same-node-zc": {64: 14.2e6, 1024: 5.1e6, 1518: 3.3e6},
        "same-node-copy": {64: 9.12e6, 1024: 3.9e6, 1518: 2.6e6},
    },
    ("testpmd", "reference"): {
        "same-node-zc": {64: 6.4e6, 1024: 2.2e6, 1518: 1.7e6},
        "same-node-copy": {64: 4.8e6, 1024: 1.9e6, 1518: None},
    },
}


def _point(server: str, client: str, case: str, size: int, **fields: Any) -> Measurement:
    base: dict[str, Any] = {
        "case": case,
        "topology": "memif",
        "server_peer": server,
        "client_peer": client,
        "direction": "c2s",
        "frame_size": size,
        "mode": "mrr",
        "placement": {
            "case": case.rsplit("-", 1)[0],
            "reason": "peers on node 0",
            "peers": [
                {
                    "peer": "server",
                    "cpus": [0],
                    "memory_node": 0,
                    "nic_node": None,
                    "lcores": "0@0,1@0",
                    "reason": "node 0 has the NIC",
                },
                {"peer": "client", "cpus": [1], "memory_node": 0, "nic_node": None},
            ],
        },
        "peer_versions": {"server": "DPDK 22.11.11", "client": f"{client} 0.1.0"},
        "duration": 3.0,
        "generator_pps": 20e6,
    }
    return Measurement(**{**base, **fields})


def _passed(server: str, client: str, case: str, size: int, pps: float) -> Measurement:
    return _point(
        server,
        client,
        case,
        size,
        verdict=Verdict.PASS,
        pps=pps,
        gbps=gbps(pps, size),
        loss=0.0,
    )


def measurements() -> list[Measurement]:
    """Two pairs x three sizes: same-node cases measured (one ERROR), cross-node-zc SKIP,
    cross-node-copy not run; plus an NDR/PDR point with latency that is generator-bound."""
    points = []
    for (server, client), cases in RATES.items():
        for size in SIZES:
            for case, rates in cases.items():
                pps = rates[size]
                if pps is None:
                    points.append(
                        _point(
                            server,
                            client,
                            case,
                            size,
                            verdict=Verdict.ERROR,
                            reason="testpmd exited: EAL: no hugepages",
                        )
                    )
                else:
                    points.append(_passed(server, client, case, size, pps))
            points.append(
                _point(
                    server, client, "cross-node-zc", size, verdict=Verdict.SKIP, reason=SKIP_REASON
                )
            )
    points.append(
        _point(
            "testpmd",
            "testpmd",
            "same-node-zc",
            64,
            topology="nic",
            mode="ndrpdr",
            verdict=Verdict.PASS,
            pps=1.2e6,
            gbps=gbps(1.2e6, 64),
            loss=0.0,
            ndr=Rate.at(1.2e6, 64, 0.0),
            pdr=Rate.at(1.25e6, 64, 0.004),
            latency=Latency(
                min_us=8.0, avg_us=11.0, p50_us=10.5, p99_us=42.25, max_us=90.0, samples=1000
            ),
            generator_pps=1.24e6,
            generator_bound=True,
            trials=9,
        )
    )
    return points


def bench_run(points: list[Measurement] | None = None, run_id: str = "bench-1") -> RunResult:
    """A run of `memif-harness bench`: measurements and no cases."""
    chosen = measurements() if points is None else points
    return RunResult(
        run_id=run_id,
        started=1_700_000_000.0,
        finished=1_700_000_300.0,
        host={"hostname": "bench-host", "cpus": 2},
        commit="fedcba9876543210fedcba9876543210fedcba98",
        measurements=[m.to_json() for m in chosen],
    )


# ---------------------------------------------------------------------------------- tables


def test_tables_rows_are_pairs_by_frame_size() -> None:
    tables = throughput_tables(measurements())
    assert [(t.topology, t.direction, t.mode) for t in tables] == [
        ("memif", "c2s", "mrr"),
        ("nic", "c2s", "ndrpdr"),
    ]
    rows = [(r.server, r.client, r.frame_size) for r in tables[0].rows]
    assert rows == [("testpmd", "testpmd", s) for s in SIZES] + [
        ("testpmd", "reference", s) for s in SIZES
    ]
    assert tables[0].title == "memif topology, client \u2192 server, MRR"
    assert tables[0].cell(tables[0].rows[0], "cross-node-copy") is None


def test_a_repeated_point_gets_its_own_row() -> None:
    first = _passed("testpmd", "testpmd", "same-node-zc", 64, 9e6)
    again = dataclasses.replace(first, pps=9.1e6, gbps=gbps(9.1e6, 64))
    (table,) = throughput_tables([first, again])
    assert [row.size_label for row in table.rows] == ["64 B", "64 B (run 2)"]
    assert [m.pps for m in table.measurements()] == [9e6, 9.1e6]


def test_format_pps_and_scale() -> None:
    assert format_pps(9.12e6) == "9.12 Mpps"
    assert format_pps(812_500) == "812.5 kpps"
    assert format_pps(950) == "950 pps"
    scale = Scale.for_maximum(14.2e6)
    assert (scale.unit, scale.top, scale.step) == ("Mpps", 15e6, 5e6)
    assert scale.height(scale.top) == 220 and scale.height(0) == 0
    assert Scale.for_maximum(0.0).top > 0  # nothing passed: still a drawable axis


# -------------------------------------------------------------------------------- Markdown


def test_markdown_table_cells() -> None:
    text = render_markdown(bench_run())
    lines = text.splitlines()
    title = "### Throughput: memif topology, client \u2192 server, MRR"
    start = lines.index(title)
    assert lines[start + 2] == (
        "| server / client | frame | same-node-zc | same-node-copy | cross-node-zc "
        "| cross-node-copy |"
    )
    assert lines[start + 3] == "|---|---:|---|---|---|---|"
    skip = "SKIP: host has 1 NUMA node: cross-node needs\u2026"
    assert lines[start + 4] == (
        "| testpmd / testpmd | 64 B | 14.20 Mpps / 7.27 Gbps, loss 0.00 % "
        f"| 9.12 Mpps / 4.67 Gbps, loss 0.00 % | {skip} | \u00b7 |"
    )
    assert lines[start + 9] == (
        "| testpmd / reference | 1518 B | 1.70 Mpps / 20.64 Gbps, loss 0.00 % "
        f"| ERROR | {skip} | \u00b7 |"
    )
    ndrpdr = lines[lines.index("### Throughput: nic topology, client \u2192 server, NDR/PDR") + 4]
    assert ndrpdr == (
        "| testpmd / testpmd | 64 B | NDR 1.20 Mpps / 0.61 Gbps, loss 0.00 %"
        "<br>PDR 1.25 Mpps / 0.64 Gbps, loss 0.40 %"
        "<br>latency p50 10.5 \u00b5s, p99 42.2 \u00b5s"
        "<br>generator-bound (1.24 Mpps self-test) | \u00b7 | \u00b7 | \u00b7 |"
    )
    # The full reasons are listed below the tables, the ERROR first.
    listed = [line for line in lines if line.startswith("- ")]
    assert len(listed) == 7 and "ERROR" in listed[0]
    assert "testpmd exited: EAL: no hugepages" in listed[0]
    assert listed[1].endswith(SKIP_REASON)


def test_markdown_of_a_bench_run_has_no_empty_verdict_matrix() -> None:
    text = render_markdown(bench_run())
    lines = text.splitlines()
    assert lines[0].startswith("## memif throughput ") and lines[0].endswith("ERROR")
    assert "### Suite" not in text and "This run has no cases." not in text
    assert "All cases passed." not in text
    header = lines.index(next(line for line in lines if line.startswith("|---:")))
    assert lines[header - 1].split(" | ")[-1] == "Total |"
    assert lines[header + 1] == "| 12 | 6 | 1 | 19 |"  # PASS, SKIP, ERROR, total


def test_markdown_of_a_run_with_cases_and_measurements_has_both() -> None:
    run = dataclasses.replace(sample_run(), measurements=bench_run().measurements)
    text = render_markdown(run)
    assert text.startswith("## memif conformance")
    assert "### Suite handshake" in text and "### Throughput: memif topology" in text


def test_markdown_escapes_a_hostile_peer() -> None:
    hostile = _passed("testpmd", EVIL + "|x", "same-node-zc", 64, 1e6)
    text = render_markdown(bench_run([hostile]))
    assert "<script>" not in text
    row = next(line for line in text.splitlines() if line.startswith("| testpmd / "))
    assert "&lt;script&gt;" in row and "\\|x" in row
    assert row.count(" | ") == 5  # the pipe in the name did not add a column


# ------------------------------------------------------------------------------------ HTML


def _charts(page: str) -> list[dict]:
    return _find(_parse(page).root, "svg", class_="chart")


def test_svg_has_one_bar_per_pass_measurement_in_height_order() -> None:
    points = measurements()
    page = render_html(bench_run(points))
    memif_chart, nic_chart = _charts(page)
    bars = _find(memif_chart, "rect", class_="bar")
    passed = [m for m in points if m.topology == "memif" and m.verdict is Verdict.PASS]
    assert len(bars) == len(passed) == 11
    by_point = {
        (
            b["attrs"]["data-server"],
            b["attrs"]["data-client"],
            b["attrs"]["data-case"],
            int(b["attrs"]["data-frame-size"]),
        ): b
        for b in bars
    }
    assert set(by_point) == {(m.server_peer, m.client_peer, m.case, m.frame_size) for m in passed}
    by_rate = sorted(passed, key=lambda m: m.pps or 0.0)
    heights = [
        float(by_point[m.server_peer, m.client_peer, m.case, m.frame_size]["attrs"]["height"])
        for m in by_rate
    ]
    assert heights == sorted(heights) and len(set(heights)) == len(heights)
    assert heights[-1] == pytest.approx(220 * 14.2 / 15, abs=0.05)  # top tick: 15 Mpps
    values = [_text(t) for t in _find(memif_chart, "text", class_="value")]
    assert sorted(values) == sorted(f"{(m.pps or 0) / 1e6:.3g}" for m in passed)
    gaps = _find(memif_chart, "g", class_="gap")
    assert sorted(g["attrs"]["data-verdict"] for g in gaps) == ["ERROR"] + ["SKIP"] * 6
    assert all(_text(g).startswith(g["attrs"]["data-verdict"]) for g in gaps)
    assert SKIP_REASON in _text(next(g for g in gaps if g["attrs"]["data-verdict"] == "SKIP"))
    ticks = [_text(t) for t in _find(memif_chart, "text", class_="tick")]
    assert ticks == ["0", "5", "10", "15"]
    axis_titles = [_text(t) for t in _find(memif_chart, "text", class_="axis-title")]
    assert axis_titles[0] == "received rate (Mpps)"
    assert "frame size" in axis_titles[1]
    pairs = [_text(t) for t in _find(memif_chart, "text", class_="pair")]
    assert pairs == ["testpmd server / testpmd client", "testpmd server / reference client"]
    assert len(_find(nic_chart, "rect", class_="bar")) == 1
    assert _text(_find(nic_chart, "text", class_="axis-title")[0]) == "NDR (Mpps)"


def test_html_throughput_table_has_placement_and_generator_rate() -> None:
    tree = _parse(render_html(bench_run()))
    table = _find(tree.root, "table", class_="throughput")[0]
    rows = _find(table, "tr")[1:]
    assert len(rows) == 6
    first = rows[0]
    assert first["attrs"]["data-frame-size"] == "64"
    cells = {td["attrs"]["data-case"]: td for td in _find(first, "td", class_="tp")}
    zc = _text(cells["same-node-zc"])
    assert "14.20 Mpps / 7.27 Gbps, loss 0.00 %" in zc
    assert "generator self-test 20.00 Mpps" in zc
    assert "placement same-node: server cpus 0, mem node 0; client cpus 1, mem node 0" in zc
    assert cells["cross-node-zc"]["attrs"]["data-verdict"] == "SKIP"
    assert "empty" in cells["cross-node-copy"]["attrs"]["class"].split()
    assert "DPDK 22.11.11" in _text(_find(first, "th")[0])
    not_measured = _find(tree.root, "ul", class_="not-measured")[0]
    assert len(_find(not_measured, "li")) == 7
    assert "would place client on node 1" in _text(not_measured)


def test_html_of_a_bench_run_is_headed_as_throughput() -> None:
    page = render_html(bench_run())
    tree = _parse(page)
    assert _text(_find(tree.root, "h1")[0]).startswith("memif throughput report")
    counts = {
        n["attrs"]["data-verdict"]: _text(n)
        for n in _find(tree.root, "span", class_="count")
        if "data-verdict" in n["attrs"]
    }
    assert counts == {"PASS": "\u2713 PASS 12", "SKIP": "\u2013 SKIP 6", "ERROR": "! ERROR 1"}
    assert "19 measurements" in _text(tree.root)
    assert "This run has no cases." not in page
    assert not _find(tree.root, "table", class_="matrix")
    assert not _find(tree.root, "button")  # no case controls without cases
    for needle in ("http://", "https://", "<link", " src="):
        assert needle not in page


def test_html_escapes_a_hostile_peer_everywhere() -> None:
    hostile = _passed(EVIL, "reference", "same-node-zc", 64, 1e6)
    skipped = _point(EVIL, "reference", "cross-node-zc", 64, verdict=Verdict.SKIP, reason=EVIL)
    page = render_html(bench_run([hostile, skipped]))
    tree = _parse(page)
    assert len(tree.scripts) == 1  # only ours
    assert "<script>alert" not in page
    (chart,) = _charts(page)
    assert _find(chart, "rect", class_="bar")[0]["attrs"]["data-server"] == EVIL
    assert _text(_find(chart, "text", class_="pair")[0]) == f"{EVIL} server / reference client"
    assert EVIL in _text(_find(chart, "g", class_="gap")[0])
    assert EVIL in _text(_find(tree.root, "table", class_="throughput")[0])


def test_a_measurement_outside_the_schema_is_a_clear_error() -> None:
    run = bench_run()
    run.measurements[3] = {**run.measurements[3], "case": "same-node-turbo"}
    with pytest.raises(ValueError, match=r"measurements\[3\]: unknown case 'same-node-turbo'"):
        render_html(run)


# ----------------------------------------------------------------------------------- JUnit


def test_junit_has_a_testcase_per_measurement() -> None:
    root = ET.fromstring(render_junit(bench_run()).encode("utf-8"))
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "19",
        "failures": "0",
        "errors": "1",
        "skipped": "6",
    }
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "throughput"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert len(cases) == 19
    passed = cases["same-node-copy[testpmd-server--testpmd-client]-memif-c2s-64B-mrr"]
    assert passed.get("classname") == "throughput.memif.c2s.mrr"
    assert passed.get("time") == "3.000"
    properties = {p.get("name"): p.get("value") for p in passed.iter("property")}
    assert properties["pps"] == "9120000.0"
    assert float(properties["gbps"]) == pytest.approx(4.66944)
    assert properties["loss"] == "0.0"
    assert passed.find("skipped") is None and passed.find("error") is None
    error = cases["same-node-copy[testpmd-server--reference-client]-memif-c2s-1518B-mrr"]
    assert error.find("error") is not None
    assert error.find("error").get("message") == "testpmd exited: EAL: no hugepages"  # type: ignore[union-attr]
    skipped = cases["cross-node-zc[testpmd-server--reference-client]-memif-c2s-64B-mrr"]
    assert skipped.find("skipped").get("message") == SKIP_REASON  # type: ignore[union-attr]
    ndr = cases["same-node-zc[testpmd-server--testpmd-client]-nic-c2s-64B-ndrpdr"]
    ndr_properties = {p.get("name"): p.get("value") for p in ndr.iter("property")}
    assert ndr_properties["pdr.loss"] == "0.004"
    assert ndr_properties["latency.p99_us"] == "42.25"
    assert ndr_properties["generator_bound"] == "true"
    assert ndr.get("time") == "27.000"  # 9 trials of 3 s


# ------------------------------------------------------------------------------------ diff


def _slower(points: list[Measurement], factor: float, case: str, size: int) -> list[Measurement]:
    return [
        dataclasses.replace(m, pps=m.pps * factor, gbps=gbps(m.pps * factor, size))
        if m.case == case and m.frame_size == size and m.pps and m.topology == "memif"
        else m
        for m in points
    ]


def test_diff_flags_a_20_percent_drop() -> None:
    old = bench_run()
    points = _slower(measurements(), 0.8, "same-node-zc", 1024)
    points = _slower(points, 0.95, "same-node-copy", 64)  # within the 10 % threshold
    new = bench_run(points, run_id="bench-2")
    changes = diff.diff_measurements(old, new)
    assert len(changes) == 19
    dropped = [c for c in changes if c.dropped]
    assert [c.label for c in dropped] == [
        "same-node-zc[testpmd-server--testpmd-client]-memif-c2s-1024B-mrr",
        "same-node-zc[testpmd-server--reference-client]-memif-c2s-1024B-mrr",
    ]
    assert all(c.ratio == pytest.approx(0.8) for c in dropped)
    small = next(c for c in changes if c.label.startswith("same-node-copy[testpmd-server--test"))
    assert small.ratio == pytest.approx(0.95) and not small.dropped
    assert not any(c.worse for c in changes)
    assert not any(c.dropped for c in diff.diff_measurements(old, new, threshold=0.25))
    text = diff.render_throughput_diff(changes, 0.10)
    lines = text.splitlines()
    assert lines[0] == (
        "throughput: 12 compared, 2 dropped more than 10 %, 0 worse, 0 added, 0 removed"
    )
    drop = next(line for line in lines if line.startswith("DROP"))
    assert "x0.80 (-20.0 %)" in drop and "5.10 Mpps -> 4.08 Mpps" in drop


def test_diff_of_verdicts_added_and_removed_points() -> None:
    points = measurements()
    old = bench_run(points)
    broken = [
        dataclasses.replace(
            m, verdict=Verdict.ERROR, reason="peer crashed", pps=None, gbps=None, loss=None
        )
        if m.case == "same-node-zc" and m.frame_size == 64 and m.topology == "memif"
        else m
        for m in points[1:]  # the first point is gone
    ]
    new = bench_run([*broken, _passed("vpp", "vpp", "same-node-zc", 64, 8e6)])
    changes = diff.diff_measurements(old, new)
    assert sum(c.worse for c in changes) == 1  # the other PASS -> ERROR point was removed
    assert [c.label for c in changes if c.before is None] == [
        "same-node-zc[vpp-server--vpp-client]-memif-c2s-64B-mrr"
    ]
    removed = [c for c in changes if c.after is None]
    assert [c.label for c in removed] == [
        "same-node-zc[testpmd-server--testpmd-client]-memif-c2s-64B-mrr"
    ]
    text = diff.render_throughput_diff(changes, 0.10)
    worse = next(line for line in text.splitlines() if line.startswith("worse"))
    assert "6.40 Mpps -> ERROR" in worse and worse.endswith("(peer crashed)")
    with pytest.raises(ValueError, match="fraction in"):
        diff.diff_measurements(old, new, threshold=1.5)


# ------------------------------------------------------------------------ report and diff


def test_report_and_diff_commands_on_bench_runs(tmp_path: Path) -> None:
    before = tmp_path / "a" / "results.json"
    after = tmp_path / "b" / "results.json"
    bench_run().write(before)
    bench_run(_slower(measurements(), 0.8, "same-node-zc", 1024), "bench-2").write(after)
    rendered = subprocess.run(
        [*HARNESS, "report", str(before)], capture_output=True, text=True, timeout=60
    )
    assert rendered.returncode == 0, rendered.stderr
    summary = (before.parent / "summary.md").read_text(encoding="utf-8")
    assert "### Throughput: memif topology" in summary
    assert _charts((before.parent / "index.html").read_text(encoding="utf-8"))
    junit = ET.parse(before.parent / "junit.xml").getroot()
    assert junit.get("tests") == "19"
    # The same file renders the same reports as write_reports did.
    written = write.write_reports(RunResult.read(before), tmp_path / "c")
    assert written["summary.md"].read_text(encoding="utf-8") == summary
    dropped = subprocess.run(
        [*HARNESS, "diff", str(before), str(after)], capture_output=True, text=True, timeout=60
    )
    assert dropped.returncode == 1, dropped.stdout + dropped.stderr
    assert "2 dropped more than 10 %" in dropped.stdout
    assert "no verdict changed" not in dropped.stdout  # no cases: no empty verdict diff
    lenient = subprocess.run(
        [*HARNESS, "diff", "--threshold", "25", str(before), str(after)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert "0 dropped more than 25 %" in lenient.stdout
    bad = subprocess.run(
        [*HARNESS, "diff", "--threshold", "150", str(before), str(after)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--threshold 150" in bad.stderr
