"""The taxonomy applied to charge keys: every class has cases that must match and cases that must not,
every classification names its rule and pattern, and a user's rules come first."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from costaudit.analysis import classify_keys, load_taxonomy
from costaudit.analysis.enrich import unit_factors
from costaudit.analysis.schema import KEY_COLUMNS
from costaudit.analysis.taxonomy import parse_rules
from costaudit.errors import UsageError

DATA = Path(__file__).parent / "data" / "analysis"
EXPECTED = ["ai_category", "ai_workload", "accelerator_model", "accelerator_count", "token_direction", "ai_model",
            "network_class", "source_region", "destination_region"]


def _cases() -> list[dict[str, str]]:
    with (DATA / "cases.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


def _keys(rows: list[dict[str, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        [{c: (row.get(c) or None) for c in KEY_COLUMNS} for row in rows], schema={c: pl.String for c in KEY_COLUMNS}
    )


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy()


@pytest.fixture(scope="module")
def classified_cases(taxonomy):
    cases = _cases()
    return cases, classify_keys(_keys(cases), taxonomy).to_dicts()


def test_every_case_gets_its_expected_class(classified_cases):
    cases, results = classified_cases
    wrong = []
    for case, result in zip(cases, results, strict=True):
        explain = f"(ai: {result['ai_reason']}; network: {result['network_reason']})"
        for column in EXPECTED:
            expected = case[column]
            if expected == "*":
                continue
            actual = "" if result[column] is None else str(result[column])
            if actual != expected:
                wrong.append(f"{case['case']}: {column} = {actual!r}, expected {expected!r} {explain}")
        if case["must_not"] and case["must_not"] in (result["ai_category"], result["network_class"]):
            wrong.append(f"{case['case']}: classified {case['must_not']} but must not be {explain}")
    assert not wrong, "\n".join(wrong)


def test_cases_cover_every_class_both_ways(taxonomy):
    cases = _cases()
    for kind, column in (("ai", "ai_category"), ("network", "network_class")):
        for cls in taxonomy.classes[kind]:
            if cls in ("none", "ai_data"):
                continue  # ai_data comes from linking: tests/test_analysis_store.py
            assert any(c[column] == cls for c in cases), f"no case that must be {kind} class {cls}"
            assert any(c["must_not"] == cls for c in cases), f"no case that must not be {kind} class {cls}"


def test_reason_names_rule_file_column_value_and_pattern(taxonomy):
    keys = _keys([{"ProviderName": "AWS", "x_ServiceCode": "AmazonEC2", "x_UsageType": "USE1-EUW1-AWS-Out-Bytes"}])
    result = classify_keys(keys, taxonomy).row(0, named=True)
    assert result["network_rule"] == "aws-net-inter-region-out"
    assert result["network_reason"].startswith("aws-net-inter-region-out (aws.toml): x_UsageType 'USE1-EUW1-AWS-Out-Bytes' ~ /")
    # an explicit "not" is explained too
    keys = _keys([{"ProviderName": "AWS", "x_ServiceCode": "AmazonEC2", "x_UsageType": "USE1-NatGateway-Hours"}])
    result = classify_keys(keys, taxonomy).row(0, named=True)
    assert result["network_class"] is None and result["network_rule"] == "aws-net-not-hours"


def test_rules_of_one_provider_do_not_touch_another(taxonomy):
    # An Azure meter name that happens to look like an AWS usage type stays unclassified by AWS rules.
    keys = _keys([{"ProviderName": "Microsoft", "x_UsageType": "USE1-EUW1-AWS-Out-Bytes"}])
    result = classify_keys(keys, taxonomy).row(0, named=True)
    assert result["network_class"] is None and result["network_rule"] is None


def test_user_rules_come_first_and_replace_shipped_ids():
    user_rules = [
        {"id": "acme-gpu-pool", "kind": "ai", "provider": "aws", "match": {"usage": "GpuPool"},
         "class": "accelerated_compute", "accelerator": "Nvidia H100", "accelerator_count": "8"},
        # replaces the shipped NAT rule: this company treats NAT processing as internet egress
        {"id": "aws-net-nat", "kind": "network", "provider": "aws", "match": {"usage": "NatGateway-Bytes"},
         "class": "internet"},
    ]
    taxonomy = load_taxonomy(user_rules)
    assert [r.id for r in taxonomy.rules[:2]] == ["acme-gpu-pool", "aws-net-nat"]
    assert sum(1 for r in taxonomy.rules if r.id == "aws-net-nat") == 1
    keys = _keys([
        {"ProviderName": "AWS", "x_UsageType": "USE1-GpuPool-Hours"},
        {"ProviderName": "AWS", "x_UsageType": "USE1-NatGateway-Bytes"},
    ])
    first, second = classify_keys(keys, taxonomy).to_dicts()
    assert (first["ai_category"], first["accelerator_model"], first["accelerator_count"]) == (
        "accelerated_compute", "Nvidia H100", 8)
    assert first["ai_reason"].startswith("acme-gpu-pool (costaudit.toml [[analysis.rules]])")
    assert second["network_class"] == "internet"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"id": "x", "kind": "ai", "match": {"usage": "(unclosed"}, "class": "ai_api"}, "invalid regex"),
        ({"id": "x", "kind": "ai", "match": {"usage": "a"}, "class": "gpu"}, "is not a ai class"),
        ({"id": "x", "kind": "egress", "match": {"usage": "a"}, "class": "internet"}, "kind must be one of"),
        ({"id": "x", "kind": "ai", "match": {"colour": "a"}, "class": "ai_api"}, "cannot match on 'colour'"),
        ({"id": "x", "kind": "ai", "match": {"usage": "a"}, "class": "ai_api", "model": "{m}"}, "no pattern has a group"),
        ({"kind": "ai", "match": {"usage": "a"}, "class": "ai_api"}, "every rule needs an id"),
        ({"id": "x", "kind": "ai", "match": {}, "class": "ai_api"}, "at least one field"),
        ({"id": "x", "kind": "ai", "match": {"usage": "a"}, "class": "ai_api", "colour": "red"}, "unknown key"),
    ],
)
def test_bad_rules_are_named_errors(rule, message):
    with pytest.raises(UsageError, match=message) as error:
        load_taxonomy([rule])
    assert "costaudit.toml [[analysis.rules]]" in str(error.value)


def test_shipped_taxonomy_is_valid_and_versioned(taxonomy):
    assert taxonomy.version and len(taxonomy.digest) == 64
    ids = [r.id for r in taxonomy.rules]
    assert len(ids) == len(set(ids))
    for kind in ("ai", "network", "storage"):
        assert taxonomy.rules_of(kind), kind
    # every rule file parses on its own with the same checks user rules get
    assert parse_rules([], "empty", taxonomy.classes) == []


def test_data_units_convert_exactly(taxonomy):
    factors = unit_factors(["bytes", "GB", "10 GB", "gibibyte", "GiB", "TB", "GB-Mo", "Hours", "1K"],
                           taxonomy.tables["data_units"])
    assert {k: Decimal(v) for k, v in factors.items()} == {
        "bytes": Decimal("0.000000001"),
        "GB": Decimal(1),
        "10 GB": Decimal(10),
        "gibibyte": Decimal("1.073741824"),
        "GiB": Decimal("1.073741824"),
        "TB": Decimal(1000),
    }


def test_region_codes_and_names_resolve(taxonomy):
    keys = _keys([
        {"ProviderName": "AWS", "x_UsageType": "APS3-MES1-AWS-Out-Bytes"},
        {"ProviderName": "AWS", "x_UsageType": "ZZZ9-USE1-AWS-Out-Bytes"},  # unknown code kept as stated
        {"ProviderName": "AWS", "ServiceName": "Amazon S3",
         "ChargeDescription": "$0.02 per GB - Asia Pacific (Tokyo) data transfer to Europe (Frankfurt)"},
    ])
    rows = classify_keys(keys, taxonomy).select("source_region", "destination_region").rows()
    assert rows == [("ap-south-1", "me-south-1"), ("ZZZ9", "us-east-1"), ("ap-northeast-1", "eu-central-1")]
