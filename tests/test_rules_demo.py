"""The bundled demo: metrics and inventories made from the billing fixtures' own resource ids,
reproducible from their generator, make the rules fire on the demo bills."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import duckdb
import pytest

from costaudit.connectors.imports_inventory import import_inventory
from costaudit.connectors.imports_metrics import import_metrics
from costaudit.rules.runner import run_audit

from .conftest import FIXTURES

sys.path.insert(0, str(FIXTURES))
import gen_inputs  # noqa: E402

# Rules the bundled billing fixtures can drive today; the other two need billing rows the
# billing rooms do not have yet (see /tmp/ca/README-rules.md, "Demo data").
FIRING_NOW = {"compute_rightsize", "compute_gpu_idle", "compute_gpu_oversized", "storage_duplicate_content",
              "storage_dataset_multi_region"}


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
    report = run_audit(con)
    con.close()
    return out, written, report


def test_demo_inputs_are_reproducible(demo):
    out, written, _ = demo
    assert written
    for path in written:
        committed = FIXTURES / path.relative_to(out)
        assert committed.exists(), f"{committed} is generated but not committed"
        assert _content(path) == _content(committed), f"{committed} differs from what gen_inputs.py makes"


def test_demo_findings(demo):
    _, _, report = demo
    fired = {f.finding.rule_id for f in report.findings if f.status == "open"}
    assert FIRING_NOW <= fired, f"missing: {FIRING_NOW - fired}"
    assert not report.rules_with("error")
    for applied in report.findings:
        finding = applied.finding
        if applied.status == "open":
            assert finding.estimated_monthly_saving is not None and finding.currency
            assert finding.evidence and finding.estimate_method


@pytest.mark.xfail(reason="billing fixtures lack scratch-tagged geo-redundant rows and snapshot rows", strict=False)
def test_demo_fires_every_rule(demo):
    _, _, report = demo
    fired = {f.finding.rule_id for f in report.findings if f.status == "open"}
    assert {o.rule.id for o in report.outcomes} <= fired
