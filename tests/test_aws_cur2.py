"""AWS CUR 2.0 (Data Exports): Parquet with MAP columns, CSV with JSON text, tag keys."""

from __future__ import annotations

import duckdb
import pytest

from costaudit.connectors.formats.aws_cur import tag_key, tag_key_sql
from costaudit.errors import InputError
from costaudit.loader import load_paths

from .test_aws_cur import AWS, _assert_same, _independent, _stored

# -- CUR 2.0 ---------------------------------------------------------------------------------

def _cur2_sum(relation: str, cost: str = "coalesce(line_item_net_unblended_cost, line_item_unblended_cost)") -> str:
    return f"""
        SELECT bill_payer_account_id, strftime(CAST(bill_billing_period_start_date AS TIMESTAMPTZ), '%Y-%m'),
               line_item_currency_code, sum(CAST({cost} AS DECIMAL(38, 12)))
        FROM {relation} GROUP BY ALL"""


def test_cur2_parquet_with_map_columns(store):
    folder = AWS / "data-exports/acme-cur2"
    relation = f"read_parquet('{folder}/data/**/*.parquet')"
    types = {r[0]: r[1] for r in duckdb.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
    assert types["product"] == types["resource_tags"] == "MAP(VARCHAR, VARCHAR)"
    report = load_paths(store, [str(folder)])
    assert {p.source_format for p in report.partitions} == {"aws-cur2"}
    # BilledCost is the net (EDP-discounted) cost, which differs from the unblended sum.
    expected = _independent(_cur2_sum(relation))
    _assert_same(_stored(store), expected)
    unblended = _independent(_cur2_sum(relation, "line_item_unblended_cost"))
    assert all(unblended[k] != expected[k] for k in expected)
    row = store.execute(
        """SELECT Tags, x_CostCategories, BillingAccountName, SubAccountName, RegionName, x_TransferType, ServiceName
           FROM line_items WHERE x_UsageType = 'USE1-EUW1-AWS-Out-Bytes' LIMIT 1"""
    ).fetchall()
    assert row == [(None, None, "Acme Payer", "Acme ML Prod", "US East (N. Virginia)", "InterRegion Outbound",
                    "Amazon Elastic Compute Cloud")]
    tags = store.execute("SELECT DISTINCT Tags FROM line_items WHERE x_UsageType = 'USE1-NatGateway-Hours'").fetchall()
    assert tags == [('{"aws:createdBy":"IAMUser:AIDAEXAMPLE:deploy","team":"web"}',)]


def test_cur2_csv_with_json_text_maps(store):
    folder = AWS / "data-exports/emea-cur2-csv"
    relation = f"read_csv('{folder}/data/*/*.csv.gz', header = true, all_varchar = true)"
    report = load_paths(store, [str(folder)])
    assert {p.source_format for p in report.partitions} == {"aws-cur2"}
    assert {p.currency for p in report.partitions} == {"EUR"}
    # This export has no net cost column: the invoice is the unblended sum.
    _assert_same(_stored(store), _independent(_cur2_sum(relation, "line_item_unblended_cost")))
    row = store.execute(
        """SELECT Tags, x_CostCategories, x_TransferType, x_InstanceType FROM line_items
           WHERE x_UsageType = 'EUW1-Train:ml.p4d.24xlarge' AND strftime(BillingPeriodStart, '%Y-%m') = '2024-01'"""
    ).fetchall()
    assert row == [('{"project":"llm","team":"ml"}', '{"CostCenter":"CC-100"}', None, "ml.p4d.24xlarge")]
    transfer = store.execute("SELECT DISTINCT x_TransferType FROM line_items WHERE x_UsageType = 'EUW1-USE1-AWS-Out-Bytes'")
    assert transfer.fetchall() == [("InterRegion Outbound",)]


def test_cur2_csv_with_a_broken_map_is_refused(store, tmp_path):
    source = AWS / "data-exports/emea-cur2-csv/data/BILLING_PERIOD=2024-01/emea-cur2-csv-00001.csv.gz"
    broken = tmp_path / "broken.csv"
    duckdb.sql(
        f"""COPY (SELECT * REPLACE (CASE WHEN line_item_usage_type LIKE '%NatGateway-Hours' THEN '{{"user_team": '
                  ELSE resource_tags END AS resource_tags)
                  FROM read_csv('{source}', header = true, all_varchar = true)) TO '{broken}' (HEADER)"""
    )
    with pytest.raises(InputError) as err:
        load_paths(store, [str(broken)])
    assert err.value.column == "resource_tags" and "JSON object" in str(err.value)


def test_tag_keys_match_between_python_and_sql():
    keys = ["user_team", "user_cost_center", "aws_created_by", "aws_cloudformation_stack_name", "aws_foo_bar", "Name"]
    assert [tag_key(k) for k in keys] == ["team", "cost_center", "aws:createdBy", "aws:cloudformation:stack-name",
                                          "aws:foo_bar", "Name"]
    sql = duckdb.sql(f"SELECT list_transform({keys!r}, lambda k: {tag_key_sql('k')})").fetchall()[0][0]
    assert sql == [tag_key(k) for k in keys]


def test_renamed_map_keys_that_collide_keep_the_first(store, tmp_path):
    source = next((AWS / "data-exports/acme-cur2").rglob("*2024-01/*.parquet"))
    path = tmp_path / "collide.parquet"
    duckdb.sql(
        f"""COPY (SELECT * REPLACE (MAP {{'user_team': 'ml', 'team': 'other', 'user_owner': ''}} AS resource_tags)
                  FROM read_parquet('{source}')) TO '{path}'"""
    )
    load_paths(store, [str(path)])
    assert store.execute("SELECT DISTINCT Tags FROM line_items").fetchall() == [('{"team":"ml"}',)]
