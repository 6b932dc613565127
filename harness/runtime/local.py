"""Local runtime: a peer as a process of our own, in its own process group, maybe pinned.

Only processes started here are ever signalled, by their own pid/process group. Output
goes to a log file the harness attaches to errors; readiness is polled, never slept for.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from harness.masking import mask_text
from harness.topology.numa import Placement

_POLL = 0.02
_TAIL_LINES = 40


def exit_description(returncode: int | None) -> str:
    """How a process ended, from its Popen return code: "killed by SIGKILL", "exited with
    status 1"; "" while it runs."""
    if returncode is None:
        return ""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


class ProcessError(RuntimeError):
    """A local process failed to start or to become ready (message carries the log tail)."""


class LocalProcess:
    """One process started by the harness, with its log file."""

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        *,
        cpu: int | None = None,
        env: Mapping[str, str] | None = None,
        netns: str | None = None,
        placement: Placement | None = None,
    ) -> None:
        """Start `argv` now.

        Args:
            argv: the command (no shell).
            log_path: file that receives stdout and stderr.
            cpu: pin the process (and its threads) to this CPU.
            env: environment (default: inherited).
            netns: name of a network namespace (/run/netns/NAME) to run in.
            placement: NUMA placement: CPU affinity and memory bound to its node
                (overrides `cpu`).

        Raises:
            ProcessError: the program cannot be run.
        """
        self.argv = list(argv)
        self.log_path = log_path
        self._signals_sent: set[int] = set()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        header = ("$ " + mask_text(" ".join(self.argv)) + "\n").encode()  # no secret in logs
        self._log.write(header)
        self._log.flush()
        self._header_size = len(header)

        def in_child() -> None:
            if netns is not None:
                fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
                os.setns(fd, os.CLONE_NEWNET)
                os.close(fd)
            if placement is not None:
                placement.apply_to_current_thread()
            elif cpu is not None:
                os.sched_setaffinity(0, {cpu})

        try:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=dict(env) if env is not None else None,
                preexec_fn=in_child if (cpu, netns, placement) != (None, None, None) else None,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            self._log.close()
            raise ProcessError(f"cannot run {self.argv[0]}: {exc}") from exc

    @property
    def pid(self) -> int:
        """The process id (also its process group id)."""
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """None while running; negative when killed by a signal."""
        return self.process.poll()

    @property
    def crashed(self) -> bool:
        """Killed by a signal the harness did not send (e.g. SIGSEGV)."""
        code = self.returncode
        return code is not None and code < 0 and -code not in self._signals_sent

    def log_text(self) -> str:
        """Everything the process printed so far (the log file also starts with argv)."""
        if not self._log.closed:
            self._log.flush()
        with self.log_path.open("rb") as stream:
            stream.seek(self._header_size)
            return stream.read().decode(errors="replace")

    def log_tail(self, lines: int = _TAIL_LINES) -> str:
        """The last lines of the log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `ready()` until true; raise with the log tail on exit or timeout."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.returncode is not None:
                raise ProcessError(
                    f"{self.argv[0]} exited ({self.returncode}) before {what}\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ProcessError(
                    f"{self.argv[0]}: no {what} within {timeout} s\n{self.log_tail()}"
                )
            time.sleep(_POLL)

    def wait_for_output(self, pattern: str, timeout: float) -> re.Match[str]:
        """Poll the log until `pattern` appears."""
        compiled = re.compile(pattern, re.MULTILINE)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            match = compiled.search(self.log_text())
            if match:
                found.append(match)
            return match is not None

        self.wait_for(seen, timeout, f"output matching {pattern!r}")
        return found[0]

    def wait(self, timeout: float) -> int | None:
        """Wait for the process to exit by itself; None if it is still running."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 3.0) -> int | None:
        """SIGTERM the process group, SIGKILL after `grace` seconds; returns the exit code.

        A stopped process (SIGSTOP) is continued after the SIGTERM, so that it acts on it.
        """
        if self.returncode is None:
            self._signal(signal.SIGTERM)
            self._signal(signal.SIGCONT)
            if self.wait(grace) is None:
                self._signal(signal.SIGKILL)
                self.wait(grace)
        if not self._log.closed:
            self._log.close()
        return self.returncode

    def _signal(self, sig: signal.Signals) -> None:
        self._signals_sent.add(int(sig))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
