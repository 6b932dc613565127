"""The HTML report in a real browser: Debian's chromium, driven over the DevTools protocol."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.report import write
from harness.report.html import suite_matrices
from harness.results import RunResult
from tests.test_report import sample_run

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--window-size=1280,900",
)
TIMEOUT = 30.0


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


class DevTools:
    """A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe`.

    Chromium reads JSON commands from fd 3 and writes replies and events to fd 4, each
    message terminated by a NUL byte: no port, no websocket, no third-party package.
    """

    def __init__(self, binary: str, profile: Path) -> None:
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def connect_pipes() -> None:  # in the child, before exec
            inbound, outbound = os.dup(to_browser_read), os.dup(from_browser_write)
            os.dup2(inbound, 3)
            os.dup2(outbound, 4)

        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}"],
            pass_fds=(3, 4),
            preexec_fn=connect_pipes,  # only dup2 calls: safe in a forked child
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(profile / "chromium.log").open("wb"),
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session = ""

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("chromium did not answer over the DevTools pipe")
            ready, _, _ = select.select([self._from_browser], [], [], remaining)
            if ready:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise ConnectionError(f"chromium closed the pipe (exit {self.process.poll()})")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)  # type: ignore[no-any-return]

    def call(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        """Send one command (to the attached page unless browser=True) and return its result."""
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session and not kw.get("browser"):
            command["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for_event(self, method: str) -> dict[str, Any]:
        """The first event of that name (already received or still to come)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            for event in self.events:
                if event.get("method") == method:
                    self.events.remove(event)
                    return event
            self.events.append(self._read_message(deadline))

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its (JSON) value."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open_page(self, url: str) -> None:
        """Attach to a new tab, load a URL and wait for its load event."""
        target = self.call("Target.createTarget", {"url": "about:blank"}, browser=True)
        attached = self.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, browser=True
        )
        self.session = attached["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Page.navigate", {"url": url})
        self.wait_for_event("Page.loadEventFired")

    def click(self, selector: str) -> None:
        """A real mouse click (pressed + released) in the middle of the element."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + Math.min(r.height / 2, 12)}; })()"
        )
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1},
            )

    def screenshot(self, path: Path) -> None:
        """Save a PNG of the whole page."""
        import base64

        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.write_bytes(base64.b64decode(data["data"]))

    def close(self) -> None:
        """Close the browser; kill its process group if it does not go by itself."""
        with contextlib.suppress(OSError, RuntimeError, TimeoutError, ConnectionError):
            self.call("Browser.close", browser=True)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)


def chromium_binary() -> str:
    """Debian's chromium; when it is missing, fail under CI and skip elsewhere.

    Called from the test body rather than a fixture, so that under CI a missing browser
    is a FAILED test, not a setup ERROR.
    """
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if _ci():
            pytest.fail("chromium is missing on a CI machine (ci/setup.sh installs it)")
        pytest.skip("chromium not installed (apt-get install --no-install-recommends chromium)")
    return binary


@contextlib.contextmanager
def headless_chromium(profile: Path) -> Iterator[DevTools]:
    """A headless chromium with a throwaway profile, closed on exit."""
    profile.mkdir()
    devtools = DevTools(chromium_binary(), profile)
    try:
        yield devtools
    finally:
        devtools.close()


def test_report_loads_and_a_click_reveals_the_details(tmp_path: Path) -> None:
    run = sample_run()
    files = write.write_reports(run, tmp_path / "report")
    with headless_chromium(tmp_path / "profile") as browser:
        _check_report_page(browser, run, files["index.html"], tmp_path / "report.png")


def _check_report_page(browser: DevTools, run: RunResult, page: Path, screenshot: Path) -> None:
    browser.open_page(page.as_uri())

    assert browser.evaluate("document.readyState") == "complete"
    assert browser.evaluate("document.title") == "memif conformance: run-42"
    expected_cells = [len(m.servers) * len(m.clients) for m in suite_matrices(run)]
    assert (
        browser.evaluate(
            "[...document.querySelectorAll('table.matrix')]"
            ".map(t => t.querySelectorAll('td.cell').length)"
        )
        == expected_cells
    )
    assert browser.evaluate("document.querySelectorAll('a.chip').length") == len(run.cases)

    failing = "td.cell[data-verdict='ERROR']"
    pair = browser.evaluate(f"document.querySelector({json.dumps(failing)}).dataset.pair")
    visible = (
        f"[...document.getElementById('{pair}').querySelectorAll('.expectation pre')]"
        ".filter(e => e.checkVisibility()).map(e => e.innerText)"
    )
    assert browser.evaluate(visible) == []  # closed before the click
    browser.click(failing)
    assert browser.evaluate(visible) == [
        "max_region <= 255",
        "max_region = 300",
        "\u2014",
        "\u2014",
    ]  # the FAIL and the ERROR case of that pair, now open
    assert browser.evaluate("location.hash") == f"#{pair}"

    # A scenario chip opens only its own case; the colour is the verdict's.
    chip = "a.chip[data-verdict='XFAIL']"
    case_id = browser.evaluate(f"document.querySelector({json.dumps(chip)}).hash.slice(1)")
    assert browser.evaluate(f"document.getElementById('{case_id}').open") is False
    browser.click(chip)
    assert browser.evaluate(f"document.getElementById('{case_id}').open") is True
    observed = browser.evaluate(
        f"document.getElementById('{case_id}').querySelectorAll('.expectation pre')[1].innerText"
    )
    assert observed == run.cases[5].observed  # the <script> text shown literally
    assert (
        browser.evaluate(
            f"getComputedStyle(document.querySelector({json.dumps(chip)})).backgroundColor"
        )
        == "rgb(242, 194, 0)"
    )

    problems = [
        event
        for event in browser.events
        if event.get("method") in ("Runtime.exceptionThrown", "Page.javascriptDialogOpening")
    ]
    assert not problems, problems  # no script error, and no injected alert() ran
    browser.screenshot(screenshot)
    assert screenshot.stat().st_size > 10_000
