"""`memif-harness bench` for real: testpmd and the reference measured on both topologies,
cross-node cases skipped with their placement, results.json and the reports written, and
nothing left behind.

Short trials keep CI time down: these tests check that the numbers exist, are consistent
and land in the reports; speed goals live in the benchmarks (README, "Throughput").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.topology import netns as tn

pytestmark = [pytest.mark.testpmd, pytest.mark.integration]

BENCH_TIMEOUT = 600


def bench(report: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run `memif-harness bench --report REPORT ARGS`; its results.json."""
    argv = [str(Path(sys.executable).with_name("memif-harness")), "bench", "--report",
            str(report), "--no-progress", *args]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=BENCH_TIMEOUT)
    results = report / "results.json"
    assert results.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads(results.read_text())


def by_key(results: dict[str, Any]) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    return {
        (m["case"], m["server_peer"], m["client_peer"], m["frame_size"]): m
        for m in results["measurements"]
    }


def test_memif_mrr_testpmd_and_reference_clients(tmp_path: Path) -> None:
    """Both same-node cases for testpmd and reference clients into a testpmd server, cross-
    node cases skipped naming the placement; rates, loss and placement recorded."""
    namespaces_before = set(tn.list_netns())
    done, results = bench(
        tmp_path, "--pairs", "testpmd:testpmd,testpmd:reference", "--frame-size", "64,1024",
        "--trials", "1", "--duration", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    measured = by_key(results)
    assert len(measured) == 2 * 4 * 2  # pairs x cases x sizes
    for (case, _server, client, size), m in measured.items():
        if case.startswith("cross-node"):
            assert m["verdict"] == "SKIP", m
            assert "would use" in m["reason"] and m["placement"]["available"] is False
            continue
        assert m["verdict"] == "PASS", m
        assert m["pps"] > 10_000, m
        assert m["gbps"] == pytest.approx(m["pps"] * size * 8 / 1e9)
        assert 0.0 <= m["loss"] <= 1.0
        assert m["generator_pps"] > 0
        cpus = {tuple(p["cpus"]) for p in m["placement"]["peers"]}
        assert len(cpus) == 2, "server and client must poll on different CPUs"
        assert m["peer_versions"]["server"].startswith("DPDK")
        assert m["peer_versions"]["client"].startswith("DPDK" if client == "testpmd" else "memif")
    # The reports render the measurements.
    summary = (tmp_path / "summary.md").read_text()
    assert "same-node-zc" in summary and "Mpps" in summary
    assert "<svg" in (tmp_path / "index.html").read_text()
    assert set(tn.list_netns()) == namespaces_before


def test_memif_ndrpdr_with_the_reference_trial_source(tmp_path: Path) -> None:
    """NDR/PDR by MLRsearch: the reference client runs the trials into a testpmd server (the
    link stays up: no trial reconnects); a testpmd transmitter is skipped with the reason."""
    done, results = bench(
        tmp_path, "--mode", "ndrpdr", "--case", "same-node-copy",
        "--pairs", "testpmd:reference,testpmd:testpmd", "--frame-size", "64",
        "--duration", "0.5",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    measured = by_key(results)
    ndr = measured[("same-node-copy", "testpmd", "reference", 64)]
    assert ndr["verdict"] == "PASS", ndr
    assert 0 < ndr["ndr"]["pps"] <= ndr["pdr"]["pps"] * 1.01
    assert ndr["ndr"]["pps"] <= ndr["generator_pps"] * 1.01
    assert ndr["pps"] == ndr["ndr"]["pps"] and ndr["trials"] > 5
    loads = [t["load"] for t in ndr["details"]["searches"][0]["trials"]]
    assert len(set(loads)) > 3, "MLRsearch tried several loads"
    skipped = measured[("same-node-copy", "testpmd", "testpmd", 64)]
    assert skipped["verdict"] == "SKIP" and "cannot pace" in skipped["reason"]


def test_nic_topology_mrr_with_latency_and_generator_self_test(tmp_path: Path) -> None:
    """generator ns -> veth -> testpmd server -> memif -> reference client -> veth -> sink
    ns: frames arrive, latency from the stamps, the generator's self-test beside it, and
    the namespaces are gone afterwards."""
    namespaces_before = set(tn.list_netns())
    done, results = bench(
        tmp_path, "--topology", "nic", "--case", "same-node-copy",
        "--pairs", "testpmd:reference", "--frame-size", "64", "--direction", "s2c",
        "--trials", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (m,) = results["measurements"]
    assert m["verdict"] == "PASS", m
    assert m["pps"] > 1000 and m["generator_pps"] > 1000
    assert m["latency"]["samples"] > 0
    assert 0 < m["latency"]["min_us"] <= m["latency"]["p50_us"] <= m["latency"]["max_us"]
    assert m["details"]["generator_self_test"]["received"] > 0
    assert set(tn.list_netns()) == namespaces_before
