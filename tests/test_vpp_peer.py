"""Tests of harness.peers.vpp_peer with fake `vpp` and `vppctl` scripts (no VPP needed).

The fake vpp listens on the CLI socket named in startup.conf (and on api.sock in the
runtime directory, like VPP); the fake vppctl records every command it gets in
`vppctl-commands.log` next to it and answers `show version`, `show memif` and
`show interface` from files the test writes there, mostly recorded VPP output from
tests/recorded/vpp/.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.peers.base import Activity, MemifSpec, PeerCounters, PeerCrashed, PeerError, Role
from harness.peers.reasons import DisconnectReason
from harness.peers.vpp import HOW_TO_GET_VPP, find_vpp
from harness.peers.vpp_peer import (
    STREAM_NAME,
    VppPacketStream,
    VppPeer,
    activity_commands,
    memif_setup,
)

RECORDED = Path(__file__).parent / "recorded" / "vpp"
VERSION_LINE = "vpp v{version} built by fake on testhost at 2024-02-28T00:00:00"

FAKE_VPP = """\
# {version_line}
import os, re, signal, socket, sys, time
conf = open(sys.argv[2]).read()
cli = re.search(r"cli-listen (\\S+)", conf).group(1)
runtime_dir = re.search(r"runtime-dir (\\S+)", conf).group(1)
print("fake vpp: starting with", sys.argv[2], flush=True)
mode = os.environ.get("FAKE_VPP_MODE", "")
if mode == "fail":
    print("vlib_call_all_config_functions: unknown input `bogus'", flush=True)
    sys.exit(1)
signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
if mode == "no-socket":
    while True:
        time.sleep(0.05)
api = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
api.bind(os.path.join(runtime_dir, "api.sock"))
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(cli)
listener.listen(16)
while True:
    connection, _ = listener.accept()
    connection.close()
"""

FAKE_VPPCTL = """\
import os, pathlib, socket, sys
here = pathlib.Path(__file__).resolve().parent
if sys.argv[1] != "-s":
    sys.exit("usage: vppctl -s <socket> <command>")
probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    probe.connect(sys.argv[2])
except OSError as exc:
    sys.exit(f"vppctl: connect: {exc}")
command = " ".join(sys.argv[3:])
with open(here / "vppctl-commands.log", "a") as log:
    log.write(command + "\\n")
def answer(name):
    print((here / name).read_text(), end="")
reject = here / "reject.txt"
if reject.exists() and command.startswith(reject.read_text().strip()):
    print(f"{reject.read_text().strip()}: failed to do it")
elif command == "show version":
    answer("show-version.txt")
elif command == "show memif":
    answer("show-memif.txt")
elif command == "show interface":
    answer("show-interface.txt")
elif command.startswith("create memif socket"):
    (here / "socket-filename.txt").write_text(command.split("filename ", 1)[1])
elif command.startswith("create interface memif") and " master" in command:
    filename = (here / "socket-filename.txt").read_text()
    if filename.startswith("/") and not os.path.exists(filename):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(filename)
        server.close()
"""


def recorded(name: str) -> str:
    """VPP's output in a recorded file, without the "# ..." header."""
    lines = (RECORDED / name).read_text().splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("#"))


def write_script(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def make_fake_bin(directory: Path, version: str | None = "24.02-release") -> Path:
    """A directory with fake vpp and vppctl; `version` is the one embedded in `vpp`."""
    directory.mkdir()
    embedded = VERSION_LINE.format(version=version) if version else "no version here"
    write_script(directory / "vpp", FAKE_VPP.format(version_line=embedded))
    write_script(directory / "vppctl", FAKE_VPPCTL)
    set_output(directory, "show-version.txt", VERSION_LINE.format(version="24.02-release") + "\n")
    set_output(directory, "show-memif.txt", recorded("show_memif_vpp1904_master_not_connected.txt"))
    set_output(directory, "show-interface.txt", recorded("show_interface_vpp1904_drops.txt"))
    return directory


def set_output(fake_bin: Path, name: str, text: str) -> None:
    (fake_bin / name).write_text(text)


def commands_sent(fake_bin: Path) -> list[str]:
    """Commands vppctl got, without the start-up `show version` polls."""
    log = fake_bin / "vppctl-commands.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if line != "show version"]


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    return make_fake_bin(tmp_path / "bin")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def make_peer(
    fake_bin: Path, workdir: Path, spec: MemifSpec, mode: str = "", **kwargs: object
) -> VppPeer:
    kwargs.setdefault("startup_timeout", 10.0)
    return VppPeer(
        spec,
        workdir,
        vpp_bin=str(fake_bin / "vpp"),
        api_prefix="mh-test",
        env={"FAKE_VPP_MODE": mode, "PATH": "/usr/bin:/bin"},
        poll_interval=0.02,
        **kwargs,  # type: ignore[arg-type]
    )


def server_spec(tmp_path: Path, **kwargs: object) -> MemifSpec:
    values: dict[str, object] = {"role": Role.SERVER, "socket_path": str(tmp_path / "m.sock")}
    values.update(kwargs)
    return MemifSpec(**values)  # type: ignore[arg-type]


def client_spec(tmp_path: Path, **kwargs: object) -> MemifSpec:
    return server_spec(tmp_path, role=Role.CLIENT, **kwargs)


@pytest.fixture
def started(fake_bin: Path, workdir: Path, tmp_path: Path) -> Iterator[VppPeer]:
    """A started server peer (ECHO, id 0), stopped at the end."""
    peer = make_peer(fake_bin, workdir, server_spec(tmp_path, activity=Activity.ECHO))
    peer.start()
    yield peer
    peer.stop()


# --------------------------------------------------------------------------- configuration


def test_server_startup_conf_and_cli_sequence(
    fake_bin: Path, workdir: Path, tmp_path: Path
) -> None:
    spec = server_spec(
        tmp_path,
        interface_id=3,
        secret="s3cret",
        log2_ring_size=11,
        buffer_size=4096,
        queues=2,
        activity=Activity.ECHO,
    )
    peer = make_peer(fake_bin, workdir, spec, cpu=3)
    runtime = workdir / "vpp-server"
    assert peer.kind == "vpp"
    peer.start()
    try:
        assert (runtime / "startup.conf").read_text() == (
            "unix {\n"
            "  nodaemon\n"
            "  nosyslog\n"
            f"  cli-listen {runtime}/cli.sock\n"
            f"  log {runtime}/vpp.log\n"
            f"  runtime-dir {runtime}\n"
            "}\n"
            "api-segment {\n"
            "  prefix mh-test\n"
            "}\n"
            "statseg {\n"
            f"  socket-name {runtime}/stats.sock\n"
            "}\n"
            "cpu {\n"
            "  main-core 3\n"
            "}\n"
            "plugins {\n"
            "  plugin default { disable }\n"
            "  plugin memif_plugin.so { enable }\n"
            "  plugin ping_plugin.so { enable }\n"
            "}\n"
        )
        assert commands_sent(fake_bin) == [
            f"create memif socket id 1 filename {tmp_path / 'm.sock'}",
            "create interface memif id 3 socket-id 1 master secret s3cret rx-queues 1 "
            "tx-queues 1 ring-size 2048 buffer-size 4096 no-zero-copy",
            "set interface state memif1/3 up",
            "set interface ip address memif1/3 198.18.0.1/24",
        ]
        assert list(peer.commands()) == commands_sent(fake_bin)
    finally:
        peer.stop()


def test_client_cli_sequence_with_queues_zero_copy_and_a_source(
    fake_bin: Path, workdir: Path, tmp_path: Path
) -> None:
    spec = client_spec(
        tmp_path,
        log2_ring_size=9,
        buffer_size=1024,
        queues=2,
        zero_copy=True,
        activity=Activity.SOURCE,
        frame_size=128,
    )
    peer = make_peer(fake_bin, workdir, spec)
    with peer:
        assert "main-core" not in (workdir / "vpp-client" / "startup.conf").read_text()
        assert commands_sent(fake_bin) == [
            f"create memif socket id 1 filename {tmp_path / 'm.sock'}",
            "create interface memif id 0 socket-id 1 slave rx-queues 2 tx-queues 2 "
            "ring-size 512 buffer-size 1024",
            "set interface state memif1/0 up",
            f"packet-generator new name {STREAM_NAME} size 128-128 node memif1/0-output "
            "tx-interface memif1/0 data { IP4: 02:fe:c6:12:00:02 -> ff:ff:ff:ff:ff:ff "
            "UDP: 198.18.0.2 -> 198.18.0.1 UDP: 1234 -> 2345 incrementing 86 }",
        ]
        # The stream starts once the link is up, and only once.
        # memif2/0 of this output is a connected slave: renamed to the peer's memif1/0.
        text = recorded("show_memif_vpp1904_slave_to_dpdk_master.txt")
        text = text.replace("interface memif1/0", "interface memif9/0")
        text = text.replace("interface memif2/0", "interface memif1/0")
        set_output(fake_bin, "show-memif.txt", text)
        assert peer.wait_for_link(2.0)
        assert peer.wait_for_link(2.0)
        enables = [c for c in commands_sent(fake_bin) if "enable-stream" in c]
        assert enables == [f"packet-generator enable-stream {STREAM_NAME}"]


@pytest.mark.parametrize(
    ("activity", "extra"),
    [
        (Activity.IDLE, []),
        (Activity.SINK, []),
        (Activity.FORWARD, ["set interface l2 xconnect memif1/0 memif1/0"]),
    ],
)
def test_activity_commands(activity: Activity, extra: list[str], tmp_path: Path) -> None:
    spec = client_spec(tmp_path, activity=activity)
    assert list(activity_commands(spec, "memif1/0")) == extra
    assert memif_setup(spec).addresses == ()
    assert memif_setup(spec).commands()[-1] == "set interface state memif1/0 up"


def test_echo_addresses_per_role(tmp_path: Path) -> None:
    for role, address in ((Role.SERVER, "198.18.0.1/24"), (Role.CLIENT, "198.18.0.2/24")):
        spec = server_spec(tmp_path, role=role, activity=Activity.ECHO, interface_id=7)
        assert memif_setup(spec).commands()[-1] == (f"set interface ip address memif1/7 {address}")


def test_packet_stream_rendering_and_validation() -> None:
    stream = VppPacketStream("tx0", "memif1/2", frame_size=42, limit=100, rate=1e6)
    assert stream.cli() == (
        "packet-generator new name tx0 limit 100 rate 1e+06 size 42-42 node memif1/2-output "
        "tx-interface memif1/2 data { IP4: 02:fe:c6:12:00:01 -> ff:ff:ff:ff:ff:ff "
        "UDP: 198.18.0.1 -> 198.18.0.2 UDP: 1234 -> 2345 }"
    )
    assert stream.enable_cli() == "packet-generator enable-stream tx0"
    assert stream.disable_cli() == "packet-generator disable-stream tx0"
    for kwargs, match in (
        ({"frame_size": 41}, "frame_size 41"),
        ({"src_ip": "10.0.0.1"}, "outside 198.18.0.0/15"),
        ({"dst_mac": "FF:FF:FF:FF:FF:FF"}, "dst_mac"),
        ({"limit": -1}, "limit"),
        ({"rate": 0}, "rate"),
        ({"src_port": 70000}, "src_port"),
    ):
        with pytest.raises(ValueError, match=match):
            VppPacketStream("tx0", "memif1/2", **kwargs)
    with pytest.raises(ValueError, match="stream name"):
        VppPacketStream("tx 0", "memif1/2")


def test_abstract_socket_on_a_new_vpp(fake_bin: Path, workdir: Path, tmp_path: Path) -> None:
    spec = MemifSpec(role=Role.SERVER, socket_path="memif-harness-test", abstract=True)
    with make_peer(fake_bin, workdir, spec):
        assert commands_sent(fake_bin)[0] == (
            "create memif socket id 1 filename abstract:memif-harness-test"
        )


def test_abstract_socket_refused_when_the_binary_is_older_than_23_06(
    tmp_path: Path, workdir: Path
) -> None:
    old_bin = make_fake_bin(tmp_path / "old", version="22.10-release")
    spec = MemifSpec(role=Role.CLIENT, socket_path="memif-harness-test", abstract=True)
    with pytest.raises(PeerError, match=r"VPP 22\.10-release cannot use the abstract") as caught:
        make_peer(old_bin, workdir, spec)
    assert "23.06" in str(caught.value)
    assert not (old_bin / "vppctl-commands.log").exists()


def test_abstract_socket_refused_when_the_running_vpp_is_older_than_23_06(
    tmp_path: Path, workdir: Path
) -> None:
    unknown_bin = make_fake_bin(tmp_path / "unknown", version=None)
    set_output(unknown_bin, "show-version.txt", VERSION_LINE.format(version="23.02-release"))
    spec = MemifSpec(role=Role.SERVER, socket_path="memif-harness-test", abstract=True)
    peer = make_peer(unknown_bin, workdir, spec)
    assert peer.version() == "VPP (version unknown)"
    with pytest.raises(PeerError, match=r"VPP 23\.02-release cannot use the abstract"):
        peer.start()
    assert commands_sent(unknown_bin) == []  # refused before any configuration
    assert not peer.process.running
    assert not (workdir / "vpp-server").exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"secret": "two words"}, "secret"),
        ({"socket_path": "relative.sock"}, "must be absolute"),
        ({"socket_path": "@name"}, "leading '@'"),
    ],
)
def test_specs_vpp_cannot_express(
    fake_bin: Path, workdir: Path, tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(PeerError, match=match):
        make_peer(fake_bin, workdir, server_spec(tmp_path, **kwargs))


# --------------------------------------------------------------------------- link and status


def test_wait_for_link_false_then_true(started: VppPeer, fake_bin: Path) -> None:
    begun = time.monotonic()
    assert started.wait_for_link(0.2) is False
    assert time.monotonic() - begun >= 0.2
    set_output(fake_bin, "show-memif.txt", recorded("show_memif_vpp1904_master_dpdk_clients.txt"))
    assert started.wait_for_link(2.0) is True


def test_status_counters_and_link(started: VppPeer, fake_bin: Path) -> None:
    set_output(fake_bin, "show-memif.txt", recorded("show_memif_vpp1904_master_dpdk_clients.txt"))
    status = started.status()
    assert status.link_up and status.running
    assert status.disconnect is None and status.disconnect_text is None
    assert status.counters == PeerCounters(
        rx_frames=22086947,
        rx_bytes=25041439092,
        tx_frames=22087212,
        tx_bytes=25041709392,
        rx_errors=22086947,  # drops
        tx_errors=0,
    )
    set_output(fake_bin, "show-memif.txt", recorded("show_memif_vpp1904_master_not_connected.txt"))
    set_output(fake_bin, "show-interface.txt", recorded("show_interface_vpp2106.txt"))
    status = started.status()
    assert not status.link_up
    assert status.counters == PeerCounters()  # memif1/0 is not in that output


def test_status_reports_the_local_disconnect_reason(started: VppPeer, fake_bin: Path) -> None:
    text = recorded("show_memif_constructed_disconnect_reasons.txt")
    set_output(fake_bin, "show-memif.txt", text)
    status = started.status()
    assert not status.link_up
    assert status.disconnect is DisconnectReason.INCORRECT_SECRET
    assert status.disconnect_text == "incorrect secret"


def test_status_prefers_the_peers_reason_over_disconnect_received(
    fake_bin: Path, workdir: Path, tmp_path: Path
) -> None:
    # memif2/0 of the constructed output is a slave told "Incorrect secret" by a DPDK
    # server; renamed to the client peer's memif1/0.
    text = recorded("show_memif_constructed_disconnect_reasons.txt")
    text = text.replace("interface memif1/0", "interface memif9/0")
    text = text.replace("interface memif2/0", "interface memif1/0")
    set_output(fake_bin, "show-memif.txt", text)
    with make_peer(fake_bin, workdir, client_spec(tmp_path)) as peer:
        status = peer.status()
    assert status.disconnect is DisconnectReason.INCORRECT_SECRET
    assert status.disconnect_text == "Incorrect secret"


def test_status_when_the_interface_is_missing(started: VppPeer, fake_bin: Path) -> None:
    set_output(fake_bin, "show-memif.txt", recorded("show_memif_vpp2106_slave_zero_copy.txt"))
    with pytest.raises(PeerError, match="no interface memif1/0 in `show memif`"):
        started.status()
    with pytest.raises(PeerError, match="no interface memif1/0"):
        started.wait_for_link(1.0)


def test_version_from_show_version_and_from_the_binary(
    fake_bin: Path, workdir: Path, tmp_path: Path
) -> None:
    set_output(fake_bin, "show-version.txt", VERSION_LINE.format(version="24.06-rc0~12-gabc"))
    peer = make_peer(fake_bin, workdir, server_spec(tmp_path))
    assert peer.version() == "VPP 24.02-release"  # embedded in the executable
    with peer:
        assert peer.version() == "VPP 24.06-rc0~12-gabc"
    assert peer.version() == "VPP 24.06-rc0~12-gabc"  # what the run reported


# --------------------------------------------------------------------------- stop, failures


def test_stop_leaves_no_process_and_no_files(fake_bin: Path, workdir: Path, tmp_path: Path) -> None:
    peer = make_peer(fake_bin, workdir, server_spec(tmp_path, interface_id=2))
    peer.start()
    pid = peer.process.pid
    assert pid is not None
    runtime = workdir / "vpp-server"
    assert (runtime / "api.sock").exists() and (tmp_path / "m.sock").exists()
    peer.stop()
    assert commands_sent(fake_bin)[-2:] == [
        "delete interface memif memif1/2",
        "delete memif socket id 1",
    ]
    assert not peer.process.running and not peer.crashed
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not runtime.exists()
    assert not (tmp_path / "m.sock").exists()
    assert list(workdir.iterdir()) == []
    assert "fake vpp: starting" in peer.logs()
    status = peer.status()
    assert not status.running and not status.link_up
    peer.stop()  # twice is fine


def test_stop_keeps_a_socket_file_that_was_there_before(
    fake_bin: Path, workdir: Path, tmp_path: Path
) -> None:
    socket_file = tmp_path / "m.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(str(socket_file))
    with make_peer(fake_bin, workdir, server_spec(tmp_path)):
        pass
    assert stat.S_ISSOCK(socket_file.lstat().st_mode)


def test_startup_failure_raises_with_the_log_tail(
    fake_bin: Path, workdir: Path, tmp_path: Path
) -> None:
    peer = make_peer(fake_bin, workdir, server_spec(tmp_path), mode="fail")
    with pytest.raises(PeerError, match="vpp did not start: vpp exited with 1") as caught:
        peer.start()
    assert not isinstance(caught.value, PeerCrashed)
    assert "unknown input `bogus'" in caught.value.log_tail
    assert "--- peer log (tail) ---" in str(caught.value)
    assert not peer.process.running and not peer.crashed
    assert not (workdir / "vpp-server").exists()
    assert "unknown input `bogus'" in peer.logs()
    peer.stop()


def test_startup_timeout_is_not_a_crash(fake_bin: Path, workdir: Path, tmp_path: Path) -> None:
    peer = make_peer(
        fake_bin, workdir, server_spec(tmp_path), mode="no-socket", startup_timeout=0.5
    )
    with pytest.raises(PeerError, match=r"vpp did not start: vpp not ready within 0\.5 s"):
        peer.start()
    assert not peer.process.running and not peer.crashed
    assert not (workdir / "vpp-server").exists()


def test_rejected_command_stops_vpp(fake_bin: Path, workdir: Path, tmp_path: Path) -> None:
    set_output(fake_bin, "reject.txt", "set interface ip address")
    peer = make_peer(fake_bin, workdir, server_spec(tmp_path, activity=Activity.ECHO))
    with pytest.raises(PeerError, match="VPP rejected 'set interface ip address") as caught:
        peer.start()
    assert "failed to do it" in str(caught.value)
    assert "fake vpp: starting" in caught.value.log_tail
    assert not peer.process.running
    assert not (workdir / "vpp-server").exists()


def test_crash_is_reported(fake_bin: Path, workdir: Path, tmp_path: Path) -> None:
    peer = make_peer(fake_bin, workdir, server_spec(tmp_path))
    peer.start()
    try:
        assert peer.process.pid is not None
        os.kill(peer.process.pid, signal.SIGSEGV)
        deadline = time.monotonic() + 5
        while peer.process.running and time.monotonic() < deadline:
            time.sleep(0.02)
        assert peer.crashed
        assert peer.wait_for_link(0.1) is False
        with pytest.raises(PeerCrashed, match="vpp crashed"):
            peer.status()
    finally:
        peer.stop()
    assert peer.crashed
    assert not (workdir / "vpp-server").exists()


# --------------------------------------------------------------------------- no VPP


def test_no_vpp_on_path_gives_the_how_to(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PeerError) as caught:
        VppPeer(server_spec(tmp_path), tmp_path, search_path=str(empty))
    assert str(caught.value) == str(find_vpp(search_path=str(empty)))
    assert str(caught.value) == (
        f"not available: no `vpp` executable on PATH; how to get one: {HOW_TO_GET_VPP}"
    )


def test_missing_vpp_bin_gives_the_how_to(tmp_path: Path) -> None:
    with pytest.raises(PeerError, match="not available: --vpp-bin") as caught:
        VppPeer(server_spec(tmp_path), tmp_path, vpp_bin=str(tmp_path / "nothing" / "vpp"))
    assert str(caught.value).endswith(f"how to get one: {HOW_TO_GET_VPP}")


def test_vpp_gone_before_start_gives_the_how_to(
    fake_bin: Path, workdir: Path, tmp_path: Path
) -> None:
    peer = make_peer(fake_bin, workdir, server_spec(tmp_path))
    (fake_bin / "vpp").unlink()
    with pytest.raises(PeerError, match=f"not available: .*{re.escape(HOW_TO_GET_VPP)}$"):
        peer.start()
    assert peer.process.pid is None
    peer.stop()
