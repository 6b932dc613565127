"""One throughput point, measured: placement, topology, MRR or NDR/PDR, into a Measurement.

The throughput suite calls `measure` for each (case, topology, direction, frame size) and
(server, client) pair; `memif-harness bench` runs that suite. Everything the point starts
(peers, namespaces, veths, generator and sink processes) is bounded and removed by the
context managers of the paths and by the caller's Topology.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from harness.peers.base import PeerError, Role
from harness.results import Verdict
from harness.topology.netns import Topology, TopologyError
from harness.topology.numa import (
    HostTopology,
    PeerNeeds,
    Placement,
    PlacementPlan,
    plan_placement,
)
from harness.topology.numa import read_host_topology as _read_host
from harness.traffic.bench_point import BenchMode, BenchPoint, BenchTopology
from harness.traffic.measurement import Latency, Measurement, Rate, gbps
from harness.traffic.memif_path import (
    MemifPath,
    PacingRefused,
    PairSetup,
    PathError,
    PeerFactory,
)
from harness.traffic.nic_path import NicPath
from harness.traffic.search import CSIT_DURATION_SUM_TRIALS, SearchError, mrr, ndr_pdr
from harness.traffic.trial import TrialOutcome

GENERATOR_BOUND_RATIO = 0.95
"""A DUT rate at or above this share of the generator's own rate is generator-bound."""
TESTPMD_ZERO_COPY_HUGEPAGES_MB = 256
MIN_SEARCH_LOAD = 1000.0
PROBE_TRIALS = 3
"""Full-load trials before a memif-topology search; the fastest sets the search's maximum
load (one full-load second here ranges over +-15 %: the first, cold, is often the slowest)."""

BENCH_CASE_MARGIN = 60.0
"""Seconds a point's case may take beyond its budget (version queries, log copies)."""
SETUP_SECONDS = 120.0
"""Bringing a point's peers, hosts and link up and down, at most."""
TRIAL_OVERHEAD_SECONDS = 10.0
"""Per trial beyond its duration: starting the generator and sink, draining, counting."""


def search_seconds(trial_seconds: float) -> float:
    """How long one NDR/PDR search may take: 40 duration sums (seen: ~11 for a noisy DUT)."""
    return max(600.0, 40 * CSIT_DURATION_SUM_TRIALS * trial_seconds)


def point_budget(point: BenchPoint, repeats: int = 1) -> float:
    """Seconds one point may take in all: its peers' lifetime and its case's time limit."""
    per_trial = point.duration + TRIAL_OVERHEAD_SECONDS
    if point.mode is BenchMode.MRR:
        return SETUP_SECONDS + (point.trials + 1) * per_trial
    probes = PROBE_TRIALS if point.topology is BenchTopology.MEMIF else 1
    return SETUP_SECONDS + repeats * search_seconds(point.duration) + (probes + 1) * per_trial


def peer_needs(name: str, kind: str, *, zero_copy: bool) -> PeerNeeds:
    """What a peer of `kind` needs from its node (testpmd: 2 lcores, hugepages if zero-copy)."""
    if kind == "testpmd":
        return PeerNeeds.testpmd(name, hugepage_mb=TESTPMD_ZERO_COPY_HUGEPAGES_MB * zero_copy)
    return PeerNeeds.polling(name)


def plan_point(
    point: BenchPoint,
    server_kind: str,
    client_kind: str,
    *,
    host: HostTopology | None = None,
    allowed_cpus: set[int] | None = None,
) -> PlacementPlan:
    """Where the point's peers (and, on the NIC topology, its generator and sink) run.

    Same-node cases put everything on one node; cross-node cases put the client on
    another node than the server. The generator and sink share CPUs of the server's node
    (they are not polling peers).
    """
    needs = [
        peer_needs("server", server_kind, zero_copy=False),
        peer_needs("client", client_kind, zero_copy=point.case.zero_copy),
    ]
    if point.topology is BenchTopology.NIC:
        needs.append(PeerNeeds("traffic", cpus=0))
    host = host if host is not None else _read_host()
    allowed = allowed_cpus if allowed_cpus is not None else os.sched_getaffinity(0)
    return plan_placement(host, point.case.numa, needs, allowed_cpus=allowed)


def placement_json(plan: PlacementPlan) -> dict[str, Any]:
    """The plan as results.json records it."""
    return {
        "case": plan.case.value,
        "available": plan.available,
        "reason": plan.reason,
        "peers": [
            {
                "peer": p.peer,
                "cpus": list(p.cpus),
                "memory_node": p.memory_node,
                "nic_node": p.nic_node,
                "lcores": p.lcores,
                "hugepage_mb": p.hugepage_mb,
                "reason": p.reason,
            }
            for p in plan.placements
        ],
    }


class PointRun:
    """Measures one point for one pair; `measure()` returns its Measurement (never raises
    for a peer or path failure: that is an ERROR measurement with the reason)."""

    def __init__(
        self,
        point: BenchPoint,
        server_kind: str,
        client_kind: str,
        *,
        make_peer: PeerFactory,
        topology: Topology,
        workdir: Path,
        socket_path: str,
        versions: dict[str, str],
        repeats: int = 1,
        plan: PlacementPlan | None = None,
    ) -> None:
        self.point = point
        self.server_kind = server_kind
        self.client_kind = client_kind
        self.make_peer = make_peer
        self.topology = topology
        self.workdir = workdir
        self.socket_path = socket_path
        self.versions = versions
        self.repeats = repeats
        self.plan = plan or plan_point(point, server_kind, client_kind)

    def _measurement(self, verdict: Verdict, **fields: Any) -> Measurement:
        return Measurement(
            case=self.point.case.value,
            topology=self.point.topology.value,
            server_peer=self.server_kind,
            client_peer=self.client_kind,
            direction=self.point.direction.value,
            frame_size=self.point.frame_size,
            mode=self.point.mode.value,
            verdict=verdict,
            placement=placement_json(self.plan),
            peer_versions=self.versions,
            duration=self.point.duration,
            **fields,
        )

    def _pair(self) -> PairSetup:
        """The point's peers, link and frames, for either topology."""
        return PairSetup(
            self.make_peer,
            server_kind=self.server_kind,
            client_kind=self.client_kind,
            direction=self.point.direction,
            frame_size=self.point.frame_size,
            zero_copy=self.point.case.zero_copy,
            socket_path=self.socket_path,
            lifetime=point_budget(self.point, self.repeats),
        )

    def measure(self) -> Measurement:
        """Run the point; SKIP when the host cannot place it, ERROR when something broke."""
        if not self.plan.available:
            return self._measurement(Verdict.SKIP, reason=self.plan.reason)
        try:
            if self.point.topology is BenchTopology.MEMIF:
                return self._memif()
            return self._nic()
        except _Skip as skip:
            return self._measurement(Verdict.SKIP, reason=str(skip))
        except (PathError, PeerError, SearchError, TopologyError, OSError, ValueError) as exc:
            return self._measurement(Verdict.ERROR, reason=f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ memif

    def _memif(self) -> Measurement:
        placements: dict[Role, Placement | None] = {role: self.plan[role.value] for role in Role}
        paced = self.point.mode is BenchMode.NDRPDR
        path = MemifPath(self._pair(), placements=placements, paced=paced)
        generator_note = (
            "memif topology: the transmitting peer is the generator and part of what is "
            "measured; generator_pps is its own transmit rate"
        )
        try:
            with path:
                if not paced:
                    outcome = mrr(
                        path.trial, duration=self.point.duration, trials=self.point.trials
                    )
                    result = self._mrr_result(outcome.trials, outcome.tx_pps)
                else:
                    probes = [path.trial(self.point.duration, None) for _ in range(PROBE_TRIALS)]
                    probe = max(probes, key=lambda trial: trial.tx_pps)  # as fast as it can
                    result = self._search(path.trial, probe.tx_pps, probe)
                    result["details"]["generator_probes_pps"] = [p.tx_pps for p in probes]
        except PacingRefused as exc:
            raise _Skip(f"NDR/PDR not possible with this transmitter: {exc}") from exc
        result["details"]["generator"] = generator_note
        return self._measurement(Verdict.PASS, **result)

    # ------------------------------------------------------------------ nic

    def _nic(self) -> Measurement:
        placements: dict[str, Any] = {
            name: self.plan[name] for name in ("server", "client", "traffic")
        }
        with NicPath(
            self._pair(), self.topology, placements=placements, workdir=self.workdir
        ) as path:
            self_test = path.self_test(self.point.duration)
            if self.point.mode is BenchMode.MRR:
                outcome = mrr(path.trial, duration=self.point.duration, trials=self.point.trials)
                result = self._mrr_result(outcome.trials, self_test.rx_pps)
            else:
                # Searched up to what the generator can offer; compared with what it delivers.
                result = self._search(path.trial, self_test.tx_pps, self_test)
                result["generator_pps"] = self_test.rx_pps
                result["generator_bound"] = result["pps"] >= GENERATOR_BOUND_RATIO * (
                    self_test.rx_pps
                )
        result["details"]["generator_self_test"] = self_test.as_dict()
        return self._measurement(Verdict.PASS, **result)

    # ------------------------------------------------------------------ figures

    def _mrr_result(self, trials: tuple[TrialOutcome, ...], generator_pps: float) -> dict[str, Any]:
        rx = statistics.fmean(trial.rx_pps for trial in trials)
        offered = sum(trial.offered for trial in trials)
        loss = sum(trial.lost for trial in trials) / offered if offered else 0.0
        size = self.point.frame_size
        return {
            "pps": rx,
            "gbps": gbps(rx, size),
            "loss": loss,
            "latency": _latency(trials[-1].latency),
            "generator_pps": generator_pps,
            "generator_bound": generator_pps > 0 and rx >= GENERATOR_BOUND_RATIO * generator_pps,
            "trials": len(trials),
            "details": {"trials": [trial.as_dict() for trial in trials]},
        }

    def _search(self, trial: Any, generator_pps: float, probe: TrialOutcome) -> dict[str, Any]:
        if generator_pps <= MIN_SEARCH_LOAD:
            raise SearchError(f"the generator reached only {generator_pps:.0f} fps")
        size = self.point.frame_size
        searches = [
            ndr_pdr(
                trial,
                max_load=generator_pps,
                min_load=max(MIN_SEARCH_LOAD, generator_pps / 1000),
                trial_seconds=self.point.duration,
                search_seconds_max=search_seconds(self.point.duration),
            )
            for _ in range(self.repeats)
        ]
        ndr = statistics.median(search.ndr_pps for search in searches)
        pdr = statistics.median(search.pdr_pps for search in searches)
        at_ndr = trial(self.point.duration, ndr)  # the latency and loss at the NDR load
        ndrs = [search.ndr_pps for search in searches]
        details: dict[str, Any] = {
            "searches": [search.describe() | {"ndr_pps": search.ndr_pps,
                                              "pdr_pps": search.pdr_pps} for search in searches],
            "ndr_runs_pps": ndrs,
            "ndr_spread": (max(ndrs) - min(ndrs)) / ndr if ndr else None,
            "generator_probe": probe.as_dict(),
            "trial_at_ndr": at_ndr.as_dict(),
        }  # fmt: skip
        return {
            "pps": ndr,
            "gbps": gbps(ndr, size),
            "loss": at_ndr.loss_ratio,
            "ndr": Rate.at(ndr, size, 0.0),
            "pdr": Rate.at(pdr, size, 0.005),
            "latency": _latency(at_ndr.latency),
            "generator_pps": generator_pps,
            "generator_bound": ndr >= GENERATOR_BOUND_RATIO * generator_pps,
            "trials": sum(len(search.trials) for search in searches) + 1,
            "details": details,
        }


class _Skip(Exception):
    """The point cannot be measured with these peers (a SKIP with this reason)."""


_LATENCY_KEYS = ("min_us", "avg_us", "p50_us", "p99_us", "max_us", "samples")


def _latency(raw: dict[str, Any] | None) -> Latency | None:
    """The sink's latency figures (extra keys it reports stay in the trial details)."""
    if not raw or not raw.get("samples"):
        return None
    return Latency.from_json({key: raw[key] for key in _LATENCY_KEYS})
