"""Terminal output of store text: rows of rich tables whose cells are shown literally.

Tag values, resource names and account names are attacker-controlled. rich reads plain strings
in table cells as markup ("[bold red]..."), which can hide text or raise on malformed tags, so
every string cell goes in as a `Text`, which rich never parses. Control characters go further
than markup: an ESC sequence in a resource id can recolour, hide or hyperlink text, or retitle the
terminal window, so they are shown as escapes (`printable`).
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

# C0 and C1 control characters but tab and newline, DEL, and the bidirectional overrides and
# isolates that reorder what follows them on screen.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character shown as an escape (ESC as ``\\x1b``), so what a bill
    holds is displayed, never executed by the terminal."""
    return _CONTROL.sub(_escaped, text)


def literal(value: Any) -> Any:
    """A cell value rich will print exactly as given (strings become `Text`, control characters
    escaped)."""
    return Text(printable(value)) if isinstance(value, str) else value


def add_literal_row(table: Table, *cells: Any) -> None:
    """`table.add_row` with every string cell shown literally."""
    table.add_row(*(literal(cell) for cell in cells))


class SafeConsole(Console):
    """A rich `Console` whose printed strings have their control characters escaped: every
    message, evidence line and table of costaudit's terminal output goes through one."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().print(*(printable(o) if isinstance(o, str) else o for o in objects), **kwargs)


def terminal_console(*, stderr: bool = False, highlight: bool = False) -> Console:
    """The console commands print with: control characters escaped, and 200 columns wide when
    not on a terminal, so cron logs keep whole numbers and ids."""
    console = SafeConsole(stderr=stderr, highlight=highlight)
    return console if console.is_terminal else SafeConsole(stderr=stderr, highlight=highlight, width=200)
