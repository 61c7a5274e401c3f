"""The data each rule needs, checked before it runs: one scan per table for every rule.

A rule declares `Need`s (a table or view, columns that must hold values, a row filter). Before
the rules run, `check_needs` says for each rule why its data is missing, or None. The answers
come from a `NeedsProfile` shared by the run: every need on one table is asked in one query of
``EXISTS`` subqueries that stop at the first matching row, instead of a counting scan per rule.
"""

from __future__ import annotations

from collections.abc import Collection

import duckdb

from costaudit.connectors.sql import quote_ident

from .contract import Need, Window

BILLING_TABLE = "current_line_items"


class NeedsProfile:
    """Whether the data behind every rule's needs is there, asked with one query per table or
    view for all the needs on it (not a scan per rule), when a need on it is first checked.

    For each `Need`: are there rows in scope (its ``where``, and the audit window for billing),
    and does each of its columns hold a value there. Each answer is an ``EXISTS`` subquery, which
    stops at the first row that satisfies it: when the data is there (the usual case) a check
    reads a few vectors, not the table; only data that is missing costs a full scan."""

    def __init__(self, con: duckdb.DuckDBPyConnection, needs: Collection[Need], window: Window | None) -> None:
        self.con = con
        self.window = window
        self.needs = list(dict.fromkeys(needs))
        self._relations: set[str] | None = None
        self._columns: dict[str, set[str]] = {}
        self._present: dict[Need, tuple[bool, ...]] = {}

    def relations(self) -> set[str]:
        """Tables and views in the store."""
        if self._relations is None:
            self._relations = {
                name for (name,) in self.con.execute(
                    "SELECT table_name FROM duckdb_tables() UNION SELECT view_name FROM duckdb_views()"
                ).fetchall()
            }
        return self._relations

    def columns(self, table: str) -> set[str]:
        """The columns of a table or view."""
        if table not in self._columns:
            self._columns[table] = {
                row[0] for row in self.con.execute(f"DESCRIBE SELECT * FROM {quote_ident(table)}").fetchall()
            }
        return self._columns[table]

    def present(self, need: Need) -> tuple[bool, ...]:
        """(rows in scope exist, then for each column: it holds a value in scope), for a need whose
        table and columns exist."""
        if need not in self._present:
            self._ask(need)
        return self._present[need]

    def _exists(self, need: Need) -> list[str]:
        conditions = []
        if need.table == BILLING_TABLE and self.window is not None:
            conditions.append("BillingPeriodStart >= $since AND BillingPeriodStart < $until")
        if need.where:
            conditions.append(f"({need.where})")
        table = quote_ident(need.table)
        tests = [" AND ".join(conditions)] + [
            " AND ".join([*conditions, f"{quote_ident(c)} IS NOT NULL"]) for c in need.columns
        ]
        return [f"EXISTS (SELECT 1 FROM {table}{' WHERE ' + test if test else ''})" for test in tests]

    def _ask(self, need: Need) -> None:
        present = self.columns(need.table)
        group = [need, *(n for n in self.needs if n.table == need.table and n not in self._present and n != need
                         and set(n.columns) <= present)]
        questions: dict[str, int] = {}  # EXISTS subquery -> position, shared by needs that ask the same
        layout = {item: [questions.setdefault(q, len(questions)) for q in self._exists(item)] for item in group}
        params = {"since": self.window.since, "until": self.window.until} if self.window else {}
        sql = f"SELECT {', '.join(questions)}"
        try:
            [row] = self.con.execute(sql, {k: v for k, v in params.items() if f"${k}" in sql}).fetchall()
        except duckdb.Error:
            if len(group) == 1:
                raise
            # One rule's bad filter must not decide the others' checks: ask for this need alone
            # (an error now is this need's own, raised as the check of one need would raise it).
            layout = {need: list(range(len(self._exists(need))))}
            sql = f"SELECT {', '.join(self._exists(need))}"
            [row] = self.con.execute(sql, {k: v for k, v in params.items() if f"${k}" in sql}).fetchall()
        for item, positions in layout.items():
            self._present[item] = tuple(bool(row[i]) for i in positions)


def check_needs(
    con: duckdb.DuckDBPyConnection, needs: tuple[Need, ...], window: Window | None, profile: NeedsProfile | None = None
) -> str | None:
    """Why the data a rule needs is missing, or None when it is all there.

    `profile` answers for a whole run (one query per table for every rule); without it the
    needs given are asked here."""
    profile = profile or NeedsProfile(con, needs, window)
    for need in needs:
        label = need.label or need.table
        how = f"; {need.how}" if need.how else ""
        if need.table not in profile.relations():
            return f"needs {label}: table {need.table} is missing{how}"
        present = profile.columns(need.table)
        absent = [c for c in need.columns if c not in present]
        if absent:
            return f"needs {label}: column(s) {', '.join(absent)} missing from {need.table}{how}"
        if need.table == BILLING_TABLE and window is None:
            return f"needs {label}: no billing data loaded (run `costaudit load` first)"
        rows, *values = profile.present(need)
        scope = " in the audit window" if need.table == BILLING_TABLE else ""
        if not rows:
            return f"needs {label}: no rows{scope}{how}"
        empty = [c for c, has in zip(need.columns, values, strict=True) if not has]
        if empty:
            return f"needs {label}: column(s) {', '.join(empty)} hold no values{scope}{how}"
    return None
