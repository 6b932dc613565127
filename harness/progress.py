"""Live progress of `memif-harness run`: a rich display on a terminal, a line per case otherwise.

Both displays are listeners of the scenario plugin (scenarios.hookspecs): each verdict is
the one the plugin wrote into results.json, never judged again here.
"""

from __future__ import annotations

import collections
import time
from types import TracebackType
from typing import TYPE_CHECKING, Self, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TimeElapsedColumn
from rich.text import Text

from harness.results import CaseResult, Verdict

if TYPE_CHECKING:
    from scenarios.plugin import CaseStarted

VERDICT_STYLES = {
    Verdict.PASS: "green",
    Verdict.FAIL: "bold red",
    Verdict.ERROR: "bold magenta",
    Verdict.SKIP: "yellow",
    Verdict.XFAIL: "cyan",
}
REASON_WIDTH = 160
"""Characters of a non-PASS case's reason shown on its line (the report has all of it)."""


def case_line(case: CaseResult, done: int, total: int) -> str:
    """The line of a finished case: `[ 12/104] PASS  handshake  test_x[...]  1.2 s`.

    A case that did not pass ends with the first line of its reason, in parentheses.
    """
    width = len(str(total))
    line = (
        f"[{done:>{width}}/{total}] {case.verdict.value:<5} {case.suite}  {case.case_id}  "
        f"{case.duration:.1f} s"
    )
    if case.verdict is not Verdict.PASS and case.reason:
        reason = case.reason.strip().splitlines()[0]
        if len(reason) > REASON_WIDTH:
            reason = reason[: REASON_WIDTH - 3] + "..."
        line += f"  ({reason})"
    return line


def pair_text(server_peer: str, client_peer: str) -> str:
    """`testpmd server x reference client` ("" for a case without a pair)."""
    if not server_peer and not client_peer:
        return ""
    return f"{server_peer} server x {client_peer} client"


class LineProgress:
    """One plain line per finished case (CI logs, pipes): the listener for a non-terminal.

    Args:
        stream: Where the lines go (flushed after each).
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def pytest_memif_collected(self, total: int) -> None:
        """Say how many cases will run."""
        self._write(f"{total} case{'s' if total != 1 else ''} to run")

    def pytest_memif_case_finished(self, case: CaseResult, done: int, total: int) -> None:
        """Print the case's line."""
        self._write(case_line(case, done, total))

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


class RichProgress:
    """A live terminal display: cases done / total, verdict counts, the current case and the
    elapsed time; every case that did not pass is printed above it as it finishes.

    Use it as a context manager around the run (the display starts and stops with it). While
    it runs, the process's sys.stdout and sys.stderr print above the display.

    Args:
        stream: The terminal (best a duplicate of stdout's descriptor, which pytest's
            output capture does not redirect during a case).
    """

    def __init__(self, stream: TextIO) -> None:
        self.console = Console(file=stream)
        self.counts: collections.Counter[Verdict] = collections.Counter()
        self.current: CaseStarted | None = None
        self.started = time.monotonic()
        self.progress = Progress(
            SpinnerColumn(),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.task = self.progress.add_task("cases", total=None)
        self.live = Live(
            get_renderable=self._render,
            console=self.console,
            refresh_per_second=4,
            redirect_stdout=True,
            redirect_stderr=True,
        )

    def __enter__(self) -> Self:
        self.live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.current = None
        self.live.stop()

    def _render(self) -> RenderableType:
        now = Text()
        now.append("  now: ", style="dim")
        if self.current is None:
            now.append("collecting" if self.progress.tasks[0].total is None else "-")
        else:
            now.append(f"{self.current.suite}  ", style="bold")
            now.append(f"{self.current.scenario}  ")
            now.append(pair_text(self.current.server_peer, self.current.client_peer))
        counts = Text("  ")
        for verdict in Verdict:
            counts.append(f"{verdict.value} {self.counts[verdict]}", style=VERDICT_STYLES[verdict])
            counts.append("  ")
        return Group(self.progress.get_renderable(), now, counts)

    def pytest_memif_collected(self, total: int) -> None:
        """The bar gets its total."""
        self.progress.update(self.task, total=total)

    def pytest_memif_case_started(self, case: CaseStarted) -> None:
        """Show the case that runs now."""
        self.current = case

    def pytest_memif_case_finished(self, case: CaseResult, done: int, total: int) -> None:
        """Count the verdict; print the case above the display unless it passed."""
        self.counts[case.verdict] += 1
        self.progress.update(self.task, completed=done, total=total)
        if case.verdict is not Verdict.PASS:
            self.console.print(
                Text(case_line(case, done, total), style=VERDICT_STYLES[case.verdict]),
                soft_wrap=True,
            )
