"""Tests of harness.traffic.measurement: the model, its checks and its JSON round trip."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest

from harness.results import Verdict
from harness.traffic.measurement import (
    CASES,
    DIRECTIONS,
    MODES,
    TOPOLOGIES,
    Latency,
    Measurement,
    Rate,
    gbps,
)


def _ndrpdr() -> Measurement:
    return Measurement(
        case="same-node-zc",
        topology="nic",
        server_peer="testpmd",
        client_peer="reference",
        direction="c2s",
        frame_size=1024,
        mode="ndrpdr",
        verdict=Verdict.PASS,
        pps=1.25e6,
        gbps=gbps(1.25e6, 1024),
        loss=0.0,
        ndr=Rate.at(1.25e6, 1024, 0.0),
        pdr=Rate.at(1.4e6, 1024, 0.004),
        latency=Latency.from_samples(np.array([9_000, 10_000, 11_000, 50_000])),
        placement={"case": "same-node", "reason": "one node", "peers": [{"peer": "server"}]},
        generator_pps=2.0e6,
        peer_versions={"server": "DPDK 22.11.11", "client": "memif-ref 0.1.0"},
        duration=3.0,
        trials=7,
    )


def test_constants() -> None:
    assert CASES == ("same-node-zc", "same-node-copy", "cross-node-zc", "cross-node-copy")
    assert TOPOLOGIES == ("memif", "nic")
    assert DIRECTIONS == ("c2s", "s2c")
    assert MODES == ("mrr", "ndrpdr")


def test_gbps_counts_l2_bytes() -> None:
    assert gbps(1e6, 1000) == pytest.approx(8.0)
    assert gbps(14_880_952, 64) == pytest.approx(7.619, abs=1e-3)
    rate = Rate.at(2e6, 64, 0.01)
    assert (rate.pps, rate.gbps, rate.loss) == (2e6, pytest.approx(1.024), 0.01)


def test_latency_from_samples_in_microseconds() -> None:
    samples = np.arange(1, 101, dtype=np.int64) * 1000  # 1..100 us
    latency = Latency.from_samples(samples)
    assert latency.min_us == 1.0 and latency.max_us == 100.0
    assert latency.avg_us == pytest.approx(50.5)
    assert latency.p50_us == pytest.approx(50.5)
    assert latency.p99_us == pytest.approx(99.01)
    assert latency.samples == 100
    assert Latency.from_samples([7000]).p99_us == 7.0


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.array([], dtype=np.int64), "non-empty 1-D"),
        (np.ones((2, 2)), "non-empty 1-D"),
        (np.array([1.0, np.nan]), "finite and non-negative"),
        (np.array([5, -1]), "finite and non-negative"),
    ],
)
def test_latency_refuses_bad_samples(samples: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Latency.from_samples(samples)


def test_round_trip_through_json_text() -> None:
    measurement = _ndrpdr()
    data = json.loads(json.dumps(measurement.to_json()))
    assert list(data) == [field.name for field in dataclasses.fields(Measurement)]
    assert data["verdict"] == "PASS"
    assert data["ndr"] == {"pps": 1.25e6, "gbps": pytest.approx(10.24), "loss": 0.0}
    assert data["latency"]["samples"] == 4
    assert Measurement.from_json(data) == measurement


def test_round_trip_of_a_skip_with_defaults() -> None:
    skip = {
        "case": "cross-node-copy",
        "topology": "memif",
        "server_peer": "testpmd",
        "client_peer": "testpmd",
        "direction": "s2c",
        "frame_size": 64,
        "mode": "mrr",
        "verdict": "SKIP",
        "reason": "one NUMA node: cross-node needs two",
    }
    measurement = Measurement.from_json(skip)
    assert measurement.verdict is Verdict.SKIP
    assert measurement.pps is None and measurement.latency is None
    assert measurement.trials == 1 and measurement.placement == {}
    assert Measurement.from_json(measurement.to_json()) == measurement
    assert measurement.key == ("cross-node-copy", "memif", "testpmd", "testpmd", "s2c", 64, "mrr")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"case": "same-node"}, "unknown case 'same-node': expected one of same-node-zc"),
        ({"topology": "veth"}, "unknown topology 'veth': expected one of memif, nic"),
        ({"direction": "both"}, "unknown direction 'both': expected one of c2s, s2c"),
        ({"mode": "pdr"}, "unknown mode 'pdr': expected one of mrr, ndrpdr"),
        ({"verdict": "FAIL"}, "unknown verdict .*FAIL.*: expected one of PASS, SKIP, ERROR"),
        ({"verdict": "MAYBE"}, "unknown verdict 'MAYBE'"),
        ({"frame_size": "64"}, "frame_size must be an integer"),
        ({"frame_size": 0}, "frame_size must be positive"),
        ({"server_peer": ""}, "server_peer must be a peer kind"),
        ({"pps": "fast"}, "pps must be a number"),
        ({"pps": None}, "a PASS measurement needs pps"),
        ({"verdict": "ERROR"}, "an? ERROR measurement needs a reason"),
        ({"mode": "mrr"}, "ndr/pdr are for ndrpdr mode only"),
        ({"colour": "red"}, "unknown keys 'colour'"),
        ({"ndr": {"pps": 1.0, "gbps": 1.0}}, "rate: loss must be a number"),
        ({"latency": {"min_us": 1.0}}, "latency: avg_us must be a number"),
    ],
)
def test_from_json_refuses_values_outside_the_schema(change: dict[str, Any], message: str) -> None:
    data = {**_ndrpdr().to_json(), **change}
    with pytest.raises(ValueError, match=message):
        Measurement.from_json(data)


def test_from_json_names_missing_keys() -> None:
    data = _ndrpdr().to_json()
    del data["case"], data["mode"]
    with pytest.raises(ValueError, match="missing case, mode"):
        Measurement.from_json(data)


def test_constructor_checks_too() -> None:
    with pytest.raises(ValueError, match="unknown case"):
        dataclasses.replace(_ndrpdr(), case="elsewhere")
