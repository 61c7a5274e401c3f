"""`costaudit summary` on each bundled fixture room: every charge key is in the reviewed table
(tests/data/analysis/fixtures_expected.csv) with the class analysis gave it, and the AI and network
totals printed per currency equal the sums of the rows the table marks as AI or network."""

from __future__ import annotations

import csv
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from costaudit.analysis.summary import summarise
from costaudit.errors import CostauditError
from costaudit.loader import load_paths
from costaudit.store import connect
from costaudit.summary_cmd import summary

from .conftest import FIXTURES

TABLE = Path(__file__).parent / "data" / "analysis" / "fixtures_expected.csv"
KEY_SQL = """ProviderName, coalesce(x_ServiceCode, ServiceName, ''), coalesce(x_SkuMeterCategory, ''),
             coalesce(x_UsageType, ChargeDescription, ''), ChargeCategory"""


def _table() -> list[dict[str, str]]:
    with TABLE.open(encoding="utf-8") as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


ROOMS = sorted({row["room"] for row in _table()})


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,.2f}"


@pytest.mark.parametrize("room", ROOMS)
def test_summary_of_each_fixture_room_matches_the_reviewed_table(room, tmp_path):
    folder = FIXTURES / room
    if not folder.is_dir():
        pytest.skip(f"{folder} not generated yet")
    db = tmp_path / "store.duckdb"
    con = connect(db)
    try:
        load_paths(con, [str(folder)])
    except CostauditError as exc:
        con.close()
        pytest.skip(f"fixtures/{room} does not load yet ({exc}); tests/test_fixtures.py owns that")
    con.close()
    printed = CliRunner().invoke(summary, [], obj={"db": db})
    assert printed.exit_code == 0, printed.output
    expected = {
        (r["provider"], r["service"], r["family"], r["usage"], r["charge_category"]): r
        for r in _table() if r["room"] == room
    }
    con = connect(db, read_only=True)
    try:
        found = con.execute(
            f"SELECT DISTINCT {KEY_SQL}, coalesce(ai_category, ''), coalesce(network_class, '') FROM analysis_line_items"
        ).fetchall()
        unreviewed = [k for *k, _, _ in found if tuple(k) not in expected]
        assert not unreviewed, (
            f"fixtures/{room} has charge keys nobody reviewed; check these and add them to {TABLE.name}:\n"
            + "\n".join(",".join([room, *map(str, k)]) for k in unreviewed)
        )
        wrong = [
            f"{key}: ai {ai!r} / network {network!r}, reviewed {expected[tuple(key)]['ai_category']!r} / "
            f"{expected[tuple(key)]['network_class']!r}"
            for *key, ai, network in found
            if (ai, network) != (expected[tuple(key)]["ai_category"], expected[tuple(key)]["network_class"])
        ]
        assert not wrong, "\n".join(wrong)
        # totals per currency from the rows, using the reviewed classes (not analysis's own)
        totals: dict[str, dict[str, Decimal]] = {}
        for *key, currency, billed in con.execute(
            f"SELECT {KEY_SQL}, BillingCurrency, sum(BilledCost) FROM current_line_items GROUP BY ALL"
        ).fetchall():
            row = expected[tuple(key)]
            entry = totals.setdefault(currency, {"ai": Decimal(0), "network": Decimal(0)})
            entry["ai"] += billed if row["ai_category"] else 0
            entry["network"] += billed if row["network_class"] else 0
        figures = {s.currency: s for s in summarise(con)}
    finally:
        con.close()
    assert any(t["ai"] for t in totals.values()), f"fixtures/{room} should carry AI spend"
    for currency, entry in totals.items():
        assert figures[currency].ai_billed == entry["ai"]
        assert figures[currency].network_billed == entry["network"]
        assert f"AI {_money(entry['ai'])} {currency}" in printed.output
        assert f"network {_money(entry['network'])} {currency}" in printed.output
