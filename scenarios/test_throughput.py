"""Throughput suite: the four NUMA x zero-copy cases, per frame size, topology and direction.

Run by `memif-harness bench` (or `memif-harness run --suite throughput`). Each case is one
measurement point: MRR (the receive rate at full offered load) or NDR/PDR (CSIT's MLRsearch,
0 % and 0.5 % loss), with loss, latency from the generator's timestamps where the sink
reads them, the placement, and the generator's self-test rate beside the DUT rate
(DESIGN.md §2; fact sheet §8 for why zero-copy and NUMA placement matter).
"""

from __future__ import annotations

from scenarios.api import BenchPoint, Lab, note, verify


def test_throughput(lab: Lab, bench_point: BenchPoint, bench_repeats: int) -> None:
    """One throughput point of the pair.

    Steps:
        1. Place the peers for the case: on one NUMA node, or the client on another node
           (skipped, naming the placement, when the host has one node); the client runs
           zero-copy in the -zc cases.
        2. memif topology: the transmitting peer sends, the other counts. nic topology:
           a TPACKET generator in its namespace sends through peer A, memif and peer B to
           a sink namespace; first the generator alone into a sink (self-test).
        3. MRR: trials at full load. NDR/PDR: MLRsearch trials, then one at the NDR.
    Verify:
        - Frames arrived (a rate above zero) and the loss ratio is in [0, 1].
        - The generator's own rate is recorded beside the DUT rate.
    """
    measured = lab.measure_throughput(bench_point, repeats=bench_repeats)
    verify(
        measured.pps is not None and measured.pps > 0,
        "frames reached the receiver",
        expected="a receive rate above 0",
        observed=f"{measured.pps} frames/s",
    )
    verify(
        measured.loss is not None and 0.0 <= measured.loss <= 1.0,
        "loss ratio",
        expected="between 0 and 1",
        observed=measured.loss,
    )
    verify(
        measured.generator_pps is not None,
        "generator rate recorded",
        expected="the generator's own rate",
        observed=measured.generator_pps,
    )
    bound = " (generator-bound)" if measured.generator_bound else ""
    note(
        f"{measured.pps / 1e6:.3f} Mpps, {measured.gbps:.2f} Gbps, loss {measured.loss:.4%};"
        f" generator {measured.generator_pps / 1e6:.3f} Mpps{bound}"
    )
