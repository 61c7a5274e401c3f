"""The bundled demo: metrics and inventories made from the billing fixtures' own resource ids,
reproducible from their generator, make the rules fire on the demo bills."""

from __future__ import annotations

import gzip
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from costaudit.analysis.run import ensure_analysis
from costaudit.connectors.imports_inventory import import_inventory
from costaudit.connectors.imports_metrics import import_metrics
from costaudit.rules.runner import run_audit

from .conftest import FIXTURES

sys.path.insert(0, str(FIXTURES))
import gen_inputs  # noqa: E402

# Every rule fires at least once on the demo (the billing fixtures carry rows for each: see
# README-rules.md, "Demo data"); this list only names them, test_demo_fires_every_rule checks all.
FIRING_NOW = {"compute_rightsize", "compute_gpu_idle", "compute_gpu_oversized", "storage_duplicate_content",
              "storage_dataset_multi_region", "storage_redundant_scratch_data", "storage_aged_snapshots",
              "egress_network_share", "egress_cross_region_compute", "egress_nat_processing",
              "egress_ai_serving_internet", "egress_inter_zone", "egress_cross_cloud"}


def _content(path: Path):
    data = path.read_bytes()
    if data.startswith(b"PAR1"):
        return duckdb.connect().execute(f"SELECT * FROM read_parquet('{path}')").fetchall()
    if data.startswith(b"\x1f\x8b"):
        return gzip.decompress(data)
    return data


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    written = gen_inputs.generate(out)
    con = gen_inputs._billing_store(FIXTURES)
    import_metrics(con, [str(FIXTURES / "metrics")])
    import_inventory(con, [str(FIXTURES / "inventory")])
    ensure_analysis(con)  # as `costaudit audit` does: the egress rules read the analysis views
    report = run_audit(con)
    # The same audit over the line items themselves: no analysis run covers the loads any more,
    # so the compute and storage rules read current_line_items (`sqlparts.billing`), and the
    # totals view the egress rules read (and the two views over it) becomes the line-level one.
    con.execute("DELETE FROM analysis_runs")
    con.execute("CREATE OR REPLACE VIEW analysis_totals AS SELECT *, 1::BIGINT AS line_item_rows FROM analysis_line_items")
    by_lines = run_audit(con)
    con.close()
    return out, written, report, by_lines


def test_demo_inputs_are_reproducible(demo):
    out, written, _, _ = demo
    assert written
    for path in written:
        committed = FIXTURES / path.relative_to(out)
        assert committed.exists(), f"{committed} is generated but not committed"
        assert _content(path) == _content(committed), f"{committed} differs from what gen_inputs.py makes"


def test_demo_findings(demo):
    _, _, report, _ = demo
    fired = {f.finding.rule_id for f in report.findings if f.status == "open"}
    assert FIRING_NOW <= fired, f"missing: {FIRING_NOW - fired}"
    assert not report.rules_with("error")
    for applied in report.findings:
        finding = applied.finding
        if applied.status == "open":
            assert finding.estimated_monthly_saving is not None and finding.currency
            assert finding.evidence and finding.estimate_method


def test_demo_fires_every_rule(demo):
    _, _, report, _ = demo
    fired = {f.finding.rule_id for f in report.findings if f.status == "open"}
    assert {o.rule.id for o in report.outcomes} <= fired


def test_demo_findings_of_the_added_billing_rows(demo):
    """The rows the billing fixtures carry for the storage and egress rules, as the README tells them."""
    _, _, report, _ = demo
    found = {(f.finding.rule_id, f.finding.billing_account_id, f.finding.resource_id): f.finding
             for f in report.findings if f.status == "open"}
    woodgrove = "/providers/Microsoft.Billing/billingAccounts/86310005"
    rg = "/subscriptions/0a1b2c3d-0000-4000-8000-000000000006/resourcegroups/rg-wg/providers"
    expected = {
        # S3 bucket read across regions by a SageMaker training job: saving = the transfer (11000 GB x 0.02)
        ("egress_cross_region_compute", "111122223333", "acme-datasets"): ("220.00", "USD"),
        # 440 GB of internet egress from the bucket whose datasets appear in Cloud Storage and Azure (362.9 GB)
        ("egress_cross_cloud", "111122223333", "acme-datasets"): ("32.66", "USD"),
        # GRS storage tagged data-class=scratch: 91.60 x (1 - 0.5)
        ("storage_redundant_scratch_data", woodgrove, f"{rg}/microsoft.storage/storageaccounts/stwgscratch"): ("45.80", "USD"),
        # a disk snapshot billed since July 2023
        ("storage_aged_snapshots", woodgrove, f"{rg}/microsoft.compute/snapshots/snap-wg-gpu-os"): ("6.40", "USD"),
    }
    for key, (saving, currency) in expected.items():
        assert key in found, f"{key} not reported"
        assert (found[key].estimated_monthly_saving, found[key].currency) == (Decimal(saving), currency), key


def test_rules_find_the_same_over_the_monthly_totals_as_over_the_line_items(demo):
    """The rules read the analysis's monthly totals per resource, tag set and charge key; every
    finding, its saving, cost, evidence and wording must be what the line items give."""
    _, _, report, by_lines = demo

    def findings(audit):
        return {f.fingerprint: (f.status, f.finding.monthly_cost_in_scope, f.finding.estimated_monthly_saving,
                                f.finding.evidence, f.finding.summary, f.finding.estimate_method)
                for f in audit.findings}

    totals, lines = findings(report), findings(by_lines)
    assert len(totals) > 20 and {f.finding.rule_id for f in by_lines.findings} >= FIRING_NOW
    assert totals == lines
