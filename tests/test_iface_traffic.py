"""memif-ref iface-source / iface-sink (reference_impl.iface_traffic): argument checks, then
stamped frames over a veth pair in a run-labelled namespace (root needed)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from harness.topology import netns as tn
from reference_impl import frames, stamps
from tests.test_cli import MEMIF_REF
from tests.test_tpacket import VethInNetns, collect, needs_root, open_in, veth

__all__ = ["veth"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEMIF_REF, *args], capture_output=True, text=True, timeout=30)


def listening_sink(veth: VethInNetns, ready: Path, *args: str) -> subprocess.Popen[bytes]:
    """iface-sink on veth end b with `args`, once it listens (its ready file exists)."""
    sink = tn.popen_in_netns(
        veth.netns,
        [*MEMIF_REF, "iface-sink", "--iface", veth.b, "--ready", str(ready), "--json", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not ready.exists():
        if sink.poll() is not None or time.monotonic() > deadline:
            sink.kill()
            sink.communicate()
            pytest.fail("the sink never listened")
        time.sleep(0.02)  # a poll with its deadline above
    return sink


def run_source(veth: VethInNetns, *args: str) -> dict[str, object]:
    """iface-source on veth end a with `args`; its result facts."""
    source = tn.popen_in_netns(
        veth.netns,
        [*MEMIF_REF, "iface-source", "--iface", veth.a, "--size", "64",
         "--dst-mac", "02:fe:00:00:00:b0", "--json", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = source.communicate(timeout=20)
    assert source.returncode == 0, err
    result: dict[str, object] = json.loads(out)["result"]
    return result


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--size", "40"], "frame size 40 must be 62..9216 bytes"),
        (["--rate", "-5"], "rate -5 must be above 0"),
        (["--dst-ip", "10.1.1.1"], "10.1.1.1 is outside 198.18.0.0/15"),
        (["--src-ip", "192.168.0.1"], "192.168.0.1 is outside 198.18.0.0/15"),
        (["--dst-mac", "02:fe"], "must be 6 colon-separated hex octets"),
        (["--count", "0"], "0 must be positive"),
    ],
)
def test_bad_iface_source_arguments_are_clear_errors(arguments: list[str], message: str) -> None:
    base = {"--iface": "lo", "--size": "64", "--count": "10", "--seconds": "1"}
    for name, value in zip(arguments[::2], arguments[1::2], strict=True):
        base[name] = value
    done = run("iface-source", *(word for pair in base.items() for word in pair))
    assert done.returncode == 1
    assert message in done.stderr


def test_iface_sink_needs_its_bounds() -> None:
    done = run("iface-sink", "--iface", "lo", "--seconds", "0")
    assert done.returncode == 1 and "0 seconds must be above 0" in done.stderr
    done = run("iface-sink", "--iface", "lo")
    assert done.returncode == 1 and "--seconds" in done.stderr


@needs_root
def test_a_missing_interface_is_reported_in_the_json() -> None:
    done = run("iface-sink", "--iface", "nosuch0", "--seconds", "1", "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert "nosuch0" in report["error"] and report["exit_code"] == 1


@pytest.mark.integration
@needs_root
def test_copies_leave_a_port_stamped_and_numbered(veth: VethInNetns) -> None:
    frame = frames.udp_frame(
        100, bytes(6), frames.BROADCAST_MAC, bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
    )
    writer = stamps.StampWriter(frame)
    with open_in(veth.netns, veth.a, tx_frames=32) as a, open_in(veth.netns, veth.b) as b:
        sent = 0
        while sent < 100:  # 32 slots: the copies wrap the TX ring
            went = a.transmit_copies(writer.template_at(7), 100 - sent, fill=writer.fill)
            writer.advance(went)
            sent += went
        got = collect(b, 100)
    assert len(got) == 100
    rows = np.array([np.frombuffer(f, dtype=np.uint8) for f in got])
    valid, sequence, sent_ns = stamps.read(rows[:, 42:62])
    assert valid.all() and sequence.tolist() == list(range(100))
    assert set(sent_ns.tolist()) == {7}
    assert all(f[:42] == frame[:42] and f[62:] == frame[62:] for f in got)


@pytest.mark.integration
@needs_root
def test_iface_source_to_iface_sink_paced(veth: VethInNetns, tmp_path: Path) -> None:
    """Steps: iface-sink on one veth end (ready file), iface-source on the other at 20 kpps,
    2000 frames of 64 bytes, both inside the namespace.
    Verify: the source sent all at the rate, nothing unsent; the sink got all of them
    stamped, none missing, with a latency."""
    sink = listening_sink(veth, tmp_path / "ready", "--seconds", "10", "--count", "2000")
    try:
        sent = run_source(veth, "--count", "2000", "--seconds", "5", "--rate", "20000")
        out, err = sink.communicate(timeout=20)
        assert sink.returncode == 0, err
        got = json.loads(out)["result"]
    finally:
        for process in (sink,):
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert (sent["sent"], sent["unsent"], sent["offered"], sent["drained"]) == (2000, 0, 2000, True)
    assert sent["tx_pps"] == pytest.approx(20_000, rel=0.1)
    assert sent["stopped_by"] == "count"
    assert (got["received"], got["stamped"], got["sequence_gaps"]) == (2000, 2000, 0)
    assert got["stopped_by"] == "count" and got["latency"]["samples"] > 0
    assert got["iface_counters"]["rx_kernel_drops"] == 0


@pytest.mark.integration
@needs_root
def test_iface_sink_ends_a_drain_after_its_stop_file(veth: VethInNetns, tmp_path: Path) -> None:
    """Steps: iface-sink with a 60 s bound and a stop file; iface-source sends 500 frames;
    then the stop file is created.
    Verify: the sink counted all 500 and ended by the stop file, within a few seconds, not
    at its bound."""
    stop = tmp_path / "stop"
    sink = listening_sink(
        veth, tmp_path / "ready", "--seconds", "60", "--stop-file", str(stop), "--drain", "0.3"
    )
    try:
        run_source(veth, "--count", "500", "--seconds", "5")
        stop.touch()
        stopped = time.monotonic()
        out, err = sink.communicate(timeout=20)
        took = time.monotonic() - stopped
        assert sink.returncode == 0, err
        got = json.loads(out)["result"]
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.communicate()
    assert got["stopped_by"] == "stop-file" and took < 5.0
    assert (got["received"], got["stamped"], got["sequence_gaps"]) == (500, 500, 0)


def test_iface_sink_refuses_a_nonsense_drain() -> None:
    done = run("iface-sink", "--iface", "lo", "--seconds", "1", "--drain", "-1")
    assert done.returncode == 1 and "-1 seconds must be above 0" in done.stderr
