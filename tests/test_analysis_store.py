"""Analysis against a real store: views right to the row, linking of AI data (and what must not link),
exact volumes, one transaction with a run record, freshness, and never touching line_items.

The fixture tests/data/analysis/focus_ai_network.csv is a FOCUS file with costaudit's x_ columns; each
row also carries expected_ai / expected_network / expected_route / expected_gb columns, which the loader
drops and these tests read straight from the CSV with DuckDB."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from costaudit.analysis import (
    AnalysisConfig,
    ensure_analysis,
    is_fresh,
    latest_run,
    load_analysis_config,
    load_taxonomy,
    run_analysis,
)
from costaudit.errors import CostauditError, UsageError
from costaudit.loader import load_paths

from .focus_rows import row, write

FIXTURE = Path(__file__).parent / "data" / "analysis" / "focus_ai_network.csv"


def _one(con, sql: str) -> tuple:
    """The single row of a query (fetched to the end, as DuckDB 2 wants before the next statement)."""
    return con.execute(sql).fetchall()[0]


def _raw(sql: str) -> list[tuple]:
    """Independent sums straight over the fixture file."""
    con = duckdb.connect()
    return con.execute(sql.replace("RAW", f"read_csv('{FIXTURE}', all_varchar = true)")).fetchall()


@pytest.fixture
def config(tmp_path: Path) -> AnalysisConfig:
    links = tmp_path / "ai_links.csv"
    links.write_text("resource_id,reason\neni-123,inference ENI of the search model\n", encoding="utf-8")
    toml = tmp_path / "costaudit.toml"
    toml.write_text(
        '[analysis]\nai_tag_keys = ["team"]\nai_accounts = ["ml-sandbox"]\nlink_file = "ai_links.csv"\n'
        '[analysis.ai_tag_values]\nworkload = ["training"]\n',
        encoding="utf-8",
    )
    return load_analysis_config(toml)


@pytest.fixture
def analysed(store, config):
    load_paths(store, [str(FIXTURE)])
    run = run_analysis(store, config)
    return store, run


def test_ai_spend_by_category_matches_the_fixture_to_the_cent(analysed):
    store, run = analysed
    expected = _raw(
        """SELECT BillingCurrency, expected_ai, sum(CAST(BilledCost AS DECIMAL(38,12))), count(*)
           FROM RAW WHERE expected_ai IS NOT NULL GROUP BY ALL ORDER BY ALL"""
    )
    actual = store.execute(
        "SELECT BillingCurrency, ai_category, sum(BilledCost), count(*) FROM ai_spend GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert actual == expected
    assert {r[1] for r in actual} == {"accelerated_compute", "ai_platform", "ai_api", "ai_data"}
    assert run.ai_keys >= 8 and run.line_items == 31


def test_network_transfer_class_route_and_volume_match_the_fixture(analysed):
    store, _ = analysed
    expected = _raw(
        """SELECT BillingCurrency, expected_network, expected_route, sum(CAST(BilledCost AS DECIMAL(38,12))),
                  sum(CAST(expected_gb AS DECIMAL(38,24)))
           FROM RAW WHERE expected_network IS NOT NULL GROUP BY ALL ORDER BY ALL"""
    )
    actual = store.execute(
        """SELECT BillingCurrency, network_class, route, sum(BilledCost), sum(volume_gb)
           FROM network_transfer GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    assert actual == expected
    # GiB are converted exactly: 64 GiB = 68.719476736 GB
    gib = _one(store, "SELECT volume_gb FROM network_transfer WHERE x_UsageType LIKE 'Network Internet%'")
    assert gib[0] == Decimal("68.719476736")


def test_views_cover_every_current_row_exactly_once(analysed):
    store, _ = analysed
    rows, billed = _one(store, "SELECT count(*), sum(BilledCost) FROM current_line_items")
    assert _one(store, "SELECT count(*), sum(BilledCost) FROM analysis_line_items") == (rows, billed)
    assert _one(store, "SELECT count(*) FROM analysis_line_items WHERE analysis_key_id IS NULL")[0] == 0


def test_every_classification_says_why(analysed):
    store, _ = analysed
    missing = _one(store, "SELECT count(*) FROM ai_spend WHERE ai_reason IS NULL OR ai_rule IS NULL")[0]
    assert missing == 0
    assert _one(store, "SELECT count(*) FROM network_transfer WHERE network_reason IS NULL")[0] == 0
    reasons = dict(store.execute("SELECT ResourceId, ai_reason FROM ai_spend WHERE ai_category = 'ai_data'").fetchall())
    assert reasons["datasets-research"] == "tag team=research is shared with AI resource i-train1 (accelerated_compute)"
    assert reasons["nat-0abc"].startswith("account 444444444444 (ml-sandbox) is marked AI in costaudit.toml")
    assert reasons["eni-123"] == "link file ai_links.csv names this resource: inference ENI of the search model"
    assert reasons["gs://training-shards"] == "tag workload=training is an AI tag in [analysis] ai_tag_values"
    rules = dict(store.execute("SELECT ResourceId, ai_rule FROM ai_spend WHERE ai_category = 'ai_data'").fetchall())
    assert rules == {"datasets-research": "link:tag", "nat-0abc": "link:account", "eni-123": "link:resource",
                     "gs://training-shards": "link:tag"}


def test_linking_leaves_alone_what_it_must_not_link(analysed):
    store, _ = analysed
    not_ai = dict(store.execute(
        "SELECT x_UsageType || ' ' || coalesce(ResourceId, ''), ai_category FROM analysis_line_items"
    ).fetchall())
    # compute in the AI account is not AI data (only storage and network link)
    assert not_ai["USE1-BoxUsage:m5.large i-sandbox"] is None
    # NAT hours are neither transfer nor storage, even in the AI account
    assert not_ai["USE1-NatGateway-Hours nat-0abc"] is None
    # storage whose tag value is not shared with AI spend
    assert not_ai["USE1-TimedStorage-ByteHrs web-assets"] is None
    # internet egress of a web server
    assert not_ai["USE1-DataTransfer-Out-Bytes i-web"] is None
    # an Azure storage account with no AI link
    assert not_ai["Hot LRS Data Stored "] is None


def test_token_and_accelerator_details_reach_the_rows(analysed):
    store, _ = analysed
    rows = {r[0]: r[1:] for r in store.execute(
        """SELECT x_UsageType, ai_category, ai_workload, accelerator_model, accelerator_count, token_direction, ai_model
           FROM ai_spend WHERE ChargeCategory = 'Usage' AND BillingPeriodStart = TIMESTAMPTZ '2024-09-01'"""
    ).fetchall()}
    assert rows["USE1-BoxUsage:p4d.24xlarge"] == ("accelerated_compute", None, "Nvidia A100", 8, None, None)
    assert rows["USE1-Train:ml.g5.2xlarge"] == ("ai_platform", "training", "Nvidia A10G", 1, None, None)
    assert rows["USE1-NovaLite-input-tokens"] == ("ai_api", "inference", None, None, "input", "NovaLite")
    assert rows["USE1-MP:USE1_OutputTokenCount-Units"][4:] == ("output", "Claude 3.5 Sonnet")
    assert rows["gpt-4o-0806-Outp-regnl Tokens"][4:] == ("output", "gpt-4o-0806")
    assert rows["NC24ads A100 v4"][2:4] == ("Nvidia A100 80GB", 1)
    # a tax row of an AI service is not AI spend
    assert _one(store, "SELECT count(*) FROM ai_spend WHERE ChargeCategory = 'Tax'")[0] == 0


def test_run_is_recorded_and_line_items_are_untouched(store, config):
    load_paths(store, [str(FIXTURE)])
    before = _one(store, "SELECT count(*), sum(BilledCost), sum(hash(x_UsageType)) FROM line_items")
    run = run_analysis(store, config)
    after = _one(store, "SELECT count(*), sum(BilledCost), sum(hash(x_UsageType)) FROM line_items")
    assert before == after
    recorded = latest_run(store)
    assert recorded["run_id"] == run.run_id
    assert recorded["taxonomy_version"] == load_taxonomy().version
    assert recorded["config_digest"] == config.digest()
    assert recorded["key_count"] == run.keys == _one(store, "SELECT count(*) FROM analysis_charge_keys")[0]
    assert is_fresh(store, config, load_taxonomy(config.rules, config.rules_files))


def test_a_failed_run_changes_nothing(store, config, monkeypatch):
    load_paths(store, [str(FIXTURE)])
    first = run_analysis(store, config)
    keys_before = _one(store, "SELECT count(*), min(run_id) FROM analysis_charge_keys")

    def broken(*_args, **_kwargs):
        raise RuntimeError("simulated failure while writing")

    monkeypatch.setattr("costaudit.analysis.run.create_views", broken)
    with pytest.raises(RuntimeError):
        run_analysis(store, AnalysisConfig())
    assert _one(store, "SELECT count(*), min(run_id) FROM analysis_charge_keys") == keys_before
    assert latest_run(store)["run_id"] == first.run_id
    assert _one(store, "SELECT count(*) FROM ai_spend WHERE ai_category = 'ai_data'")[0] > 0


def test_a_new_load_makes_the_analysis_stale(store, config, tmp_path):
    load_paths(store, [str(FIXTURE)])
    assert ensure_analysis(store, config) is not None
    assert ensure_analysis(store, config) is None  # fresh: nothing to do
    extra = write(tmp_path / "more.csv", [row(account="999", cost="5.00", ProviderName="AWS")])
    load_paths(store, [str(extra)])
    assert not is_fresh(store, config, load_taxonomy(config.rules, config.rules_files))
    rerun = ensure_analysis(store, config)
    assert rerun is not None and rerun.line_items == 32


def test_empty_store_is_a_clear_error(store):
    with pytest.raises(CostauditError, match="no billing data yet"):
        ensure_analysis(store, AnalysisConfig())


def test_currencies_are_never_added(analysed):
    store, _ = analysed
    currencies = store.execute("SELECT DISTINCT BillingCurrency FROM ai_spend ORDER BY 1").fetchall()
    assert currencies == [("EUR",), ("USD",)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[analysis]\nai_tag_key = ['team']\n", "unknown key"),
        ("[analysis]\nai_accounts = 'ml'\n", "ai_accounts must be a list"),
        ("[analysis\n", "not valid TOML"),
        ("[analysis.ai_tag_values]\nteam = 3\n", "must be a list of strings"),
    ],
)
def test_bad_config_is_a_usage_error(tmp_path, text, message):
    path = tmp_path / "costaudit.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError, match=message):
        load_analysis_config(path)


def test_missing_link_file_is_named(store, tmp_path):
    path = tmp_path / "costaudit.toml"
    path.write_text('[analysis]\nlink_file = "nowhere.csv"\n', encoding="utf-8")
    with pytest.raises(UsageError, match="nowhere.csv: link file not found"):
        run_analysis(store, load_analysis_config(path))


def test_config_rules_file_adds_rules(store, tmp_path):
    rules = tmp_path / "my_rules.toml"
    rules.write_text(
        'provider = "aws"\n[[rule]]\nid = "acme-web-is-ai"\nkind = "ai"\nmatch = { instance = "^m5\\\\." }\n'
        'class = "accelerated_compute"\nnote = "our m5 fleet runs inference"\n',
        encoding="utf-8",
    )
    toml = tmp_path / "costaudit.toml"
    toml.write_text('[analysis]\nrules_files = ["my_rules.toml"]\n', encoding="utf-8")
    load_paths(store, [str(FIXTURE)])
    run_analysis(store, load_analysis_config(toml))
    rule = store.execute(
        "SELECT DISTINCT ai_rule FROM ai_spend WHERE x_UsageType = 'USE1-BoxUsage:m5.large'"
    ).fetchall()
    assert rule == [("acme-web-is-ai",)]


def test_a_bill_loaded_from_two_exports_is_counted_once(store, config):
    load_paths(store, [str(FIXTURE)], source_export="first-export")
    load_paths(store, [str(FIXTURE)], source_export="second-export")  # the same bill again: shadows the first
    assert _one(store, "SELECT count(*) FROM line_items")[0] == 62
    run = run_analysis(store, config)
    assert run.line_items == 31
    assert _one(store, "SELECT count(*) FROM analysis_line_items")[0] == 31
    ai = _one(store, "SELECT sum(BilledCost) FROM ai_spend WHERE BillingCurrency = 'USD'")[0]
    expected = _raw("SELECT sum(CAST(BilledCost AS DECIMAL(38,12))) FROM RAW WHERE expected_ai IS NOT NULL "
                    "AND BillingCurrency = 'USD'")[0][0]
    assert ai == expected


def test_charge_totals_sum_the_line_items_alike_in_one_pass_or_in_shares(analysed, config, monkeypatch):
    """`analysis_charge_totals` holds each (month, resource, tag set, charge key)'s sums once,
    whether summed in one group-by or, for a large store, in shares of the resources."""
    import costaudit.analysis.run as analysis_run

    store, run = analysed
    table = "SELECT * FROM analysis_charge_totals ORDER BY ALL"
    whole = store.execute(table).fetchall()
    totals = _one(store, "SELECT sum(line_item_rows), sum(BilledCost), count(DISTINCT ResourceId) FROM analysis_charge_totals")
    lines = _one(store, "SELECT count(*), sum(BilledCost), count(DISTINCT ResourceId) FROM current_line_items")
    assert totals == lines
    monkeypatch.setattr(analysis_run, "TOTALS_PASS_ROWS", 3)  # a share per three line items: many shares
    run_analysis(store, config)
    assert store.execute(table).fetchall() == whole
