"""Tests of reference_impl.fuzz and fuzz_inputs: the control-path fuzzer and `memif-ref fuzz`.

A seeded run of 2 000 inputs per role goes through every CI run (the 100 000-input runs are
for the soak/benchmark command, see the issue note). The fuzzer's own failure paths are
proven by breaking the endpoint on purpose: an exception and an fd leak must both be
reported, with the input to replay.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from reference_impl import cli, endpoint, fuzz, wire
from reference_impl.fuzz import FuzzInput, Outcome
from reference_impl.fuzz_inputs import MAX_DATAGRAM, FdKind, generate, states_of
from reference_impl.protocol import Role

CI_INPUTS = 2000
CI_SEED = 7


def test_a_seeded_run_of_each_role_raises_nothing_and_leaves_nothing() -> None:
    report = fuzz.run([Role.SERVER, Role.CLIENT], CI_INPUTS, seed=CI_SEED)
    assert report.ok and report.stopped_by == "inputs"
    for tally, role in zip(report.roles, (Role.SERVER, Role.CLIENT), strict=True):
        assert tally.role == role.value
        assert tally.first_failure is None
        assert (tally.inputs, tally.raised, tally.failed) == (CI_INPUTS, 0, 0)
        assert tally.disconnect + tally.close + tally.accepted == CI_INPUTS
        assert min(tally.disconnect, tally.close, tally.accepted) > 0  # every answer is reached
        assert set(tally.by_state) == {label for label, _ in states_of(role)}
        assert all(sum(counts.values()) > 0 for counts in tally.by_state.values())
        assert "Invalid message size" in tally.reasons
    server = report.roles[0]
    # accepted regions and rings went on to CONNECT, where the server mapped and refused them
    mapped = ("region fd holds", "ring at", "Wrong cookie", "mmap of")
    assert any(reason.startswith(mapped) for reason in server.later_reasons), server.later_reasons


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    def counts(seed: int) -> dict[str, Any]:
        tally = fuzz.run([Role.CLIENT], 150, seed=seed).roles[0].as_dict()
        del tally["seconds"]
        return tally

    assert counts(3) == counts(3)
    assert counts(3) != counts(4)


def test_inputs_are_bounded_and_derive_from_seed_role_and_index() -> None:
    honest = wire.Init().pack()
    for index in range(300):
        item = generate(Role.SERVER, 1, index, honest)
        assert item == generate(Role.SERVER, 1, index, honest)
        assert len(item.datagram) <= MAX_DATAGRAM
        assert len(item.fds) <= 5
        assert item.state == states_of(Role.SERVER)[index % 6][0]
    assert generate(Role.SERVER, 1, 5, honest) != generate(Role.SERVER, 2, 5, honest)
    assert any(not generate(Role.CLIENT, 1, i, None).datagram for i in range(2000))


OVERFLOW = FuzzInput(
    Role.SERVER,
    "handshake:region",
    bytes.fromhex("04000100" + "ff" * 8) + bytes(116),  # ADD_REGION 1, size 2^64 - 1
    (FdKind.EVENTFD,),
)


def test_the_u64_region_size_the_fuzzer_found_is_refused_at_connect() -> None:
    """Regression: this input made mmap raise OverflowError out of the server's CONNECT."""
    verdict = fuzz.replay(OVERFLOW)
    assert verdict.problem is None
    assert verdict.outcome is Outcome.ACCEPTED  # ADD_REGION itself is fine...
    assert verdict.later_reason is not None  # ...mapping it at CONNECT is not
    assert verdict.later_reason.startswith("mmap of 18446744073709551615 bytes failed")


def test_an_exception_out_of_the_endpoint_is_reported_with_the_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OverflowError("planted")

    monkeypatch.setattr(endpoint, "_map_client_memory", broken)
    code = fuzz.main(["--role", "server", "--inputs", "60", "--seed", "1"])
    out = capsys.readouterr().out
    assert code == fuzz.EXIT_FAILED
    assert "0 raised" not in out
    assert "first failure: OverflowError: planted at" in out
    assert "in state " in out and "\n  hex " in out
    replayable = out.split("--replay '", 1)[1].split("'\n", 1)[0]
    failure = json.loads(replayable)
    again = fuzz.replay(FuzzInput.from_dict(failure))
    assert again.outcome is Outcome.RAISED
    assert again.problem is not None and "OverflowError: planted" in again.problem


def test_an_fd_the_endpoint_forgets_to_close_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(endpoint, "_close_fds", lambda fds: None)
    tally = fuzz.fuzz_role(Role.CLIENT, 60, seed=2)
    assert tally.raised == 0 and tally.failed > 0
    assert tally.first_failure is not None
    assert tally.first_failure["problem"].startswith("fd table changed: ")
    assert tally.first_failure["fds"]  # the input carried the fd that leaked


def test_memif_ref_fuzz_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["fuzz", "--role", "client", "--inputs", "40", "--seed", "3", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["ok"] is True and report["inputs_per_role"] == 40
    assert list(report["roles"]) == ["client"]
    client = report["roles"]["client"]
    assert client["inputs"] == 40 and client["raised"] == 0
    assert client["disconnect"] + client["close"] + client["accepted"] == 40


def test_memif_ref_fuzz_stops_at_its_time_bound(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["fuzz", "--inputs", "1000000", "--seconds", "0.5", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["stopped_by"] == "seconds"
    server = report["roles"]["server"]
    assert 0 < server["inputs"] < 1000000
    assert server["seconds"] < 5
    assert report["roles"]["client"]["inputs"] == 0  # no time was left for it


def test_memif_ref_fuzz_replays_one_input(capsys: pytest.CaptureFixture[str]) -> None:
    given = json.dumps(OVERFLOW.as_dict())
    assert cli.main(["fuzz", "--inputs", "1", "--replay", given, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["outcome"] == "accepted" and result["problem"] is None
    assert result["input"]["hex"] == OVERFLOW.datagram.hex()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--inputs", "0"], "--inputs 0: must be positive"),
        (["--inputs", "5", "--seconds", "0"], "seconds must be positive"),
        (["--inputs", "5", "--role", "peer"], "invalid choice: 'peer'"),
        (["--role", "server"], "the following arguments are required: --inputs"),
        (["--inputs", "1", "--replay", "{}"], "--replay: not an input object"),
        (
            ["--inputs", "1", "--replay", '{"role": "server", "state": "nowhere", "hex": ""}'],
            "no state 'nowhere' for a server",
        ),
    ],
)
def test_memif_ref_fuzz_refuses_bad_input_clearly(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["fuzz", *argv]) == 1
    assert message in capsys.readouterr().err
