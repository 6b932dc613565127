"""memif-ref's `check` and `forward` actions, the check frames, and the --fault switch
seen from a correct peer (memif-ref processes on both sides)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from reference_impl import frames
from tests.test_cli import finish, sock, start, wait_for

__all__ = ["sock"]

MAC_A, MAC_B = frames.parse_mac("02:fe:00:00:00:01"), frames.parse_mac("02:fe:00:00:00:02")


def test_check_frame_bytes_follow_from_sequence_and_size() -> None:
    frame = frames.check_frame(5, 100, MAC_A, MAC_B)
    assert len(frame) == 100
    assert frame[:6] == MAC_B and frame[6:12] == MAC_A
    assert frames.parse_check_header(frame) == (5, 100)
    assert frame[22] == (5 * 7) & 0xFF and frame[23] == (5 * 7 + 1) & 0xFF
    assert frames.check_frame(6, 100, MAC_A, MAC_B)[22:] != frame[22:]


def test_check_frame_too_small_is_refused() -> None:
    with pytest.raises(frames.FrameError, match="at least 22"):
        frames.check_frame(0, 21, MAC_A, MAC_B)


def test_parse_check_header_ignores_other_frames() -> None:
    udp = frames.udp_frame(64, MAC_A, MAC_B, b"\xc6\x12\x00\x01", b"\xc6\x12\x00\x02")
    assert frames.parse_check_header(udp) is None
    assert frames.parse_check_header(b"\x00" * 10) is None


def test_first_difference_skips_swapped_macs() -> None:
    frame = frames.check_frame(1, 64, MAC_A, MAC_B)
    swapped = frame[6:12] + frame[:6] + frame[12:]
    assert frames.first_difference(swapped, frame) is None
    broken = bytearray(frame)
    broken[40] ^= 0xFF
    assert frames.first_difference(bytes(broken), frame) == 40
    assert frames.first_difference(frame[:50], frame) == 50
    assert frames.first_difference(frame + b"x", frame) == 64


def _check(
    sock: Path, *server_args: str, client_args: tuple[str, ...] = (), check: tuple[str, ...] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    status = sock.with_name("server.json")
    server = start(
        "server", "--socket", str(sock), "--timeout", "20", "--once", "--status", str(status),
        "--json", *server_args, "forward",
    )  # fmt: skip
    wait_for(sock)
    _, report, _ = finish(
        start(
            "client",
            "--socket",
            str(sock),
            "--timeout",
            "20",
            "--json",
            *client_args,
            "check",
            "--no-hold",
            *check,
        )
    )
    server_code, server_report, _ = finish(server)
    assert server_code == 0, server_report
    return report, server_report


def test_check_through_forward_matches_every_frame_with_chains_and_wrap(sock: Path) -> None:
    report, server_report = _check(
        sock,
        "--rsize", "5",
        client_args=("--rsize", "5"),
        check=("--count", "300", "--sizes", "64,3000,5000,9000", "--window", "4"),
    )  # fmt: skip
    result = report["result"]
    assert result["ok"] is True and result["stopped_by"] == "count"
    assert (result["sent"], result["matched"], result["mismatched"], result["missing"]) == (
        300,
        300,
        0,
        0,
    )
    assert report["counters"]["rx_chained"] == 225  # 3 of every 4 sizes need 2+ buffers
    assert server_report["result"]["forwarded"] == 301  # and the probe
    assert server_report["counters"]["rx_open_chains"] == 0


@pytest.mark.parametrize("fault", ["stale-next", "split-chain"])
def test_datapath_faults_are_seen_by_a_correct_peer(sock: Path, fault: str) -> None:
    report, server_report = _check(
        sock,
        "--rsize", "5",
        client_args=("--rsize", "5", "--fault", fault),
        check=("--count", "200", "--sizes", "64,3000,64,5000,9000", "--window", "4"),
    )  # fmt: skip
    opened = server_report["counters"]["rx_open_chains"]
    if fault == "stale-next":  # frames merge at the receiver: some never come back whole
        assert report["result"]["ok"] is False
        assert report["result"]["matched"] < 200
    else:  # the receiver waits for the rest of the chain but saw the index inside it
        assert report["result"]["mismatched"] == 0  # nothing half-read
        assert opened > 0


def test_check_reports_a_peer_that_never_answers(sock: Path) -> None:
    server = start("server", "--socket", str(sock), "--timeout", "10", "--once", "sink")
    wait_for(sock)
    started = time.monotonic()
    code, report, _ = finish(
        start("client", "--socket", str(sock), "--timeout", "3", "--json", "check", "--count", "5")
    )
    server.kill()
    server.communicate()
    assert code != 0
    assert report["result"]["ok"] is False
    assert report["result"]["probe"] == "no probe frame came back"
    assert time.monotonic() - started < 8


def test_wrong_cookie_is_refused_and_reported(sock: Path) -> None:
    status = sock.with_name("server.json")
    server = start(
        "server", "--socket", str(sock), "--timeout", "10", "--once", "--status", str(status),
        "responder",
    )  # fmt: skip
    wait_for(sock)
    code, report, _ = finish(
        start(
            "client",
            "--socket",
            str(sock),
            "--timeout",
            "5",
            "--fault",
            "wrong-cookie",
            "--json",
            "responder",
        )
    )
    assert code == 2
    assert report["disconnect_reason"] == "Wrong cookie on C2S ring 0"
    deadline = time.monotonic() + 5
    while True:
        layout = json.loads(status.read_text()).get("peer_layout") if status.exists() else None
        if layout or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    server.kill()
    server.communicate()
    assert layout is not None
    assert "C2S ring 0: cookie 0x201fe303, expected 0x03e31f20" in layout["violations"]


def test_unknown_fault_is_a_usage_error(sock: Path) -> None:
    process = start("client", "--socket", str(sock), "--fault", "nope", "responder")
    _, err = process.communicate(timeout=10)
    assert process.returncode == 1
    assert "invalid choice: 'nope'" in err


@pytest.mark.parametrize(
    ("sizes", "message"), [("64,x", "comma-separated"), ("10", "every size must be 22..")]
)
def test_bad_check_sizes_are_usage_errors(sock: Path, sizes: str, message: str) -> None:
    process = start("client", "--socket", str(sock), "check", "--count", "1", "--sizes", sizes)
    _, err = process.communicate(timeout=10)
    assert process.returncode == 1
    assert message in err
