"""Every export under ../shared/samples loads with exact reconciliation, or is refused with a
clear reason when it is not a loadable billing export. The per-provider tests check each
sample's totals against an independent SQL sum; this test makes sure none is forgotten."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from costaudit.connectors.base import ReadOptions
from costaudit.errors import InputError
from costaudit.loader import load_paths

from .conftest import SAMPLES

CUR_DELIVERY = "koku/aws/test_local_bucket"

# Files that are not billing exports, and why they are refused.
NOT_BILLING = {
    # validator test inputs without any cost column
    "focus-validator/multiple_failure_examples.csv": "missing required column 'BilledCost'",
    "focus-validator/sample.parquet": "missing required column 'BilledCost'",
    # lookup tables (they share some FOCUS column names, so they are named as FOCUS files without costs)
    "finops-toolkit/open-data/Services.csv": "missing required column 'BilledCost'",
    "finops-toolkit/open-data/PricingUnits.csv": "unknown format",
    "finops-toolkit/open-data/ResourceTypes.csv": "unknown format",
    "finops-toolkit/open-data/Regions.csv": "missing required column 'BilledCost'",
    # FOCUS spec examples with an impossible timestamp (hour 30): refused, naming the row
    "focus-spec-examples/commitment_discount_scenarios/commitment_discount_purchase_scenario_2.csv": "'2023-02-01T30:00:00Z'",
    "focus-spec-examples/commitment_discount_scenarios/commitment_discount_purchase_scenario_3.csv": "'2023-02-01T30:00:00Z'",
}
# Reference documents (schemas, metadata), not data.
DOCUMENTS = ("finops-toolkit/export-schemas/", "finops-toolkit/open-data/FocusCost_1.2-preview.json")


def _sample_units() -> list[str]:
    if not SAMPLES.is_dir():
        return []
    units = []
    for path in sorted(SAMPLES.rglob("*")):
        rel = path.relative_to(SAMPLES).as_posix()
        if not path.is_file() or rel.startswith(CUR_DELIVERY) or rel.startswith(DOCUMENTS):
            continue
        if path.suffix.lower() in {".md", ""} or path.name.upper().startswith("LICENSE"):
            continue
        units.append(rel)
    return units + [CUR_DELIVERY]


@pytest.mark.parametrize("unit", _sample_units())
def test_every_sample_loads_or_is_refused_clearly(unit, store):
    path = SAMPLES / unit
    if unit in NOT_BILLING:
        with pytest.raises(InputError) as info:
            load_paths(store, [str(path)], opts=ReadOptions(default_currency="USD"))
        assert str(path.resolve()) in str(info.value) and NOT_BILLING[unit] in str(info.value)
        assert store.execute("SELECT count(*) FROM line_items").fetchone()[0] == 0
        return
    try:
        report = load_paths(store, [str(path)])
    except InputError as exc:
        # FOCUS spec fragments state no currency; the error says to pass one, and then they load.
        assert "--currency" in str(exc), exc
        report = load_paths(store, [str(path)], opts=ReadOptions(default_currency="USD"))
    assert report.partitions
    for part in report.partitions:
        assert part.source_total == part.stored_total or abs(part.difference) <= Decimal("0.01")
    stored = store.execute("SELECT count(*) FROM line_items").fetchone()[0]
    assert stored == sum(p.rows for p in report.partitions)


def test_samples_are_all_considered():
    if not SAMPLES.is_dir():
        pytest.skip("shared samples not present")
    units = _sample_units()
    assert any(u.startswith("focus-sample-data") for u in units)
    assert CUR_DELIVERY in units
    assert all(Path(SAMPLES / u).exists() for u in units)



