"""memif-ref's command-line contract: actions, exit codes, one JSON object, clear errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

MEMIF_REF = [sys.executable, "-m", "reference_impl.cli"]


@pytest.fixture
def sock() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="memif-cli-"))
    yield directory / "m.sock"
    shutil.rmtree(directory, ignore_errors=True)


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*MEMIF_REF, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen[str], timeout: float = 30.0) -> tuple[int, Any, str]:
    out, err = process.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout must be exactly one JSON object: {out!r} / {err}"
    return process.returncode, json.loads(lines[0]), err


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 10
    while not path.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_client_pings_server_responder(sock: Path) -> None:
    server = start(
        "server", "--socket", str(sock), "--timeout", "15", "--once", "--json", "responder"
    )
    wait_for(sock)
    code, report, err = finish(
        start("client", "--socket", str(sock), "--timeout", "15", "--json", "ping", "--count", "20")
    )
    assert code == 0, err
    assert report["result"]["replies"] == 20
    assert report["link_up"] is True
    assert report["negotiated"] == {
        "c2s_rings": 1,
        "s2c_rings": 1,
        "ring_size": 1024,
        "buffer_size": 2048,
    }
    assert report["peer_name"] == "memif-ref"
    server_code, server_report, _ = finish(server)
    assert server_code == 0
    assert server_report["result"]["echo_replies_sent"] == 20
    assert server_report["disconnect_reason"] == "Device closed"
    assert server_report["disconnected_by_peer"] is True


def test_source_to_sink_with_chains_and_queues(sock: Path) -> None:
    common = ["--socket", str(sock), "--timeout", "20", "--bsize", "512", "--queues", "2"]
    server = start("server", *common, "--json", "sink", "--count", "3000")
    wait_for(sock)
    code, report, err = finish(
        start("client", *common, "--json", "source", "--count", "3000", "--size", "1500")
    )
    assert code == 0, err
    assert report["counters"]["tx_frames"] == 3000
    assert report["counters"]["tx_chained"] == 3000
    assert report["result"]["drained"] is not False  # never left with frames unread
    server_code, server_report, err = finish(server)
    assert server_code == 0, err
    assert server_report["counters"]["rx_frames"] == 3000
    assert server_report["counters"]["rx_bytes"] == 3000 * 1500
    assert server_report["counters"]["rx_chained"] == 3000
    assert server_report["negotiated"]["c2s_rings"] == 2


def test_refused_handshake_exits_2_with_the_reason(sock: Path) -> None:
    server = start(
        "server", "--socket", str(sock), "--secret", "a", "--timeout", "3", "--json", "sink"
    )
    wait_for(sock)
    code, report, err = finish(
        start("client", "--socket", str(sock), "--timeout", "5", "--json", "sink", "--count", "1")
    )
    assert code == 2
    assert report["disconnect_reason"] == "Secret required"
    assert "handshake refused: Secret required" in err
    server_code, server_report, _ = finish(server)
    assert server_code == 2
    assert server_report["refusals"] == ["Secret required"]


def test_timeout_without_a_peer_exits_3(sock: Path) -> None:
    code, report, _ = finish(
        start("server", "--socket", str(sock), "--timeout", "0.5", "--json", "sink")
    )
    assert code == 3
    assert report["link_up"] is False
    assert not sock.exists()  # the server removed its socket file


def test_client_without_server_exits_1_with_the_error(sock: Path) -> None:
    code, report, _ = finish(
        start("client", "--socket", str(sock), "--timeout", "0.3", "--json", "sink")
    )
    assert code == 1
    assert "cannot connect" in report["error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ip", "10.0.0.1"], "outside 198.18.0.0/15"),
        (["--mac", "zz:00:00:00:00:00"], "MAC address"),
        (["--rsize", "15"], "--rsize 15"),
        (["--secret", "x" * 24], "--secret is 24 bytes"),
    ],
)
def test_bad_input_exits_1_with_a_clear_message(sock: Path, args: list[str], message: str) -> None:
    result = subprocess.run(
        [*MEMIF_REF, "client", "--socket", str(sock), *args, "sink"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert message in result.stderr


def test_usage_error_exits_1_not_2(sock: Path) -> None:
    result = subprocess.run(
        [*MEMIF_REF, "client", "--socket", str(sock), "ping"],  # --count missing
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "--count" in result.stderr


def test_status_file_tracks_the_link(sock: Path) -> None:
    status = sock.parent / "status.json"
    server = start("server", "--socket", str(sock), "--timeout", "15", "--status", str(status),
                   "--once", "--json", "responder")  # fmt: skip
    wait_for(status)
    assert json.loads(status.read_text())["link_up"] is False
    code, _, err = finish(
        start("client", "--socket", str(sock), "--timeout", "15", "--json", "ping", "--count", "3")
    )
    assert code == 0, err
    finish(server)
    final = json.loads(status.read_text())
    assert final["was_up"] is True
    assert final["counters"]["rx_frames"] >= 3
    assert final["disconnect_reason"] == "Device closed"


def test_source_reports_drained_when_the_peer_consumed_everything(sock: Path) -> None:
    server = start("server", "--socket", str(sock), "--timeout", "20", "--json",
                   "sink", "--seconds", "2")  # fmt: skip
    wait_for(sock)
    code, report, err = finish(
        start(
            "client",
            "--socket",
            str(sock),
            "--timeout",
            "20",
            "--json",
            "source",
            "--count",
            "5000",
        )
    )
    assert code == 0, err
    assert report["result"]["drained"] is True
    server_code, server_report, _ = finish(server)
    assert server_code == 0
    assert server_report["counters"]["rx_frames"] == 5000


def test_server_serves_the_next_client_unless_once(sock: Path) -> None:
    server = start("server", "--socket", str(sock), "--timeout", "6", "--json", "responder")
    wait_for(sock)
    for _ in range(2):
        code, report, err = finish(
            start(
                "client", "--socket", str(sock), "--timeout", "5", "--json", "ping", "--count", "3"
            )
        )
        assert code == 0, err
        assert report["result"]["replies"] == 3
    server_code, server_report, _ = finish(server)
    assert server_code == 0
    assert server_report["result"]["sessions"] == 2
    assert server_report["result"]["echo_replies_sent"] == 6
    assert server_report["result"]["stopped_by"] == "deadline"


def test_pcap_records_the_frames_both_sides_moved(sock: Path) -> None:
    from scapy.utils import rdpcap

    server_pcap, client_pcap = sock.with_name("server.pcap"), sock.with_name("client.pcap")
    common = ["--socket", str(sock), "--timeout", "20", "--bsize", "512", "--json"]
    sink = ["--pcap-limit", "50", "sink", "--count", "300"]
    server = start("server", *common, "--pcap", str(server_pcap), *sink)
    wait_for(sock)
    source = ["source", "--count", "300", "--size", "1000"]
    code, report, err = finish(start("client", *common, "--pcap", str(client_pcap), *source))
    assert code == 0, err
    assert report["pcap"] == {"frames": 300, "written": 300}
    assert "300 of 300 frames written" in err
    server_code, server_report, server_err = finish(server)
    assert server_code == 0
    assert server_report["pcap"] == {"frames": 300, "written": 50}
    assert "50 of 300 frames written (--pcap-limit 50)" in server_err
    sent = [bytes(packet) for packet in rdpcap(str(client_pcap))]
    received = [bytes(packet) for packet in rdpcap(str(server_pcap))]
    assert len(sent) == 300
    assert {len(frame) for frame in sent} == {1000}  # chained over two 512-byte buffers
    assert received == sent[:50]


def test_pcap_in_a_missing_directory_is_a_usage_error(sock: Path) -> None:
    missing = str(sock.parent / "no" / "f.pcap")
    argv = ["server", "--socket", str(sock), "--pcap", missing, "--timeout", "1", "--json"]
    code, report, _ = finish(start(*argv, "sink"))
    assert code == 1
    assert "--pcap" in report["error"]
    assert not sock.exists()
