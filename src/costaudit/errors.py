"""Errors a user can cause. The CLI prints each as one line and exits non-zero."""

from __future__ import annotations


class CostauditError(Exception):
    """Base class for problems a user can act on (bad input, bad config, failed checks)."""

    exit_code = 1


class InputError(CostauditError):
    """An input file cannot be read as a billing export.

    The message names the file and, where known, the row and column, and says what was expected.
    """

    def __init__(self, file: str, problem: str, *, row: int | None = None, column: str | None = None):
        self.file = file
        self.problem = problem
        self.row = row
        self.column = column
        where = [file]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {problem}")


class ReconciliationError(CostauditError):
    """Stored totals do not agree with the source's own totals; nothing was stored."""


class UsageError(CostauditError):
    """The command line or configuration asks for something impossible."""

    exit_code = 2
