"""Tests of harness.report: HTML matrix, Markdown, JUnit, run diffs and report writing."""

from __future__ import annotations

import dataclasses
import html.parser
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.report import diff, write
from harness.report.html import VERDICT_COLOURS, render_html, suite_matrices, worst_verdict
from harness.report.junit import render_junit
from harness.report.markdown import VERDICT_EMOJI, render_markdown
from harness.results import Artifact, CaseResult, PeerInfo, RunResult, Verdict
from harness.traffic.measurement import Measurement

EVIL = "<script>alert('x')</script> \"quoted\" & caf\u00e9 \u2192 \u65e5\u672c"


def _case(
    suite: str,
    scenario: str,
    server: str,
    client: str,
    verdict: Verdict,
    **extra: object,
) -> CaseResult:
    return CaseResult(
        suite=suite,
        scenario=scenario,
        case_id=f"{scenario}[{server}-server--{client}-client]",
        server_peer=server,
        client_peer=client,
        verdict=verdict,
        **extra,  # type: ignore[arg-type]
    )


def sample_run() -> RunResult:
    """Two suites, three peers, every verdict, a trace and text with odd characters."""
    hello = {"name": "dpdk", "max_region": 255}
    trace = (
        {"direction": "server->client", "type": "HELLO", "fields": hello},
        {"direction": "client->server", "type": "INIT", "fields": {"secret": EVIL, "id": 0}},
        {
            "direction": "server->client",
            "type": "DISCONNECT",
            "time": 0.25,
            "code": 1,
            "reason": "bad <secret>",
        },
    )
    cases = [
        _case("handshake", "hello", "reference", "testpmd", Verdict.PASS, duration=0.5),
        _case("handshake", "connect", "reference", "testpmd", Verdict.PASS, duration=0.25),
        _case(
            "handshake",
            "hello",
            "testpmd",
            "reference",
            Verdict.FAIL,
            reason="HELLO max_region 300 > 255",
            expected="max_region <= 255",
            observed="max_region = 300",
            steps="1. Start the server.\n2. Connect.",
            verify="HELLO fields are in range.",
            duration=1.5,
            trace=trace,
            artifacts=(
                Artifact("log", "logs/testpmd server.log", "peer log"),
                Artifact("pcap", "javascript:alert(1)", "not a relative path"),
            ),
        ),
        _case(
            "handshake",
            "connect",
            "testpmd",
            "reference",
            Verdict.ERROR,
            reason="testpmd did not start: \x1b[31mEAL\x1b[0m error",
            duration=2.0,
        ),
        _case("handshake", "hello", "reference", "reference", Verdict.PASS),
        _case(
            "secret",
            "wrong_secret",
            "testpmd",
            "reference",
            Verdict.XFAIL,
            reason="DPDK 22.11 accepts a wrong secret (bug 1234)",
            expected=EVIL,
            observed=EVIL,
            trace=trace,
        ),
        _case(
            "secret",
            "wrong_secret",
            "vpp",
            "reference",
            Verdict.SKIP,
            reason="missing capability: VPP",
        ),
        _case("secret", "no_secret", "testpmd", "reference", Verdict.PASS),
    ]
    return RunResult(
        run_id="run-42",
        started=1_700_000_000.0,
        finished=1_700_000_060.0,
        host={"hostname": "host<1>", "kernel": "6.1.0", "cpus": 2},
        commit="0123456789abcdef0123456789abcdef01234567",
        peers=[
            PeerInfo("reference", "0.1.0"),
            PeerInfo("testpmd", "22.11.4", "docker"),
            PeerInfo("vpp", "24.02 <dev>", "docker"),
        ],
        placement={"testpmd": {"cpus": [1]}},
        cases=cases,
        measurements=[
            Measurement(
                case="same-node-copy",
                topology="memif",
                server_peer="testpmd",
                client_peer="reference",
                direction="c2s",
                frame_size=64,
                mode="mrr",
                verdict=Verdict.PASS,
                pps=1.5e6,
                gbps=0.768,
                loss=0.0,
            ).to_json()
        ],
    )


class _Tree(html.parser.HTMLParser):
    """A minimal DOM: elements with tag, attributes, children and text."""

    VOID = frozenset({"meta", "br", "input", "link", "img", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root: dict[str, object] = {"tag": "#root", "attrs": {}, "children": [], "text": []}
        self.stack = [self.root]
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = {"tag": tag, "attrs": dict(attrs), "children": [], "text": []}
        self.stack[-1]["children"].append(node)  # type: ignore[union-attr]
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1]["tag"] == tag, f"</{tag}> closes <{self.stack[-1]['tag']}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        for node in self.stack:
            node["text"].append(data)  # type: ignore[union-attr]
        if self.stack[-1]["tag"] == "script":
            self.scripts.append(data)


def _parse(page: str) -> _Tree:
    tree = _Tree()
    tree.feed(page)
    tree.close()
    assert tree.stack == [tree.root], "unclosed elements"
    return tree


def _find(node: dict, tag: str, **attrs: str) -> list[dict]:
    found = []
    for child in node["children"]:
        child_attrs = child["attrs"]
        classes = (child_attrs.get("class") or "").split()
        if child["tag"] == tag and all(
            (value in classes) if key == "class_" else child_attrs.get(key) == value
            for key, value in attrs.items()
        ):
            found.append(child)
        found.extend(_find(child, tag, **attrs))
    return found


def _text(node: dict) -> str:
    return "".join(node["text"])


# ---------------------------------------------------------------------------- matrix model


def test_suite_matrices_rows_are_servers_and_columns_are_clients() -> None:
    matrices = suite_matrices(sample_run())
    assert [m.suite for m in matrices] == ["handshake", "secret"]
    handshake, secret = matrices
    assert handshake.servers == ("reference", "testpmd")
    assert handshake.clients == ("reference", "testpmd")
    assert [c.scenario for c in handshake.cell("reference", "testpmd")] == ["hello", "connect"]
    assert handshake.cell("testpmd", "testpmd") == ()
    assert secret.servers == ("testpmd", "vpp")
    assert secret.clients == ("reference",)


def test_worst_verdict_order() -> None:
    assert worst_verdict([Verdict.PASS, Verdict.SKIP]) is Verdict.SKIP
    assert worst_verdict([Verdict.SKIP, Verdict.XFAIL, Verdict.PASS]) is Verdict.XFAIL
    assert worst_verdict([Verdict.XFAIL, Verdict.FAIL]) is Verdict.FAIL
    assert worst_verdict([Verdict.FAIL, Verdict.ERROR, Verdict.PASS]) is Verdict.ERROR
    assert worst_verdict([]) is None


# ------------------------------------------------------------------------------------ HTML


def test_html_is_self_contained_and_well_formed() -> None:
    page = render_html(sample_run())
    tree = _parse(page)
    assert page.startswith("<!DOCTYPE html>")
    for needle in ("http://", "https://", "<link", " src="):
        assert needle not in page
    assert _find(tree.root, "meta", charset="utf-8")
    assert len(_find(tree.root, "style")) == 1
    assert len(tree.scripts) == 1


def test_html_header_names_host_commit_peers_and_counts() -> None:
    tree = _parse(render_html(sample_run()))
    text = _text(tree.root)
    assert "host<1>" in text
    assert "0123456789abcdef0123456789abcdef01234567" in text
    assert "22.11.4" in text and "24.02 <dev>" in text and "docker" in text
    counts = {
        n["attrs"]["data-verdict"]: _text(n)
        for n in _find(tree.root, "span", class_="count")
        if "data-verdict" in n["attrs"]
    }
    assert counts == {
        "PASS": "\u2713 PASS 4",
        "FAIL": "\u2717 FAIL 1",
        "ERROR": "! ERROR 1",
        "SKIP": "\u2013 SKIP 1",
        "XFAIL": "~ XFAIL 1",
    }
    assert "8 cases" in text


def test_html_matrix_structure() -> None:
    tree = _parse(render_html(sample_run()))
    tables = _find(tree.root, "table", class_="matrix")
    assert [t["attrs"]["data-suite"] for t in tables] == ["handshake", "secret"]
    handshake, secret = tables
    assert [_text(th) for th in _find(handshake, "th", class_="client")] == [
        "reference0.1.0",
        "testpmd22.11.4",
    ]
    rows = _find(handshake, "tr")[1:]
    assert [_text(_find(row, "th")[0]) for row in rows] == ["reference0.1.0", "testpmd22.11.4"]
    cells = [
        [(c["attrs"]["data-server"], c["attrs"]["data-client"]) for c in _find(r, "td")]
        for r in rows
    ]
    assert cells == [
        [("reference", "reference"), ("reference", "testpmd")],
        [("testpmd", "reference"), ("testpmd", "testpmd")],
    ]
    by_pair = {
        (c["attrs"]["data-server"], c["attrs"]["data-client"]): c
        for c in _find(handshake, "td", class_="cell")
    }
    chips = [
        (_text(a), a["attrs"]["data-verdict"]) for a in _find(by_pair["reference", "testpmd"], "a")
    ]
    assert chips == [("\u2713 hello", "PASS"), ("\u2713 connect", "PASS")]
    assert "empty" in by_pair["testpmd", "testpmd"]["attrs"]["class"].split()
    assert not _find(by_pair["testpmd", "testpmd"], "a")
    assert len(_find(secret, "td", class_="cell")) == 2  # 2 servers x 1 client


def test_html_cell_takes_the_worst_verdict_colour() -> None:
    page = render_html(sample_run())
    tree = _parse(page)
    cells = {
        (c["attrs"]["data-server"], c["attrs"]["data-client"], c["attrs"].get("data-verdict"))
        for c in _find(tree.root, "td", class_="cell")
    }
    assert cells == {
        ("reference", "reference", "PASS"),
        ("reference", "testpmd", "PASS"),
        ("testpmd", "reference", "ERROR"),  # FAIL + ERROR -> ERROR
        ("testpmd", "testpmd", None),  # not run
        ("testpmd", "reference", "XFAIL"),  # secret suite: XFAIL + PASS
        ("vpp", "reference", "SKIP"),
    }
    for cell in _find(tree.root, "td", class_="cell"):
        verdict = cell["attrs"].get("data-verdict")
        if verdict:
            assert f"v-{verdict}" in cell["attrs"]["class"].split()
    # Every verdict has its own colour, and the stylesheet applies it to cells and chips.
    strong = {colours[0] for colours in VERDICT_COLOURS.values()}
    light = {colours[1] for colours in VERDICT_COLOURS.values()}
    assert len(strong) == len(light) == len(Verdict)
    for verdict, (strong_colour, light_colour) in VERDICT_COLOURS.items():
        assert f"td.cell.v-{verdict.value} {{ background: {light_colour};" in page
        assert f"a.chip.v-{verdict.value} {{ background: {strong_colour}; }}" in page
    assert VERDICT_COLOURS[Verdict.PASS][0] == "#2e7d32"  # green
    assert VERDICT_COLOURS[Verdict.FAIL][0] == "#c62828"  # red
    assert VERDICT_COLOURS[Verdict.ERROR][0] == "#6a1b9a"  # purple


def test_html_escapes_everything() -> None:
    run = sample_run()
    run = dataclasses.replace(
        run,
        run_id=EVIL,
        commit=EVIL,
        peers=[*run.peers, PeerInfo(EVIL, EVIL, EVIL)],
        cases=[
            *run.cases,
            _case(
                EVIL,
                EVIL,
                EVIL,
                EVIL,
                Verdict.FAIL,
                reason=EVIL,
                steps=EVIL,
                verify=EVIL,
                artifacts=(Artifact(EVIL, 'a"b<c>.log', EVIL),),
            ),
        ],
    )
    page = render_html(run)
    tree = _parse(page)
    assert len(tree.scripts) == 1  # only ours: no injected script element
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &quot;quoted&quot; &amp;" in page
    assert "caf\u00e9 \u2192 \u65e5\u672c" in page  # non-ASCII kept as characters (UTF-8)
    assert EVIL in _text(tree.root)  # and reads back as the original text
    hrefs = [a["attrs"]["href"] for a in _find(tree.root, "a")]
    assert "logs/testpmd%20server.log" in hrefs
    assert "a%22b%3Cc%3E.log" in hrefs
    assert not any(href.startswith("javascript:") for href in hrefs)
    assert "javascript:alert(1)" in _text(tree.root)  # shown as text, not a link


def test_html_case_details() -> None:
    tree = _parse(render_html(sample_run()))
    details = {d["attrs"]["data-case-id"]: d for d in _find(tree.root, "details", class_="case")}
    assert len(details) == len(sample_run().cases)
    failed = details["hello[testpmd-server--reference-client]"]
    assert failed["attrs"]["data-verdict"] == "FAIL"
    text = _text(failed)
    for needle in (
        "HELLO max_region 300 > 255",
        "max_region <= 255",
        "max_region = 300",
        "1. Start the server.\n2. Connect.",
        "HELLO fields are in range.",
        "1.500 s",
    ):
        assert needle in text
    rows = _find(_find(failed, "table", class_="trace")[0], "tr")[1:]
    cells = [[_text(td) for td in _find(row, "td")] for row in rows]
    assert cells[0] == ["1", "", "server->client", "HELLO", "name=dpdkmax_region=255"]
    assert cells[1][3] == "INIT" and f"secret={EVIL}" in cells[1][4]
    assert cells[2] == [
        "3",
        "0.250000",
        "server->client",
        "DISCONNECT",
        "code=1reason=bad <secret>",
    ]
    # Chips point at the details of their case.
    chip = next(
        a
        for a in _find(tree.root, "a", class_="chip")
        if a["attrs"]["href"] == "#" + failed["attrs"]["id"]
    )
    assert chip["attrs"]["data-verdict"] == "FAIL"
    # Clicking a cell opens its pair's section, which holds that pair's cases.
    cell = next(
        c
        for c in _find(tree.root, "td", class_="cell")
        if c["attrs"].get("data-verdict") == "ERROR"
    )
    section = _find(tree.root, "section", id=cell["attrs"]["data-pair"])[0]
    assert [d["attrs"]["data-verdict"] for d in _find(section, "details")] == ["FAIL", "ERROR"]


def test_html_of_an_empty_run() -> None:
    page = render_html(RunResult(run_id="empty", started=0.0))
    assert "This run has no cases." in page
    _parse(page)


# -------------------------------------------------------------------------------- Markdown


def test_markdown_summary_matrix_and_failures() -> None:
    text = render_markdown(sample_run())
    lines = text.splitlines()
    assert lines[0] == f"## memif conformance {VERDICT_EMOJI[Verdict.ERROR]} ERROR"
    counts_row = lines[lines.index(next(line for line in lines if line.startswith("|---:"))) + 1]
    assert counts_row == "| 4 | 1 | 1 | 1 | 1 | 8 |"
    assert "### Suite handshake" in lines and "### Suite secret" in lines
    assert "| server \u2193 / client \u2192 | reference | testpmd |" in lines
    assert f"| **testpmd** | {VERDICT_EMOJI[Verdict.ERROR]} 1 FAIL, 1 ERROR | \u00b7 |" in lines
    assert f"| **reference** | {VERDICT_EMOJI[Verdict.PASS]} 1 PASS | " in text
    assert f"| **vpp** | {VERDICT_EMOJI[Verdict.SKIP]} 1 SKIP |" in lines
    assert "### Not passing (4)" in lines
    listed = [line for line in lines if line.startswith("- ")]
    assert [line.split()[2] for line in listed] == ["ERROR", "FAIL", "XFAIL", "SKIP"]
    assert "HELLO max\\_region 300 &gt; 255" in listed[1]
    assert "  - expected: max\\_region &lt;= 255" in lines
    assert "missing capability: VPP" in listed[3]
    assert "\x1b" not in text
    assert "testpmd did not start: \\\\x1b\\[31mEAL" in listed[0]


def test_markdown_escapes_and_stays_one_line_per_item() -> None:
    run = sample_run()
    evil = _case("s", "x", "a|b", "c", Verdict.FAIL, reason=EVIL + "\nsecond | line")
    text = render_markdown(dataclasses.replace(run, cases=[evil]))
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    assert "a\\|b" in text  # a pipe cannot split a table cell
    item = next(line for line in text.splitlines() if line.startswith("- "))
    assert "second \\| line" in item


def test_markdown_limits_the_list() -> None:
    run = sample_run()
    text = render_markdown(run, max_listed=2)
    assert "- \u2026 and 2 more (see the HTML report)" in text


def test_markdown_all_passed() -> None:
    run = sample_run()
    passing = [case for case in run.cases if case.verdict is Verdict.PASS]
    assert "All cases passed." in render_markdown(dataclasses.replace(run, cases=passing))


# ----------------------------------------------------------------------------------- JUnit


def test_junit_counts_and_elements() -> None:
    document = render_junit(sample_run())
    root = ET.fromstring(document.encode("utf-8"))
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "9",  # 8 cases and a throughput measurement
        "failures": "1",
        "errors": "1",
        "skipped": "2",
    }
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["handshake", "secret", "throughput"]
    handshake, secret, _ = suites
    keys = ("tests", "failures", "errors", "skipped", "time")
    assert [handshake.get(key) for key in keys] == ["5", "1", "1", "0", "4.250"]
    assert (secret.get("tests"), secret.get("skipped")) == ("3", "2")
    cases = {c.get("name"): c for c in root.iter("testcase")}
    failed = cases["hello[testpmd-server--reference-client]"]
    assert failed.get("classname") == "handshake"
    assert failed.get("time") == "1.500"
    failure = failed.find("failure")
    assert failure is not None and failure.get("message") == "HELLO max_region 300 > 255"
    assert "expected: max_region <= 255" in (failure.text or "")
    assert "observed: max_region = 300" in (failure.text or "")
    out = failed.find("system-out")
    assert out is not None and "Steps:\n1. Start the server." in (out.text or "")
    assert "server->client HELLO name=dpdk max_region=255" in (out.text or "")
    error = cases["connect[testpmd-server--reference-client]"].find("error")
    assert error is not None
    assert error.get("message") == "testpmd did not start: \\x1b[31mEAL\\x1b[0m error"
    xfail = cases["wrong_secret[testpmd-server--reference-client]"].find("skipped")
    assert xfail is not None and xfail.get("message", "").startswith("XFAIL: DPDK 22.11")
    skip = cases["wrong_secret[vpp-server--reference-client]"].find("skipped")
    assert skip is not None and skip.get("message") == "missing capability: VPP"
    passed = cases["hello[reference-server--testpmd-client]"]
    assert [child.tag for child in passed] == []
    assert root.find("testsuite/properties/property[@name='peer.testpmd']").get("value") == (  # type: ignore[union-attr]
        "22.11.4 (docker)"
    )


def test_junit_escapes_odd_text() -> None:
    run = sample_run()
    evil = _case("s", EVIL, "a", "b", Verdict.FAIL, reason=EVIL + "\x00\x07", observed=EVIL)
    document = render_junit(dataclasses.replace(run, cases=[evil]))
    root = ET.fromstring(document.encode("utf-8"))
    case = root.find("testsuite/testcase")
    assert case is not None and case.get("name", "").startswith(EVIL)
    failure = case.find("failure")
    assert failure is not None and failure.get("message") == EVIL + "\\x00\\x07"
    assert "<script>" not in document


def test_junit_of_an_empty_run() -> None:
    root = ET.fromstring(render_junit(RunResult(run_id="empty", started=0.0)))
    assert root.get("tests") == "0" and not root.findall("testsuite")


# ------------------------------------------------------------------------------------ diff


def test_diff_runs() -> None:
    old = sample_run()
    changed = [
        dataclasses.replace(case, verdict=Verdict.FAIL, reason="now broken")
        if case.case_id == "hello[reference-server--testpmd-client]"
        else dataclasses.replace(case, verdict=Verdict.PASS, reason="")
        if case.verdict is Verdict.ERROR
        else case
        for case in old.cases
        if case.scenario != "no_secret"
    ]
    added = _case("layout", "rings", "reference", "testpmd", Verdict.PASS)
    new = dataclasses.replace(old, run_id="run-43", cases=[*changed, added])
    changes = diff.diff_runs(old, new)
    assert [(c.kind, c.suite, c.case_id, c.before, c.after) for c in changes] == [
        (
            diff.ChangeKind.CHANGED,
            "handshake",
            "hello[reference-server--testpmd-client]",
            Verdict.PASS,
            Verdict.FAIL,
        ),
        (
            diff.ChangeKind.CHANGED,
            "handshake",
            "connect[testpmd-server--reference-client]",
            Verdict.ERROR,
            Verdict.PASS,
        ),
        (
            diff.ChangeKind.ADDED,
            "layout",
            "rings[reference-server--testpmd-client]",
            None,
            Verdict.PASS,
        ),
        (
            diff.ChangeKind.REMOVED,
            "secret",
            "no_secret[testpmd-server--reference-client]",
            Verdict.PASS,
            None,
        ),
    ]
    assert [c.worse for c in changes] == [True, False, False, False]
    assert [c.better for c in changes] == [False, True, False, False]
    assert changes[0].reason == "now broken"
    assert diff.diff_runs(old, old) == []
    text = diff.render_diff(changes, old, new)
    lines = text.splitlines()
    assert lines[0] == (
        "run-42 (0123456789ab) -> run-43 (0123456789ab): 2 changed (1 worse), 1 added, 1 removed"
    )
    assert lines[1].split() == [
        "worse",
        "handshake",
        "hello[reference-server--testpmd-client]",
        "PASS",
        "->",
        "FAIL",
        "(now",
        "broken)",
    ]
    assert lines[2].split()[0] == "better"
    assert lines[3].split()[:1] + lines[3].split()[-3:] == ["added", "-", "->", "PASS"]
    assert lines[4].split()[:1] + lines[4].split()[-3:] == ["removed", "PASS", "->", "-"]
    assert diff.render_diff([], old, old).endswith("no verdict changed\n")


def test_diff_keeps_equal_case_ids_of_two_suites_apart() -> None:
    one = _case("a", "x", "p", "q", Verdict.PASS)
    two = dataclasses.replace(one, suite="b", verdict=Verdict.FAIL)
    old = RunResult(run_id="1", started=0.0, cases=[one, two])
    new = RunResult(
        run_id="2", started=0.0, cases=[one, dataclasses.replace(two, verdict=Verdict.PASS)]
    )
    assert [(c.suite, c.kind) for c in diff.diff_runs(old, new)] == [("b", diff.ChangeKind.CHANGED)]


# ----------------------------------------------------------------------------------- write


def test_write_reports_and_rerender_give_identical_files(tmp_path: Path) -> None:
    run = sample_run()
    first = write.write_reports(run, tmp_path / "first")
    assert sorted(first) == ["index.html", "junit.xml", "results.json", "summary.md"]
    assert all(path.is_file() for path in first.values())
    assert RunResult.read(first["results.json"]).to_json() == run.to_json()
    again = write.rerender(first["results.json"], tmp_path / "second")
    for name, path in first.items():
        assert again[name].read_bytes() == path.read_bytes(), name
    # In place, beside the results file, nothing changes either.
    before = {name: path.read_bytes() for name, path in first.items()}
    in_place = write.rerender(first["results.json"])
    assert {name: path.read_bytes() for name, path in in_place.items()} == before
    assert not list((tmp_path / "first").glob("*.tmp"))
    # The reports render what results.json holds (its JSON has sorted keys, so the order
    # of a trace entry's fields is the file's, not the in-memory run's).
    assert first["index.html"].read_text(encoding="utf-8") == render_html(
        RunResult.read(first["results.json"])
    )


def test_rerender_refuses_an_unknown_schema(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text('{"schema": 99}')
    with pytest.raises(ValueError, match="schema 99"):
        write.rerender(path, tmp_path / "out")
