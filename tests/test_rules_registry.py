"""The rule registry: every rule keeps the contract, has fixtures, and third-party rules plug in."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from costaudit.errors import CostauditError
from costaudit.rules import registry
from costaudit.rules.contract import FAMILIES, SEVERITIES, Need, Param, Rule, RuleContractError, validate_rule
from costaudit.rules.runner import run_audit

from .focus_rows import row, write

CASES_DIR = Path(__file__).resolve().parent / "data" / "rules"
RULES = registry.builtin_rules()
ANALYSIS_VIEWS = {"analysis_line_items", "ai_spend", "network_transfer", "analysis_totals", "ai_spend_totals",
                  "network_transfer_totals"}


def test_builtin_rules_are_found_and_valid():
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    # The families: storage copies (a, b, c), over-provisioned instances (CPU, GPU) and
    # egress-heavy workflows (share of compute, cross-region, NAT, AI serving, inter-zone, cross-cloud).
    assert {"storage_duplicate_content", "storage_redundant_scratch_data", "storage_dataset_multi_region",
            "storage_aged_snapshots", "compute_rightsize", "compute_gpu_idle", "compute_gpu_oversized",
            "egress_network_share", "egress_cross_region_compute", "egress_nat_processing",
            "egress_ai_serving_internet", "egress_inter_zone", "egress_cross_cloud"} <= set(ids)
    for loaded in RULES:
        rule = loaded.rule
        assert validate_rule(loaded.evaluate.__module__, rule, loaded.evaluate, "builtin") == []
        assert loaded.evaluate.__module__.endswith("." + rule.id)
        assert rule.family in FAMILIES and rule.severity in SEVERITIES
        assert loaded.evaluate.__doc__, f"{rule.id}: evaluate needs a docstring"


@pytest.mark.parametrize("loaded", RULES, ids=lambda r: r.id)
def test_every_rule_has_a_firing_and_a_quiet_case(loaded):
    folder = CASES_DIR / loaded.id
    cases = [p.parent.name for p in folder.glob("*/case.toml")]
    assert any(c.startswith("fires_") for c in cases), f"{loaded.id}: no fires_* case in {folder}"
    assert any(c.startswith("quiet_") for c in cases), f"{loaded.id}: no quiet_* case in {folder}"


@pytest.mark.parametrize("loaded", RULES, ids=lambda r: r.id)
def test_declared_data_exists_in_the_store(loaded, store, tmp_path):
    """Every table and column a rule says it needs is part of the store's schema (the analysis
    views exist once analysis has run, as `costaudit audit` runs it before the rules)."""
    from costaudit.analysis.run import run_analysis
    from costaudit.loader import load_paths
    from costaudit.rules.schema import ensure_rules_schema

    ensure_rules_schema(store)
    if any(need.table in ANALYSIS_VIEWS for need in loaded.rule.needs):
        load_paths(store, [str(write(tmp_path / "bill.csv", [row()]))])
        run_analysis(store)
    for need in loaded.rule.needs:
        columns = {r[0] for r in store.execute(f'DESCRIBE SELECT * FROM "{need.table}"').fetchall()}
        assert set(need.columns) <= columns, f"{loaded.id}: {need.table} lacks {set(need.columns) - columns}"
        if need.where:  # the filter must be valid SQL over that table
            store.execute(f'SELECT count(*) FROM "{need.table}" WHERE {need.where}').fetchall()


def _rule(**changes):
    values = dict(
        id="good_rule", title="t", family="compute", severity="low", why="w", how_to_fix="h",
        needs=(Need("current_line_items"),), parameters={"x": Param(1, "a threshold")}, references=("r",),
    )
    values.update(changes)
    return Rule(**values)


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"id": "other_name"}, "must equal the module name"),
        ({"id": "Bad-Id"}, "lower-case letters"),
        ({"family": "finance"}, "family 'finance' is not one of"),
        ({"severity": "urgent"}, "severity 'urgent' is not one of"),
        ({"why": " "}, "why must be a non-empty sentence"),
        ({"references": ()}, "references must name at least one source"),
        ({"needs": ()}, "needs must list at least one Need"),
        ({"parameters": {"x": Param(1, "")}}, "must be a Param with a help text"),
        ({"parameters": {"x": Param(None, "h")}}, "expected a list of strings"),  # type: ignore[arg-type]
    ],
)
def test_validation_names_each_contract_breach(changes, problem):
    problems = validate_rule("pkg.good_rule", _rule(**changes), lambda ctx: [], "test")
    assert any(problem in p for p in problems), problems


def test_validation_accepts_a_good_rule_and_requires_evaluate():
    assert validate_rule("pkg.good_rule", _rule(), lambda ctx: [], "test") == []
    [problem] = validate_rule("pkg.good_rule", _rule(), None, "test")
    assert problem.endswith("must define evaluate(ctx) -> list[Finding]")


PLUGIN = '''
"""A third-party rule: every billed resource of TestCloud costs too much (test only)."""
from costaudit.rules.contract import Need, Param, Rule

RULE = Rule(
    id="{rule_id}", title="Expensive resource", family="other", severity="low",
    why="A test rule.", how_to_fix="Nothing.", needs=(Need("current_line_items", ("ResourceId",)),),
    parameters={{"share": Param(0.5, "share of the cost that could be saved")}},
    references=("tests/test_rules_registry.py",),
)

SQL = """
SELECT ProviderName AS provider, BillingAccountId AS billing_account_id, NULL AS sub_account_id,
       NULL AS region, ResourceId AS resource_id, max(BillingPeriodStart) AS billing_period,
       BillingCurrency AS currency, CAST(sum(EffectiveCost) AS DECIMAL(38,12)) AS monthly_cost_in_scope,
       CAST(round(sum(EffectiveCost) * CAST($share AS DECIMAL(18,6)), 2) AS DECIMAL(38,12)) AS estimated_monthly_saving,
       'share x cost' AS estimate_method, json_object('share', $share) AS evidence, 'expensive' AS summary
FROM current_line_items WHERE BillingPeriodStart >= $since AND BillingPeriodStart < $until
GROUP BY ALL
"""


def evaluate(ctx):
    """Findings of the plug-in rule."""
    return ctx.findings(SQL)
'''


def _install_plugin(root: Path, dist: str, entries: dict[str, str], modules: dict[str, str]) -> None:
    """A minimal installed distribution on sys.path: a dist-info with entry points, and modules."""
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n", encoding="utf-8")
    lines = ["[costaudit.rules]"] + [f"{name} = {target}" for name, target in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")


def test_entry_point_rule_is_found_configured_and_run(tmp_path, monkeypatch, store):
    plugins = tmp_path / "site"
    _install_plugin(plugins, "acme_rules", {"acme_expensive": "acme_expensive"},
                    {"acme_expensive": PLUGIN.format(rule_id="acme_expensive")})
    monkeypatch.syspath_prepend(str(plugins))
    found = registry.entry_point_rules()
    assert [r.id for r in found] == ["acme_expensive"]
    assert "acme_rules" in found[0].origin
    assert "acme_expensive" in {r.id for r in registry.all_rules()}

    from costaudit.loader import load_paths
    from costaudit.rules.config import parse_rules_config

    write(tmp_path / "bill.csv", [row(cost="10.00", ResourceId="r-1"), row(cost="30.00", ResourceId="r-2")])
    load_paths(store, [str(tmp_path / "bill.csv")])
    config = parse_rules_config({"rules": {"acme_expensive": {"share": 0.25}}})
    report = run_audit(store, config, only=["acme_expensive"])
    savings = {f.finding.resource_id: f.finding.estimated_monthly_saving for f in report.findings}
    assert savings == {"r-1": Decimal("2.50"), "r-2": Decimal("7.50")}
    [(origin,)] = store.execute(
        "SELECT origin FROM rule_results WHERE run_id = ? AND rule_id = 'acme_expensive'", [report.run_id]
    ).fetchall()
    assert "entry point" in origin


def test_entry_point_name_must_match_the_rule_id(tmp_path, monkeypatch):
    plugins = tmp_path / "site"
    _install_plugin(plugins, "bad_rules", {"acme_other": "acme_named"}, {"acme_named": PLUGIN.format(rule_id="acme_named")})
    monkeypatch.syspath_prepend(str(plugins))
    with pytest.raises(RuleContractError, match="must equal the module name 'acme_other'"):
        registry.entry_point_rules()


def test_entry_point_that_cannot_import_is_named(tmp_path, monkeypatch):
    plugins = tmp_path / "site"
    _install_plugin(plugins, "broken_rules", {"acme_broken": "acme_broken"}, {"acme_broken": "import not_a_module_xyz\n"})
    monkeypatch.syspath_prepend(str(plugins))
    with pytest.raises(CostauditError, match="entry point 'acme_broken' \\(broken_rules\\): cannot be imported"):
        registry.entry_point_rules()


def test_entry_point_cannot_take_a_builtin_id(tmp_path, monkeypatch):
    plugins = tmp_path / "site"
    _install_plugin(plugins, "clash_rules", {"compute_rightsize": "compute_rightsize_clash"},
                    {"compute_rightsize_clash": PLUGIN.format(rule_id="compute_rightsize")})
    monkeypatch.syspath_prepend(str(plugins))
    with pytest.raises(RuleContractError):
        registry.all_rules()
