"""`costaudit sql`: read-only SQL over the store, as a table, CSV, JSON or Parquet.

Register in cli.py with ``main.add_command(sql)``; expects ``ctx.obj["db"]``.

The store is opened read-only (DuckDB's shared lock), so any number of `sql` readers work side
by side, and while `costaudit run` builds its copy of the store (see `costaudit.swap`).
Statements that would change the store fail in DuckDB's read-only mode and are reported in one
line; statements that escape that guard because they write elsewhere (COPY, EXPORT, ATTACH,
INSTALL/LOAD, ...) are refused before they run. Temporary objects (CREATE TEMP VIEW ...) live
in memory and are allowed. Output files are written only at the path given with --out: into a
temporary file in the same folder, then renamed over it.

CSV output guards against spreadsheet formulas (the store's text is whoever tagged a resource):
a text cell, or a column name, that a spreadsheet would run as a formula (it starts with
``= + - @``, a tab or a line break, or their full-width forms) gets a leading apostrophe, as the
CSV and XLSX reports do (`costaudit.reports.safe`). Numbers, dates and JSON output are never
changed; ``--raw`` writes text exactly as stored, for programs that read the CSV.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import click
import duckdb
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from costaudit.connectors.sql import install_macros, quote_ident, quote_literal
from costaudit.errors import CostauditError, UsageError
from costaudit.reports.safe import spreadsheet_text, spreadsheet_text_sql
from costaudit.store import connect, store_files
from costaudit.textout import printable, terminal_console

FORMATS = ("table", "csv", "json", "parquet")
COPY_OPTIONS = {"csv": "FORMAT csv, HEADER true", "json": "FORMAT json, ARRAY true", "parquet": "FORMAT parquet"}
ST = duckdb.StatementType
# Statements that return rows worth showing.
RESULT_TYPES = {ST.SELECT, ST.EXPLAIN, ST.PRAGMA, ST.CALL, ST.MULTI, ST.RELATION}
# Harmless in a read-only session (settings, variables, transactions of a reader).
SESSION_TYPES = {ST.SET, ST.VARIABLE_SET, ST.TRANSACTION}
# Writes DuckDB's read-only mode refuses for the store; allowed on temporary objects only.
GUARDED_TYPES = {ST.CREATE, ST.DROP, ST.INSERT, ST.UPDATE, ST.DELETE, ST.ALTER, ST.MERGE_INTO, ST.CREATE_FUNC}
REFUSED_WHY = {
    "COPY": "COPY writes files; use costaudit sql QUERY --format csv|json|parquet --out FILE",
    "EXPORT": "EXPORT DATABASE writes files; use --out FILE (or costaudit export focus)",
    "COPY_DATABASE": "COPY FROM DATABASE writes another database",
    "ATTACH": "costaudit sql reads this store only",
    "DETACH": "costaudit sql reads this store only",
    "LOAD": "installing or loading DuckDB extensions is not allowed here",
    "EXTENSION": "installing or loading DuckDB extensions is not allowed here",
}
ANALYSIS_VIEWS = ("analysis_line_items", "ai_spend", "network_transfer", "analysis_totals", "ai_spend_totals",
                  "network_transfer_totals")
PROMPT, CONTINUE = "costaudit> ", "      ...> "
HELP = (
    "End each statement with ';'. Commands: .tables (tables and views), .help, .quit (or Ctrl-D). "
    "The store is read-only here; CREATE TEMP VIEW works."
)


class SqlError(CostauditError):
    """A query that DuckDB could not run (syntax, unknown table, conversion ...)."""


class SqlRefused(UsageError):
    """A statement costaudit sql does not run because it would write."""


def _console() -> Console:
    return terminal_console()


@click.command("sql")
@click.argument("query", required=False)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Output: table (default on stdout), csv, json (an array of objects) or parquet (needs --out).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the result to this file (format from --format, else from its extension).")
@click.option("--max-rows", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Rows shown in table output (csv, json and parquet are never cut).")
@click.option("--raw", is_flag=True,
              help="CSV: write text exactly as stored. By default a text cell a spreadsheet would run as a "
                   "formula (starting with = + - @, a tab or a line break) gets a leading apostrophe.")
@click.pass_context
def sql(ctx: click.Context, query: str | None, fmt: str | None, out: Path | None, max_rows: int, raw: bool) -> None:
    """Run read-only SQL over the store: QUERY, '-' for a script on stdin, or none for a prompt.

    \b
      costaudit sql "SELECT * FROM latest_findings"
      costaudit sql "SELECT ... FROM network_transfer" --format csv --out routes.csv
      costaudit sql                 # interactive: statements end with ';', Ctrl-D quits

    With several statements, each result is shown; --out receives the last one. Writes to the
    store are refused (the store is written by load, import, audit and run). CSV text that a
    spreadsheet would run as a formula gets a leading apostrophe unless --raw.
    """
    db = Path(ctx.obj["db"])
    fmt = _resolve_format(fmt, out)
    if out is not None:
        out = _check_out(out, db)
    con = connect(db, read_only=True)
    try:
        if query is None:
            if out is not None:
                raise UsageError("--out needs a QUERY (the interactive mode prints each result)")
            if fmt == "parquet":
                raise UsageError("--format parquet needs --out FILE")
            failures = interactive(con, fmt, max_rows, raw=raw)
            if failures:
                ctx.exit(1)
            return
        text = sys.stdin.read() if query == "-" else query
        execute_text(con, text, fmt, out, max_rows, raw=raw)
    finally:
        con.close()


def _resolve_format(fmt: str | None, out: Path | None) -> str:
    if fmt is None:
        suffix = out.suffix.lower().lstrip(".") if out is not None else ""
        if out is not None and suffix not in COPY_OPTIONS:
            raise UsageError(f"--out {out}: say the format with --format csv|json|parquet (or use one of those extensions)")
        fmt = suffix or "table"
    if fmt == "table" and out is not None:
        raise UsageError("--out writes csv, json or parquet; pass --format csv|json|parquet")
    if fmt == "parquet" and out is None:
        raise UsageError("--format parquet needs --out FILE (Parquet is binary)")
    return fmt


def _check_out(out: Path, db: Path) -> Path:
    """The output path, absolute; never the store or its companion files, never a folder."""
    target = out.expanduser().resolve()
    if not target.parent.is_dir():
        raise UsageError(f"--out {out}: folder {target.parent} does not exist")
    if target.is_dir():
        raise UsageError(f"--out {out}: is a folder; give a file name")
    if target in store_files(db):
        raise UsageError(f"--out {out}: that is the store (or one of its files); choose another file")
    return target


def parse(con: duckdb.DuckDBPyConnection, text: str) -> list[duckdb.Statement]:
    """Split text into statements; refuse the ones that would write outside DuckDB's read-only guard."""
    try:
        statements = con.extract_statements(text)
    except duckdb.Error as exc:
        raise _translate(exc) from None
    for statement in statements:
        kind = statement.type
        if kind in RESULT_TYPES or kind in SESSION_TYPES or kind in GUARDED_TYPES:
            continue
        why = REFUSED_WHY.get(kind.name, "it is not a read")
        raise SqlRefused(f"costaudit sql is read-only: refused a {kind.name} statement ({why})")
    return statements


def _translate(exc: duckdb.Error) -> CostauditError:
    """One line a person can act on, from a DuckDB error."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    found = re.search(r'statement of type "(\w+)".*read-only mode', first)
    if found or "read-only mode" in first:
        kind = found.group(1) if found else "this"
        return SqlRefused(
            f"costaudit sql is read-only: {kind} statements cannot change the store (it is written by load, "
            "import, audit and run; temporary objects are allowed: CREATE TEMP VIEW ...)"
        )
    hint = next((line for line in lines[1:] if line.startswith("Did you mean")), None)
    message = first + (f" {hint}" if hint else "")
    missing = re.search(r"with name (\w+) does not exist", first)
    if missing and missing.group(1) in ANALYSIS_VIEWS:
        message += " (the analysis views appear after the first costaudit run, audit or summary)"
    return SqlError(message)


def execute_text(con: duckdb.DuckDBPyConnection, text: str, fmt: str, out: Path | None, max_rows: int,
                 *, raw: bool = False) -> None:
    """Run every statement of `text`; show each result, or write the last one to `out`.

    CSV text is formula-guarded unless `raw` (see the module docstring)."""
    statements = parse(con, text)
    if not statements:
        raise UsageError("no SQL statement given")
    for index, statement in enumerate(statements):
        last = index == len(statements) - 1
        try:
            relation = con.sql(statement)
            if relation is None or statement.type not in RESULT_TYPES:
                continue
            if out is not None:
                if last:
                    write_file(con, relation, fmt, out, raw=raw)
            elif fmt == "table":
                print_table(relation, max_rows)
            else:
                click.echo(_copy_text(con, relation, fmt, raw=raw), nl=False)
        except duckdb.Error as exc:
            raise _translate(exc) from None


def _copy(con: duckdb.DuckDBPyConnection, relation: duckdb.DuckDBPyRelation, fmt: str, target: Path,
          *, raw: bool = False) -> None:
    """Stream a result into a file with DuckDB's own writers (exact decimals, UTC timestamps).

    A second cursor writes while the query's connection produces the rows. CSV text columns
    (and column names: a PIVOT makes them from data) are formula-guarded unless `raw`."""
    cursor = con.cursor()
    try:
        install_macros(cursor)  # the session time zone (UTC) for TIMESTAMPTZ text
        cursor.register("__costaudit_result", relation.arrow())
        source = "__costaudit_result"
        if fmt == "csv" and not raw:
            source = f"({_guarded_select(cursor, source)})"
        cursor.execute(f"COPY {source} TO {quote_literal(str(target))} ({COPY_OPTIONS[fmt]})")
    finally:
        cursor.close()


def _guarded_select(cursor: duckdb.DuckDBPyConnection, source: str) -> str:
    """SELECT over `source` with every VARCHAR column formula-guarded, and every column name too.

    The names are read from the registered result itself, where DuckDB has already made
    duplicates unique; DESCRIBE reads its schema, not its rows."""
    items = []
    for name, kind, *_ in cursor.execute(f"DESCRIBE {source}").fetchall():
        ident = quote_ident(name)
        expr = spreadsheet_text_sql(ident) if kind == "VARCHAR" else ident
        items.append(f"{expr} AS {quote_ident(spreadsheet_text(name))}")
    return "SELECT " + ", ".join(items) + f" FROM {source}"


def write_file(con: duckdb.DuckDBPyConnection, relation: duckdb.DuckDBPyRelation, fmt: str, out: Path,
               *, raw: bool = False) -> None:
    """Write to a temporary file beside `out`, then rename it into place (no partial files)."""
    handle, temp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(handle)
    try:
        os.unlink(temp)  # DuckDB's writer creates the file itself
        _copy(con, relation, fmt, Path(temp), raw=raw)
        os.replace(temp, out)
    finally:
        Path(temp).unlink(missing_ok=True)


def _copy_text(con: duckdb.DuckDBPyConnection, relation: duckdb.DuckDBPyRelation, fmt: str,
               *, raw: bool = False) -> str:
    with tempfile.TemporaryDirectory(prefix="costaudit-sql-") as folder:
        target = Path(folder) / f"result.{fmt}"
        _copy(con, relation, fmt, target, raw=raw)
        text = target.read_text(encoding="utf-8")
    return text if text.endswith("\n") else text + "\n"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        if value == 0:
            return "0.00"  # not -0.00
        # Exact: at least two decimals, more when the value has them (DECIMAL(38,12) pads zeros).
        normal = value.normalize()
        return f"{value.quantize(Decimal('0.01'))}" if normal == value.quantize(Decimal("0.01")) else f"{normal:f}"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def print_table(relation: duckdb.DuckDBPyRelation, max_rows: int) -> None:
    """A result as a rich table, at most `max_rows` rows (the rest is counted, not fetched)."""
    columns = relation.columns
    rows = relation.limit(max_rows + 1).fetchall()
    table = Table(show_lines=False)
    for name, kind in zip(columns, relation.types, strict=True):
        numeric = any(t in str(kind) for t in ("INT", "DECIMAL", "DOUBLE", "FLOAT", "HUGEINT"))
        table.add_column(escape(printable(name)), justify="right" if numeric else "left", overflow="fold")
    for row in rows[:max_rows]:
        table.add_row(*(escape(printable(_cell(v))) for v in row))
    console = _console()
    console.print(table)
    if len(rows) > max_rows:
        console.print(f"(first {max_rows} rows shown; --max-rows N, or --format csv --out FILE for all)", markup=False)
    else:
        console.print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})", markup=False)


def interactive(con: duckdb.DuckDBPyConnection, fmt: str, max_rows: int, *, raw: bool = False) -> int:
    """Read statements from stdin until EOF (a prompt on a terminal); returns how many failed."""
    stdin = sys.stdin  # click's test runner replaces it too
    tty = stdin.isatty()
    if tty:
        click.echo(f"costaudit sql, read-only. {HELP}", err=True)
    failures = 0
    buffer: list[str] = []
    while True:
        if tty:
            click.echo(CONTINUE if buffer else PROMPT, nl=False, err=True)
        line = stdin.readline()
        if not line:
            break
        stripped = line.strip()
        if not buffer and stripped.startswith("."):
            if stripped in (".quit", ".exit"):
                return failures
            failures += _dot_command(con, stripped, max_rows)
            continue
        if not stripped and not buffer:
            continue
        buffer.append(line)
        if stripped.endswith(";"):
            failures += _run_one(con, "".join(buffer), fmt, max_rows, raw)
            buffer = []
    if "".join(buffer).strip():
        failures += _run_one(con, "".join(buffer), fmt, max_rows, raw)
    return failures


def _run_one(con: duckdb.DuckDBPyConnection, text: str, fmt: str, max_rows: int, raw: bool = False) -> int:
    try:
        execute_text(con, text, fmt, None, max_rows, raw=raw)
        return 0
    except CostauditError as exc:
        Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(printable(str(exc)))}", soft_wrap=True)
        return 1


def _dot_command(con: duckdb.DuckDBPyConnection, command: str, max_rows: int) -> int:
    if command == ".help":
        click.echo(HELP, err=True)
        return 0
    if command == ".tables":
        print_table(con.sql(
            """SELECT table_name AS name, 'table' AS kind FROM duckdb_tables() WHERE NOT temporary
               UNION ALL SELECT view_name, 'view' FROM duckdb_views() WHERE NOT internal AND NOT temporary
               ORDER BY name"""), max_rows)
        return 0
    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] unknown command {escape(printable(command))} (.tables, .help, .quit)")
    return 1
