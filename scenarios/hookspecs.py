"""Hooks the scenario plugin calls on any pytest plugin that implements them (progress display).

A listener is a plain object with some of these methods, passed to pytest through
`pytest.main(args, plugins=[listener])` (see harness.run.run_suites). Verdicts reach it as
the plugin classified them for results.json: listeners never judge outcomes themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from harness.results import CaseResult
    from scenarios.plugin import CaseStarted


@pytest.hookspec
def pytest_memif_collected(total: int) -> None:
    """Collection is over: `total` cases will run (collection errors not included)."""


@pytest.hookspec
def pytest_memif_case_started(case: CaseStarted) -> None:
    """A case begins (before the setup of its peers)."""


@pytest.hookspec
def pytest_memif_case_finished(case: CaseResult, done: int, total: int) -> None:
    """A case has its verdict: `case` is the CaseResult that goes into results.json.

    Args:
        case: The case's result (a collection error is a case too).
        done: How many cases have a result so far, this one included.
        total: How many cases the run has, as far as known (at least `done`).
    """
