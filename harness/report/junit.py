"""JUnit XML: one testsuite per suite, one testcase per case (and per throughput
measurement), for CI test-result viewers."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from harness.report.html import format_timestamp, trace_row
from harness.report.text import format_value
from harness.report.throughput import cell_lines, measurement_id, measurements_of
from harness.results import CaseResult, RunResult, Verdict
from harness.traffic.measurement import Measurement

#: The testsuite that holds the throughput measurements.
THROUGHPUT_SUITE = "throughput"

# Characters XML 1.0 cannot carry at all (C0 controls but tab/newline/CR, surrogates,
# U+FFFE/U+FFFF). ElementTree would write them and produce a file no parser accepts.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """Text with the characters XML 1.0 forbids replaced by visible \\xNN escapes."""
    return _NOT_XML.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _case_text(case: CaseResult) -> str:
    """The body of a failure/error element: what a CI viewer shows under the test."""
    parts = []
    if case.reason:
        parts.append(f"reason: {case.reason}")
    if case.expected:
        parts.append(f"expected: {case.expected}")
    if case.observed:
        parts.append(f"observed: {case.observed}")
    return "\n".join(parts)


def _system_out(case: CaseResult) -> str:
    """Steps, Verify and the control-channel trace as plain text."""
    parts = []
    if case.steps:
        parts.append(f"Steps:\n{case.steps}")
    if case.verify:
        parts.append(f"Verify:\n{case.verify}")
    if case.trace:
        lines = []
        for entry in case.trace:
            when, direction, kind, fields = trace_row(entry)
            decoded = " ".join(f"{key}={value}" for key, value in fields)
            lines.append(" ".join(part for part in (when, direction, kind, decoded) if part))
        parts.append("Control-channel trace:\n" + "\n".join(lines))
    if case.artifacts:
        parts.append("Artifacts:\n" + "\n".join(f"{a.kind}: {a.path}" for a in case.artifacts))
    return "\n\n".join(parts)


def _testcase(parent: ET.Element, case: CaseResult) -> None:
    element = ET.SubElement(
        parent,
        "testcase",
        classname=xml_safe(case.suite),
        name=xml_safe(case.case_id),
        time=_seconds(case.duration),
    )
    message = xml_safe(case.reason)
    if case.verdict is Verdict.FAIL:
        ET.SubElement(element, "failure", message=message, type="FAIL").text = xml_safe(
            _case_text(case)
        )
    elif case.verdict is Verdict.ERROR:
        ET.SubElement(element, "error", message=message, type="ERROR").text = xml_safe(
            _case_text(case)
        )
    elif case.verdict is Verdict.SKIP:
        ET.SubElement(element, "skipped", message=message, type="SKIP")
    elif case.verdict is Verdict.XFAIL:
        ET.SubElement(element, "skipped", message=xml_safe(f"XFAIL: {case.reason}"), type="XFAIL")
    out = _system_out(case)
    if out:
        ET.SubElement(element, "system-out").text = xml_safe(out)


#: What becomes a <testcase>: a conformance case or a throughput measurement.
Test = CaseResult | Measurement


def _test_seconds(test: Test) -> float:
    return test.duration if isinstance(test, CaseResult) else test.duration * test.trials


def _counts(tests: Sequence[Test]) -> dict[str, str]:
    verdicts = [test.verdict for test in tests]
    return {
        "tests": str(len(tests)),
        "failures": str(verdicts.count(Verdict.FAIL)),
        "errors": str(verdicts.count(Verdict.ERROR)),
        "skipped": str(verdicts.count(Verdict.SKIP) + verdicts.count(Verdict.XFAIL)),
        "time": _seconds(sum(_test_seconds(test) for test in tests)),
    }


def _measurement_properties(m: Measurement) -> list[tuple[str, str]]:
    """Figures a CI viewer can chart: rate, loss, NDR/PDR, latency, generator rate."""
    figures: list[tuple[str, float | int | bool | None]] = [
        ("pps", m.pps),
        ("gbps", m.gbps),
        ("loss", m.loss),
    ]
    for name, rate in (("ndr", m.ndr), ("pdr", m.pdr)):
        if rate is not None:
            figures += [(f"{name}.pps", rate.pps), (f"{name}.gbps", rate.gbps)]
            figures.append((f"{name}.loss", rate.loss))
    if m.latency is not None:
        figures += [(f"latency.{k}", v) for k, v in m.latency.to_json().items()]
    figures += [("generator_pps", m.generator_pps), ("generator_bound", m.generator_bound)]
    properties = [(name, format_value(value)) for name, value in figures if value is not None]
    properties += [(f"version.{role}", version) for role, version in m.peer_versions.items()]
    return properties


def _measurement_testcase(parent: ET.Element, m: Measurement) -> None:
    element = ET.SubElement(
        parent,
        "testcase",
        classname=xml_safe(f"throughput.{m.topology}.{m.direction}.{m.mode}"),
        name=xml_safe(measurement_id(m)),
        time=_seconds(_test_seconds(m)),
    )
    properties = ET.SubElement(element, "properties")
    for name, value in _measurement_properties(m):
        ET.SubElement(properties, "property", name=xml_safe(name), value=xml_safe(value))
    message = xml_safe(m.reason)
    if m.verdict is Verdict.ERROR:
        ET.SubElement(element, "error", message=message, type="ERROR").text = message
    elif m.verdict is Verdict.SKIP:
        ET.SubElement(element, "skipped", message=message, type="SKIP")
    else:
        ET.SubElement(element, "system-out").text = xml_safe("\n".join(cell_lines(m)))


def render_junit(run: RunResult) -> str:
    """Render a run as JUnit XML.

    One <testsuite> per suite (in order of first case) holding a <testcase> per case with
    classname = suite and name = case_id. FAIL becomes <failure>, ERROR <error>, SKIP and
    XFAIL <skipped> with the reason (XFAIL's message starts with "XFAIL:"); time is the
    case's duration in seconds. Steps, Verify and the trace go to <system-out>. Throughput
    measurements form one more testsuite, "throughput": a testcase per measurement
    (classname throughput.<topology>.<direction>.<mode>, name = its id), SKIP as
    <skipped>, ERROR as <error>, with pps/gbps/loss (and NDR/PDR, latency, generator rate)
    as <properties> and time = duration x trials.

    Args:
        run: The run, as read from results.json.

    Returns:
        The XML document as text (UTF-8 declared); the same run always gives the same text.

    Raises:
        ValueError: A measurement outside the schema.
    """
    suites: dict[str, list[Test]] = {}
    for case in run.cases:
        suites.setdefault(case.suite, []).append(case)
    measurements = measurements_of(run)
    if measurements:
        suites.setdefault(THROUGHPUT_SUITE, []).extend(measurements)
    root = ET.Element("testsuites", name=xml_safe(f"memif-harness {run.run_id}"))
    root.attrib.update(_counts([test for tests in suites.values() for test in tests]))
    hostname = xml_safe(str(run.host.get("hostname", "")))
    timestamp = format_timestamp(run.started).removesuffix(" UTC").replace(" ", "T")
    for index, (suite, tests) in enumerate(suites.items()):
        element = ET.SubElement(root, "testsuite", name=xml_safe(suite), id=str(index))
        element.attrib.update(_counts(tests))
        if hostname:
            element.set("hostname", hostname)
        if timestamp:
            element.set("timestamp", timestamp)
        properties = ET.SubElement(element, "properties")
        ET.SubElement(properties, "property", name="run_id", value=xml_safe(run.run_id))
        ET.SubElement(properties, "property", name="commit", value=xml_safe(run.commit))
        for peer in run.peers:
            ET.SubElement(
                properties,
                "property",
                name=xml_safe(f"peer.{peer.name}"),
                value=xml_safe(f"{peer.version} ({peer.runtime})"),
            )
        for test in tests:
            if isinstance(test, CaseResult):
                _testcase(element, test)
            else:
                _measurement_testcase(element, test)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
