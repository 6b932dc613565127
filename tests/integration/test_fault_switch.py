"""The suites catch real rule breaks: a reference with one deliberate fault (memif-ref
--fault, reference_impl.faults) fails exactly the cases that own the broken rule.

Every functional suite runs over the pairs of a correct reference and a faulty one, in
the roles where the fault can show; each case that FAILs must be one the fault explains,
and each case the fault is known to break must FAIL. The correct pair passes everything.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from harness.results import RunResult, Verdict
from harness.run import run_suites

pytestmark = pytest.mark.integration

GOOD = "reference"
FUNCTIONAL_SUITES = ("handshake", "secret", "layout", "chained", "negotiation")

CHAINED_ALL = {
    "test_chains_of_2_3_and_5_descriptors",
    "test_jumbo_frames_at_buffer_2048",
    "test_chains_across_ring_wrap",
    "test_chain_exactly_fills_free_space",
}
SECRET_REFUSALS = {
    "test_server_secret_without_client_secret_is_refused",
    "test_different_secrets_are_refused",
}

EXPECTED_FAILURES: dict[tuple[str, str], set[str]] = {
    # A producer that leaves NEXT set from an earlier lap merges frames after a ring wrap;
    # only the ring-wrap case mixes chains and single frames over many laps. As a server
    # it is masked: the client clears every flag when it posts buffers (as libmemif does).
    (GOOD, "reference+stale-next"): {"test_chains_across_ring_wrap"},
    ("reference+stale-next", GOOD): set(),
    # Publishing inside a chain shows wherever chains cross the ring, either direction.
    (GOOD, "reference+split-chain"): CHAINED_ALL | {"test_buffer_size_not_negotiated"},
    ("reference+split-chain", GOOD): CHAINED_ALL | {"test_buffer_size_not_negotiated"},
    # A server that ignores secrets accepts what it must refuse; a client that ignores its
    # secret is refused where both sides share one, and for the wrong reason ("secret
    # required") where they differ.
    ("reference+ignore-secret", GOOD): SECRET_REFUSALS,
    (GOOD, "reference+ignore-secret"): {
        "test_equal_secrets_link_up",
        "test_longest_secret_links_up",
        "test_different_secrets_are_refused",
    },
    # u16 slot numbers only matter past 65536 slots: the 4 x 16384 layout case.
    (GOOD, "reference+wrong-offsets"): {"test_client_layout_checked_by_server"},
}

WRONG_COOKIE = (GOOD, "reference+wrong-cookie")
"""A wrong cookie makes every conforming server refuse the link (DPDK "Wrong ring", VPP
"wrong cookie on tx ring N", fact sheet §3.5), so every case that needs a link fails with
that reason; the layout case is the one that names the ring and the value it found."""


def _failures(result: RunResult) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for case in result.cases:
        if case.verdict is Verdict.FAIL:
            found[(case.server_peer, case.client_peer)].add(case.scenario)
    return found


def test_each_fault_fails_exactly_the_cases_of_its_rule(tmp_path: Path) -> None:
    pairs = [(GOOD, GOOD), *EXPECTED_FAILURES, WRONG_COOKIE]
    faulty = sorted({kind for pair in pairs for kind in pair} - {GOOD})
    result = run_suites(
        FUNCTIONAL_SUITES,
        (GOOD, *faulty),
        tmp_path / "report",
        extra_pytest_args=["--pairs", ",".join(f"{s}:{c}" for s, c in pairs)],
    )
    verdicts = {case.verdict for case in result.cases}
    assert Verdict.ERROR not in verdicts, [
        (c.scenario, c.reason) for c in result.cases if c.verdict is Verdict.ERROR
    ]
    failures = _failures(result)
    assert failures.get((GOOD, GOOD), set()) == set()
    for pair, expected in EXPECTED_FAILURES.items():
        assert failures.get(pair, set()) == expected, pair
    cookie_cases = [
        case for case in result.cases if (case.server_peer, case.client_peer) == WRONG_COOKIE
    ]
    failed = [case for case in cookie_cases if case.verdict is Verdict.FAIL]
    assert {case.verdict for case in cookie_cases} <= {Verdict.FAIL, Verdict.SKIP, Verdict.PASS}
    assert all(
        "Wrong cookie" in case.reason or "cookie 0x201fe303" in case.reason for case in failed
    ), [case.reason for case in failed if "ookie" not in case.reason]
    layout = [case for case in failed if case.scenario == "test_client_layout_checked_by_server"]
    assert len(layout) == 4
    assert all("C2S ring 0: cookie 0x201fe303, expected 0x03e31f20" in c.reason for c in layout)
