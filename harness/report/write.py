"""Writing a report directory: results.json and its renderings (HTML, Markdown, JUnit)."""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.report.html import render_html
from harness.report.junit import render_junit
from harness.report.markdown import render_markdown
from harness.results import RunResult

RESULTS_JSON = "results.json"
INDEX_HTML = "index.html"
SUMMARY_MD = "summary.md"
JUNIT_XML = "junit.xml"


def _write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (a reader never sees half a file)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def _write_renderings(run: RunResult, directory: Path) -> dict[str, Path]:
    files = {
        INDEX_HTML: render_html(run),
        SUMMARY_MD: render_markdown(run),
        JUNIT_XML: render_junit(run),
    }
    written = {}
    for name, text in files.items():
        _write_text(directory / name, text)
        written[name] = directory / name
    return written


def write_reports(run: RunResult, directory: Path) -> dict[str, Path]:
    """Write results.json and every rendering of it into a directory.

    Args:
        run: The run.
        directory: Where to write (created if missing); existing report files are replaced.

    Returns:
        The written files by name: results.json, index.html, summary.md, junit.xml.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    run.write(directory / RESULTS_JSON)
    # Render what was written, not the object in memory, so that a later rerender of the
    # same file gives byte-identical reports.
    written = {RESULTS_JSON: directory / RESULTS_JSON}
    written.update(_write_renderings(RunResult.read(directory / RESULTS_JSON), directory))
    return written


def rerender(results_json_path: Path, directory: Path | None = None) -> dict[str, Path]:
    """Render the reports again from a results.json.

    Args:
        results_json_path: The canonical results file.
        directory: Where to write the reports; by default beside the results file. When
            it is another directory the results file is copied there unchanged, so that
            the reports' link to it works.

    Returns:
        The files by name, as for `write_reports`.
    """
    source = Path(results_json_path)
    target = Path(directory) if directory is not None else source.parent
    run = RunResult.read(source)
    target.mkdir(parents=True, exist_ok=True)
    copy = target / RESULTS_JSON
    if not (copy.exists() and copy.samefile(source)):
        shutil.copyfile(source, copy)
    written = {RESULTS_JSON: copy}
    written.update(_write_renderings(run, target))
    return written
