"""The harness's error base: an error that carries the end of a program's log."""

from __future__ import annotations

from typing import ClassVar


class LogTailError(RuntimeError):
    """A failure to run something, with the last lines of its log attached.

    Subclasses name whose log it is in `log_label`; str() shows the message, then the
    tail under a `--- <label> (tail) ---` line.

    Attributes:
        summary: the message without the log.
        log_tail: the last lines of the log (may be empty).
    """

    log_label: ClassVar[str] = "log"

    def __init__(self, message: str, log_tail: str = "") -> None:
        self.summary = message
        self.log_tail = log_tail
        if log_tail:
            message = f"{message}\n--- {self.log_label} (tail) ---\n{log_tail}"
        super().__init__(message)
