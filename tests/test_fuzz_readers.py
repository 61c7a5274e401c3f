"""Property tests over every reader: damaged or odd input ends in a correct load or a clear
InputError, never a traceback and never partial data.

Each example starts from a real export (a bundled fixture or a shared sample) and damages it:
truncation, wrong types in a column, extra or missing columns, huge tag maps, non-UTF-8 bytes,
a byte-order mark, CRLF line ends, quoted newlines.

Reader families: FOCUS, Azure EA and MCA, AWS CUR (legacy) and CUR 2.0 (Data Exports) as CSV, the
Google Cloud export flattened to CSV, and the Google Cloud export as JSON lines (the BigQuery
NDJSON shape, with nested records and repeated fields), which has its own damage: records cut
short, fields of the wrong JSON type, missing or extra fields in some records only, huge label
lists, raw line breaks inside strings, lines that are not JSON, a JSON array instead of lines.
Parquet inputs are typed, so their damage (a corrupt or truncated file) is in
tests/test_bad_input.py::test_corrupt_parquet.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
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
    "aws-cur2": FIXTURES / "aws" / "data-exports" / "emea-cur2-csv" / "data" / "BILLING_PERIOD=2024-01"
    / "emea-cur2-csv-00001.csv.gz",  # read decompressed, then damaged (and maybe gzipped again)
}
JSON_LINES = FIXTURES / "gcp-shapes" / "detailed_export.ndjson"

DAMAGE = st.sampled_from(
    ["truncate", "wrong_type", "extra_column", "drop_column", "huge_tags", "bad_utf8", "bom", "crlf",
     "quoted_newline", "duplicate_header", "blank_lines"]
)


def _rows(path: Path) -> list[list[str]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8-sig") as handle:
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


JSON_DAMAGE = st.sampled_from(
    ["truncate", "wrong_type", "extra_field", "drop_field", "huge_labels", "bad_utf8", "bom", "crlf",
     "escaped_newline", "raw_newline", "not_json_line", "blank_lines", "duplicate_lines", "json_array",
     "labels_as_object", "numbers_as_text", "null_record_fields"]
)
JSON_FIELDS = ["cost", "currency", "usage_start_time", "usage_end_time", "invoice", "service", "sku", "labels",
               "credits", "usage", "project", "location", "billing_account_id", "cost_type", "resource", "price"]
WRONG_VALUES = ["abc", 1.5, -0.0, True, None, [], {}, [1, 2], {"month": 202405}, "2024-13-45 00:00:00 UTC",
                "1e999999", "NaN", "", "0,5"]


def _lines(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def _damage_json(records: list[dict], how: str, data: st.DataObject) -> bytes:
    """JSON-lines damage: `records` are the export's parsed lines (each a nested record)."""
    records = records[: data.draw(st.integers(min_value=1, max_value=min(len(records), 30)), label="records kept")]
    target = data.draw(st.integers(min_value=0, max_value=len(records) - 1), label="record")
    field = data.draw(st.sampled_from(JSON_FIELDS), label="field")
    every = data.draw(st.booleans(), label="in every record")
    chosen = records if every else [records[target]]
    if how == "truncate":
        raw = _lines(records)
        return raw[: data.draw(st.integers(min_value=1, max_value=len(raw) - 1), label="cut at")]
    if how == "wrong_type":
        value = data.draw(st.sampled_from(WRONG_VALUES), label="value")
        for r in chosen:
            r[field] = value
    elif how == "extra_field":
        for r in chosen:
            r["x_unexpected"] = {"nested": [1, "two", None]}
    elif how == "drop_field":
        for r in chosen:
            r.pop(field, None)
    elif how == "huge_labels":
        for r in chosen:
            r["labels"] = [{"key": f"k{i}", "value": "v" * 50} for i in range(2000)]
    elif how == "labels_as_object":
        for r in chosen:
            r["labels"] = {"team": "ml"}
    elif how == "numbers_as_text":  # BigQuery's JSON export writes NUMERIC and INT64 values as strings
        for r in chosen:
            r["cost"] = str(r.get("cost"))
            for credit in r.get("credits") or []:
                credit["amount"] = str(credit.get("amount"))
    elif how == "null_record_fields":
        for r in chosen:
            r[field] = None
    elif how == "escaped_newline":
        for r in chosen:
            if isinstance(r.get("sku"), dict):
                r["sku"]["description"] = f"{r['sku'].get('description')}\nsecond line"
    raw = _lines(records)
    if how == "bad_utf8":
        at = data.draw(st.integers(min_value=0, max_value=len(raw) - 1), label="byte")
        return raw[:at] + b"\xff\xfe\x80" + raw[at:]
    if how == "bom":
        return b"\xef\xbb\xbf" + raw
    if how == "crlf":
        return raw.replace(b"\n", b"\r\n")
    if how == "raw_newline":  # a line break inside a string: the record is split over two lines
        line = _lines([records[target]])
        broken = line.replace(b'"currency":"', b'"currency":"\n', 1)
        return raw.replace(line, broken if broken != line else line[: len(line) // 2] + b"\n" + line[len(line) // 2:], 1)
    if how == "not_json_line":
        lines = raw.splitlines(keepends=True)
        lines.insert(target, data.draw(st.sampled_from([b"not json\n", b"billing_account_id,cost\n", b"{\n", b"[]\n"]),
                                       label="line"))
        return b"".join(lines)
    if how == "blank_lines":
        return raw.replace(b"\n", b"\n\n", 3)
    if how == "duplicate_lines":
        lines = raw.splitlines(keepends=True)
        return b"".join(lines + lines[: target + 1])
    if how == "json_array":
        return json.dumps(records).encode()
    return raw


def _state(con):
    return (
        con.execute("SELECT count(*), coalesce(sum(BilledCost), 0) FROM line_items").fetchone(),
        con.execute("SELECT count(*) FROM loads").fetchone()[0],
    )


def _load_and_check(folder: Path, damaged: Path) -> None:
    """Load `damaged` into a fresh store: a reconciled load, or one clear error and an untouched store."""
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
        assert report.partitions
        for part in report.partitions:
            assert abs(part.difference) <= Decimal("0.01")
        assert _state(con)[0][0] == sum(p.rows for p in report.partitions)
    finally:
        con.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(how=JSON_DAMAGE, data=st.data())
def test_damaged_json_lines_load_correctly_or_fail_clearly(how, data, tmp_path_factory):
    records = [json.loads(line) for line in JSON_LINES.read_text(encoding="utf-8").splitlines() if line.strip()]
    payload = _damage_json(records, how, data)
    if data.draw(st.booleans(), label="gzip"):
        payload = gzip.compress(payload, mtime=0)
    folder = tmp_path_factory.mktemp("fuzz-jsonl")
    damaged = folder / "export.ndjson"
    damaged.write_bytes(payload)
    _load_and_check(folder, damaged)


@pytest.mark.parametrize("count", [0, 1, 3])
def test_a_gzipped_json_array_is_one_clear_error(count, tmp_path):
    record = json.loads(JSON_LINES.read_text(encoding="utf-8").splitlines()[0])
    damaged = tmp_path / "export.json.gz"
    damaged.write_bytes(gzip.compress(json.dumps([record] * count).encode(), mtime=0))
    _load_and_check(tmp_path, damaged)


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
    _load_and_check(folder, damaged)
