"""The pacer of paced generators (reference_impl.pacing)."""

from __future__ import annotations

import math

import pytest

from reference_impl.pacing import Pacer


def test_frame_i_is_due_at_start_plus_i_over_rate() -> None:
    pacer = Pacer(1000.0, start=10.0)
    assert pacer.due(9.0, 0) == 0  # before the start
    assert pacer.due(10.0, 0) == 1  # frame 0 is due at the start
    assert pacer.due(10.0105, 1) == 10  # frames 1..10 are due by 10.0105
    assert pacer.due(10.0105, 11) == 0  # already offered
    assert pacer.next_due(11) == pytest.approx(10.011)


def test_a_late_burst_offers_everything_due_at_once() -> None:
    pacer = Pacer(1e6, start=0.0)
    assert pacer.due(0.01, 100) == 10_001 - 100


@pytest.mark.parametrize("rate", [0.0, -5.0, math.inf, math.nan])
def test_nonsense_rates_are_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="positive number of frames per second"):
        Pacer(rate, 0.0)
