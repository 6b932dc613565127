"""Text from a run made safe and short for the reports: control characters, JSON values, HTML."""

from __future__ import annotations

import html
import json
import re
from typing import Any

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def format_value(value: Any) -> str:
    """A JSON value as short text: strings as they are, the rest as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def visible_controls(text: str) -> str:
    """Control characters but tab and line breaks (e.g. ANSI colour codes) as \\xNN text."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def html_text(value: Any) -> str:
    """Any value escaped for HTML (and SVG) text and attribute values."""
    text = value if isinstance(value, str) else format_value(value)
    return html.escape(visible_controls(text), quote=True)


def one_line(text: str, limit: int = 0) -> str:
    """Text on one line (runs of whitespace folded to a space), cut to `limit` characters
    with an ellipsis when `limit` is positive."""
    flat = " ".join(visible_controls(text).split())
    if limit > 0 and len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "\u2026"
    return flat
