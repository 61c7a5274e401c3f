"""Terminal output of store text: rows of rich tables whose cells are shown literally.

Tag values, resource names and account names are attacker-controlled. rich reads plain strings
in table cells as markup ("[bold red]..."), which can hide text or raise on malformed tags, so
every string cell goes in as a `Text`, which rich never parses.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text


def literal(value: Any) -> Any:
    """A cell value rich will print exactly as given (strings become `Text`)."""
    return Text(value) if isinstance(value, str) else value


def add_literal_row(table: Table, *cells: Any) -> None:
    """`table.add_row` with every string cell shown literally."""
    table.add_row(*(literal(cell) for cell in cells))
