"""Session-wide test fixtures: one labelled harness run, and a clean host at the end."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from harness.topology import labels, reap


def _child_processes() -> list[str]:
    """Command lines of this process's live descendants (zombies excluded)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat_file:
                fields = stat_file.read().rsplit(")", 1)[1].split()
            if fields[0] == "Z" or int(fields[1]) != os.getpid():
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as cmd_file:
                found.append(cmd_file.read().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.fixture(scope="session")
def run_label() -> Iterator[labels.RunLabel]:
    """The labelled, registered run the integration tests' peers and files belong to."""
    with labels.registered_run() as label:
        yield label


@pytest.fixture(scope="session", autouse=True)
def clean_host_after_the_suite() -> Iterator[None]:
    """After the whole session nothing labelled that the session made may remain.

    Checked: namespaces, links, socket directories, DPDK runtime directories, hugepage
    files and containers of every run id this test process issued (other harness runs on
    the same host are not ours to judge), plus any testpmd or memif child process.
    """
    yield
    ours = labels.issued_run_ids()
    left = [item for item in reap.leftovers() if item.run_id in ours]
    children = [c for c in _child_processes() if "dpdk-testpmd" in c or "memif" in c]
    assert not left, f"the test session left labelled objects behind: {left}"
    assert not children, f"the test session left processes behind: {children}"
