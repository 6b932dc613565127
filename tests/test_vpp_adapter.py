"""Tests of harness.peers.vpp: config and CLI text, recorded output, vppctl, process, find_vpp."""

from __future__ import annotations

import json
import shutil
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from harness.peers.reasons import DisconnectReason
from harness.peers.vpp import (
    HOW_TO_GET_VPP,
    MemifRing,
    RingDirection,
    VppAvailability,
    VppCommandError,
    Vppctl,
    VppInterfaceAddress,
    VppMemifInterface,
    VppMemifMode,
    VppMemifSetup,
    VppMemifSocket,
    VppParseError,
    VppProcess,
    VppRole,
    VppStartupConfig,
    VppStartupError,
    VppUnsupportedError,
    VppVersion,
    cli_error,
    embedded_version,
    find_vpp,
    parse_show_interface,
    parse_show_memif,
    parse_show_version,
)

RECORDED = Path(__file__).parent / "recorded" / "vpp"


def recorded_file(name: str) -> tuple[list[str], str]:
    """Split a recorded file into its "# ..." header lines and VPP's output."""
    lines = (RECORDED / name).read_text().splitlines(keepends=True)
    header = [line.rstrip("\n") for line in lines if line.startswith("#")]
    body_start = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    return header, "".join(lines[body_start:])


def recorded(name: str) -> str:
    return recorded_file(name)[1]


def recorded_command(name: str) -> str:
    for line in recorded_file(name)[0]:
        if line.startswith("# Command: "):
            return line.removeprefix("# Command: ")
    raise AssertionError(f"{name} has no '# Command:' header")


def test_every_recorded_file_says_where_it_came_from_and_which_version() -> None:
    files = sorted(RECORDED.glob("*.txt"))
    assert len(files) >= 20
    for path in files:
        header, body = recorded_file(path.name)
        text = "\n".join(header)
        assert header, path.name
        assert ("# Source: https://github.com/" in text) or text.startswith("# CONSTRUCTED"), path
        if text.startswith("# CONSTRUCTED"):
            assert "src/plugins/memif/cli.c" in text, path
        else:
            assert "VPP version:" in text, path
        assert body.strip(), path


# --------------------------------------------------------------------------- versions


def test_version_parsing() -> None:
    assert VppVersion.parse("19.04.4-rc0~4-g8f2ac2b~b137").release == (19, 4, 4)
    v2106 = VppVersion.parse("v21.06-release")
    assert (v2106.text, v2106.release) == ("21.06-release", (21, 6, 0))
    assert VppVersion.parse("21.01-rc0~395-g80ac72894~b2").release == (21, 1, 0)
    assert str(VppVersion.parse("24.02-release")) == "24.02-release"
    with pytest.raises(VppParseError):
        VppVersion.parse("release-24")


@pytest.mark.parametrize(
    ("text", "abstract"),
    [
        ("19.04.4-rc0~4-g8f2ac2b~b137", False),
        ("22.10-release", False),
        ("23.02-release", False),
        ("23.06-release", True),
        ("23.06-rc0~12-gabcdef", True),
        ("24.02-release", True),
        ("26.06-release", True),
    ],
)
def test_abstract_socket_support_starts_with_23_06(text: str, abstract: bool) -> None:
    assert VppVersion.parse(text).supports_abstract_sockets is abstract


@pytest.mark.parametrize(
    ("name", "version", "built_by", "built_on", "built_at"),
    [
        (
            "show_version_vpp1904.txt",
            "19.04.4-rc0~4-g8f2ac2b~b137",
            "root",
            "dbcd84b03fad",
            "Wed Jan  1 17:31:21 UTC 2020",
        ),
        (
            "show_version_vpp2106.txt",
            "21.06-release",
            "root",
            "0bbaef8ef60b",
            "2021-06-30T14:33:58",
        ),
        (
            "show_version_vpp1807_docs.txt",
            "18.07-release",
            "root",
            "c469eba2a593",
            "Mon Jul 30 23:27:03 UTC 2018",
        ),
    ],
)
def test_show_version_recorded(
    name: str, version: str, built_by: str, built_on: str, built_at: str
) -> None:
    parsed = parse_show_version(recorded(name))
    assert parsed.version.text == version
    assert (parsed.built_by, parsed.built_on, parsed.built_at) == (built_by, built_on, built_at)


def test_show_version_rejects_other_output() -> None:
    with pytest.raises(VppParseError):
        parse_show_version(recorded("show_memif_vpp2106_slave_zero_copy.txt"))


def test_embedded_version_is_read_from_the_executable(tmp_path: Path) -> None:
    binary = tmp_path / "vpp"
    line = b"vpp v23.10-release built by root on 1a2b3c at 2023-10-26T12:00:00"
    # Straddle a read-chunk boundary (1 MiB) to exercise the overlap.
    binary.write_bytes(b"\x7fELF" + b"\0" * ((1 << 20) - 20) + line + b"\0tail")
    found = embedded_version(binary)
    assert found is not None
    assert found.text == "23.10-release"
    plain = tmp_path / "plain"
    plain.write_bytes(b"\x7fELF" + b"\0" * 100)
    assert embedded_version(plain) is None
    assert embedded_version(tmp_path / "missing") is None


# --------------------------------------------------------------------------- configuration


def test_role_mapping_from_harness_roles() -> None:
    assert VppRole.from_harness("server") is VppRole.MASTER
    assert VppRole.from_harness("client") is VppRole.SLAVE
    assert VppRole.from_harness("MASTER") is VppRole.MASTER
    assert VppRole.from_harness("slave") is VppRole.SLAVE
    assert VppRole.MASTER.harness_role == "server"
    assert VppRole.SLAVE.harness_role == "client"
    with pytest.raises(ValueError, match="unknown memif role"):
        VppRole.from_harness("primary")


def test_socket_commands() -> None:
    sock = VppMemifSocket(1, "/run/memif-harness/vpp-1.sock")
    assert sock.cli() == "create memif socket id 1 filename /run/memif-harness/vpp-1.sock"
    assert sock.delete_cli() == "delete memif socket id 1"
    assert not sock.is_abstract
    assert sock.address == "/run/memif-harness/vpp-1.sock"


def test_abstract_socket_commands_and_address() -> None:
    sock = VppMemifSocket(7, "abstract:vpp/memif-eth0")
    assert sock.cli() == "create memif socket id 7 filename abstract:vpp/memif-eth0"
    assert sock.is_abstract
    assert sock.abstract_name == "vpp/memif-eth0"
    assert sock.address == "\0vpp/memif-eth0"
    netns = VppMemifSocket(8, "abstract:memif1,netns_name=/var/run/netns/h1")
    assert netns.abstract_name == "memif1"
    assert netns.address == "\0memif1"


def test_interface_command_defaults_for_a_server() -> None:
    iface = VppMemifInterface(id=0, socket_id=1, role="server")  # type: ignore[arg-type]
    assert iface.role is VppRole.MASTER
    assert iface.name == "memif1/0"
    assert iface.cli() == (
        "create interface memif id 0 socket-id 1 master "
        "rx-queues 1 tx-queues 1 ring-size 1024 buffer-size 2048"
    )
    assert iface.state_cli() == "set interface state memif1/0 up"
    assert iface.state_cli(up=False) == "set interface state memif1/0 down"
    assert iface.delete_cli() == "delete interface memif memif1/0"


def test_interface_command_with_every_option_for_a_client() -> None:
    iface = VppMemifInterface(
        id=42,
        socket_id=3,
        role=VppRole.from_harness("client"),
        ring_size=4096,
        buffer_size=9216,
        rx_queues=2,
        tx_queues=3,
        secret="s3cr3t",
        mode=VppMemifMode.IP,
        no_zero_copy=True,
        hw_addr="02:FE:00:00:00:2A",
    )
    assert iface.cli() == (
        "create interface memif id 42 socket-id 3 slave secret s3cr3t rx-queues 2 tx-queues 3 "
        "ring-size 4096 buffer-size 9216 mode ip hw-addr 02:fe:00:00:00:2a no-zero-copy"
    )


def test_default_socket_zero_needs_no_socket_command() -> None:
    setup = VppMemifSetup(interfaces=(VppMemifInterface(0, 0, VppRole.MASTER),))
    assert setup.commands() == (
        "create interface memif id 0 socket-id 0 master "
        "rx-queues 1 tx-queues 1 ring-size 1024 buffer-size 2048",
        "set interface state memif0/0 up",
    )


def test_setup_commands_in_order() -> None:
    setup = VppMemifSetup(
        sockets=(
            VppMemifSocket(1, "/tmp/mh/server.sock"),
            VppMemifSocket(2, "/tmp/mh/client.sock"),
        ),
        interfaces=(
            VppMemifInterface(0, 1, VppRole.MASTER, secret="abc"),
            VppMemifInterface(5, 2, VppRole.SLAVE, ring_size=512, no_zero_copy=True),
        ),
        addresses=(
            VppInterfaceAddress("memif1/0", "198.18.0.1/24"),
            VppInterfaceAddress("memif2/5", "198.19.255.1/30"),
        ),
    )
    assert setup.commands() == (
        "create memif socket id 1 filename /tmp/mh/server.sock",
        "create memif socket id 2 filename /tmp/mh/client.sock",
        "create interface memif id 0 socket-id 1 master secret abc "
        "rx-queues 1 tx-queues 1 ring-size 1024 buffer-size 2048",
        "create interface memif id 5 socket-id 2 slave "
        "rx-queues 1 tx-queues 1 ring-size 512 buffer-size 2048 no-zero-copy",
        "set interface state memif1/0 up",
        "set interface state memif2/5 up",
        "set interface ip address memif1/0 198.18.0.1/24",
        "set interface ip address memif2/5 198.19.255.1/30",
    )
    assert setup.teardown_commands() == (
        "delete interface memif memif1/0",
        "delete interface memif memif2/5",
        "delete memif socket id 1",
        "delete memif socket id 2",
    )
    assert setup.cli_script() == "".join(f"{command}\n" for command in setup.commands())
    assert (
        VppMemifSetup(sockets=setup.sockets, interfaces=setup.interfaces, admin_up=False).commands()
        == setup.commands()[:4]
    )


@pytest.mark.parametrize("ring_size", [0, 3, 1000, 1023, 3000, 65536, 65535])
def test_ring_size_must_be_a_power_of_two_up_to_32768(ring_size: int) -> None:
    with pytest.raises(ValueError, match="ring_size"):
        VppMemifInterface(0, 1, VppRole.SLAVE, ring_size=ring_size)


@pytest.mark.parametrize("ring_size", [1, 2, 1024, 16384, 32768])
def test_ring_size_powers_of_two_are_accepted(ring_size: int) -> None:
    assert f"ring-size {ring_size} " in VppMemifInterface(0, 1, "slave", ring_size=ring_size).cli()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rx_queues": 0}, "rx_queues"),
        ({"tx_queues": 256}, "tx_queues"),
        ({"buffer_size": 0}, "buffer_size"),
        ({"buffer_size": 65536}, "buffer_size"),
        ({"secret": "two words"}, "secret"),
        ({"secret": "x" * 24}, "secret longer"),
        ({"hw_addr": "02:fe:00:00:00"}, "hw_addr"),
        ({"id": -1}, "interface id"),
        ({"id": 1 << 32}, "interface id"),
        ({"socket_id": 0xFFFFFFFF}, "socket id"),
        ({"role": "primary"}, "unknown memif role"),
        ({"mode": "punt-inject"}, "punt-inject"),
    ],
)
def test_interface_validation(kwargs: dict[str, object], match: str) -> None:
    arguments: dict[str, object] = {"id": 0, "socket_id": 1, "role": VppRole.SLAVE, **kwargs}
    with pytest.raises(ValueError, match=match):
        VppMemifInterface(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("socket_id", "filename", "match"),
    [
        (0, "/tmp/a.sock", "built-in default socket"),
        (0xFFFFFFFF, "/tmp/a.sock", "socket id"),
        (1, "relative.sock", "must be absolute"),
        (1, "@vpp/memif", "does not treat a leading '@' as abstract"),
        (1, "/tmp/with space.sock", "without whitespace"),
        (1, "/" + "x" * 107, "at most 107"),
        (1, "abstract:", "empty name"),
        (1, "abstract:" + "n" * 106, "at most 105"),
        (1, "abstract:name,netns=foo", "netns_name=X or netns_pid=N"),
    ],
)
def test_socket_validation(socket_id: int, filename: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        VppMemifSocket(socket_id, filename)


@pytest.mark.parametrize(
    "version", ["19.04.4-rc0~4-g8f2ac2b~b137", "22.10-release", "23.02-release"]
)
def test_abstract_socket_is_refused_on_vpp_older_than_23_06(version: str) -> None:
    sock = VppMemifSocket(1, "abstract:vpp/memif-eth0")
    setup = VppMemifSetup(sockets=(sock,), interfaces=(VppMemifInterface(0, 1, VppRole.MASTER),))
    with pytest.raises(VppUnsupportedError, match=r"only from 23\.06"):
        setup.check_version(VppVersion.parse(version))
    with pytest.raises(VppUnsupportedError, match=version.split("~")[0]):
        sock.check_version(VppVersion.parse(version))


def test_abstract_socket_is_accepted_on_new_or_unknown_vpp() -> None:
    sock = VppMemifSocket(1, "abstract:vpp/memif-eth0")
    sock.check_version(VppVersion.parse("23.06-release"))
    sock.check_version(VppVersion.parse("24.02-release"))
    sock.check_version(None)
    VppMemifSocket(2, "/tmp/x.sock").check_version(VppVersion.parse("19.04-release"))


def test_vppctl_apply_checks_the_version_before_running_anything(tmp_path: Path) -> None:
    vppctl = Vppctl(tmp_path / "cli.sock", binary=str(tmp_path / "no-such-vppctl"))
    setup = VppMemifSetup(sockets=(VppMemifSocket(1, "abstract:x"),))
    with pytest.raises(VppUnsupportedError):
        vppctl.apply(setup, VppVersion.parse("22.10-release"))


@pytest.mark.parametrize(
    ("address", "match"),
    [
        ("10.0.0.1/24", "outside 198.18.0.0/15"),
        ("192.168.1.1/24", "outside 198.18.0.0/15"),
        ("198.20.0.1/24", "outside 198.18.0.0/15"),
        ("198.17.255.1/24", "outside 198.18.0.0/15"),
        ("198.18.0.1/14", "outside 198.18.0.0/15"),
        ("2001:db8::1/64", "outside 198.18.0.0/15"),
        ("198.18.0.1", "prefix length"),
        ("198.18.0.300/24", "not an IP address"),
    ],
)
def test_addresses_must_be_in_the_benchmarking_range(address: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        VppInterfaceAddress("memif1/0", address)


def test_benchmarking_range_edges_are_accepted() -> None:
    assert VppInterfaceAddress("memif1/0", "198.18.0.1/15").cli() == (
        "set interface ip address memif1/0 198.18.0.1/15"
    )
    assert VppInterfaceAddress("memif1/0", "198.19.255.254/31").address == "198.19.255.254/31"
    with pytest.raises(ValueError, match="interface name"):
        VppInterfaceAddress("memif 1/0", "198.18.0.1/24")


def test_setup_consistency_checks() -> None:
    server = VppMemifSocket(1, "/tmp/mh/a.sock")
    with pytest.raises(ValueError, match="not in sockets"):
        VppMemifSetup(interfaces=(VppMemifInterface(0, 9, VppRole.MASTER),))
    with pytest.raises(ValueError, match="duplicate socket ids"):
        VppMemifSetup(sockets=(server, VppMemifSocket(1, "/tmp/mh/b.sock")))
    with pytest.raises(ValueError, match="registered twice"):
        VppMemifSetup(sockets=(server, VppMemifSocket(2, "/tmp/mh/a.sock")))
    with pytest.raises(ValueError, match="both master and slave"):
        VppMemifSetup(
            sockets=(server,),
            interfaces=(
                VppMemifInterface(0, 1, VppRole.MASTER),
                VppMemifInterface(1, 1, VppRole.SLAVE),
            ),
        )
    with pytest.raises(ValueError, match="defined twice"):
        VppMemifSetup(
            sockets=(server,),
            interfaces=(
                VppMemifInterface(0, 1, VppRole.MASTER),
                VppMemifInterface(0, 1, VppRole.MASTER, secret="x"),
            ),
        )
    with pytest.raises(ValueError, match="unknown memif9/9"):
        VppMemifSetup(addresses=(VppInterfaceAddress("memif9/9", "198.18.0.1/24"),))


def test_startup_conf_minimal() -> None:
    config = VppStartupConfig(runtime_dir=Path("/tmp/mh/vpp1"))
    assert config.cli_socket == Path("/tmp/mh/vpp1/cli.sock")
    assert config.text() == textwrap.dedent(
        """\
        unix {
          nodaemon
          nosyslog
          cli-listen /tmp/mh/vpp1/cli.sock
          log /tmp/mh/vpp1/vpp.log
          runtime-dir /tmp/mh/vpp1
        }
        statseg {
          socket-name /tmp/mh/vpp1/stats.sock
        }
        plugins {
          plugin default { disable }
          plugin memif_plugin.so { enable }
        }
        """
    )


def test_startup_conf_with_everything() -> None:
    config = VppStartupConfig(
        runtime_dir=Path("/run/mh/run-7/vpp-a"),
        cli_socket=Path("/run/mh/run-7/vpp-a.cli"),
        log_file=Path("/var/log/mh/vpp-a.log"),
        stats_socket=Path("/run/mh/run-7/vpp-a.stats"),
        api_segment_prefix="mh-run-7-vpp-a",
        main_core=0,
        workers=(3, 1, 2, 5),
        buffers_per_numa=16384,
        buffers_page_size="4K",
        full_coredump=True,
        nosyslog=False,
        plugins=("memif_plugin.so", "ping_plugin.so"),
        plugin_path=Path("/opt/vpp/lib/vpp_plugins"),
        exec_file=Path("/run/mh/run-7/vpp-a.cli-script"),
    )
    assert config.text() == textwrap.dedent(
        """\
        unix {
          nodaemon
          cli-listen /run/mh/run-7/vpp-a.cli
          log /var/log/mh/vpp-a.log
          runtime-dir /run/mh/run-7/vpp-a
          full-coredump
          exec /run/mh/run-7/vpp-a.cli-script
        }
        api-segment {
          prefix mh-run-7-vpp-a
        }
        statseg {
          socket-name /run/mh/run-7/vpp-a.stats
        }
        cpu {
          main-core 0
          corelist-workers 1-3,5
        }
        buffers {
          buffers-per-numa 16384
          page-size 4K
        }
        plugins {
          path /opt/vpp/lib/vpp_plugins
          plugin default { disable }
          plugin memif_plugin.so { enable }
          plugin ping_plugin.so { enable }
        }
        """
    )


def test_startup_conf_workers_without_main_core() -> None:
    text = VppStartupConfig(runtime_dir=Path("/tmp/v"), workers=(4,)).text()
    assert "cpu {\n  corelist-workers 4\n}\n" in text
    assert "main-core" not in text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"runtime_dir": Path("relative/dir")}, "absolute"),
        ({"runtime_dir": Path("/tmp/with space")}, "without whitespace"),
        ({"log_file": Path("/tmp/v/{log}")}, "without whitespace"),
        ({"cli_socket": Path("/tmp/" + "c" * 120)}, "at most 107"),
        ({"main_core": 1, "workers": (1, 2)}, "also a worker"),
        ({"workers": (2, 2)}, "distinct"),
        ({"main_core": -1}, "main_core"),
        ({"buffers_per_numa": 0}, "buffers_per_numa"),
        ({"buffers_page_size": "huge"}, "buffers_page_size"),
        ({"plugins": ("memif",)}, "plugin file name"),
        ({"api_segment_prefix": "a/b"}, "api_segment_prefix"),
    ],
)
def test_startup_conf_validation(kwargs: dict[str, object], match: str) -> None:
    arguments: dict[str, object] = {"runtime_dir": Path("/tmp/v"), **kwargs}
    with pytest.raises(ValueError, match=match):
        VppStartupConfig(**arguments)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- show memif


def test_show_memif_vpp1904_masters_with_dpdk_clients() -> None:
    show = parse_show_memif(recorded("show_memif_vpp1904_master_dpdk_clients.txt"))
    assert [(s.socket_id, s.listener, s.interface_count, s.filename) for s in show.sockets] == [
        (2, True, 1, "/run/memif-dfa9b2387258-net2.sock"),
        (0, False, None, "/run/vpp/memif.sock"),
        (1, True, 1, "/run/memif-dfa9b2387258-net1.sock"),
    ]
    assert [i.name for i in show.interfaces] == ["memif1/0", "memif2/0"]
    first = show.interface("memif1/0")
    assert (first.socket_id, first.id, first.mode) == (1, 0, "ethernet")
    assert first.socket_filename == "/run/memif-dfa9b2387258-net1.sock"
    assert first.role is VppRole.MASTER
    assert first.flags == frozenset({"admin-up", "connected"})
    assert first.admin_up and first.connected and not first.connecting and not first.zero_copy
    assert (first.remote_name, first.remote_interface) == ("DPDK 19.08.0", "(null)")
    assert (first.listener_fd, first.conn_fd) == (42, 44)
    assert (first.num_s2m_rings, first.num_m2s_rings, first.buffer_size) == (1, 1, 0)
    assert first.num_regions == 1
    assert [(r.index, r.size, r.fd) for r in first.regions] == [(0, 4227328, 46)]
    assert first.ring_size == 1024
    assert first.rings == (
        MemifRing(RingDirection.M2S, 0, 0, 16512, 1024, 50, 2339, 1315, 0x0001, 0),
        MemifRing(RingDirection.S2M, 0, 0, 0, 1024, 48, 1315, 1315, 0x0001, 0),
    )
    assert first.local_disconnect_reason is None and first.local_reason is None
    second = show.interface("memif2/0")
    assert (second.listener_fd, second.conn_fd, second.socket_id) == (43, 45, 2)
    assert [(r.head, r.tail, r.int_fd) for r in second.rings] == [(1024, 0, 51), (0, 0, 49)]
    assert show.socket(0).filename == "/run/vpp/memif.sock"
    with pytest.raises(KeyError):
        show.interface("memif3/0")


def test_show_memif_vpp1904_masters_not_connected() -> None:
    show = parse_show_memif(recorded("show_memif_vpp1904_master_not_connected.txt"))
    assert len(show.sockets) == 3
    for name, socket_id, listener_fd in (("memif1/0", 1, 43), ("memif2/0", 2, 44)):
        info = show.interface(name)
        assert info.flags == frozenset({"admin-up"})
        assert info.admin_up and not info.connected
        assert (info.socket_id, info.listener_fd, info.conn_fd) == (socket_id, listener_fd, 0)
        assert (info.num_s2m_rings, info.num_m2s_rings, info.num_regions) == (0, 0, 0)
        assert info.rings == () and info.regions == () and info.ring_size is None
        assert info.remote_name is None and info.remote_interface is None


def test_show_memif_vpp1904_three_queue_pairs() -> None:
    show = parse_show_memif(recorded("show_memif_vpp1904_master_3_queues.txt"))
    info = show.interface("memif1/0")
    assert (info.num_s2m_rings, info.num_m2s_rings) == (3, 3)
    assert info.regions[0].size == 12681984
    directions = [(ring.direction, ring.index) for ring in info.rings]
    assert directions == [
        (RingDirection.M2S, 0),
        (RingDirection.M2S, 1),
        (RingDirection.M2S, 2),
        (RingDirection.S2M, 0),
        (RingDirection.S2M, 1),
        (RingDirection.S2M, 2),
    ]
    offsets = [ring.offset for ring in info.rings]
    assert offsets == [49536, 66048, 82560, 0, 16512, 33024]
    # Copy-mode layout (fact sheet §4.4/4.5): 6 ring headers of 2*64 + 1024*16 bytes, S2M first,
    # then 6 * 1024 buffers of 2048 bytes - the region size VPP reports.
    ring_bytes = 2 * 64 + 1024 * 16
    assert sorted(offsets) == [i * ring_bytes for i in range(6)]
    assert info.regions[0].size == 6 * ring_bytes + 6 * 1024 * 2048
    assert (info.rings[1].head, info.rings[1].tail) == (4554, 3530)
    assert (info.rings[4].head, info.rings[4].tail) == (49549, 49549)
    assert show.interface("memif2/0").rings[1].head == 47043


def test_show_memif_vpp1904_slave_towards_a_dpdk_master() -> None:
    show = parse_show_memif(recorded("show_memif_vpp1904_slave_to_dpdk_master.txt"))
    assert show.socket(2).listener is False
    slave = show.interface("memif2/0")
    assert slave.role is VppRole.SLAVE
    assert slave.flags == frozenset({"admin-up", "slave", "connected"})
    assert (slave.listener_fd, slave.conn_fd, slave.buffer_size) == (0, 47, 2048)
    assert slave.socket_filename == "/run/memif-3f78f465c811-net2.sock"
    assert [ring.direction for ring in slave.rings] == [RingDirection.S2M, RingDirection.M2S]
    master = show.interface("memif1/0")
    # Unmasked u16 indices: the tail may be "ahead" of head numerically.
    assert (master.rings[0].head, master.rings[0].tail) == (33494, 55953)


def test_show_memif_vpp2106_master_with_two_vpp_slaves() -> None:
    show = parse_show_memif(recorded("show_memif_vpp2106_master_two_interfaces.txt"))
    assert [(s.socket_id, s.listener, s.interface_count) for s in show.sockets] == [(0, True, 2)]
    first, second = show.interfaces
    assert (first.name, first.remote_name, first.remote_interface) == (
        "memif0/0",
        "VPP 21.06-release",
        "memif0/0",
    )
    assert first.socket_filename == "/run/vpp/memif.sock"
    assert [(r.index, r.size, r.fd) for r in first.regions] == [(0, 33024, 23), (1, 41943040, 24)]
    assert first.num_regions == 2
    assert (first.rings[0].head, first.rings[0].tail) == (1024, 3)
    assert (second.name, second.id, second.conn_fd, second.remote_interface) == (
        "memif0/2",
        2,
        27,
        "memif0/2",
    )


def test_show_memif_vpp2106_zero_copy_slaves() -> None:
    show = parse_show_memif(recorded("show_memif_vpp2106_slave_zero_copy.txt"))
    for info in show.interfaces:
        assert info.role is VppRole.SLAVE
        assert info.zero_copy and info.connected and info.admin_up
        assert info.buffer_size == 2048
        assert info.listener_fd == 0
        assert [ring.direction for ring in info.rings] == [RingDirection.S2M, RingDirection.M2S]
    assert show.interface("memif0/2").conn_fd == 23
    assert show.interface("memif0/0").regions[1].fd == 4


def test_show_memif_vpp2106_slave_not_yet_admin_up() -> None:
    show = parse_show_memif(recorded("show_memif_vpp2106_slave_admin_down.txt"))
    waiting = show.interface("memif0/2")
    assert waiting.flags == frozenset({"slave", "zero-copy"})
    assert not waiting.admin_up and not waiting.connected
    assert waiting.role is VppRole.SLAVE and waiting.zero_copy
    assert (waiting.num_s2m_rings, waiting.buffer_size, waiting.num_regions) == (0, 0, 0)
    assert show.interface("memif0/0").connected


def test_show_memif_issue627_with_collapsed_whitespace() -> None:
    show = parse_show_memif(recorded("show_memif_issue627_whitespace_collapsed.txt"))
    assert [(s.socket_id, s.listener, s.filename) for s in show.sockets] == [
        (0, False, "/run/vpp/memif.sock"),
        (1, True, "/work/c/vpp/memif2"),
    ]
    info = show.interface("memif1/0")
    assert info.remote_name == "VPP 21.01-rc0~395-g80ac72894~b2"
    assert info.socket_filename == "/work/c/vpp/memif2"
    assert info.connected and info.role is VppRole.MASTER
    assert [(r.index, r.size) for r in info.regions] == [(0, 33024), (1, 41943040)]
    assert info.rings == (
        MemifRing(RingDirection.M2S, 0, 0, 16512, 1024, 28, 1024, 0, 1, 0),
        MemifRing(RingDirection.S2M, 0, 0, 0, 1024, 27, 0, 0, 1, 0),
    )


def test_show_memif_vpp2001_with_a_libmemif_peer() -> None:
    info = parse_show_memif(recorded("show_memif_vpp2001_libmemif_peer.txt")).interface("memif0/0")
    assert (info.remote_name, info.remote_interface) == ("ICMP_Responder", "memif_connection")
    assert [r.size for r in info.regions] == [33024, 4194304]
    # The libmemif slave polls in interrupt mode: its M2S ring is not masked.
    assert [ring.flags for ring in info.rings] == [0x0000, 0x0001]


def test_show_memif_vpp1710_old_format_master() -> None:
    show = parse_show_memif(recorded("show_memif_vpp1710_old_format_master.txt"))
    assert show.sockets == ()
    info = show.interface("memif0/0")
    assert info.socket_id is None and info.num_regions is None
    assert info.socket_filename == "/run/vpp/memif.sock"
    assert (info.id, info.mode, info.listener_fd, info.conn_fd) == (0, "ethernet", 12, 13)
    # The old label followed the role: both rings read master-to-slave (see the file header).
    assert [(r.direction, r.offset, r.int_fd) for r in info.rings] == [
        (RingDirection.M2S, 32896, 16),
        (RingDirection.M2S, 0, 15),
    ]
    assert info.regions == ()


def test_show_memif_vpp1710_old_format_slave_with_two_queues() -> None:
    info = parse_show_memif(recorded("show_memif_vpp1710_old_format_slave_2_queues.txt")).interface(
        "memif0/0"
    )
    assert info.role is VppRole.SLAVE
    assert (info.listener_fd, info.conn_fd, info.buffer_size) == (-1, 12, 2048)
    assert [(r.index, r.offset, r.flags) for r in info.rings] == [
        (0, 0, 0),
        (1, 32896, 0),
        (0, 65792, 1),
        (1, 98688, 1),
    ]
    assert {ring.direction for ring in info.rings} == {RingDirection.S2M}


def test_show_memif_calico_abstract_socket() -> None:
    show = parse_show_memif(recorded("show_memif_calico_abstract.txt"))
    abstract = show.socket(101)
    assert abstract.is_abstract and abstract.listener and abstract.interface_count == 1
    assert abstract.filename == "abstract:memif1,netns_name=/var/run/netns/cni-75e61-4119-0b004"
    info = show.interface("memif1013904223/0")
    assert info.socket_id == 1013904223
    # The (hand-edited) table does not list that socket id.
    assert info.socket_filename is None
    assert info.flags == frozenset({"admin-up"}) and info.listener_fd == 41


def test_show_memif_constructed_disconnect_reasons() -> None:
    show = parse_show_memif(recorded("show_memif_constructed_disconnect_reasons.txt"))
    master = show.interface("memif1/0")
    assert master.local_disconnect_reason == "incorrect secret"
    assert master.local_reason is DisconnectReason.INCORRECT_SECRET
    assert master.remote_disconnect_reason is None and master.remote_reason is None
    slave = show.interface("memif2/0")
    assert slave.local_disconnect_reason == "disconnect received"
    assert slave.local_reason is DisconnectReason.DISCONNECT_RECEIVED
    assert slave.remote_disconnect_reason == "Incorrect secret"
    assert slave.remote_reason is DisconnectReason.INCORRECT_SECRET
    assert (slave.num_s2m_rings, slave.buffer_size, slave.num_regions) == (1, 2048, 0)
    assert slave.socket_filename == "/tmp/memif-harness/dpdk-server.sock"


def test_show_memif_constructed_without_interfaces() -> None:
    show = parse_show_memif(recorded("show_memif_constructed_no_interfaces.txt"))
    assert show.interfaces == ()
    assert [(s.socket_id, s.listener, s.filename) for s in show.sockets] == [
        (0, False, "/run/vpp/memif.sock")
    ]
    assert parse_show_memif("") == parse_show_memif("\n")
    assert parse_show_memif("").interfaces == ()


def test_show_memif_constructed_error_for_an_unknown_interface() -> None:
    name = "show_memif_constructed_unknown_interface.txt"
    with pytest.raises(VppCommandError) as caught:
        parse_show_memif(recorded(name))
    assert caught.value.message == "unknown input `memif9/9'"
    assert cli_error(recorded_command(name), recorded(name)) == "unknown input `memif9/9'"


def test_show_memif_rejects_other_output() -> None:
    with pytest.raises(VppParseError, match="not show memif output"):
        parse_show_memif(recorded("show_version_vpp2106.txt"))
    with pytest.raises(VppParseError, match="lacks"):
        parse_show_memif("interface memif0/0\n  flags admin-up\n")
    with pytest.raises(VppParseError, match="sockets table"):
        parse_show_memif("sockets\n  id  listener    filename\n  what is this\n")


# --------------------------------------------------------------------------- show interface


def test_show_interface_vpp1904_with_drops() -> None:
    stats = parse_show_interface(recorded("show_interface_vpp1904_drops.txt"))
    assert list(stats) == [
        "TenGigabitEthernet6/0/0",
        "TenGigabitEthernet6/0/1",
        "local0",
        "memif1/0",
        "memif2/0",
    ]
    memif = stats["memif1/0"]
    assert (memif.index, memif.state, memif.admin_up, memif.mtu) == (3, "up", True, (9000, 0, 0, 0))
    assert (memif.rx_packets, memif.rx_bytes) == (22086947, 25041439092)
    assert (memif.tx_packets, memif.tx_bytes) == (22087212, 25041709392)
    assert memif.drops == 22086947
    assert memif.counter("ip4") == 22086947
    assert dict(stats["TenGigabitEthernet6/0/0"].counters) == {
        "rx packets": 22087212,
        "rx bytes": 25041709392,
    }
    idle = stats["memif2/0"]
    assert idle.counters == {} and idle.rx_packets == 0 and idle.drops == 0
    local = stats["local0"]
    assert (local.index, local.state, local.admin_up, local.mtu) == (0, "down", False, (0, 0, 0, 0))


def test_show_interface_vpp1904_with_tx_errors() -> None:
    stats = parse_show_interface(recorded("show_interface_vpp1904_tx_error.txt"))
    phy = stats["TenGigabitEthernet6/0/0"]
    assert phy.counter("tx-error") == 458997285
    assert phy.tx_packets == 616631302 and phy.tx_bytes == 696194649320
    memif = stats["memif1/0"]
    assert (memif.rx_packets, memif.rx_bytes) == (616631302, 696194649320)
    assert stats["memif2/0"].counters == {"tx packets": 70587607, "tx bytes": 79981831588}


def test_show_interface_vpp2106() -> None:
    stats = parse_show_interface(recorded("show_interface_vpp2106.txt"))
    host = stats["host-veth-vpp1"]
    assert dict(host.counters) == {
        "rx packets": 100,
        "rx bytes": 7084,
        "tx packets": 7,
        "tx bytes": 574,
        "drops": 93,
        "ip4": 5,
        "ip6": 93,
    }
    memif = stats["memif0/0"]
    assert (memif.index, memif.admin_up, memif.mtu, memif.counters) == (
        2,
        True,
        (9000, 0, 0, 0),
        {},
    )
    assert stats["local0"].state == "down"


def test_show_interface_without_the_mtu_column() -> None:
    stats = parse_show_interface(recorded("show_interface_vpp16_no_mtu_column.txt"))
    assert [(s.name, s.index, s.state, s.mtu) for s in stats.values()] == [
        ("GigabitEthernet0/8/0", 5, "up", None),
        ("GigabitEthernet0/8/0.1", 8, "down", None),
    ]


def test_show_interface_rejects_other_output() -> None:
    with pytest.raises(VppParseError, match="header"):
        parse_show_interface(recorded("show_memif_vpp2106_slave_zero_copy.txt"))
    with pytest.raises(VppCommandError):
        parse_show_interface("show interface: unknown input `bogus'\n")


# --------------------------------------------------------------------------- CLI errors


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "cli_error_set_interface_ip_address.txt",
            "failed to add 1.2.3.4/24 which conflicts with 1.2.3.4/24 for interface pg0",
        ),
        ("cli_error_unknown_input.txt", "unknown input `loop0'"),
        ("show_memif_constructed_unknown_interface.txt", "unknown input `memif9/9'"),
    ],
)
def test_cli_errors_recorded(name: str, message: str) -> None:
    assert cli_error(recorded_command(name), recorded(name)) == message


def test_cli_error_accepts_abbreviated_commands_and_ignores_normal_output() -> None:
    output = recorded("cli_error_set_interface_ip_address.txt")
    assert cli_error("set int ip addr pg0 1.2.3.4/24", output) is not None
    assert cli_error("show interface", output) is None
    assert cli_error("bogus command", "unknown input `bogus command'\n") == (
        "unknown input `bogus command'"
    )
    for name in (
        "show_version_vpp1904.txt",
        "show_memif_vpp2106_slave_zero_copy.txt",
        "show_interface_vpp2106.txt",
    ):
        assert cli_error("show version", recorded(name)) is None
    assert cli_error("create interface memif id 0 master", "") is None


# --------------------------------------------------------------------------- vppctl and process

FAKE_VPP = """\
import os, re, signal, socket, sys, time
conf = open(sys.argv[2]).read()
cli = re.search(r"cli-listen (\\S+)", conf).group(1)
print("fake vpp: starting with", sys.argv[2], flush=True)
mode = os.environ.get("FAKE_VPP_MODE", "")
if mode == "fail":
    print("vlib_call_all_config_functions: unknown input `bogus'", flush=True)
    sys.exit(1)
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
if mode in ("no-socket", "ignore-term"):
    while True:
        time.sleep(0.05)
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(cli)
listener.listen(16)
while True:
    connection, _ = listener.accept()
    connection.close()
"""

FAKE_VPPCTL = """\
import pathlib, socket, sys
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
if command == "show version":
    print("vpp v24.02-release built by fake on testhost at 2024-02-28T00:00:00")
elif command == "show memif":
    print((here / "show-memif.txt").read_text(), end="")
elif command.startswith("bogus"):
    print(f"unknown input `{command}'")
"""


def write_script(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_script(bin_dir / "vpp", FAKE_VPP)
    write_script(bin_dir / "vppctl", FAKE_VPPCTL)
    (bin_dir / "show-memif.txt").write_text(recorded("show_memif_vpp2106_slave_zero_copy.txt"))
    return bin_dir


def fake_process(fake_bin: Path, tmp_path: Path, mode: str = "", **kwargs: float) -> VppProcess:
    config = VppStartupConfig(runtime_dir=tmp_path / "rt", api_segment_prefix="mh-test")
    return VppProcess(
        config,
        vpp_bin=str(fake_bin / "vpp"),
        vppctl_bin=str(fake_bin / "vppctl"),
        env={"FAKE_VPP_MODE": mode, "PATH": "/usr/bin:/bin"},
        poll_interval=0.02,
        **kwargs,
    )


def test_process_starts_answers_and_stops(fake_bin: Path, tmp_path: Path) -> None:
    process = fake_process(fake_bin, tmp_path)
    with process:
        assert process.running and process.pid is not None
        assert process.version is not None and process.version.text == "24.02-release"
        assert process.startup_conf.read_text() == process.config.text()
        assert process.config.cli_socket is not None and process.config.cli_socket.exists()
        assert "fake vpp: starting" in process.log_tail()
        info = process.wait_connected("memif0/2", timeout=2)
        assert info.zero_copy
    assert not process.running
    assert process._proc is not None and process._proc.returncode == 0
    assert not (tmp_path / "rt").exists()
    assert "fake vpp: starting" in process.last_log_tail


def test_process_apply_runs_the_setup_commands_in_order(fake_bin: Path, tmp_path: Path) -> None:
    setup = VppMemifSetup(
        sockets=(VppMemifSocket(1, str(tmp_path / "m.sock")),),
        interfaces=(VppMemifInterface(0, 1, VppRole.SLAVE),),
        addresses=(VppInterfaceAddress("memif1/0", "198.18.0.2/24"),),
    )
    with fake_process(fake_bin, tmp_path) as process:
        process.apply(setup)
        with pytest.raises(VppCommandError, match="unknown input `bogus thing'"):
            process.vppctl.run("bogus thing")
        assert process.vppctl.run("bogus thing", check=False).startswith("unknown input")
    commands = (fake_bin / "vppctl-commands.log").read_text().splitlines()
    assert commands[-len(setup.commands()) - 2 : -2] == list(setup.commands())


def test_process_refuses_abstract_sockets_on_an_old_vpp(fake_bin: Path, tmp_path: Path) -> None:
    setup = VppMemifSetup(sockets=(VppMemifSocket(1, "abstract:h"),))
    with fake_process(fake_bin, tmp_path) as process:
        process.version = VppVersion.parse("22.10-release")
        with pytest.raises(VppUnsupportedError):
            process.apply(setup)


def test_process_startup_failure_carries_the_log_tail(fake_bin: Path, tmp_path: Path) -> None:
    process = fake_process(fake_bin, tmp_path, mode="fail", startup_timeout=10)
    with pytest.raises(VppStartupError, match="exited with 1") as caught:
        process.start()
    assert "unknown input `bogus'" in caught.value.log_tail
    assert "unknown input `bogus'" in str(caught.value)
    assert not process.running
    assert not (tmp_path / "rt").exists()


def test_process_startup_timeout_stops_it(fake_bin: Path, tmp_path: Path) -> None:
    process = fake_process(fake_bin, tmp_path, mode="no-socket", startup_timeout=0.5)
    with pytest.raises(VppStartupError, match=r"not ready within 0\.5 s"):
        process.start()
    assert not process.running


def test_process_stop_escalates_to_sigkill(fake_bin: Path, tmp_path: Path) -> None:
    process = fake_process(
        fake_bin, tmp_path, mode="ignore-term", startup_timeout=0.3, stop_timeout=0.3
    )
    with pytest.raises(VppStartupError):
        process.start()
    assert process._proc is not None and process._proc.returncode == -9


def test_vppctl_reports_a_missing_socket(fake_bin: Path, tmp_path: Path) -> None:
    vppctl = Vppctl(tmp_path / "nothing.sock", binary=str(fake_bin / "vppctl"))
    assert vppctl.argv("show memif") == [
        str(fake_bin / "vppctl"),
        "-s",
        str(tmp_path / "nothing.sock"),
        "show memif",
    ]
    with pytest.raises(Exception, match="vppctl 'show version' exited with 1"):
        vppctl.run("show version")
    prefixed = Vppctl("/run/vpp/cli.sock", command_prefix=("docker", "exec", "vpp1"))
    assert prefixed.argv("show version")[:4] == ["docker", "exec", "vpp1", "vppctl"]


# --------------------------------------------------------------------------- find_vpp


def test_find_vpp_on_an_empty_path_is_not_available(tmp_path: Path) -> None:
    availability = find_vpp(search_path=str(tmp_path))
    assert not availability and availability.available is False
    assert str(availability) == (
        "not available: no `vpp` executable on PATH; how to get one: "
        "install VPP from fd.io packages or pass --vpp-bin / --vpp-image"
    )
    assert HOW_TO_GET_VPP in str(availability)


@pytest.mark.skipif(shutil.which("vpp") is not None, reason="this host has a vpp on PATH")
def test_find_vpp_on_this_machine_is_not_available() -> None:
    availability = find_vpp()
    assert not availability.available
    assert str(availability).startswith("not available: ")
    assert str(availability).endswith(f"how to get one: {HOW_TO_GET_VPP}")


def test_find_vpp_with_a_missing_vpp_bin(tmp_path: Path) -> None:
    availability = find_vpp(str(tmp_path / "vpp"))
    assert not availability
    assert "--vpp-bin" in str(availability) and HOW_TO_GET_VPP in str(availability)


def test_find_vpp_detects_a_fake_vpp_reporting_a_version(tmp_path: Path) -> None:
    write_script(
        tmp_path / "vpp",
        "print('vpp v24.02-release built by ci on builder at 2024-02-28T12:00:00')\n",
    )
    write_script(tmp_path / "vppctl", "")
    availability = find_vpp(search_path=str(tmp_path))
    assert availability.available
    assert availability.version is not None and availability.version.text == "24.02-release"
    assert availability.version.supports_abstract_sockets
    assert (availability.vpp_bin, availability.vppctl_bin) == (
        tmp_path / "vpp",
        tmp_path / "vppctl",
    )
    assert str(availability) == (
        f"available (VPP 24.02-release, binary {tmp_path / 'vpp'} with {tmp_path / 'vppctl'})"
    )
    # The same through --vpp-bin, with vppctl found next to it.
    assert find_vpp(str(tmp_path / "vpp"), search_path="/nonexistent").available


def test_find_vpp_without_a_version_string_or_without_vppctl(tmp_path: Path) -> None:
    write_script(tmp_path / "vpp", "print('hello')\n")
    assert find_vpp(search_path=str(tmp_path)).reason == (
        f"found {tmp_path / 'vpp'} but no `vppctl` next to it or on PATH"
    )
    write_script(tmp_path / "vppctl", "")
    availability = find_vpp(search_path=str(tmp_path))
    assert availability.available and availability.version is None
    assert str(availability).startswith("available (version unknown, binary ")


def test_find_vpp_image_needs_docker_and_a_local_image(tmp_path: Path) -> None:
    assert "no `docker` CLI" in str(
        find_vpp(vpp_image="ligato/vpp-base", search_path=str(tmp_path))
    )
    write_script(
        tmp_path / "docker",
        "import sys\nprint('Error: No such image: ' + sys.argv[-1], file=sys.stderr)\n"
        "sys.exit(1)\n",
    )
    missing = find_vpp(vpp_image="ligato/vpp-base:24.02", search_path=str(tmp_path))
    assert not missing
    assert "not available locally" in missing.reason  # type: ignore[operator]
    assert "docker pull ligato/vpp-base:24.02" in str(missing)
    labels = {"org.opencontainers.image.version": "24.02-release"}
    write_script(tmp_path / "docker", f"print({json.dumps(json.dumps(labels))})\n")
    present = find_vpp(vpp_image="ligato/vpp-base:24.02", search_path=str(tmp_path))
    assert present.available and present.image == "ligato/vpp-base:24.02"
    assert present.version is not None and present.version.text == "24.02-release"
    assert str(present) == "available (VPP 24.02-release, image ligato/vpp-base:24.02)"
    write_script(tmp_path / "docker", "print('null')\n")
    unlabelled = find_vpp(vpp_image="x/vpp", search_path=str(tmp_path))
    assert unlabelled.available and unlabelled.version is None


def test_availability_string_forms() -> None:
    assert (
        str(VppAvailability(False, reason="r"))
        == f"not available: r; how to get one: {HOW_TO_GET_VPP}"
    )
    assert bool(VppAvailability(True, how="h")) is True
