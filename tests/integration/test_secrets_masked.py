"""No secret of the secret suite appears in any file of the run's report directory (results,
control traces, peer logs, HTML/Markdown/JUnit)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.masking import MASK

pytestmark = pytest.mark.integration

SUITE = Path(__file__).resolve().parents[2] / "scenarios" / "test_secret.py"


def suite_secrets() -> list[str]:
    """The secrets the secret suite uses: its module-level *SECRET string constants (read,
    not imported: importing a suite outside the scenario plugin fails on its marks)."""
    found = []
    for node in ast.parse(SUITE.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            names = [target.id for target in node.targets if isinstance(target, ast.Name)]
            value = node.value.value
            secret_name = any(name.endswith("SECRET") for name in names)
            if secret_name and isinstance(value, str) and " " not in value:  # not a citation
                found.append(value)
    return found


def test_the_secret_suite_report_holds_no_secret(tmp_path: Path) -> None:
    report = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--suite", "secret", "--peers",
         "reference", "--report", str(report), "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    files = [path for path in report.rglob("*") if path.is_file()]
    assert {"results.json", "index.html", "summary.md", "junit.xml"} <= {p.name for p in files}
    assert any(path.name.endswith(".log") for path in files)
    secrets = suite_secrets()
    assert len(secrets) >= 3, secrets
    for path in files:
        content = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in content, f"{secret!r} in {path}"
    results = json.loads((report / "results.json").read_text())
    inits = [
        entry["fields"]["secret"]
        for case in results["cases"]
        for entry in case["trace"]
        if entry["type"] == "INIT"
    ]
    assert MASK in inits  # the secrets were sent, and masked in the trace
