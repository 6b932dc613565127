"""Tests of harness.peers.testpmd: command lines, parsers (recorded output), process driver."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.peers.testpmd import (
    PROMPT,
    ForwardCounters,
    MemifRole,
    PortInfo,
    PortStats,
    TestpmdAfPacketPort,
    TestpmdCommandError,
    TestpmdConfig,
    TestpmdExitedError,
    TestpmdMemifPort,
    TestpmdParseError,
    TestpmdProcess,
    TestpmdStartupError,
    TestpmdTimeoutError,
    _find_prompt,
    hugepages_available,
    hugetlbfs_mounts,
    parse_all_port_stats,
    parse_forward_stats,
    parse_port_info,
    parse_port_stats,
    parse_version,
    runtime_dir,
    salient_lines,
    version,
)

RECORDED = Path(__file__).parent / "recorded" / "testpmd"


def recorded(name: str) -> str:
    return (RECORDED / name).read_text()


def server_port(path: str | Path = "/run/memif/m.sock", **kwargs: object) -> TestpmdMemifPort:
    return TestpmdMemifPort(MemifRole.SERVER, path, **kwargs)  # type: ignore[arg-type]


def client_port(path: str | Path = "/run/memif/m.sock", **kwargs: object) -> TestpmdMemifPort:
    return TestpmdMemifPort(MemifRole.CLIENT, path, **kwargs)  # type: ignore[arg-type]


def unique_prefix(tag: str) -> str:
    return f"tpt{uuid.uuid4().hex[:8]}{tag}"


def split_at_double_dash(argv: list[str]) -> tuple[list[str], list[str]]:
    index = argv.index("--")
    return argv[:index], argv[index + 1 :]


# --------------------------------------------------------------------------- vdev arguments


def test_vdev_arg_server_defaults_pass_socket_abstract_no() -> None:
    assert server_port("/tmp/x/m.sock").vdev_arg(0) == (
        "net_memif0,role=server,id=0,socket=/tmp/x/m.sock,socket-abstract=no,rsize=10,bsize=2048"
    )


def test_vdev_arg_client_with_secret_zero_copy_and_mac() -> None:
    port = client_port(
        "/s/m.sock",
        id=7,
        secret="s3cret",
        rsize=12,
        bsize=4096,
        zero_copy=True,
        mac="02:00:00:00:00:01",
    )
    assert port.vdev_arg(3) == (
        "net_memif3,role=client,id=7,socket=/s/m.sock,socket-abstract=no,rsize=12,bsize=4096,"
        "secret=s3cret,zero-copy=yes,mac=02:00:00:00:00:01"
    )


def test_vdev_arg_abstract_socket_is_explicit_too() -> None:
    assert "socket-abstract=yes" in server_port("memif-abstract", socket_abstract=True).vdev_arg(0)


def test_role_given_as_string_is_normalised() -> None:
    port = TestpmdMemifPort("client", "/s/m.sock")  # type: ignore[arg-type]
    assert port.role is MemifRole.CLIENT
    assert "role=client" in port.vdev_arg(0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"socket_path": "/a,b.sock"}, "must not contain"),
        ({"socket_path": "/" + "x" * 107}, "at most 107"),
        ({"secret": "x" * 24}, "longer than 23 bytes"),
        ({"secret": "a,b"}, "must not contain"),
        ({"rsize": 15}, "not in 1..14"),
        ({"rsize": 0}, "not in 1..14"),
        ({"bsize": 0}, "positive"),
        ({"id": -1}, "32-bit"),
        ({"mac": "02:00:00:00:00"}, "aa:bb"),
        ({"role": "master"}, "master"),
    ],
)
def test_port_rejects_values_devargs_cannot_carry(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"role": MemifRole.SERVER, "socket_path": "/s/m.sock"} | kwargs
    with pytest.raises(ValueError, match=message):
        TestpmdMemifPort(**fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- command lines


def test_argv_pins_all_lcores_to_the_cpu_and_keeps_eal_and_app_args_apart() -> None:
    config = TestpmdConfig(
        ports=(server_port(),), file_prefix="run1s", cpu=1, forward_mode="rxonly"
    )
    argv = config.argv("/usr/bin/dpdk-testpmd")
    assert argv[0] == "/usr/bin/dpdk-testpmd"
    eal, app = split_at_double_dash(argv[1:])
    assert eal[eal.index("--lcores") + 1] == "0@1,1@1"
    assert eal[eal.index("--file-prefix") + 1] == "run1s"
    assert "--no-pci" in eal
    assert "--vdev=" + server_port().vdev_arg(0) in eal
    assert app[:1] == ["-i"]
    assert "--forward-mode=rxonly" in app
    assert "--nb-cores=1" in app
    assert "--auto-start" not in app
    assert "--tx-first" not in app


def test_tx_first_is_a_start_argument_in_interactive_mode() -> None:
    # testpmd exits with "--tx-first cannot be used on interactive mode."
    config = TestpmdConfig(ports=(server_port(),), file_prefix="p", tx_first=True)
    assert "--tx-first" not in config.app_args()


def test_argv_lcore_map_grows_with_forwarding_cores() -> None:
    config = TestpmdConfig(ports=(server_port(),), file_prefix="p", cpu=0, nb_cores=2)
    assert config.lcores == "0@0,1@0,2@0"
    assert "--nb-cores=2" in config.app_args()


def test_argv_without_hugepages_uses_no_huge_and_a_memory_size() -> None:
    eal = TestpmdConfig(ports=(server_port(),), file_prefix="p", memory_mb=256).eal_args()
    assert eal[eal.index("--no-huge") + 1 : eal.index("--no-huge") + 3] == ["-m", "256"]
    assert "--single-file-segments" not in eal
    assert "--in-memory" not in eal


def test_argv_with_hugepages_has_no_memory_size_and_no_single_file_segments() -> None:
    eal = TestpmdConfig(ports=(server_port(),), file_prefix="p", hugepages=True).eal_args()
    assert "--no-huge" not in eal
    assert "-m" not in eal
    assert "--single-file-segments" not in eal


@pytest.mark.parametrize("hugepages", [True, False])
def test_zero_copy_adds_single_file_segments(hugepages: bool) -> None:
    ports = (server_port(), client_port("/run/memif/other.sock", zero_copy=True))
    config = TestpmdConfig(ports=ports, file_prefix="p", hugepages=hugepages)
    eal, _ = split_at_double_dash(config.argv())
    assert config.zero_copy
    assert eal.count("--single-file-segments") == 1
    assert ("--no-huge" in eal) is not hugepages
    assert eal[-2:] == [f"--vdev={ports[0].vdev_arg(0)}", f"--vdev={ports[1].vdev_arg(1)}"]
    assert eal[-1].endswith(",zero-copy=yes")


def test_argv_secret_reaches_the_vdev() -> None:
    config = TestpmdConfig(ports=(client_port(secret="hunter2"),), file_prefix="p")
    assert any(
        arg.startswith("--vdev=net_memif0,") and ",secret=hunter2" in arg for arg in config.argv()
    )


def test_argv_optional_app_arguments() -> None:
    config = TestpmdConfig(
        ports=(client_port(),),
        file_prefix="p",
        forward_mode="txonly",
        rxq=2,
        txq=2,
        burst=64,
        txpkts="1024",
        total_num_mbufs=None,
        no_flush_rx=True,
        interactive=False,
        auto_start=True,
        tx_first=True,
        stats_period=1,
        extra_eal_args=("--log-level=pmd.net.memif:debug",),
        extra_args=("--record-burst-stats",),
    )
    eal, app = split_at_double_dash(config.argv())
    assert eal[-1] == "--log-level=pmd.net.memif:debug"
    assert app == [
        "--auto-start",
        "--tx-first",
        "--forward-mode=txonly",
        "--nb-cores=1",
        "--rxq=2",
        "--txq=2",
        "--burst=64",
        "--txpkts=1024",
        "--no-flush-rx",
        "--stats-period=1",
        "--record-burst-stats",
    ]


def test_argv_default_mbuf_pool_is_small() -> None:
    assert "--total-num-mbufs=16384" in TestpmdConfig(ports=(), file_prefix="p").app_args()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"file_prefix": ""},
        {"file_prefix": "a/b"},
        {"file_prefix": "x" * 49},
        {"cpu": -1},
        {"nb_cores": 0},
        {"rxq": 0},
        {"txpkts": "64B"},
        {"forward_mode": "rx only"},
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"ports": (server_port(),), "file_prefix": "p"} | kwargs
    with pytest.raises(ValueError):
        TestpmdConfig(**fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- parsers (recorded)


def test_parse_port_stats_rxonly_under_load() -> None:
    assert parse_port_stats(recorded("port_stats_rxonly.txt")) == PortStats(
        port_id=0,
        rx_packets=21497920,
        rx_missed=0,
        rx_bytes=1375866880,
        rx_errors=0,
        rx_nombuf=0,
        tx_packets=0,
        tx_errors=0,
        tx_bytes=0,
        rx_pps=10685562,
        tx_pps=0,
        rx_bps=5471008160,
        tx_bps=0,
    )


def test_parse_port_stats_txonly_under_load() -> None:
    stats = parse_port_stats(recorded("port_stats_txonly.txt"))
    assert (stats.tx_packets, stats.tx_bytes, stats.tx_pps, stats.tx_bps) == (
        21498944,
        1375932416,
        10684265,
        5470343800,
    )
    assert stats.tx_bytes == 64 * stats.tx_packets  # --txpkts=64
    assert (stats.rx_packets, stats.rx_pps) == (0, 0)


def test_parse_port_stats_idle_is_all_zero() -> None:
    stats = parse_port_stats(recorded("port_stats_idle.txt"))
    assert stats == PortStats(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def test_parse_all_port_stats_of_a_loopback() -> None:
    stats = parse_all_port_stats(recorded("port_stats_all_loopback.txt"))
    assert list(stats) == [0, 1]
    assert (stats[0].rx_packets, stats[0].rx_bytes) == (4488896, 287289344)
    assert (stats[1].tx_packets, stats[1].tx_bytes) == (4488928, 287291392)
    assert parse_port_stats(recorded("port_stats_all_loopback.txt")) == stats[0]


def test_parse_port_info_link_down() -> None:
    info = parse_port_info(recorded("port_info_link_down.txt"))
    assert info == PortInfo(
        port_id=0,
        link_status=False,
        link_speed="100 Gbps",
        mac="1E:CB:86:24:6A:B5",
        driver_name="net_memif",
        device_name="net_memif0",
        devargs="role=server,id=0,socket=/tmp/tpx/rec.sock,socket-abstract=no,rsize=10,bsize=2048",
        link_duplex="full-duplex",
        mtu=1500,
        promiscuous=True,
        rx_queues=1,
        tx_queues=1,
    )


@pytest.mark.parametrize(
    ("name", "mac", "role"),
    [
        ("port_info_link_up_server.txt", "1E:CB:86:24:6A:B5", "server"),
        ("port_info_link_up_client.txt", "CE:8A:95:F5:98:58", "client"),
    ],
)
def test_parse_port_info_link_up(name: str, mac: str, role: str) -> None:
    info = parse_port_info(recorded(name))
    assert info.link_status is True
    assert info.mac == mac
    assert info.devargs is not None and info.devargs.startswith(f"role={role},")


def test_parse_port_info_of_an_invalid_port_raises() -> None:
    with pytest.raises(TestpmdParseError, match="Infos for port"):
        parse_port_info(recorded("show_port_info_invalid.txt"))


def test_parse_forward_stats_txonly_counts_drops() -> None:
    stats = parse_forward_stats(recorded("stop_txonly.txt"))
    expected = ForwardCounters(
        rx_packets=0,
        rx_dropped=0,
        rx_total=0,
        tx_packets=21500000,
        tx_dropped=3333792,
        tx_total=24833792,
    )
    assert stats.ports == {0: expected}
    assert stats.total == expected


def test_parse_forward_stats_rxonly() -> None:
    stats = parse_forward_stats(recorded("stop_rxonly.txt"))
    assert stats.ports[0].rx_packets == stats.total.rx_packets == 21500000
    assert stats.total.tx_total == 0


def test_parse_forward_stats_two_ports_and_accumulated_total() -> None:
    stats = parse_forward_stats(recorded("stop_loopback_io.txt"))
    assert set(stats.ports) == {0, 1}
    assert stats.ports[1].rx_packets == 4492576
    assert stats.ports[1].tx_packets == 4492608
    assert stats.total.rx_packets == 8985152 == sum(p.rx_packets for p in stats.ports.values())
    assert stats.total.tx_total == 8985216


def test_parse_forward_stats_when_forwarding_was_not_started() -> None:
    assert recorded("stop_not_started.txt").strip() == "Packet forwarding not started"
    with pytest.raises(TestpmdParseError):
        parse_forward_stats(recorded("stop_not_started.txt"))


def test_parsers_reject_unrelated_output() -> None:
    for parser in (parse_port_stats, parse_port_info, parse_forward_stats, parse_version):
        with pytest.raises(TestpmdParseError):
            parser(recorded("set_fwd_io.txt"))


def test_parse_version_from_eal_banner() -> None:
    assert parse_version(recorded("version.txt")) == "22.11.11"
    assert parse_version("EAL: RTE Version: 'DPDK 23.11.0-rc1'\n") == "23.11.0-rc1"


def test_recorded_startup_log_shows_the_created_port_before_the_prompt() -> None:
    log = recorded("startup_server.log")
    banner = log[: log.index(PROMPT)]
    assert "Port 0: 1E:CB:86:24:6A:B5" in banner
    assert "n=16384" in banner  # --total-num-mbufs


def test_salient_lines_pick_the_cause_of_a_real_start_up_failure() -> None:
    # zero-copy without --single-file-segments: the vdev probe fails, then --rxq=1 is refused
    lines = salient_lines(recorded("startup_zero_copy_probe_failed.log"))
    assert "memif_set_zc(): Zero-copy doesn't support multi-file segments." in lines
    assert "vdev_probe(): failed to initialize net_memif0 device" in lines
    assert "Cause: rxq 1 invalid - must be >= 0 && <= 0" in lines
    assert not any(line.startswith("$ ") for line in lines)


def test_recorded_txonly_start_announces_the_frame_size() -> None:
    assert "packet len=64 - nb packet segments=1" in recorded("start_txonly.txt")


# --------------------------------------------------------------------------- host helpers


def test_runtime_dir_follows_eal_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert runtime_dir("abc") == Path("/var/run/dpdk/abc")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert runtime_dir("abc") == Path("/run/user/1000/dpdk/abc")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert runtime_dir("abc") == Path("/tmp/dpdk/abc")


def test_hugepage_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("proc /proc proc rw 0 0\nnodev /dev/hugepages hugetlbfs rw,relatime 0 0\n")
    assert hugetlbfs_mounts(mounts) == [Path("/dev/hugepages")]
    assert hugetlbfs_mounts(tmp_path / "missing") == []
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("HugePages_Total:     512\nHugePages_Free:      300\n")
    monkeypatch.setattr("harness.peers.testpmd.hugetlbfs_mounts", lambda: [Path("/dev/hugepages")])
    assert hugepages_available(256, meminfo)
    assert not hugepages_available(301, meminfo)
    meminfo.write_text("HugePages_Total:       0\nHugePages_Free:        0\n")
    assert not hugepages_available(1, meminfo)


# --------------------------------------------------------------------------- driver (fake testpmd)

FAKE_TESTPMD = textwrap.dedent(
    r'''
    """Stand-in for `dpdk-testpmd -i`: banner, prompt, echo, recorded answers."""
    import os, signal, socket, sys, time

    recorded, runtime, sock_path, mode = sys.argv[1:5]  # testpmd's own argv follows; ignored
    out = sys.stdout
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if mode == "fail":
        out.write("EAL: Detected CPU lcores: 2\nEAL: Error - exiting with code: 1\n"
                  "  Cause: Cannot init EAL: Permission denied\n")
        sys.exit(1)
    if mode == "hang":
        out.write("EAL: Detected CPU lcores: 2\n")
        out.flush()
        time.sleep(60)
    os.makedirs(runtime, exist_ok=True)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(sock_path)  # left behind on exit, like a killed testpmd server
    out.write("Interactive-mode selected\nConfiguring Port 0 (socket 0)\n")
    if mode == "no-port":
        out.write("vdev_probe(): failed to initialize net_memif0 device\n")
    else:
        out.write("Port 0: 02:00:00:00:00:AA\n")
    out.write("Checking link statuses...\nDone\ntestpmd> ")
    out.flush()
    answers = {
        "show port stats 0": "port_stats_rxonly.txt",
        "show port info 0": "port_info_link_down.txt",
        "stop": "stop_rxonly.txt",
        "start": "start_rxonly.txt",
        "start tx_first": "start_rxonly.txt",
        "set fwd io": "set_fwd_io.txt",
        "set fwd bogus": "set_fwd_bogus.txt",
        "clear port stats all": "clear_port_stats_all.txt",
    }
    polls = 0
    for line in sys.stdin:
        command = line.strip()
        out.write(command + "\r\n")  # testpmd's cmdline echoes input, CRLF
        if command == "quit":
            out.write("\nBye...\n")
            out.flush()
            sys.exit(0)
        if command == "crash":
            out.flush()
            os.kill(os.getpid(), signal.SIGSEGV)
        if command == "slow":
            out.flush()
            time.sleep(30)
        if command == "slowish":
            out.flush()
            time.sleep(0.5)
        if command == "show port info 0":
            polls += 1
            if polls >= 3:
                answers[command] = "port_info_link_up_server.txt"
        if command == "event":
            out.write("done\ntestpmd> \nPort 0: link state change event\n")
            out.flush()
            continue
        if command == "split":  # DPDK's interrupt thread logs in the middle of the prompt
            out.write("split done\nte" "memif_msg_send_from_queue(): Sent msg type 7.\n"
                      "stpmd> ")
            out.flush()
            continue
        if command == "split-event":
            out.write("evented\ntestp\nPort 0: link state change event\nmd> ")
            out.flush()
            continue
        name = answers.get(command)
        text = open(os.path.join(recorded, name)).read() if name else "Command not found\n"
        out.write(text + "testpmd> ")
        out.flush()
    '''
)


def fake_process(tmp_path: Path, mode: str = "ok", startup_timeout: float = 10.0) -> TestpmdProcess:
    """A TestpmdProcess whose "line-buffer wrapper" is the fake, which ignores testpmd's argv."""
    script = tmp_path / "fake_testpmd.py"
    script.write_text(FAKE_TESTPMD)
    socket_path = tmp_path / "m.sock"
    config = TestpmdConfig(ports=(server_port(socket_path),), file_prefix=unique_prefix("f"))
    fake = (sys.executable, str(script), str(RECORDED), str(runtime_dir(config.file_prefix)))
    return TestpmdProcess(
        config,
        tmp_path / f"{mode}.log",
        startup_timeout=startup_timeout,
        line_buffer_wrapper=(*fake, str(socket_path), mode),
    )


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[TestpmdProcess]:
    with fake_process(tmp_path) as process:
        yield process


def test_command_strips_echo_and_prompt(fake: TestpmdProcess) -> None:
    assert fake.command("show port stats 0") == recorded("port_stats_rxonly.txt")
    assert fake.port_stats(0).rx_packets == 21497920
    assert fake.command("bogus") == "Command not found\n"


def test_command_skips_unsolicited_output(fake: TestpmdProcess) -> None:
    assert fake.command("event") == "done\n"
    assert fake.port_stats(0).rx_pps == 10685562
    assert "link state change event" in fake.log_text()


def test_prompt_split_by_an_asynchronous_log_line_still_ends_the_command(
    fake: TestpmdProcess,
) -> None:
    """Recorded in CI: "te" + a memif debug line + "stpmd> " -- the next command must not wait
    for a prompt that already came."""
    assert fake.command("split", timeout=5.0) == "split done\n"
    assert fake.command("split-event", timeout=5.0) == "evented\n"
    assert fake.port_stats(0, timeout=5.0).rx_packets == 21497920
    assert "Sent msg type 7." in fake.log_text()


def test_text_that_only_resembles_a_split_prompt_is_not_a_prompt() -> None:
    assert _find_prompt("te\nnot a log line\nstpmd> ") == -1
    assert _find_prompt("testpmd>") == -1
    assert _find_prompt("x\ntestpmd> ") == len("x\ntestpmd> ")
    newer = "testp" + "MEMIF: memif_msg_send_from_queue(): Sent msg type 7.\n" + "md> "
    assert _find_prompt(newer) == len(newer)  # DPDK >= 24.03 puts the log type first


def test_wait_for_link_polls_until_up(fake: TestpmdProcess) -> None:
    info = fake.wait_for_link(0, timeout=5.0)
    assert info.link_status
    assert fake.log_text().count("show port info 0") == 3


def test_stop_forwarding_parses_forward_stats(fake: TestpmdProcess) -> None:
    assert fake.stop_forwarding().total.rx_packets == 21500000


def test_forwarding_control_commands(fake: TestpmdProcess) -> None:
    assert "rxonly packet forwarding - ports=1" in fake.start_forwarding()
    fake.start_forwarding(tx_first=True)
    fake.set_fwd("io")
    with pytest.raises(TestpmdCommandError, match="Bad arguments"):
        fake.set_fwd("bogus")
    fake.clear_stats()
    with pytest.raises(TestpmdCommandError, match="Command not found"):
        fake.port_info(1)
    assert "testpmd> start tx_first\n" in fake.log_path.read_text()


def test_command_timeout_names_the_command(fake: TestpmdProcess) -> None:
    with pytest.raises(TestpmdTimeoutError, match="'slow'"):
        fake.command("slow", timeout=0.2)
    with pytest.raises(TestpmdTimeoutError, match="still busy"):
        fake.command("show port stats 0", timeout=0.2)
    assert fake.stop(quit_timeout=0.2, term_timeout=0.2) == -signal.SIGTERM
    assert not fake.crashed


def test_late_output_of_a_timed_out_command_is_not_taken_for_the_next(
    fake: TestpmdProcess,
) -> None:
    with pytest.raises(TestpmdTimeoutError):
        fake.command("slowish", timeout=0.1)
    assert fake.command("show port stats 0", timeout=5.0) == recorded("port_stats_rxonly.txt")


def test_crash_is_reported_as_the_peers_crash(fake: TestpmdProcess) -> None:
    with pytest.raises(TestpmdExitedError, match="SIGSEGV") as raised:
        fake.command("crash")
    assert raised.value.crashed
    assert raised.value.returncode == -signal.SIGSEGV
    assert fake.crashed
    assert "crash" in raised.value.log_tail


def test_quit_removes_runtime_dir_and_leftover_server_socket(tmp_path: Path) -> None:
    process = fake_process(tmp_path)
    with process:
        assert process.running
        assert (tmp_path / "m.sock").is_socket()
        assert runtime_dir(process.config.file_prefix).is_dir()
    assert process.returncode == 0
    assert not process.crashed
    assert not (tmp_path / "m.sock").exists()
    assert not runtime_dir(process.config.file_prefix).exists()
    log = (tmp_path / "ok.log").read_text()
    assert log.startswith("$ ")
    assert "Bye..." in log


def test_socket_that_existed_before_start_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "m.sock").write_text("not ours")
    process = fake_process(tmp_path)
    with pytest.raises(TestpmdStartupError, match="exited during start-up"):
        process.start()  # the fake cannot bind: the path is taken
    assert (tmp_path / "m.sock").read_text() == "not ours"


def test_stop_escalates_to_sigkill_and_is_not_a_crash(tmp_path: Path) -> None:
    process = fake_process(tmp_path, mode="ignore-term").start()
    assert process.stop(graceful=False, term_timeout=0.3) == -signal.SIGKILL
    assert not process.crashed
    assert process.stop() == -signal.SIGKILL  # idempotent


def test_startup_failure_carries_the_log_tail(tmp_path: Path) -> None:
    process = fake_process(tmp_path, mode="fail")
    with pytest.raises(TestpmdStartupError, match="Cannot init EAL") as raised:
        process.start()
    assert "exiting with code: 1" in raised.value.log_tail
    assert process.returncode == 1


def test_startup_timeout_kills_the_process(tmp_path: Path) -> None:
    process = fake_process(tmp_path, mode="hang", startup_timeout=0.5)
    with pytest.raises(TestpmdTimeoutError, match="not ready") as raised:
        process.start()
    assert "Detected CPU lcores" in raised.value.log_tail
    assert not process.running


def test_startup_without_the_port_is_an_error(tmp_path: Path) -> None:
    process = fake_process(tmp_path, mode="no-port")
    with pytest.raises(TestpmdStartupError, match="vdev probe failed for net_memif0"):
        process.start()
    assert not process.running


def test_non_interactive_config_refuses_commands(tmp_path: Path) -> None:
    config = TestpmdConfig(ports=(server_port(),), file_prefix="p", interactive=False)
    with pytest.raises(TestpmdCommandError, match="interactive"):
        TestpmdProcess(config, tmp_path / "log").command("show port stats 0")


# --------------------------------------------------------------------------- real testpmd


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_testpmd() -> str:
    """Path of dpdk-testpmd. Called in the test body, so that a missing binary is a FAILED
    test (not an ERROR, not a skip) when CI is set, and a skip that names it elsewhere."""
    path = shutil.which("dpdk-testpmd")
    if path is None:
        if _ci():
            pytest.fail("dpdk-testpmd not found on PATH, and CI is set: it must run here")
        pytest.skip("dpdk-testpmd not found on PATH (install DPDK's testpmd to run this)")
    return path


def _two_cpus() -> tuple[int, int]:
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) > 1 else (cpus[0], cpus[0])


def _processes_with(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


@pytest.mark.testpmd
def test_version_of_installed_testpmd() -> None:
    testpmd_binary = require_testpmd()
    assert version(testpmd_binary).split(".")[0].isdigit()


@pytest.mark.testpmd
def test_real_startup_failure_is_reported_with_the_log(tmp_path: Path) -> None:
    testpmd_binary = require_testpmd()
    config = TestpmdConfig(
        ports=(server_port(tmp_path / "m.sock"),),
        file_prefix=unique_prefix("x"),
        extra_eal_args=("--no-such-eal-option",),
    )
    process = TestpmdProcess(config, tmp_path / "x.log", binary=testpmd_binary)
    with pytest.raises(TestpmdStartupError, match="exited during start-up") as raised:
        process.start()
    assert "unrecognized option '--no-such-eal-option'" in str(raised.value)
    assert "Cause: Cannot init EAL: Invalid argument" in raised.value.log_tail
    assert not runtime_dir(config.file_prefix).exists()


@pytest.mark.testpmd
def test_two_testpmds_forward_over_memif(tmp_path: Path) -> None:
    """Steps: server rxonly on one CPU, client txonly on the other, filesystem socket;
    wait for link up on both; forward for about 1 s; stop both.
    Verify: the server received and the client sent packets; nothing is left behind."""
    testpmd_binary = require_testpmd()
    server_cpu, client_cpu = _two_cpus()
    socket_path = tmp_path / "memif.sock"
    run = uuid.uuid4().hex[:8]
    server = TestpmdProcess(
        TestpmdConfig(
            ports=(server_port(socket_path),),
            file_prefix=f"tpt{run}s",
            cpu=server_cpu,
            forward_mode="rxonly",
        ),
        tmp_path / "server.log",
        binary=testpmd_binary,
    )
    client = TestpmdProcess(
        TestpmdConfig(
            ports=(client_port(socket_path),),
            file_prefix=f"tpt{run}c",
            cpu=client_cpu,
            forward_mode="txonly",
            txpkts="64",
        ),
        tmp_path / "client.log",
        binary=testpmd_binary,
    )
    with server, client:
        assert socket_path.is_socket()
        assert server.wait_for_link(0, timeout=15.0).link_status
        assert client.wait_for_link(0, timeout=15.0).link_status
        server.start_forwarding()
        client.start_forwarding()
        rates = server.measure_rates(0, seconds=1.0)
        client_stats = client.stop_forwarding()
        server_stats = server.stop_forwarding()
        server_port_stats = server.port_stats(0)

    assert rates.rx_packets > 0
    assert server_stats.ports[0].rx_packets > 0
    assert server_port_stats.rx_packets >= server_stats.ports[0].rx_packets
    assert client_stats.ports[0].tx_packets > 0
    assert client_stats.total.tx_packets >= server_stats.total.rx_packets
    for process in (server, client):
        assert process.returncode == 0, process.log_tail()
        assert not process.crashed
        assert not runtime_dir(process.config.file_prefix).exists()
        assert _processes_with(process.config.file_prefix) == []
        assert "Bye..." in process.log_path.read_text()
    assert not socket_path.exists()


def test_af_packet_port_beside_a_memif_port() -> None:
    af_packet = TestpmdAfPacketPort(iface="mh1a2b3c4dsb", framecnt=2048)
    config = TestpmdConfig(
        ports=(TestpmdMemifPort(role=MemifRole.CLIENT, socket_path="/tmp/m.sock"), af_packet),
        file_prefix="t",
        forward_mode="io",
    )
    assert "--vdev=net_af_packet1,iface=mh1a2b3c4dsb,qpairs=1,qdisc_bypass=1,framecnt=2048" in (
        config.eal_args()
    )
    assert config.memif_ports == (config.ports[0],) and not config.zero_copy
    assert TestpmdAfPacketPort("veth0", qdisc_bypass=False).vdev_arg(0) == (
        "net_af_packet0,iface=veth0,qpairs=1,qdisc_bypass=0"
    )
    for bad in ("", "a,b", "x" * 16, "a=b"):
        with pytest.raises(ValueError):
            TestpmdAfPacketPort(bad)
