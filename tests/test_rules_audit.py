"""`costaudit audit`: runs every rule, prints findings by saving with evidence, stores runs that can
be diffed, and honours thresholds, suppressions and the billing window from the command line."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from costaudit.audit_cmd import audit, import_group
from costaudit.cli import CostauditGroup
from costaudit.errors import UsageError
from costaudit.loader import load_paths
from costaudit.rules.contract import LoadedRule, fingerprint
from costaudit.rules.registry import all_rules
from costaudit.rules.runner import run_audit
from costaudit.store import connect

from .test_rules_cases import CASES_DIR, write_metrics

BILLING = CASES_DIR / "compute_rightsize" / "fires_m5_to_large" / "billing.csv"
SNAPSHOTS = CASES_DIR / "storage_aged_snapshots" / "fires_old_snapshots" / "billing.csv"
METRICS = [
    {"resource_id": "i-0big", "metric": "cpu_utilization", "start": "2024-02-01T00:00:00Z", "values": [5, 14]},
    {"resource_id": "i-0big", "metric": "memory_utilization", "start": "2024-02-01T00:00:00Z", "values": [14]},
]


@pytest.fixture
def audited_store(tmp_path: Path) -> Path:
    """A store with an oversized m5.2xlarge (account 111122223333, one bill) and old snapshots
    (same account, older months and February in a second export, read as one bill per month)."""
    db = tmp_path / "store.duckdb"
    con = connect(db)
    # One file per bill: the February rows of both fixtures, plus the snapshots' older months.
    rows = BILLING.read_text(encoding="utf-8").splitlines()
    snapshot_rows = SNAPSHOTS.read_text(encoding="utf-8").splitlines()[1:]
    (tmp_path / "bill.csv").write_text("\n".join(rows + snapshot_rows) + "\n", encoding="utf-8")
    load_paths(con, [str(tmp_path / "bill.csv")])
    from costaudit.connectors.imports_metrics import import_metrics

    import_metrics(con, [str(write_metrics(METRICS, tmp_path / "metrics.csv"))])
    con.close()
    return db


def invoke(db: Path, *args: str):
    return CliRunner().invoke(audit, list(args), obj={"db": db})


def main_group():
    """The commands as cli.main registers them: errors become one line and an exit code."""

    @click.group(cls=CostauditGroup)
    @click.option("--db", type=click.Path(path_type=Path))
    @click.pass_context
    def main(ctx, db):
        ctx.obj = {"db": db}

    main.add_command(audit)
    main.add_command(import_group)
    return main


def test_audit_prints_findings_by_saving_with_evidence_and_stores_the_run(audited_store):
    result = invoke(audited_store)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Findings by estimated monthly saving" in out
    # sorted by saving: the rightsizing (150.00) before the snapshots (7.50, 5.00, 3.20)
    order = [out.index(text) for text in ("150.00", "7.50", "5.00", "3.20")]
    assert order == sorted(order)
    assert "Estimated monthly saving, open findings: 165.70 USD" in out
    assert "evidence: instance_type=m5.2xlarge; family=m5; vcpu=8.0" in out
    assert "saving 150.00 USD of 200.00 in scope: cost in scope x (1 - price ratio)" in out
    assert "storage_duplicate_content" in out and "skipped" in out and "costaudit import inventory" in out

    con = connect(audited_store)
    [(run_id, status, opened, skipped)] = con.execute(
        "SELECT run_id, status, findings_open, rules_skipped FROM runs"
    ).fetchall()
    assert status == "complete" and opened == 4 and skipped >= 1
    stored = con.execute(
        "SELECT rule_id, resource_id, estimated_monthly_saving, fingerprint FROM latest_findings ORDER BY 3 DESC"
    ).fetchall()
    assert [(r[0], str(r[2])) for r in stored][0] == ("compute_rightsize", "150.000000000000")
    for rule_id, resource_id, _, fp in stored:
        provider = "Microsoft" if "subscriptions" in resource_id else "AWS"
        account = "86310001" if provider == "Microsoft" else "111122223333"
        assert fp == fingerprint(rule_id, provider, account, resource_id)
    assert con.execute("SELECT count(*) FROM rule_results WHERE run_id = ?", [run_id]).fetchall()[0][0] == len(all_rules())
    con.close()


def test_audit_prints_the_top_of_each_currency_and_stores_every_finding(audited_store):
    result = invoke(audited_store, "--top", "2")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "the 2 largest of each currency" in out
    # the two largest savings (150.00, 7.50) with their evidence; the other two only counted
    assert "150.00" in out and "saving 7.50 USD of 7.50 in scope" in out
    assert out.count("  evidence: ") == 2 and "saving 5.00 USD" not in out and "saving 3.20 USD" not in out
    assert "Estimated monthly saving, open findings: 165.70 USD (4 findings)" in out  # totals over every finding
    assert "2 more open findings in latest_findings (2 in USD); --top N or --all prints them" in out
    con = connect(audited_store)
    assert con.execute("SELECT count(*) FROM latest_findings WHERE status = 'open'").fetchall() == [(4,)]
    con.close()

    result = invoke(audited_store, "--top", "2", "--all")
    assert result.exit_code == 0, result.output
    assert result.output.count("  evidence: ") == 4 and "more open findings" not in result.output
    assert "Estimated monthly saving, open findings: 165.70 USD\n" in result.output
    default = invoke(audited_store).output  # 50 of each currency: all four here
    assert default.count("  evidence: ") == 4 and "more open findings" not in default


def test_audit_top_limits_the_suppressed_table_too(audited_store, tmp_path):
    config = tmp_path / "costaudit.toml"
    snapshots = ("arn:aws:ec2:us-east-1:111122223333:snapshot/snap-0aaa", "arn:aws:rds:us-east-1:111122223333:db:orders",
                 "/subscriptions/0a1b2c3d-0000-4000-8000-000000000001/resourceGroups/rg-db/providers/"
                 "Microsoft.Compute/snapshots/snap-db-2023")
    config.write_text(
        "".join(f'[[suppress]]\nrule = "storage_aged_snapshots"\nresource = "{r}"\nreason = "kept for the auditors"\n'
                for r in snapshots),
        encoding="utf-8",
    )
    result = invoke(audited_store, "--config", str(config), "--top", "1", "--no-evidence")
    assert result.exit_code == 0, result.output
    assert "Suppressed (still listed)" in result.output
    assert "2 more suppressed findings in latest_findings (2 in USD)" in result.output


def test_fingerprint_is_rule_provider_account_resource():
    expected = hashlib.sha256("\x1f".join(["r", "aws", "111", "i-1"]).encode()).hexdigest()
    assert fingerprint("r", "AWS", "111", "i-1") == expected
    assert fingerprint("r", "AWS", "111", "I-1") == expected  # exports differ in case (Azure ids)
    assert fingerprint("r", "AWS", "112", "i-1") != expected


def test_runs_diff_and_suppressions_are_listed_as_suppressed(audited_store, tmp_path):
    assert invoke(audited_store).exit_code == 0
    assert invoke(audited_store).exit_code == 0
    con = connect(audited_store)
    changes = con.execute("SELECT change, count(*) FROM findings_changes GROUP BY 1").fetchall()
    assert changes == [("unchanged", 4)]
    [(fp,)] = con.execute("SELECT fingerprint FROM latest_findings WHERE rule_id = 'compute_rightsize'").fetchall()
    con.close()
    config = tmp_path / "costaudit.toml"
    config.write_text(
        f"""
[[suppress]]
fingerprint = "{fp[:12]}"
reason = "sized for the month-end batch"
expires = 2999-01-01

[[suppress]]
rule = "storage_aged_snapshots"
resource = "ARN:AWS:EC2:US-EAST-1:111122223333:SNAPSHOT/SNAP-0AAA"
reason = "legal hold"

[[suppress]]
rule = "storage_aged_snapshots"
resource = "arn:aws:rds:us-east-1:111122223333:db:orders"
reason = "kept for the audit"
expires = 2020-01-31

[[suppress]]
fingerprint = "ffffffffffff"
reason = "matches nothing"
""",
        encoding="utf-8",
    )
    result = invoke(audited_store, "--config", str(config))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Suppressed (still listed)" in out and "sized for the month-end batch" in out and "legal hold" in out
    assert "suppress entry #3 (storage_aged_snapshots on arn:aws:rds:us-east-1:111122223333:db:orders) expired on 2020-01-31" in out
    assert "note: suppression expired on 2020-01-31: kept for the audit" in out
    assert "suppress entry #4 (fingerprint ffffffffffff) matched no finding in this run" in out
    con = connect(audited_store)
    statuses = dict(con.execute("SELECT resource_id, status FROM latest_findings").fetchall())
    assert statuses["i-0big"] == "suppressed"
    assert statuses["arn:aws:ec2:us-east-1:111122223333:snapshot/snap-0aaa"] == "suppressed"
    assert statuses["arn:aws:rds:us-east-1:111122223333:db:orders"] == "open"
    changed = dict(con.execute("SELECT resource_id, change FROM findings_changes").fetchall())
    assert changed["i-0big"] == "status changed"
    assert changed["arn:aws:rds:us-east-1:111122223333:db:orders"] == "unchanged"
    [(reason, expires)] = con.execute(
        "SELECT suppression_reason, suppression_expires FROM latest_findings WHERE resource_id = 'i-0big'"
    ).fetchall()
    assert reason == "sized for the month-end batch" and expires == date(2999, 1, 1)
    con.close()


def test_thresholds_from_the_config_file(audited_store, tmp_path):
    config = tmp_path / "costaudit.toml"
    config.write_text("[rules.compute_rightsize]\ncpu_p95_threshold = 10.0\n", encoding="utf-8")
    result = invoke(audited_store, "--config", str(config), "--rule", "compute_rightsize")
    assert result.exit_code == 0, result.output
    con = connect(audited_store)
    [(params, findings)] = con.execute("SELECT parameters, findings FROM rule_results").fetchall()
    con.close()
    assert '"cpu_p95_threshold": 10.0' in params and findings == 0  # p95 14% is no longer under the threshold


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[rules.no_such_rule]\nx = 1\n", "unknown rule id(s) no_such_rule"),
        ("[rules.compute_rightsize]\ncpu_p95 = 10\n", "table rules.compute_rightsize has no parameter 'cpu_p95'"),
        ("[rules.compute_rightsize]\nlookback_days = 'two weeks'\n", "rules.compute_rightsize.lookback_days = 'two weeks': expected a whole number"),
        ("[[suppress]]\nfingerprint = 'abcdefabcdef'\n", "a reason is required"),
        ("[[suppress]]\nfingerprint = 'abc'\nreason = 'x'\n", "at least 12 hex characters"),
        ("[[suppress]]\nrule = 'compute_rightsize'\nreason = 'x'\nexpires = 'soon'\n", "give a fingerprint, or both rule and resource"),
        ("[[suppress]]\nrule = 'compute_rightsize'\nresource = 'i-1'\nreason = 'x'\nexpires = 'soon'\n", "expires must be a date"),
        ("[rules]\ncost_basis = 'ListCost'\n", "rules.cost_basis must be one of EffectiveCost, BilledCost"),
    ],
)
def test_config_mistakes_are_one_clear_line(audited_store, tmp_path, toml, message):
    config = tmp_path / "costaudit.toml"
    config.write_text(toml, encoding="utf-8")
    result = CliRunner().invoke(main_group(), ["--db", str(audited_store), "audit", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_window_and_rule_selection(audited_store):
    result = CliRunner().invoke(main_group(), ["--db", str(audited_store), "audit", "--since", "2024-03", "--until", "2024-02"])
    assert result.exit_code == 2 and "--since 2024-03 must be before --until 2024-02" in result.output
    result = CliRunner().invoke(main_group(), ["--db", str(audited_store), "audit", "--since", "2024-13"])
    assert result.exit_code == 2 and "expected a billing month such as 2024-01" in result.output
    result = CliRunner().invoke(main_group(), ["--db", str(audited_store), "audit", "--rule", "nope"])
    assert result.exit_code == 2 and "unknown rule id(s) nope" in result.output
    # January alone: the m5.2xlarge was not billed then, and the snapshots' history starts later
    result = invoke(audited_store, "--since", "2024-01", "--until", "2024-02", "--no-evidence")
    assert result.exit_code == 0, result.output
    con = connect(audited_store)
    reasons = dict(con.execute("SELECT rule_id, reason FROM rule_results WHERE status = 'skipped'").fetchall())
    con.close()
    assert "no rows in the audit window" in reasons["compute_rightsize"]


def test_a_failing_rule_is_reported_and_the_others_still_run(audited_store):
    def broken(ctx):
        raise RuntimeError("division by zero in the rule")

    rules = all_rules()
    rules = [LoadedRule(r.rule, broken, r.origin) if r.id == "compute_rightsize" else r for r in rules]
    con = connect(audited_store)
    report = run_audit(con, rules=rules)
    con.close()
    statuses = {o.rule.id: (o.status, o.reason) for o in report.outcomes}
    assert statuses["compute_rightsize"] == ("error", "RuntimeError: division by zero in the rule")
    assert statuses["storage_aged_snapshots"][0] == "ok" and report.count("open") == 3


def test_audit_of_an_empty_store_skips_billing_rules(tmp_path):
    connect(tmp_path / "empty.duckdb").close()  # a store with no bills yet (a missing one is refused)
    result = invoke(tmp_path / "empty.duckdb")
    assert result.exit_code == 0, result.output
    assert "analysis: skipped, no billing data loaded" in result.output
    assert "no billing data loaded (run `costaudit load` first)" in result.output


def test_unknown_rule_in_only_is_rejected(store):
    with pytest.raises(UsageError, match="unknown rule id"):
        run_audit(store, only=["compute_rightsizing"])


def test_a_rule_returning_a_python_list_stores_the_same_rows_as_its_sql(audited_store, monkeypatch):
    """Built-in rules leave their findings in DuckDB (`ctx.findings` is staged with one INSERT);
    a plug-in may return a list of `Finding` instead, which goes in Arrow batches
    (rules.runner.STORE_BATCH). With batches of 3, the list of every built-in rule's findings
    lands row for row as the SQL path stored it: same fingerprints, statuses, amounts, evidence."""
    from costaudit.rules import runner

    columns = ("rule_id, fingerprint, status, provider, billing_account_id, resource_id, billing_period, summary,"
               " CAST(evidence AS VARCHAR), monthly_cost_in_scope, estimated_monthly_saving, currency, estimate_method")

    def stored(con, run_id):
        rows = con.execute(f"SELECT {columns} FROM findings WHERE run_id = ? ORDER BY 1, 2", [run_id]).fetchall()
        return [(*r[:8], json.loads(r[8]), *r[9:]) for r in rows]

    con = connect(audited_store)
    # "today" in February: the February findings carry the open-month label on both paths.
    by_sql = stored(con, run_audit(con, today=date(2024, 2, 20)).run_id)
    assert len(by_sql) > 3
    assert any(r[8].get("billing_period_status") == "open month, provisional" for r in by_sql)

    def as_list(rule):
        return LoadedRule(rule.rule, lambda ctx: list(rule.evaluate(ctx)), rule.origin)

    monkeypatch.setattr(runner, "STORE_BATCH", 3)
    report = run_audit(con, rules=[as_list(r) for r in all_rules()], today=date(2024, 2, 20))
    by_list = stored(con, report.run_id)
    con.close()
    assert by_list == by_sql
    assert report.count("open") == sum(1 for r in by_sql if r[2] == "open")


def test_an_invalid_finding_fails_its_rule_and_names_the_resource(audited_store):
    """The contract is checked in SQL over the rule's rows: a duplicate, a bad status, an amount
    without a currency or money as DOUBLE marks the rule as failed (none of its findings are
    stored) and names the row."""
    base = {r.id: r for r in all_rules()}["compute_rightsize"]
    cases = {
        "twice": ("SELECT * FROM ({sql}) UNION ALL SELECT * FROM ({sql})", "two findings for one resource"),
        "status": ("SELECT * REPLACE ('maybe' AS status) FROM ({sql})", "status 'maybe' is not one of"),
        "currency": ("SELECT * REPLACE (NULL AS currency) FROM ({sql}) WHERE monthly_cost_in_scope IS NOT NULL",
                     "an amount without a currency"),
        "double": ("SELECT * REPLACE (CAST(estimated_monthly_saving AS DOUBLE) AS estimated_monthly_saving) FROM ({sql})",
                   "money must be DECIMAL in SQL, not DOUBLE"),
    }
    con = connect(audited_store)
    for name, (wrap, message) in cases.items():
        def evaluate(ctx, wrap=wrap):
            query = base.evaluate(ctx)
            return ctx.findings(wrap.format(sql=query.sql), **query.params)

        report = run_audit(con, rules=[LoadedRule(base.rule, evaluate, base.origin)], today=date(2024, 3, 15))
        [outcome] = report.outcomes
        assert outcome.status == "error" and message in outcome.reason, (name, outcome.reason)
        assert "i-0big" in outcome.reason or name == "double"
        [(count,)] = con.execute("SELECT count(*) FROM findings WHERE run_id = ?", [report.run_id]).fetchall()
        assert count == 0, name
    con.close()
