"""Registry of source formats. Detection is by columns only, never by file name.

Each module here defines ``FORMATS``, a list of `Format` instances. The format with the highest
score wins; ties are a programming error caught by the tests.
"""

from __future__ import annotations

import importlib

from ..base import Cols, Format

_MODULES = ["focus", "aws_cur", "aws_cur2", "azure", "gcp"]


def all_formats() -> list[Format]:
    """Every known format, in registry order."""
    formats: list[Format] = []
    for module_name in _MODULES:
        module = importlib.import_module(f"{__name__}.{module_name}")
        formats.extend(module.FORMATS)
    return formats


def detect(cols: Cols) -> Format | None:
    """The best-matching format for these columns, or None when nothing matches."""
    scored = [(fmt.score(cols), index, fmt) for index, fmt in enumerate(all_formats())]
    scored = [entry for entry in scored if entry[0] > 0]
    if not scored:
        return None
    scored.sort(key=lambda entry: (-entry[0], entry[1]))
    return scored[0][2]


def by_id(format_id: str) -> Format:
    for fmt in all_formats():
        if fmt.id == format_id:
            return fmt
    raise KeyError(format_id)
