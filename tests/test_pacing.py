"""Paced generators: the pacer (reference_impl.pacing) and the generator's bounded wait."""

from __future__ import annotations

import math

import pytest

from reference_impl.pacing import Pacer
from reference_impl.traffic import Generator


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


# ----------------------------------------------------------------- the paced generator

FRAME = bytes(64)


class RoomSender:
    """A sender with `room` free slots; the test frees or blocks them between steps."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.taken = 0

    def transmit_copies(self, template: object, count: int, *, fill: object = None) -> int:
        went = min(count, self.room)
        self.room -= went
        self.taken += went
        return went


def test_a_frame_waiting_less_than_max_lateness_still_goes() -> None:
    """A stall of the generator's own CPU: the frames due meanwhile go in one late burst."""
    generator = Generator(FRAME, count=10_000, rate=1000.0, max_lateness=0.05)
    sender = RoomSender(room=0)
    generator.step(sender, 0.0)  # frame 0 due, no room
    generator.step(sender, 0.030)  # 31 due, still no room; none waited 50 ms yet
    assert (generator.sent, generator.unsent, generator.waiting) == (0, 31, 31)
    sender.room = 100
    generator.step(sender, 0.040)
    assert (generator.sent, generator.unsent, generator.waiting) == (41, 0, 0)
    assert generator.wait(0.040) == pytest.approx(0.001)


def test_a_frame_that_waited_longer_is_given_up_and_unsent() -> None:
    generator = Generator(FRAME, count=10_000, rate=1000.0, max_lateness=0.05)
    sender = RoomSender(room=0)
    generator.step(sender, 0.0)
    generator.step(sender, 0.080)  # frames 0..30 are due since > 50 ms: given up
    assert (generator.unsent, generator.waiting) == (81, 50)
    assert generator.wait(0.080) == 0.0  # frames wait for room: try again at once
    sender.room = 1000
    generator.step(sender, 0.081)  # the 51 not yet given up go before frame 31 expires
    assert (generator.sent, generator.unsent, generator.offered) == (51, 31, 82)


def test_a_sender_slower_than_the_rate_leaves_frames_unsent() -> None:
    """The receiver, not a stall, sets the pace: the backlog cannot be made up."""
    generator = Generator(FRAME, count=100_000, rate=10_000.0, max_lateness=0.05)
    sender = RoomSender(room=0)
    for step in range(1001):  # 1 s in 1 ms steps, 8 frames of room per ms: 8000 fps
        sender.room += 8
        generator.step(sender, step / 1000)
    assert generator.sent == 8008
    assert generator.unsent == 10_001 - 8008
    assert generator.facts(1.0)["offered"] == 10_001


def test_a_paced_generator_is_done_once_every_frame_went_or_was_given_up() -> None:
    generator = Generator(FRAME, count=5, rate=1000.0, max_lateness=0.05)
    sender = RoomSender(room=2)
    generator.step(sender, 0.0)  # the first frame goes
    generator.step(sender, 0.010)  # all 5 due, 1 more goes
    assert not generator.done and generator.waiting == 3
    generator.step(sender, 0.051)  # frames due at 0.002..0.004 waited < 50 ms
    assert not generator.done and generator.waiting == 3
    generator.step(sender, 0.060)
    assert generator.done and (generator.sent, generator.unsent) == (2, 3)


@pytest.mark.parametrize("lateness", [0.0, -0.001, math.nan])
def test_a_lateness_not_above_zero_is_refused(lateness: float) -> None:
    with pytest.raises(ValueError, match="max_lateness"):
        Generator(FRAME, count=1, rate=1.0, max_lateness=lateness)


def test_a_window_offers_exactly_its_frames_and_the_last_ones_still_go() -> None:
    """Frames due in the window are all offered (none short: a 0 % loss goal would see them
    as lost), none after it; the last ones may go a little late."""
    generator = Generator(FRAME, count=10**6, rate=1000.0, max_lateness=0.05)
    sender = RoomSender(room=10**6)
    generator.begin(0.0, seconds=1.0)
    for ms in range(0, 990, 10):
        generator.step(sender, ms / 1000)
    assert generator.sent == 981 and not generator.settled
    sender.room = 0
    generator.step(sender, 1.02)  # late, and the 20 due since 0.98 s find no room
    assert (generator.offered, generator.unsent, generator.waiting) == (1001, 20, 20)
    assert not generator.settled
    sender.room = 10**6
    generator.step(sender, 1.03)  # within their 50 ms: they go
    assert generator.settled and (generator.sent, generator.unsent) == (1001, 0)
    generator.step(sender, 1.5)
    assert generator.offered == 1001  # nothing falls due after the window


def test_frames_still_waiting_past_their_lateness_after_the_window_are_given_up() -> None:
    generator = Generator(FRAME, count=10**6, rate=1000.0, max_lateness=0.05)
    sender = RoomSender(room=981)  # then nobody frees any
    generator.begin(0.0, seconds=1.0)
    for ms in range(0, 1001, 10):
        generator.step(sender, ms / 1000)
    assert generator.waiting == 20 and not generator.settled
    generator.step(sender, 1.051)
    assert generator.settled and (generator.sent, generator.unsent) == (981, 20)


@pytest.mark.parametrize("start", [0.0, 33274.78, 1e6 + 0.123])
@pytest.mark.parametrize(("seconds", "rate"), [(0.2, 20_000.0), (0.3, 1e7), (1.0, 3.3e6)])
def test_the_window_count_does_not_depend_on_the_clock(
    start: float, seconds: float, rate: float
) -> None:
    """(start + seconds) - start may lose a hair: the count comes from `seconds` itself."""
    generator = Generator(FRAME, count=10**9, rate=rate)
    sender = RoomSender(room=10**9)
    generator.begin(start, seconds=seconds)
    generator.step(sender, start + seconds)
    generator.step(sender, start + 2 * seconds)
    assert generator.settled and generator.offered == round(seconds * rate) + 1


def test_a_stalled_generator_sends_what_fell_due_when_there_is_room() -> None:
    """Its own stall is made up in one burst: only frames that found no room are given up."""
    generator = Generator(FRAME, count=10**6, rate=1000.0, max_lateness=0.01)
    sender = RoomSender(room=10**6)
    generator.step(sender, 0.0)
    generator.step(sender, 0.050)  # 40 ms past the lateness of the first ones
    assert (generator.sent, generator.unsent) == (51, 0)
