"""The reader contract: how a source format turns raw files into FOCUS 1.2 rows.

A `Format` is detected from the columns of the files (never from their names) and supplies
SQL, not Python loops: `select_sql` maps the raw relation to the store's columns, and
`source_totals_sql` computes the source's own total as that provider's invoice defines it,
straight from the raw columns, so the store can reconcile to the cent.

The raw relation is always called ``raw``; it has the source's columns plus ``x__file`` (the
file a row came from). CSV columns arrive as VARCHAR; Parquet and JSON keep their types, so
`Cols` writes casts that suit each column's actual type.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import duckdb

from costaudit.errors import InputError
from costaudit.schema import MONEY, QUANTITY, READER_COLUMNS

from .sql import quote_ident, quote_literal

FILE_COLUMN = "x__file"


@dataclass
class Cols:
    """The columns of one raw relation, looked up case-insensitively, with typed SQL helpers.

    Readers ask for a column by any of its known spellings; the first present one wins and
    comes back quoted. Absent columns yield SQL NULL of the right type, so one reader handles
    exports that include or omit optional columns.
    """

    types: dict[str, str]  # actual column name -> DuckDB type
    source: str = "input"  # for error messages: the file or delivery being read
    _lower: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._lower = {name.lower(): name for name in self.types}

    # -- lookup ---------------------------------------------------------------------------
    def name(self, *candidates: str) -> str | None:
        """The actual name of the first candidate present, or None."""
        for candidate in candidates:
            actual = self._lower.get(candidate.lower())
            if actual is not None:
                return actual
        return None

    def has(self, *candidates: str) -> bool:
        return self.name(*candidates) is not None

    def has_all(self, *names: str) -> bool:
        return all(self.has(n) for n in names)

    def lower_names(self) -> set[str]:
        return set(self._lower)

    def type_of(self, name: str) -> str:
        return self.types[name].upper()

    def is_text(self, name: str) -> bool:
        return self.type_of(name) == "VARCHAR"

    def require(self, *candidates: str) -> str:
        """The quoted column, or an InputError naming what was expected."""
        actual = self.name(*candidates)
        if actual is None:
            raise InputError(self.source, f"missing required column {candidates[0]!r}", column=candidates[0])
        return quote_ident(actual)

    def matching(self, prefix: str) -> list[str]:
        """Actual names of every column whose lower-cased name starts with `prefix` (lower-case)."""
        return [actual for low, actual in self._lower.items() if low.startswith(prefix)]

    # -- typed expressions ----------------------------------------------------------------
    def ref(self, *candidates: str) -> str | None:
        actual = self.name(*candidates)
        return quote_ident(actual) if actual is not None else None

    def str(self, *candidates: str) -> str:
        """A VARCHAR expression with empty strings turned into NULL (FOCUS: nulls, not blanks)."""
        actual = self.name(*candidates)
        if actual is None:
            return "NULL::VARCHAR"
        ident = quote_ident(actual)
        if self.is_text(actual):
            # Only ASCII spaces are padding: DuckDB's trim() would also drop a value's own leading
            # or trailing Unicode spaces (U+2000, U+3000...), and the store keeps text exactly.
            # trim(x, ' ') costs twice trim(x); testing the ends first makes the usual unpadded
            # value cheaper than either (0.38 s against 0.74 s per 20M values).
            return (f"NULLIF(CASE WHEN starts_with({ident}, ' ') OR ends_with({ident}, ' ') "
                    f"THEN trim({ident}, ' ') ELSE {ident} END, '')")
        return f"CAST({ident} AS VARCHAR)"

    def money(self, *candidates: str) -> str:
        """An exact DECIMAL expression, or NULL when the column is absent."""
        return self._number(candidates, "ca_money", MONEY)

    def qty(self, *candidates: str) -> str:
        return self._number(candidates, "ca_qty", QUANTITY)

    def _number(self, candidates: tuple[str, ...], macro: str, sql_type: str) -> str:
        actual = self.name(*candidates)
        if actual is None:
            return f"NULL::{sql_type}"
        ident = quote_ident(actual)
        if self.is_text(actual):
            return f"{macro}({ident})"
        return f"CAST({ident} AS {sql_type})"

    def ts(self, *candidates: str) -> str:
        """A TIMESTAMPTZ (UTC) expression, or NULL when absent."""
        actual = self.name(*candidates)
        if actual is None:
            return "NULL::TIMESTAMPTZ"
        ident = quote_ident(actual)
        if self.is_text(actual):
            return f"ca_ts({ident})"
        return f"CAST({ident} AS TIMESTAMPTZ)"

    # -- validation -------------------------------------------------------------------------
    def parsed(self, kind: str, *candidates: str) -> tuple[str, str] | None:
        """(actual column, kind) for the validation pass, when the column is text.

        kind is 'money', 'qty', 'ts' or 'json', or 'money!' / 'ts!' for a column every row must fill
        (a blank is refused, not read as 0 or as another month). Typed columns need no check and
        yield None.
        """
        actual = self.name(*candidates)
        if actual is None or not self.is_text(actual):
            return None
        return (actual, kind)


EXPECTED = {
    "money": "a decimal number",
    "qty": "a decimal number",
    "ts": "a date or timestamp (ISO 8601, or MM/DD/YYYY)",
    "json": "a JSON object",
    "money!": "a decimal number, on every row (0 included)",
    "ts!": "a date or timestamp (ISO 8601, or MM/DD/YYYY), on every row",
}


def bad_value_condition(column: str, kind: str) -> str:
    """SQL that is true when a text value is present but does not parse as `kind`, or, for a
    required kind ('money!', 'ts!'), when it is missing or does not parse."""
    ident = quote_ident(column)
    if kind.endswith("!"):
        return f"({ident} IS NULL OR trim({ident}) = '' OR {bad_value_condition(column, kind[:-1])})"
    present = f"{ident} IS NOT NULL AND trim({ident}) <> ''"
    if kind == "money":
        return f"({present} AND ca_money({ident}) IS NULL)"
    if kind == "qty":
        return f"({present} AND ca_qty({ident}) IS NULL)"
    if kind == "ts":
        return f"({present} AND ca_ts({ident}) IS NULL)"
    if kind == "json":
        braced = f"ca_braced_json({ident})"
        return (
            f"({present} AND {braced} IS NOT NULL AND "
            f"(CASE WHEN json_valid({braced}) THEN json_type({braced}::JSON) ELSE 'INVALID' END) <> 'OBJECT')"
        )
    raise ValueError(kind)


@dataclass(frozen=True)
class ReadOptions:
    """What the user told `load` about inputs that do not state it themselves."""

    default_currency: str | None = None


class Format:
    """Base class of a source format. Subclasses set the class attributes and the SQL methods.

    Attributes:
        id: stable id stored in ``x_SourceFormat`` and the ledger (e.g. ``aws-cur``).
        provider: provider name as FOCUS ProviderName spells it (``AWS``, ``Google Cloud``,
            ``Microsoft``), or None when the rows name their own provider (FOCUS files).
        basis: the stored column that reconciles with the source total: ``BilledCost`` for
            invoice-basis inputs, ``EffectiveCost`` for amortized-only inputs.
        export_family: default ``source_export`` for the ledger when no manifest names one.
    """

    id: str = ""
    provider: str | None = None
    basis: str = "BilledCost"
    export_family: str = ""
    title: str = ""

    def prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        """Register lookup tables (TEMP) the SQL below joins to; called before any of it runs."""

    def score(self, cols: Cols) -> int:
        """How strongly these columns look like this format; 0 means not at all."""
        raise NotImplementedError

    def check(self, cols: Cols, opts: ReadOptions) -> None:
        """Raise InputError naming a missing required column; default: nothing more to check."""

    def version(self, cols: Cols) -> str:
        """The source's format version, as far as the columns tell."""
        return ""

    def select_sql(self, cols: Cols, opts: ReadOptions) -> str:
        """A SELECT over ``raw`` producing `READER_COLUMNS`, by name, in any order.

        Use `select_list` to fill absent columns with typed NULLs.
        """
        raise NotImplementedError

    def source_totals_sql(self, cols: Cols, opts: ReadOptions) -> str:
        """A SELECT over ``raw`` with columns provider, billing_account_id,
        billing_period_start (TIMESTAMPTZ), currency, total (DECIMAL), grouped as the
        provider's invoice groups them, computed from raw columns independently of
        `select_sql`."""
        raise NotImplementedError

    def parsed_columns(self, cols: Cols) -> list[tuple[str, str]]:
        """Text columns that must parse as money, quantity or timestamp (see `Cols.parsed`)."""
        return []

    def problem_checks(self, cols: Cols) -> list[tuple[str, str]]:
        """Checks of values that `parsed_columns` cannot express (nested fields, lists).

        Each is (column label, SQL over ``raw`` yielding a problem text for a bad row, else
        NULL). The loader reports the first bad row as "<file>, row N, column L: <text>".
        """
        return []


def select_list(values: dict[str, str]) -> str:
    """Build the select list for `READER_COLUMNS` from {column: sql expression}.

    Missing columns become typed NULLs; every expression is cast to the store type, so a reader
    cannot silently widen or narrow a column. Unknown keys are a programming error.
    """
    known = {name for name, _ in READER_COLUMNS}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"reader produced unknown columns: {sorted(unknown)}")
    parts = []
    for name, sql_type in READER_COLUMNS:
        expr = values.get(name)
        if expr is None:
            parts.append(f"NULL::{sql_type} AS {quote_ident(name)}")
        else:
            parts.append(f"CAST(({expr}) AS {sql_type}) AS {quote_ident(name)}")
    return ",\n  ".join(parts)


def json_object_from_columns(pairs: Iterable[tuple[str, str]]) -> str:
    """SQL for a JSON object (or NULL when every value is NULL) from (key, sql expr) pairs.

    Used for tag and cost-category columns spread over many CSV columns. Keys are literals we
    quote; values stay attacker-controlled text and are JSON-encoded by DuckDB.
    """
    entries = [f"struct_pack(k := {quote_literal(key)}, v := CAST(({expr}) AS VARCHAR))" for key, expr in pairs]
    if not entries:
        return "NULL::JSON"
    kept = f"list_filter([{', '.join(entries)}], lambda e: e.v IS NOT NULL AND e.v <> '')"
    return f"CASE WHEN len({kept}) = 0 THEN NULL ELSE to_json(map_from_entries({kept})) END"


def data_file(name: str) -> str:
    """Path of a data file shipped in the package (``costaudit/data/<name>``), for DuckDB readers."""
    from importlib.resources import files

    return str(files("costaudit") / "data" / name)


def month_start(expr: str) -> str:
    """SQL: the first instant of the month containing a TIMESTAMPTZ expression (UTC)."""
    return f"CAST(date_trunc('month', ({expr})) AS TIMESTAMPTZ)"


def next_month(expr: str) -> str:
    """SQL: the first instant of the month after a month start."""
    return f"(({expr}) + INTERVAL 1 MONTH)"
