"""Property tests over every reader: damaged or odd input ends in a correct load or a clear
InputError, never a traceback and never partial data.

Each example starts from a real export (a bundled fixture or a shared sample) and damages it:
truncation, wrong types in a column, extra or missing columns, huge tag maps, non-UTF-8 bytes,
a byte-order mark, CRLF line ends, quoted newlines.
"""

from __future__ import annotations

import csv
import gzip
import io
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costaudit.errors import CostauditError
from costaudit.loader import load_paths
from costaudit.store import connect

from .conftest import FIXTURES, SAMPLES

# One CSV export per reader family (CSV keeps the damage at the byte level).
SOURCES = {
    "focus": FIXTURES / "focus" / "focus-1.2-multicloud.csv",
    "azure-ea": FIXTURES / "azure" / "ea_actual.csv",
    "azure-mca": FIXTURES / "azure" / "mca_actual_eur.csv",
    "gcp-flat": FIXTURES / "gcp-shapes" / "detailed_export_flat.csv",
    "aws-cur": SAMPLES / "focus-converters" / "sample-anonymous-aws-export-dataset.csv",
}

DAMAGE = st.sampled_from(
    ["truncate", "wrong_type", "extra_column", "drop_column", "huge_tags", "bad_utf8", "bom", "crlf",
     "quoted_newline", "duplicate_header", "blank_lines"]
)


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.reader(handle))


def _write(rows: list[list[str]], *, line_end: str = "\n") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=line_end).writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _damage(rows: list[list[str]], how: str, data: st.DataObject) -> bytes:
    header, body = rows[0], rows[1:]
    body = body[: data.draw(st.integers(min_value=1, max_value=min(len(body), 40)), label="rows kept")]
    column = data.draw(st.integers(min_value=0, max_value=len(header) - 1), label="column")
    if how == "truncate":
        raw = _write([header, *body])
        return raw[: data.draw(st.integers(min_value=1, max_value=len(raw) - 1), label="cut at")]
    if how == "wrong_type":
        target = data.draw(st.integers(min_value=0, max_value=len(body) - 1), label="row")
        value = data.draw(st.sampled_from(["abc", "1,5", "NaN", "2024-13-45", "{", "-", "1e999999"]), label="value")
        body[target] = [value if i == column else v for i, v in enumerate(body[target])]
        return _write([header, *body])
    if how == "extra_column":
        return _write([[*header, "x_Unexpected"], *[[*r, "surprise"] for r in body]])
    if how == "drop_column":
        return _write([[h for i, h in enumerate(header) if i != column], *[[v for i, v in enumerate(r) if i != column] for r in body]])
    if how == "huge_tags":
        tags = ", ".join(f'"k{i}": "{"v" * 50}"' for i in range(2000))
        names = [h.lower() for h in header]
        where = next((i for i, h in enumerate(names) if h in ("tags", "labels")), None)
        if where is None:
            return _write([header, *body])
        value = "{" + tags + "}" if names[where] == "tags" else "[]"
        return _write([header, *[[value if i == where else v for i, v in enumerate(r)] for r in body]])
    if how == "bad_utf8":
        raw = bytearray(_write([header, *body]))
        at = data.draw(st.integers(min_value=len(",".join(header)) + 1, max_value=len(raw) - 1), label="byte")
        raw[at:at] = b"\xff\xfe\x80"
        return bytes(raw)
    if how == "bom":
        return b"\xef\xbb\xbf" + _write([header, *body])
    if how == "crlf":
        return _write([header, *body], line_end="\r\n")
    if how == "quoted_newline":
        text_columns = [i for i, h in enumerate(header) if "description" in h.lower() or "name" in h.lower()]
        if not text_columns:
            return _write([header, *body])
        where = text_columns[column % len(text_columns)]
        return _write([header, *[[f"{v}\nsecond line" if i == where else v for i, v in enumerate(r)] for r in body]])
    if how == "duplicate_header":
        return _write([header, *body, header, *body[:1]])
    if how == "blank_lines":
        return _write([header, *body]).replace(b"\n", b"\n\n", 3)
    raise AssertionError(how)


def _state(con):
    return (
        con.execute("SELECT count(*), coalesce(sum(BilledCost), 0) FROM line_items").fetchone(),
        con.execute("SELECT count(*) FROM loads").fetchone()[0],
    )


@pytest.mark.parametrize("source", sorted(SOURCES))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(how=DAMAGE, data=st.data())
def test_damaged_export_loads_correctly_or_fails_clearly(source, how, data, tmp_path_factory):
    original = SOURCES[source]
    if not original.exists():
        pytest.skip(f"{original} not present")
    folder = tmp_path_factory.mktemp(f"fuzz-{source}")
    payload = _damage(_rows(original), how, data)
    if data.draw(st.booleans(), label="gzip"):
        payload = gzip.compress(payload, mtime=0)
    damaged = folder / "export.csv"
    damaged.write_bytes(payload)
    con = connect(folder / "store.duckdb")
    try:
        before = _state(con)
        assert before == ((0, Decimal(0)), 0)
        try:
            report = load_paths(con, [str(damaged)])
        except CostauditError as exc:
            message = str(exc)
            assert "\n" not in message.strip() and str(damaged) in message, message
            assert _state(con) == before, "a failed load must leave the store as it was"
            return
        # loaded: every partition reconciled, and nothing beyond what the report counts
        assert report.partitions
        for part in report.partitions:
            assert abs(part.difference) <= Decimal("0.01")
        assert _state(con)[0][0] == sum(p.rows for p in report.partitions)
    finally:
        con.close()
