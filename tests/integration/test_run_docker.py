"""`run_suites` with runtime docker: testpmd peers in containers, the reference local."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("docker", reason="Docker SDK for Python (PyPI 'docker') not installed")

from harness.results import Verdict
from harness.run import run_suites
from harness.runtime.docker import (
    PEER_LABEL,
    RUN_LABEL,
    EngineUnavailableError,
    engine_client,
    list_containers,
)
from harness.runtime.images import BUILD_TIMEOUT, build_images
from scenarios.api import NO_CONTAINER_IMAGE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.docker,
    pytest.mark.testpmd,
    # run_suites is a pytest session in this process; the plugin module is imported once.
    pytest.mark.filterwarnings(
        "ignore:Module already imported so cannot be rewritten:pytest.PytestAssertRewriteWarning"
    ),
]

LINK_UP_CASE = "test_link_up_with_negotiated_parameters"
KINDS = ("reference", "testpmd")


def test_handshake_link_up_with_testpmd_in_containers(tmp_path: Path) -> None:
    """Steps: make sure the images exist (cached by recipe hash); run the handshake suite's
    link-up case over reference x testpmd with runtime docker through run_suites.
    Verify: all four pairs PASS; results.json records testpmd as run in docker and the
    reference as a local process (no image of it); the engine saw the run's testpmd
    containers start (named and labelled with the run), and none of them remains."""
    try:
        engine = engine_client(timeout=BUILD_TIMEOUT)
    except EngineUnavailableError as error:
        if os.environ.get("CI"):
            pytest.fail(f"Docker engine unavailable on a CI machine: {error}")
        pytest.skip(f"Docker engine not available: {error}")
    build_images(client=engine)  # cached unless the recipe changed
    since = int(time.time()) - 1

    result = run_suites(
        ["handshake"],
        list(KINDS),
        tmp_path,
        runtime="docker",
        extra_pytest_args=["-k", LINK_UP_CASE],
    )

    verdicts = {(c.server_peer, c.client_peer): (c.verdict, c.reason) for c in result.cases}
    assert set(verdicts) == {(server, client) for server in KINDS for client in KINDS}
    assert all(verdict is Verdict.PASS for verdict, _ in verdicts.values()), verdicts
    assert {case.scenario for case in result.cases} == {LINK_UP_CASE}

    recorded = json.loads((tmp_path / "results.json").read_text())
    peers = {peer["name"]: peer for peer in recorded["peers"]}
    assert peers["testpmd"]["runtime"] == "docker"
    assert peers["testpmd"]["version"].startswith("DPDK ")
    assert peers["reference"]["runtime"] == NO_CONTAINER_IMAGE

    events = engine.events(
        since=since,
        until=int(time.time()) + 1,
        filters={"type": "container", "event": "start", "label": f"{RUN_LABEL}={result.run_id}"},
        decode=True,
    )
    started = [event["Actor"]["Attributes"] for event in events]
    testpmd_peers = [
        attrs[PEER_LABEL] for attrs in started if attrs[PEER_LABEL].startswith("testpmd_")
    ]
    # One container per testpmd peer: 1 + 1 + 2 in the four pairs (the version probe more).
    assert len(testpmd_peers) >= 4, started
    assert all(attrs["name"].startswith(f"memif-{result.run_id}-") for attrs in started)
    assert list_containers(engine, result.run_id) == []
