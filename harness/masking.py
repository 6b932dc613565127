"""Masks memif secrets in what the harness writes: results, control traces, peer logs, reports.

Two layers: the secrets a case is known to use are replaced wherever they appear (when they
are long enough not to hit ordinary words), and the spellings that carry a secret on a
command line (`secret=VALUE` devargs, `--secret VALUE` options) are masked whatever the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
MIN_LITERAL = 4
"""Shorter secrets are masked only where a pattern marks them as secrets (a 2-letter secret
replaced everywhere would garble every log without protecting anything)."""
SECRET_FIELD = "secret"
"""The INIT field (and any JSON key) whose value is a secret."""

_PATTERNS = (
    re.compile(r"(?<![\w-])(secret=)([^,\s'\"]+)"),  # DPDK devargs, key=value templates
    re.compile(r"(--secret[= ])([^\s'\"]+)"),  # memif-ref and other command-line options
    re.compile(r"(--secret \\?['\"])([^'\"]+)"),  # the same option quoted
)


def mask_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every secret replaced by MASK.

    Args:
        text: A log, a reason, a command line...
        secrets: Secrets known to be in use (None and short ones are skipped).
    """
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_LITERAL}, key=len)[::-1]:
        text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + MASK, text)
    return text


def mask_value(value: Any, secrets: Iterable[str | None] = ()) -> Any:
    """A JSON-like value with every "secret" field's non-empty value and every secret in a
    string masked (the value is copied, not changed)."""
    known = tuple(secrets)
    if isinstance(value, str):
        return mask_text(value, known)
    if isinstance(value, Mapping):
        return {
            key: MASK
            if key == SECRET_FIELD and isinstance(item, str | bytes) and item
            else mask_value(item, known)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(mask_value(item, known) for item in value)
    return value
