"""memif-harness subcommands that need no peer: doctor, reap --dry-run, usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import doctor

HARNESS = [sys.executable, "-m", "harness.cli"]


def test_doctor_json_names_every_capability_and_how_to_get_vpp() -> None:
    result = subprocess.run(
        [*HARNESS, "doctor", "--json", "--vpp-bin", "/nonexistent/vpp"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    capabilities = {item["name"]: item for item in json.loads(result.stdout)}
    assert {"dpdk-testpmd", "docker-engine", "vpp", "hugepages (zero-copy)", "cpus"} <= set(
        capabilities
    )
    vpp = capabilities["vpp"]
    assert vpp["available"] is False
    assert "--vpp-bin" in vpp["how_to_get"]
    assert result.returncode == (0 if capabilities["dpdk-testpmd"]["available"] else 1)


def test_render_shows_how_to_get_only_missing_things() -> None:
    text = doctor.render(
        [
            doctor.Capability("a", True, "fine", "never shown"),
            doctor.Capability("b", False, "absent", "apt-get install b"),
        ]
    )
    assert "never shown" not in text
    assert "--  b: absent\n      how to get it: apt-get install b" in text


def test_reap_dry_run_removes_nothing() -> None:
    result = subprocess.run(
        [*HARNESS, "reap", "--dry-run"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "removed:" not in result.stdout


@pytest.mark.parametrize("argv", [[], ["images"], ["bogus"]])
def test_usage_errors_exit_non_zero(argv: list[str]) -> None:
    result = subprocess.run([*HARNESS, *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "usage:" in result.stderr


def test_report_and_diff_commands(tmp_path: Path) -> None:
    from harness.results import CaseResult, RunResult, Verdict

    def run_with(verdict: Verdict) -> Path:
        case = CaseResult("handshake", "test_link_up", "test_link_up[a--b]", "a", "b", verdict)
        path = tmp_path / verdict.value / "results.json"
        RunResult("0123abcd", 1.0, cases=[case]).write(path)
        return path

    before, after = run_with(Verdict.PASS), run_with(Verdict.FAIL)
    rendered = subprocess.run(
        [*HARNESS, "report", str(after)], capture_output=True, text=True, timeout=60
    )
    assert rendered.returncode == 0, rendered.stderr
    assert {p.name for p in after.parent.iterdir()} >= {"index.html", "summary.md", "junit.xml"}
    changed = subprocess.run(
        [*HARNESS, "diff", str(before), str(after)], capture_output=True, text=True, timeout=60
    )
    assert changed.returncode == 1  # a verdict got worse
    assert "PASS -> FAIL" in changed.stdout
    missing = subprocess.run(
        [*HARNESS, "report", str(tmp_path / "absent.json")], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "cannot render" in missing.stderr
