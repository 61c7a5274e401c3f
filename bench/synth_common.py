"""Shared pieces of the synthetic export generators (bench/generate.py and the synth_* modules).

Every billing row is produced by DuckDB SQL over ``range()``: pseudo-random values are DuckDB
``hash()`` of (row number, seed, salt), so the same seed gives the same rows on the same DuckDB
version, and no Python runs per row. Python only builds the small catalogues (a few thousand
usage types, SKUs or meters) that the rows draw from.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

# 2^53: a 53-bit slice of a 64-bit hash divided by this is a uniform double in [0, 1).
_TWO_53 = 9007199254740992.0


@dataclass(frozen=True)
class Spec:
    """What to generate: rows per billing month, months, seed, first month, part size."""

    rows: int
    months: int = 1
    seed: int = 1
    start: date = date(2024, 9, 1)
    part_rows: int = 1_000_000
    row_group_size: int = 122_880

    def month_starts(self) -> list[date]:
        out = []
        year, month = self.start.year, self.start.month
        for _ in range(self.months):
            out.append(date(year, month, 1))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return out

    def parts(self, rows: int | None = None) -> list[tuple[int, int]]:
        """[start, end) row ranges of the part files of one month."""
        total = self.rows if rows is None else rows
        count = max(1, math.ceil(total / self.part_rows))
        size = math.ceil(total / count)
        return [(k * size, min(total, (k + 1) * size)) for k in range(count) if k * size < total]

    def accounts(self) -> int:
        """Linked accounts / projects / subscriptions: grows with the rows (3 to 1,500)."""
        return max(3, min(1500, self.rows // 20_000))

    def resources(self) -> int:
        """Distinct resources a month draws from: about one per 25 rows (2M at 50M rows)."""
        return max(20, self.rows // 25)


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def uniform(*parts: object) -> str:
    """SQL: a deterministic uniform double in [0, 1) from the hash of the given SQL values."""
    args = ", ".join(str(p) for p in parts)
    return f"((hash({args}) >> 11) / {_TWO_53})"


def pick(count: int | str, skew: float, *parts: object) -> str:
    """SQL: an index in [0, count) drawn with a power-law skew (1 = uniform; 3 = a few are hot)."""
    return f"CAST(floor(pow({uniform(*parts)}, {skew}) * ({count})) AS BIGINT)"


def hexid(width: int, *parts: object) -> str:
    """SQL: `width` (<= 16) lower-case hex digits from a hash, like AWS/Azure resource ids."""
    return f"lower(lpad(to_hex(hash({', '.join(str(p) for p in parts)})), 16, '0'))[1:{width}]"


def connect(memory_limit: str = "2GB") -> duckdb.DuckDBPyConnection:
    """A generation connection: bounded memory, row order preserved so part files are stable."""
    return duckdb.connect(config={"memory_limit": memory_limit, "preserve_insertion_order": True})


def register_catalogue(con: duckdb.DuckDBPyConnection, name: str, rows: list[dict], seed: int, key: str) -> int:
    """Store a catalogue as table `name` with a dense index `u` in a seed-dependent order.

    Rows draw `u` with a skewed pick, so the order decides which entries are common; shuffling
    by a hash of the key and the seed makes that choice deterministic but not alphabetical."""
    table = pa.Table.from_pylist(rows)
    con.register("__catalogue", table)
    try:
        con.execute(
            f"""CREATE OR REPLACE TABLE {name} AS
                SELECT CAST(row_number() OVER (ORDER BY hash({key}, {int(seed)}), {key}) - 1 AS BIGINT) AS u, *
                FROM __catalogue"""
        )
    finally:
        con.unregister("__catalogue")
    return len(rows)


def copy_parquet(con: duckdb.DuckDBPyConnection, select: str, path: Path, row_group_size: int) -> Path:
    """Write one part file with snappy compression, as AWS and BigQuery extracts are written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    target = str(path).replace("'", "''")
    con.execute(
        f"COPY ({select}) TO '{target}' (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE {int(row_group_size)})"
    )
    return path


def copy_csv_gz(con: duckdb.DuckDBPyConnection, select: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    target = str(path).replace("'", "''")
    con.execute(f"COPY ({select}) TO '{target}' (FORMAT csv, HEADER true, COMPRESSION gzip)")
    return path


def write_json(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def sql_text(value: str) -> str:
    """A SQL string literal (catalogue text is ours, but quote it properly anyway)."""
    return "'" + value.replace("'", "''") + "'"
