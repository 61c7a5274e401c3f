"""Each rule against data fixtures: cases that must fire and cases that must not.

A case is a folder ``tests/data/rules/<rule id>/<fires_|quiet_>name/`` holding:

* ``billing.csv`` (optional): a FOCUS file, loaded with the real loader;
* ``case.toml``: what else to import and what to expect::

    description = "..."
    since = "2024-02"                 # optional audit window
    inventory = ["inventory/manifest.json"]   # optional, imported with `import_inventory`
    analysis = false                  # optional: skip the analysis refresh `costaudit audit` does
    [inventory_options]               # optional: account, region, billing_account
    [[metrics]]                       # optional samples, imported with `import_metrics`
    resource_id = "i-1"; metric = "cpu_utilization"; start = "2024-02-01T00:00:00Z"
    hours = 336; values = [5, 6, 7]   # one sample an hour, values cycled
    [config]                          # optional costaudit.toml content ([rules.<id>], [[suppress]])
    rule_status = "ok"                # ok (default) or skipped, with reason_contains
    [[expect]]                        # every finding of the rule, no more and no fewer
    resource_id = "i-1"; status = "open"; saving = "207.36"; cost = "276.48"; currency = "USD"
    [expect.evidence]                 # a subset of the evidence
    recommended_type = "m5.large"

Adding a case means adding a folder; the meta-test in test_rules_registry checks that every rule
has at least one ``fires_`` and one ``quiet_`` case.
"""

from __future__ import annotations

import csv
import tomllib
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from costaudit.analysis.run import run_analysis
from costaudit.connectors.imports_inventory import import_inventory
from costaudit.connectors.imports_metrics import import_metrics
from costaudit.loader import load_paths
from costaudit.rules.config import parse_rules_config
from costaudit.rules.registry import all_rules
from costaudit.rules.runner import run_audit
from costaudit.store import connect

CASES_DIR = Path(__file__).resolve().parent / "data" / "rules"
CASES = sorted(p.parent for p in CASES_DIR.glob("*/*/case.toml"))


def write_metrics(spec: list[dict], path: Path) -> Path:
    """Expand compact `[[metrics]]` specs into the long metrics format."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["resource_id", "metric", "timestamp", "value"])
        for series in spec:
            start = datetime.fromisoformat(series["start"].replace("Z", "+00:00"))
            values = series["values"]
            for hour in range(series.get("hours", 336)):
                when = start + timedelta(hours=hour)
                writer.writerow([series["resource_id"], series["metric"], when.isoformat(), values[hour % len(values)]])
    return path


def run_case(case: Path, tmp_path: Path):
    spec = tomllib.loads((case / "case.toml").read_text(encoding="utf-8"))
    rule_id = case.parent.name
    con = connect(tmp_path / "store.duckdb")
    if (case / "billing.csv").exists():
        load_paths(con, [str(case / "billing.csv")])
    if spec.get("metrics"):
        import_metrics(con, [str(write_metrics(spec["metrics"], tmp_path / "metrics.csv"))])
    if spec.get("inventory"):
        import_inventory(con, [str(case / p) for p in spec["inventory"]], **spec.get("inventory_options", {}))
    if (case / "billing.csv").exists() and spec.get("analysis", True):
        run_analysis(con)  # as `costaudit audit` does before the rules (the egress rules read its views)
    config = parse_rules_config(spec.get("config", {}))
    report = run_audit(
        con, config, since=spec.get("since"), until=spec.get("until"), only=[rule_id],
        today=date.fromisoformat(spec.get("today", "2024-06-15")),
    )
    con.close()
    return spec, report


def _matches(expected, actual) -> bool:
    if isinstance(expected, bool) or isinstance(expected, str) or expected is None:
        return expected == actual
    if isinstance(expected, int | float):
        return isinstance(actual, int | float) and abs(float(actual) - float(expected)) < 1e-9
    if isinstance(expected, list):
        return list(expected) == list(actual or [])
    return expected == actual


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_rule_case(case: Path, tmp_path: Path):
    spec, report = run_case(case, tmp_path)
    [outcome] = report.outcomes
    assert outcome.status == spec.get("rule_status", "ok"), outcome.reason
    if "reason_contains" in spec:
        assert spec["reason_contains"] in (outcome.reason or "")
    found = {f.finding.resource_id: f for f in report.findings}
    expected = {e["resource_id"]: e for e in spec.get("expect", [])}
    assert set(found) == set(expected), f"findings {sorted(found)} != expected {sorted(expected)}"
    for resource_id, want in expected.items():
        got = found[resource_id]
        finding = got.finding
        assert got.status == want.get("status", "open"), finding.summary
        if "saving" in want:
            assert finding.estimated_monthly_saving == Decimal(want["saving"]), finding.estimate_method
        elif want.get("status", "open") == "open":
            pytest.fail(f"{resource_id}: an open finding's expected saving must be stated in the case")
        if "cost" in want:
            assert finding.monthly_cost_in_scope == Decimal(want["cost"])
        for key in ("currency", "billing_account_id", "region", "provider"):
            if key in want:
                assert getattr(finding, key) == want[key], key
        if "period" in want:
            assert f"{finding.billing_period:%Y-%m}" == want["period"]
        for key, value in want.get("evidence", {}).items():
            assert _matches(value, finding.evidence.get(key)), f"evidence {key}: {finding.evidence.get(key)!r} != {value!r}"
        for text in want.get("summary_contains", []):
            assert text in finding.summary, finding.summary
        for text in want.get("method_contains", []):
            assert text in finding.estimate_method, finding.estimate_method
        # Savings never exceed what is spent, and every open finding says how it was estimated.
        if finding.estimated_monthly_saving is not None and finding.monthly_cost_in_scope is not None:
            assert 0 <= finding.estimated_monthly_saving <= finding.monthly_cost_in_scope + Decimal("0.005")
        assert finding.estimate_method and finding.summary


def test_case_rules_exist():
    known = {r.id for r in all_rules()}
    unknown = sorted({c.parent.name for c in CASES} - known)
    assert not unknown, f"case folders for unknown rules: {unknown}"
