"""Reading Google Cloud billing export fields whatever shape the export arrived in.

The same field reaches us in three shapes:

* nested (BigQuery rows as Parquet or newline-delimited JSON): one column ``service`` of type
  ``STRUCT(id VARCHAR, description VARCHAR)``, lists such as ``credits`` of type
  ``STRUCT(name VARCHAR, amount DOUBLE, ...)[]``;
* nested but loosely typed (JSON where BigQuery wrote some numbers, NUMERIC and INT64 as strings):
  leaves of type VARCHAR, or JSON when rows disagree;
* flattened CSV: a text column ``service.description`` and list columns holding a Python-repr
  (``[{'name': 'x', 'amount': -0.01}]``) or JSON text.

`Fields` looks a dotted path up in any of these and hands back typed SQL, so one mapping serves
every shape. Everything here builds SQL text; no billing row is touched in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from costaudit.schema import MONEY

from ..base import Cols
from ..sql import quote_ident, quote_literal

NUMERIC_TYPES = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "UHUGEINT", "FLOAT", "REAL", "DOUBLE", "DECIMAL", "NUMERIC", "INT", "INT8", "INT4",
}
TIME_TYPES = {"TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "DATE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"}


@dataclass(frozen=True)
class SqlType:
    """A DuckDB column type, parsed far enough to walk STRUCT fields and LIST elements."""

    kind: str  # 'struct', 'list', 'map' or 'scalar'
    name: str = ""  # scalar: the base type name, upper case, without parameters (DECIMAL, VARCHAR ...)
    fields: tuple[tuple[str, SqlType], ...] = ()
    element: SqlType | None = None

    def field(self, name: str) -> tuple[str, SqlType] | None:
        """(actual field name, type) of a STRUCT field, looked up case-insensitively."""
        for actual, sql_type in self.fields:
            if actual.lower() == name.lower():
                return actual, sql_type
        return None

    @property
    def is_text(self) -> bool:
        return self.kind == "scalar" and self.name in ("VARCHAR", "JSON")

    @property
    def is_numeric(self) -> bool:
        return self.kind == "scalar" and self.name in NUMERIC_TYPES

    @property
    def is_time(self) -> bool:
        return self.kind == "scalar" and self.name in TIME_TYPES


def parse_type(text: str) -> SqlType:
    """Parse a DuckDB type string such as ``STRUCT("key" VARCHAR, "value" VARCHAR)[]``.

    Unparsable text becomes a scalar of that name, which the helpers below read as text.
    """
    try:
        parsed, end = _parse(text, 0)
    except (IndexError, ValueError):
        return SqlType("scalar", text.strip().upper())
    if text[end:].strip():
        return SqlType("scalar", text.strip().upper())
    return parsed


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _parse_name(text: str, i: int) -> tuple[str, int]:
    i = _skip(text, i)
    if text[i] == '"':
        out = []
        i += 1
        while True:
            if text[i] == '"':
                if i + 1 < len(text) and text[i + 1] == '"':
                    out.append('"')
                    i += 2
                    continue
                return "".join(out), i + 1
            out.append(text[i])
            i += 1
    start = i
    while i < len(text) and not text[i].isspace():
        i += 1
    return text[start:i], i


def _parse(text: str, i: int) -> tuple[SqlType, int]:
    i = _skip(text, i)
    upper = text[i:].upper()
    if upper.startswith("STRUCT(") or upper.startswith("UNION("):
        i += upper.index("(") + 1
        fields: list[tuple[str, SqlType]] = []
        while True:
            i = _skip(text, i)
            if text[i] == ")":
                i += 1
                break
            name, i = _parse_name(text, i)
            child, i = _parse(text, i)
            fields.append((name, child))
            i = _skip(text, i)
            if text[i] == ",":
                i += 1
        result = SqlType("struct", fields=tuple(fields))
    elif upper.startswith("MAP("):
        i += 4
        _key, i = _parse(text, i)
        i = _skip(text, i) + 1  # the comma
        value, i = _parse(text, i)
        i = _skip(text, i) + 1  # the closing parenthesis
        result = SqlType("map", element=value)
    else:
        start = i
        while i < len(text) and text[i] not in ",()[]":
            i += 1
        name = " ".join(text[start:i].split()).upper()
        if i < len(text) and text[i] == "(":  # DECIMAL(38,9), VARCHAR(10)
            i = text.index(")", i) + 1
        if not name:
            raise ValueError(text)
        result = SqlType("scalar", name)
    while True:
        i = _skip(text, i)
        if i < len(text) and text[i] == "[":
            i = text.index("]", i) + 1
            result = SqlType("list", element=result)
            continue
        return result, i


# -- typed SQL from an expression of a known type ----------------------------------------------

def text_sql(expr: str, sql_type: SqlType) -> str:
    """VARCHAR with blanks as NULL, from any type (JSON strings lose their quotes)."""
    if sql_type.kind == "scalar":
        if sql_type.name == "VARCHAR":
            return f"NULLIF(trim({expr}), '')"
        if sql_type.name == "JSON":
            return f"NULLIF(trim(json_extract_string({expr}, '$')), '')"
        if sql_type.name in ("NULL", '"NULL"'):
            return "NULL::VARCHAR"
        return f"CAST({expr} AS VARCHAR)"
    return f"CAST(to_json({expr}) AS VARCHAR)"


def money_sql(expr: str, sql_type: SqlType) -> str:
    """An exact DECIMAL from a number, or from text through the shared ``ca_money`` macro."""
    if sql_type.is_numeric:
        return f"CAST({expr} AS {MONEY})"
    return f"ca_money({text_sql(expr, sql_type)})"


def ts_sql(expr: str, sql_type: SqlType) -> str:
    """A TIMESTAMPTZ from a typed time, or from text (``2022-08-01 03:00:00 UTC``, ``202208`` ...)."""
    if sql_type.is_time:
        return f"CAST({expr} AS TIMESTAMPTZ)"
    return f"ca_ts({text_sql(expr, sql_type)})"


def money_problem_sql(text_expr: str) -> str:
    """True when a text value is present but is not a decimal number."""
    return f"({text_expr} IS NOT NULL AND ca_money({text_expr}) IS NULL)"


# -- lists: credits, labels, system_labels, project.labels, tags -------------------------------

# One value of a Python-repr or JSON dict: 'single quoted', "double quoted" or bare (numbers, None).
_VALUE = r"""\s*:\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|([^,}\s][^,}]*))"""


def _repr_value(dict_expr: str, key: str) -> str:
    """SQL: the value of `key` in one Python-repr/JSON dict text, unquoted, None/null as NULL."""
    pattern = quote_literal(f"""['"]{key}['"]""" + _VALUE)
    parts = f"regexp_extract({dict_expr}, {pattern}, ['sq', 'dq', 'bare'])"
    single = f"replace(replace(struct_extract({parts}, 'sq'), '\\''', ''''), '\\\\', '\\')"
    double = f"replace(replace(struct_extract({parts}, 'dq'), '\\\"', '\"'), '\\\\', '\\')"
    bare = f"NULLIF(trim(struct_extract({parts}, 'bare')), '')"
    return (
        f"coalesce(NULLIF({single}, ''), NULLIF({double}, ''), "
        f"CASE WHEN {bare} IN ('None', 'null', 'NULL') THEN NULL ELSE {bare} END)"
    )


@dataclass(frozen=True)
class ListSpec:
    """The fields read from each entry of a list column: text fields, and money fields that come
    back both as DECIMAL (``<name>``) and as their source text (``<name>_text``) for validation."""

    text: tuple[str, ...]
    money: tuple[str, ...] = ()

    def entry(self, getter) -> str:
        """struct_pack(...) of one entry, given getter(field, want) -> SQL (want: 'text'/'money')."""
        parts = [f"{quote_ident(name)} := {getter(name, 'text')}" for name in self.text]
        for name in self.money:
            parts.append(f"{quote_ident(name)} := {getter(name, 'money')}")
            parts.append(f"{quote_ident(name + '_text')} := {getter(name, 'text')}")
        return f"struct_pack({', '.join(parts)})"

    def empty(self) -> str:
        """A typed empty list, for exports without this column."""
        types = [f"{quote_ident(n)} VARCHAR" for n in self.text]
        for name in self.money:
            types += [f"{quote_ident(name)} {MONEY}", f"{quote_ident(name + '_text')} VARCHAR"]
        return f"CAST([] AS STRUCT({', '.join(types)})[])"


@dataclass
class ListColumn:
    """SQL for one list column: its entries (a LIST of STRUCT per `ListSpec`) and, for text
    sources, a problem message when the text cannot be read as a list."""

    entries: str
    problem: str | None = None


@dataclass
class Fields:
    """Dotted-path access to a billing export's columns, nested or flattened."""

    cols: Cols
    _types: dict[str, SqlType] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._types = {name: parse_type(sql_type) for name, sql_type in self.cols.types.items()}

    def find(self, path: str) -> tuple[str, SqlType, str] | None:
        """(SQL expression, type, top-level column) for a dotted path, or None when absent.

        A flattened column named exactly like the path wins; otherwise the longest dotted prefix
        that names a column is walked down through its STRUCT fields.
        """
        parts = path.split(".")
        for cut in range(len(parts), 0, -1):
            actual = self.cols.name(".".join(parts[:cut]))
            if actual is None:
                continue
            expr, sql_type = quote_ident(actual), self._types[actual]
            rest = parts[cut:]
            if rest and sql_type.kind == "scalar" and sql_type.name == "JSON":
                # read_json types a record JSON when rows disagree (or all are null): walk it by path
                return f"json_extract({expr}, {quote_literal('$.' + '.'.join(rest))})", sql_type, actual
            for part in rest:
                found = sql_type.field(part) if sql_type.kind == "struct" else None
                if found is None:
                    break
                name, sql_type = found
                expr = f"struct_extract({expr}, {quote_literal(name)})"
            else:
                return expr, sql_type, actual
        return None

    def has(self, path: str) -> bool:
        return self.find(path) is not None

    def type_of(self, path: str) -> SqlType | None:
        found = self.find(path)
        return found[1] if found else None

    def top_level_text(self, path: str) -> str | None:
        """The column name when the path is a whole text column (validated by the core with row numbers)."""
        found = self.find(path)
        if found is None:
            return None
        expr, sql_type, actual = found
        if expr == quote_ident(actual) and sql_type.kind == "scalar" and sql_type.name == "VARCHAR":
            return actual
        return None

    def text(self, path: str) -> str:
        found = self.find(path)
        return text_sql(found[0], found[1]) if found else "NULL::VARCHAR"

    def money(self, path: str) -> str:
        found = self.find(path)
        return money_sql(found[0], found[1]) if found else f"NULL::{MONEY}"

    def ts(self, path: str) -> str:
        found = self.find(path)
        return ts_sql(found[0], found[1]) if found else "NULL::TIMESTAMPTZ"

    def list_column(self, path: str, spec: ListSpec) -> ListColumn:
        """The entries of a list column as LIST(STRUCT(...)) in every shape the export may use."""
        found = self.find(path)
        if found is None:
            return ListColumn(spec.empty())
        expr, sql_type, _ = found
        if sql_type.kind == "list" and sql_type.element is not None:
            element = sql_type.element
            if element.kind == "struct":
                return ListColumn(f"list_transform({expr}, lambda e: {spec.entry(_struct_getter(element))})")
            if element.kind == "scalar" and element.name in ("JSON", "VARCHAR"):
                return ListColumn(f"list_transform({expr}, lambda e: {spec.entry(_json_getter('CAST(e AS JSON)'))})")
            return ListColumn(spec.empty())
        if sql_type.is_text:
            return _text_list(text_sql(expr, sql_type), spec)
        return ListColumn(spec.empty())


def _struct_getter(element: SqlType):
    def get(name: str, want: str) -> str:
        found = element.field(name)
        if found is None:
            return f"NULL::{MONEY}" if want == "money" else "NULL::VARCHAR"
        actual, child = found
        child_expr = f"struct_extract(e, {quote_literal(actual)})"
        return money_sql(child_expr, child) if want == "money" else text_sql(child_expr, child)

    return get


def _json_getter(element_expr: str):
    def get(name: str, want: str) -> str:
        value = f"NULLIF(trim(json_extract_string({element_expr}, {quote_literal('$.' + name)})), '')"
        return f"ca_money({value})" if want == "money" else value

    return get


def _text_list(text: str, spec: ListSpec) -> ListColumn:
    """Lists held as text: a JSON array, or the Python repr a flattening script wrote."""
    is_json_array = f"(json_valid({text}) AND json_type(CAST({text} AS JSON)) = 'ARRAY')"
    json_entries = (
        f"list_transform(CAST(CAST({text} AS JSON) AS JSON[]), lambda e: {spec.entry(_json_getter('e'))})"
    )
    dicts = f"regexp_extract_all({text}, '\\{{[^{{}}]*\\}}')"

    def repr_get(name: str, want: str) -> str:
        value = _repr_value("d", name)
        return f"ca_money({value})" if want == "money" else value

    repr_entries = f"list_transform({dicts}, lambda d: {spec.entry(repr_get)})"
    entries = (
        f"CASE WHEN {text} IS NULL THEN {spec.empty()} "
        f"WHEN {is_json_array} THEN {json_entries} ELSE {repr_entries} END"
    )
    looks_like_list = f"regexp_full_match({text}, '(?s)\\[.*\\]')"
    has_content = f"regexp_matches({text}, '(?s)^\\[\\s*[^\\s\\]]')"
    problem = (
        f"CASE WHEN {text} IS NULL OR {is_json_array} THEN NULL "
        f"WHEN NOT {looks_like_list} THEN 'is not a list (expected [] or [{{...}}, ...])' "
        f"WHEN {has_content} AND len({dicts}) = 0 THEN 'holds entries that are not {{key: value}} records' "
        f"END"
    )
    return ListColumn(entries, problem)
