"""The example CI jobs in ci/examples/: every command they run exists in this repository, and
they publish exactly the files `memif-harness run` writes."""

from __future__ import annotations

import argparse
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from harness.cli import build_parser
from harness.report import write
from harness.results import RunResult

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "ci" / "examples"
GITHUB = EXAMPLES / "github-actions.yml"
GITLAB = EXAMPLES / "gitlab-ci.yml"
VENV_BIN = ".venv/bin/"


@dataclass
class Job:
    """What an example job runs and publishes."""

    commands: list[str]
    published: list[str]
    junit: list[str]
    publish_always: bool
    summary_targets: list[str] = field(default_factory=list)


def _lines(text: str | list[str]) -> list[str]:
    lines = text if isinstance(text, list) else text.splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def github_job() -> Job:
    workflow: dict[Any, Any] = yaml.safe_load(GITHUB.read_text())
    (job,) = workflow["jobs"].values()
    steps = job["steps"]
    uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    junit = [s for s in steps if "junit" in str(s.get("uses", ""))]
    summary = [s for s in steps if "GITHUB_STEP_SUMMARY" in s.get("run", "")]
    publishing = [*uploads, *junit, *summary]
    return Job(
        commands=[line for step in steps if "run" in step for line in _lines(step["run"])],
        published=[path for step in uploads for path in _lines(step["with"]["path"])],
        junit=[path for step in junit for path in _lines(step["with"]["report_paths"])],
        publish_always=all(
            step.get("if", "").replace(" ", "") in ("${{always()}}", "${{!cancelled()}}")
            for step in publishing
        ),
        summary_targets=["$GITHUB_STEP_SUMMARY"],
    )


def gitlab_job() -> Job:
    pipeline: dict[str, Any] = yaml.safe_load(GITLAB.read_text())
    jobs = [value for value in pipeline.values() if isinstance(value, dict) and "script" in value]
    (job,) = jobs
    artifacts = job["artifacts"]
    junit = artifacts["reports"]["junit"]
    return Job(
        commands=[
            line
            for key in ("before_script", "script", "after_script")
            for line in _lines(job.get(key, []))
        ],
        published=list(artifacts["paths"]),
        junit=[junit] if isinstance(junit, str) else list(junit),
        publish_always=artifacts.get("when") == "always",
    )


JOBS = {"github-actions": github_job, "gitlab-ci": gitlab_job}


@pytest.fixture(scope="module")
def report_files(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The names of the files `memif-harness run` writes into its report directory."""
    directory = tmp_path_factory.mktemp("report")
    return set(write.write_reports(RunResult("0123abcd", 1.0), directory))


def _harness_args(command: str) -> argparse.Namespace:
    """The memif-harness command line as the CLI's own parser reads it (exits if unknown)."""
    words = shlex.split(command)
    assert words[0] == f"{VENV_BIN}memif-harness", command
    try:
        return build_parser().parse_args(words[1:])
    except SystemExit as exit_:
        raise AssertionError(f"memif-harness does not accept: {command}") from exit_


def _run_command(job: Job) -> argparse.Namespace:
    runs = [c for c in job.commands if c.startswith(f"{VENV_BIN}memif-harness run")]
    assert len(runs) == 1, job.commands
    return _harness_args(runs[0])


@pytest.mark.parametrize("name", JOBS)
def test_every_command_exists_in_this_repository(name: str) -> None:
    job = JOBS[name]()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert job.commands
    for command in job.commands:
        words = shlex.split(command)
        program = words[0]
        if program == "bash":
            assert (ROOT / words[1]).is_file(), f"{name}: {command}: no such script"
        elif program.startswith(VENV_BIN):
            entry_point = program.removeprefix(VENV_BIN)
            assert entry_point in scripts, f"{name}: {command}: no such entry point"
            if entry_point == "memif-harness":
                _harness_args(command)
        elif program == "cat":  # only to show a file the run wrote (checked below)
            assert len(words) >= 2, command
        else:
            pytest.fail(f"{name}: {command}: a command this test does not know")
    assert shlex.split(job.commands[0]) == ["bash", "ci/setup.sh"]  # the README's set-up


@pytest.mark.parametrize("name", JOBS)
def test_the_job_runs_the_matrix_and_publishes_what_run_writes(
    name: str, report_files: set[str]
) -> None:
    job = JOBS[name]()
    args = _run_command(job)
    assert args.handler.__name__ == "_run"
    report_dir = PurePosixPath(args.report)
    assert report_dir == PurePosixPath("reports/latest")

    # Artifacts: the whole report directory, or files that `run` writes into it.
    assert job.published
    for published in job.published:
        path = PurePosixPath(published)
        assert path == report_dir or (path.parent == report_dir and path.name in report_files), (
            f"{name} publishes {published}, which memif-harness run does not write"
        )
    assert job.junit == [str(report_dir / write.JUNIT_XML)]
    assert write.JUNIT_XML in report_files
    # A FAIL or ERROR ends the run with a non-zero status: the report is published anyway.
    assert job.publish_always, f"{name}: publishing must also run when the run fails"

    shown = [shlex.split(c) for c in job.commands if shlex.split(c)[0] == "cat"]
    assert shown, f"{name} does not show the Markdown summary"
    for words in shown:
        files = words[1 : words.index(">>")] if ">>" in words else words[1:]
        assert files == [str(report_dir / write.SUMMARY_MD)], words
        assert write.SUMMARY_MD in report_files
        if job.summary_targets:
            assert words[words.index(">>") + 1 :] == job.summary_targets, words
