"""Tests of the throughput engine's pure parts: points, placement of the four cases on fake
1/2/4-node hosts, counters across resets, MRR/NDR/PDR search over a simulated DUT, the
memif path's full-load trial over fake peers, and the bench command's argument checks."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
from pathlib import Path
from typing import Any

import pytest

from harness import cli
from harness.peers.base import (
    MemifSpec,
    PacingUnsupported,
    Peer,
    PeerCounters,
    PeerError,
    PeerStatus,
    Role,
)
from harness.results import Verdict
from harness.topology import numa
from harness.traffic import bench, search
from harness.traffic.bench_point import (
    BenchCase,
    BenchMode,
    BenchPoint,
    BenchTopology,
    Direction,
    bench_points,
    parse_cases,
    parse_directions,
    parse_frame_sizes,
)
from harness.traffic.counting import CounterTrack
from harness.traffic.memif_path import (
    MemifPath,
    PacingRefused,
    PairSetup,
    PathError,
    stay_off,
    stop_all,
)
from harness.traffic.trial import TrialOutcome
from tests.test_numa import make_sysfs

# --------------------------------------------------------------------------- points


def test_cases_carry_placement_and_memory_mode() -> None:
    assert BenchCase.SAME_NODE_ZC.numa is numa.NumaCase.SAME_NODE
    assert BenchCase.CROSS_NODE_COPY.numa is numa.NumaCase.CROSS_NODE
    assert BenchCase.CROSS_NODE_ZC.zero_copy and not BenchCase.SAME_NODE_COPY.zero_copy


def test_parsers_accept_lists_and_refuse_unknown_values() -> None:
    assert parse_cases("same-node-zc, cross-node-copy,same-node-zc") == (
        BenchCase.SAME_NODE_ZC,
        BenchCase.CROSS_NODE_COPY,
    )
    assert parse_directions("both") == (Direction.C2S, Direction.S2C)
    assert parse_frame_sizes("64,1518") == (64, 1518)
    with pytest.raises(ValueError, match=r"unknown 'near'.*same-node-zc"):
        parse_cases("near")
    with pytest.raises(ValueError, match="--direction"):
        parse_directions("up")
    with pytest.raises(ValueError, match=r"not in 64\.\.9000"):
        parse_frame_sizes("63")
    with pytest.raises(ValueError, match="not a number"):
        parse_frame_sizes("big")


def test_points_cover_every_combination_with_readable_ids() -> None:
    points = bench_points(
        parse_cases("same-node-zc,same-node-copy"),
        BenchTopology.NIC,
        parse_directions("both"),
        (64, 1024),
        BenchMode.NDRPDR,
        duration=1.0,
        trials=1,
    )
    assert len(points) == 8
    assert points[0].id == "same-node-zc-nic-c2s-64B-ndrpdr"
    assert len({point.id for point in points}) == 8


def test_point_refuses_out_of_range_timing() -> None:
    with pytest.raises(ValueError, match="duration"):
        BenchPoint(BenchCase.SAME_NODE_ZC, BenchTopology.MEMIF, Direction.C2S, 64,
                   BenchMode.MRR, duration=0)  # fmt: skip
    with pytest.raises(ValueError, match="trials"):
        BenchPoint(BenchCase.SAME_NODE_ZC, BenchTopology.MEMIF, Direction.C2S, 64,
                   BenchMode.MRR, trials=0)  # fmt: skip


# --------------------------------------------------------------------------- placement


def _point(case: str, topology: str = "memif") -> BenchPoint:
    return BenchPoint(BenchCase(case), BenchTopology(topology), Direction.C2S, 64, BenchMode.MRR)


def _host(tmp_path: Path, nodes: dict[int, str]) -> numa.HostTopology:
    hugepages = {n: {2048: (512, 512)} for n in nodes}
    return numa.read_host_topology(make_sysfs(tmp_path, nodes, hugepages=hugepages))


def test_same_node_on_one_node_host_gives_each_peer_its_cpu(tmp_path: Path) -> None:
    host = _host(tmp_path, {0: "0-1"})
    plan = bench.plan_point(_point("same-node-copy"), "testpmd", "reference", host=host,
                            allowed_cpus={0, 1})  # fmt: skip
    assert plan.available
    assert {plan["server"].cpus, plan["client"].cpus} == {(0,), (1,)}
    assert plan["server"].lcore_map() in {"0@0,1@0", "0@1,1@1"}


def test_cross_node_on_one_node_host_is_skipped_naming_the_placement(tmp_path: Path) -> None:
    host = _host(tmp_path, {0: "0-1"})
    plan = bench.plan_point(_point("cross-node-zc"), "testpmd", "testpmd", host=host,
                            allowed_cpus={0, 1})  # fmt: skip
    assert not plan.available
    assert "needs 2 NUMA nodes" in plan.reason and "would use" in plan.reason
    record = bench.placement_json(plan)
    assert record["available"] is False and len(record["peers"]) == 2


def test_cross_node_on_two_nodes_puts_the_client_on_the_other_node(tmp_path: Path) -> None:
    host = _host(tmp_path, {0: "0-3", 1: "4-7"})
    plan = bench.plan_point(_point("cross-node-zc"), "testpmd", "testpmd", host=host,
                            allowed_cpus=set(range(8)))  # fmt: skip
    assert plan.available
    assert plan["server"].memory_node != plan["client"].memory_node
    assert numa.HostTopology.node_of_cpu(host, plan["client"].cpus[0]) == plan["client"].memory_node
    assert plan["client"].hugepage_mb == bench.TESTPMD_ZERO_COPY_HUGEPAGES_MB
    assert plan["server"].hugepage_mb == 0


def test_four_nodes_nic_topology_shares_the_traffic_cpus(tmp_path: Path) -> None:
    host = _host(tmp_path, {0: "0-1", 1: "2-3", 2: "4-7", 3: "8-9"})
    same = bench.plan_point(_point("same-node-copy", "nic"), "reference", "testpmd",
                            host=host, allowed_cpus=set(range(10)))  # fmt: skip
    assert same.available
    nodes = {p.memory_node for p in same.placements}
    assert len(nodes) == 1
    assert len(same["traffic"].cpus) >= 2  # a non-polling share of the node
    cross = bench.plan_point(_point("cross-node-copy", "nic"), "reference", "testpmd",
                             host=host, allowed_cpus=set(range(10)))  # fmt: skip
    assert cross.available and cross["server"].memory_node != cross["client"].memory_node


# --------------------------------------------------------------------------- counting


def test_counter_track_follows_resets() -> None:
    track = CounterTrack.start(100, at=1.0)
    assert track.update(150, at=1.5) == 50
    assert track.update(20, at=2.0) == 20  # the peer reset its counters, then counted 20
    assert track.update(20, at=2.5) == 0
    assert (track.total, track.resets, track.seconds) == (70, 1, 1.5)
    with pytest.raises(ValueError, match="negative"):
        track.update(-1)


def test_trial_outcome_counts_unsent_as_lost() -> None:
    outcome = TrialOutcome(1.0, 1000.0, sent=900, unsent=100, received=900, seconds=1.0)
    assert outcome.offered == 1000 and outcome.lost == 100
    assert outcome.loss_ratio == pytest.approx(0.1)
    assert TrialOutcome(1.0, None, sent=10, unsent=0, received=12, seconds=0.5).lost == 0
    with pytest.raises(ValueError, match="negative"):
        TrialOutcome(1.0, None, sent=-1, unsent=0, received=0, seconds=1.0)


# --------------------------------------------------------------------------- search


def _simulated_dut(capacity: float, generator: float) -> search.Trial:
    """A DUT forwarding `capacity` fps, behind a generator that reaches `generator` fps."""

    def trial(duration: float, load: float | None) -> TrialOutcome:
        wanted = load if load is not None else generator
        sent = int(min(wanted, generator) * duration)
        unsent = int(wanted * duration) - sent if load is not None else 0
        received = min(sent, int(capacity * duration))
        return TrialOutcome(duration, load, sent, max(unsent, 0), received, duration)

    return trial


def test_ndr_pdr_find_a_hard_capacity_within_the_goal_width() -> None:
    found = search.ndr_pdr(_simulated_dut(1e6, 5e6), max_load=5e6)
    assert found.ndr_pps == pytest.approx(1e6, rel=0.01)
    assert found.ndr_pps <= 1e6 <= found.pdr_pps * 1.01
    assert all(trial.intended_load is not None for trial in found.trials)


def test_unsent_frames_keep_ndr_below_the_generator_rate() -> None:
    # The DUT could take more, but the generator only reaches 0.5 Mfps: loads above it
    # leave frames unsent, which count as lost.
    found = search.ndr_pdr(_simulated_dut(2e6, 5e5), max_load=4e6)
    assert found.ndr_pps <= 5e5 * 1.001


def test_ndr_pdr_without_lower_bound_is_a_search_error() -> None:
    def always_lossy(duration: float, load: float | None) -> TrialOutcome:
        sent = int((load or 1e6) * duration)
        return TrialOutcome(duration, load, sent, 0, sent // 2, duration)

    with pytest.raises(search.SearchError):
        search.ndr_pdr(always_lossy, max_load=1e6, min_load=1e4)


def test_mrr_averages_the_trials() -> None:
    rates = iter([1000, 3000])

    def trial(duration: float, load: float | None) -> TrialOutcome:
        assert load is None
        received = next(rates)
        return TrialOutcome(duration, load, received + 10, 0, received, duration)

    outcome = search.mrr(trial, duration=1.0, trials=2)
    assert outcome.rx_pps == 2000
    assert outcome.loss_ratio == pytest.approx(20 / 4020)
    with pytest.raises(ValueError):
        search.mrr(trial, duration=1.0, trials=0)


# --------------------------------------------------------------------------- memif path


class _FakePeer(Peer):
    """Counts `rate` frames per poll on rx (sink) or tx (source); resets on request."""

    kind = "fake"

    def __init__(self, spec: MemifSpec, workdir: Path, rate: int, clock: Any) -> None:
        super().__init__(spec, workdir)
        self.rate = rate
        self.clock = clock
        self.frames = 0
        self.started = self.stopped = False
        self.link = True

    def start(self) -> None:
        self.started = True

    def wait_for_link(self, timeout: float) -> bool:
        return True

    def status(self) -> PeerStatus:
        now = next(self.clock)
        self.frames += self.rate
        sink = self.spec.activity.value == "sink"
        counters = PeerCounters(rx_frames=self.frames) if sink else PeerCounters(
            tx_frames=self.frames)  # fmt: skip
        return PeerStatus(link_up=self.link, counters=counters, time=now)

    def logs(self) -> str:
        return ""

    def version(self) -> str:
        return "fake 1"

    def stop(self) -> None:
        self.stopped = True

    @property
    def crashed(self) -> bool:
        return False


def _memif_path(
    tmp_path: Path,
    peers: list[_FakePeer],
    *,
    sender: str = "fake",
    direction: Direction = Direction.C2S,
) -> MemifPath:
    clock = itertools.count(0.0, 0.01)
    rates = {"sink": 90, "source": 100}

    def make(kind: str, spec: MemifSpec, placement: numa.Placement | None) -> Peer:
        peer = _FakePeer(spec, tmp_path, rates[spec.activity.value], clock)
        peers.append(peer)
        return peer

    pair = PairSetup(
        make, server_kind="fake", client_kind=sender, direction=direction, frame_size=64,
        zero_copy=False, socket_path=str(tmp_path / "s.sock"),
    )  # fmt: skip
    return MemifPath(pair, placements={}, paced=False)


def test_memif_full_load_trial_counts_both_sides_and_stops_the_peers(tmp_path: Path) -> None:
    peers: list[_FakePeer] = []
    with _memif_path(tmp_path, peers) as path:
        outcome = path.trial(0.2, None)
    assert [p.spec.role for p in peers] == [Role.SERVER, Role.CLIENT]  # server first
    assert outcome.received > 0 and outcome.sent > outcome.received
    assert outcome.rx_pps == pytest.approx(90 / 0.02, rel=0.05)  # 90 frames per 2 reads
    assert all(p.stopped for p in peers)


def test_memif_trial_fails_when_the_link_goes_down(tmp_path: Path) -> None:
    peers: list[_FakePeer] = []
    with _memif_path(tmp_path, peers) as path:
        peers[0].link = False
        with pytest.raises(PathError, match="went down"):
            path.trial(0.2, None)


@pytest.mark.parametrize(
    ("refusal", "skipped"),
    [(PacingUnsupported("no trials here"), True), (PeerError("no such program"), False)],
)
def test_a_transmitter_refusing_trials_stops_what_started(
    tmp_path: Path, refusal: PeerError, skipped: bool
) -> None:
    """Only a pacing refusal becomes PacingRefused (a SKIP); a missing program or the like
    stays an error. Either way the server that had started is stopped."""
    peers: list[_FakePeer] = []
    path = _memif_path(tmp_path, peers)
    path.paced = True
    make = path.pair.make_peer

    def refusing(kind: str, spec: MemifSpec, placement: numa.Placement | None) -> Peer:
        if spec.trials:
            raise refusal
        return make(kind, spec, placement)

    path.pair = dataclasses.replace(path.pair, make_peer=refusing)
    with pytest.raises((PeerError, PathError), match=refusal.args[0]) as caught, path:
        pass
    assert isinstance(caught.value, PacingRefused) is skipped
    assert len(peers) == 1 and peers[0].stopped


def test_stop_all_stops_every_peer_and_raises_the_first_failure(tmp_path: Path) -> None:
    clock = itertools.count()
    first, second = (_FakePeer(MemifSpec(Role.SERVER, "s"), tmp_path, 1, clock) for _ in "ab")

    def fail() -> None:
        raise PeerError("quiesce failed")

    first.quiesce = fail  # type: ignore[method-assign]
    with pytest.raises(PeerError, match="quiesce failed"):
        stop_all([first, second])
    assert first.stopped and second.stopped


def test_point_budget_covers_the_searches_and_the_trials() -> None:
    mrr_point = BenchPoint(BenchCase.SAME_NODE_COPY, BenchTopology.MEMIF, Direction.C2S, 64,
                           BenchMode.MRR, duration=2.0, trials=5)  # fmt: skip
    ndr_point = dataclasses.replace(mrr_point, mode=BenchMode.NDRPDR)
    assert bench.point_budget(mrr_point) > 5 * 2.0
    assert bench.search_seconds(1.0) >= 21 * 1.0 * 10
    assert bench.search_seconds(30.0) > 21 * 30.0  # a long trial still fits its duration sum
    assert bench.point_budget(ndr_point, 3) > 3 * bench.search_seconds(2.0)


def test_base_peer_cannot_run_trials(tmp_path: Path) -> None:
    peer = _FakePeer(MemifSpec(Role.CLIENT, "s"), tmp_path, 1, itertools.count())
    with pytest.raises(PeerError, match="cannot run transmit trials"):
        peer.run_trial(1.0, None)


def test_point_run_skips_an_unplaceable_case_without_starting_anything(tmp_path: Path) -> None:
    host = _host(tmp_path, {0: "0-1"})
    point = _point("cross-node-copy")
    plan = bench.plan_point(point, "testpmd", "reference", host=host, allowed_cpus={0, 1})
    started: list[str] = []

    def make(kind: str, spec: MemifSpec, placement: numa.Placement | None) -> Peer:
        started.append(kind)
        raise AssertionError("nothing may start")

    run = bench.PointRun(point, "testpmd", "reference", make_peer=make, topology=None,  # type: ignore[arg-type]
                         workdir=tmp_path, socket_path="s", versions={}, plan=plan)  # fmt: skip
    measured = run.measure()
    assert measured.verdict is Verdict.SKIP and "would use" in measured.reason
    assert measured.placement["available"] is False and not started


# --------------------------------------------------------------------------- bench CLI


def _bench_args(**overrides: Any) -> argparse.Namespace:
    args = cli.build_parser().parse_args(["bench"])
    for name, value in overrides.items():
        setattr(args, name, value)
    return args


def test_bench_arguments_become_suite_options() -> None:
    kinds, extra = cli.bench_pytest_args(
        _bench_args(pairs="testpmd:testpmd,testpmd:reference", mode="ndrpdr")
    )
    assert kinds == ["testpmd", "reference"]
    assert extra[extra.index("--pairs") + 1] == "testpmd:testpmd,testpmd:reference"
    assert extra[extra.index("--bench-mode") + 1] == "ndrpdr"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pairs": "testpmd"}, "SERVER:CLIENT"),
        ({"case": "far-node"}, "unknown 'far-node'"),
        ({"frame_size": "32"}, r"not in 64\.\.9000"),
        ({"duration": 0.0}, "duration"),
        ({"repeats": 0}, "--repeats"),
    ],
)
def test_bench_refuses_bad_arguments_before_starting(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        cli.bench_pytest_args(_bench_args(**overrides))


def test_bench_command_exits_2_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--direction", "sideways"]) == 2
    assert "--direction" in capsys.readouterr().err


def test_the_harness_stays_off_the_transmitters_cpus_and_comes_back() -> None:
    before = os.sched_getaffinity(0)
    if len(before) < 2:
        pytest.skip("needs 2 allowed CPUs: with one there is nowhere else to go")
    sender_cpu = max(before)
    placement = numa.Placement("sender", (sender_cpu,), 0, None, "test")
    restore = stay_off(placement)
    try:
        assert restore == before
        assert os.sched_getaffinity(0) == before - {sender_cpu}
    finally:
        os.sched_setaffinity(0, before)
    assert stay_off(None) is None
    everything = numa.Placement("sender", tuple(sorted(before)), 0, None, "test")
    assert stay_off(everything) is None and os.sched_getaffinity(0) == before
