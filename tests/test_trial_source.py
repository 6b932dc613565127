"""memif-ref's trial source (`source --trials PLAN`): trials run one by one as the plan asks,
each with its own rate and duration, the link up throughout, counts published per trial."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from reference_impl import actions
from tests.test_actions_traffic import ADDRESSES, ClientDriver
from tests.test_link import memif_pair


class PlanningDriver(ClientDriver):
    """Writes the next plan each time a trial's counts are published."""

    def __init__(self, pair: Any, plan: Path, plans: list[dict[str, Any]]) -> None:
        super().__init__(pair, drain=True)
        self.plan = plan
        self.plans = plans
        self.published: list[dict[str, Any]] = []
        self._write(plans.pop(0))

    def _write(self, content: dict[str, Any]) -> None:
        temporary = self.plan.with_suffix(".tmp")
        temporary.write_text(json.dumps(content))
        temporary.replace(self.plan)

    def publish(self, facts: dict[str, Any]) -> None:
        self.published.append(facts["trial"])
        self._write(self.plans.pop(0) if self.plans else {"stop": True})


def test_trials_run_in_turn_at_their_rates_and_stop_on_request(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    with memif_pair(log2_ring_size=10, buffer_size=2048) as pair:
        driver = PlanningDriver(
            pair,
            plan,
            [
                {"id": 1, "rate": 20_000.0, "seconds": 0.2},
                {"id": 2, "rate": None, "seconds": 0.2},
                {"id": 3, "rate": 5_000.0, "seconds": 0.2},
            ],
        )
        result = actions.trial_source(
            driver, ADDRESSES, time.monotonic() + 20, size=64, plan_path=plan, max_frames=10**9
        )
        driver.take()
    assert result.ok and result.stopped_by == "stop" and result.facts["trials"] == 3
    first, full, slow = driver.published
    assert [t["id"] for t in driver.published] == [1, 2, 3]
    assert first["tx_pps"] == pytest.approx(20_000, rel=0.1) and first["unsent"] == 0
    # exactly the frames due in the trial's seconds: not one short (that reads as loss at
    # a 0 % goal), frame 0 at the start and frame 4000 at its very end
    assert (first["offered"], slow["offered"]) == (4001, 1001)
    assert slow["tx_pps"] == pytest.approx(5_000, rel=0.1)
    assert full["rate"] is None and full["sent"] > first["sent"]
    assert all(t["drained"] for t in driver.published)
    received = driver.peer.facts()
    assert received["received"] == sum(t["sent"] for t in driver.published)
    assert received["sequence_gaps"] == 0


def test_a_trial_never_sends_more_than_its_bound(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    with memif_pair(log2_ring_size=10, buffer_size=2048) as pair:
        driver = PlanningDriver(pair, plan, [{"id": 7, "rate": None, "seconds": 5.0}])
        started = time.monotonic()
        actions.trial_source(
            driver, ADDRESSES, started + 20, size=64, plan_path=plan, max_frames=500
        )
    assert driver.published[0]["sent"] == 500
    assert time.monotonic() - started < 4.0  # the bound ended it, not the 5 s


def test_no_plan_means_no_traffic_until_the_deadline(tmp_path: Path) -> None:
    with memif_pair(log2_ring_size=8) as pair:
        driver = ClientDriver(pair, drain=True)
        result = actions.trial_source(
            driver, ADDRESSES, time.monotonic() + 0.3, size=64,
            plan_path=tmp_path / "missing.json", max_frames=100,
        )  # fmt: skip
        assert pair.client_link.counters.tx_frames == 0
    assert result.stopped_by == "deadline" and result.facts["trials"] == 0
