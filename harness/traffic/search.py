"""Throughput from trials: MRR (full offered load) and NDR/PDR by CSIT's MLRsearch.

MLRsearch (the `MLRsearch` package on PyPI, the fd.io CSIT controller) decides which load
and duration to try next; the harness only measures trials. Its goals are CSIT's: NDR is
the conditional throughput at 0 % loss, PDR at 0.5 %, each from 1-second trials with a
21-second duration sum, exceed ratio 50 % and goal width 0.5 % (CSIT's methodology page,
"MLR Search"). Unsent frames count as lost (MLRsearch's loss ratio includes them).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable
from typing import Any

from harness.traffic.trial import TrialOutcome

NDR_LOSS_RATIO = 0.0
PDR_LOSS_RATIO = 0.005
CSIT_EXCEED_RATIO = 0.5
CSIT_RELATIVE_WIDTH = 0.005
CSIT_TRIAL_SECONDS = 1.0
CSIT_DURATION_SUM_TRIALS = 21
"""Duration sum, in trial durations (21 s at CSIT's 1-second trials)."""
DEFAULT_MIN_LOAD = 1000.0

Trial = Callable[[float, float | None], TrialOutcome]
"""(intended duration, intended load or None for full load) -> the trial's counts."""


class SearchError(RuntimeError):
    """The search could not give a result (e.g. the DUT loses frames at the minimal load)."""


@dataclasses.dataclass(frozen=True)
class MrrOutcome:
    """Maximum receive rate: the mean over trials at full offered load."""

    trials: tuple[TrialOutcome, ...]

    @property
    def rx_pps(self) -> float:
        """Mean received frames per second over the trials."""
        return statistics.fmean(trial.rx_pps for trial in self.trials)

    @property
    def tx_pps(self) -> float:
        """Mean frames per second the generator sent."""
        return statistics.fmean(trial.tx_pps for trial in self.trials)

    @property
    def loss_ratio(self) -> float:
        """Frames lost over frames offered, all trials together."""
        offered = sum(trial.offered for trial in self.trials)
        lost = sum(trial.lost for trial in self.trials)
        return lost / offered if offered else 0.0


def mrr(trial: Trial, *, duration: float, trials: int) -> MrrOutcome:
    """Run `trials` trials of `duration` seconds at full load.

    Raises:
        ValueError: no trial or a non-positive duration.
    """
    if trials < 1 or not duration > 0:
        raise ValueError(f"MRR needs >= 1 trial of positive duration ({trials} x {duration})")
    return MrrOutcome(tuple(trial(duration, None) for _ in range(trials)))


@dataclasses.dataclass(frozen=True)
class NdrPdrOutcome:
    """The conditional throughputs MLRsearch found, and every trial it asked for."""

    ndr_pps: float
    pdr_pps: float
    trials: tuple[TrialOutcome, ...]

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary of the trials (load, duration, loss ratio)."""
        return {
            "trials": [
                {
                    "load": trial.intended_load,
                    "duration": trial.intended_duration,
                    "loss_ratio": round(trial.loss_ratio, 6),
                }
                for trial in self.trials
            ]
        }


def ndr_pdr(
    trial: Trial,
    *,
    max_load: float,
    min_load: float = DEFAULT_MIN_LOAD,
    trial_seconds: float = CSIT_TRIAL_SECONDS,
    search_seconds_max: float = 600.0,
) -> NdrPdrOutcome:
    """Find NDR and PDR between `min_load` and `max_load` frames per second.

    Args:
        trial: measures one trial at a load.
        max_load: the highest load to try (e.g. the generator's self-test rate).
        min_load: the lowest load to try.
        trial_seconds: CSIT's initial and final trial duration (1 s); the duration sum
            scales with it.
        search_seconds_max: give up (SearchError) after this long.

    Raises:
        SearchError: no lower bound (the DUT loses frames even at `min_load`) or the
            search ran out of time.
        ValueError: loads out of order.
    """
    from MLRsearch import (
        AbstractMeasurer,
        Config,
        MeasurementResult,
        MultipleLossRatioSearch,
        SearchGoal,
    )

    if not 0 < min_load < max_load:
        raise ValueError(f"need 0 < min_load < max_load, got {min_load} and {max_load}")
    done: list[TrialOutcome] = []

    class Measurer(AbstractMeasurer):  # type: ignore[misc]
        def measure(self, intended_duration: float, intended_load: float) -> Any:
            outcome = trial(intended_duration, intended_load)
            done.append(outcome)
            return MeasurementResult(
                intended_duration=intended_duration,
                intended_load=intended_load,
                offered_count=outcome.sent,
                forwarding_count=min(outcome.received, outcome.sent),
                # Frames due at the load that were never even offered count as lost too.
                intended_count=max(outcome.offered, round(intended_load * intended_duration)),
                offered_duration=outcome.seconds or intended_duration,
            )

    goal = SearchGoal(
        loss_ratio=NDR_LOSS_RATIO,
        exceed_ratio=CSIT_EXCEED_RATIO,
        relative_width=CSIT_RELATIVE_WIDTH,
        initial_trial_duration=trial_seconds,
        final_trial_duration=trial_seconds,
        duration_sum=CSIT_DURATION_SUM_TRIALS * trial_seconds,
    )
    pdr_goal = dataclasses.replace(goal, loss_ratio=PDR_LOSS_RATIO)
    config = Config(
        goals=[goal, pdr_goal],
        min_load=min_load,
        max_load=max_load,
        search_duration_max=search_seconds_max,
        warmup_duration=None,
    )
    try:
        result = MultipleLossRatioSearch(config=config).search(
            measurer=Measurer(), debug=lambda _text: None
        )
    except RuntimeError as exc:
        raise SearchError(f"MLRsearch gave no result: {exc}") from exc
    throughputs = []
    for wanted in (goal, pdr_goal):
        found = result[wanted].conditional_throughput
        if found is None:
            raise SearchError(
                f"no load met {wanted.loss_ratio:.1%} loss (the minimum {min_load:g} fps "
                "already lost frames)"
            )
        throughputs.append(float(found))
    return NdrPdrOutcome(throughputs[0], throughputs[1], tuple(done))
