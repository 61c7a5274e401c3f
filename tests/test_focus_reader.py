"""The FOCUS reader: every shared FOCUS sample loads to the cent or fails with one clear line,
provider FOCUS exports with typed Parquet columns load, and the fixtures reconcile.

Stored totals are compared with sums written here straight over the raw files (DuckDB
read_csv / read_parquet), not with anything the reader computes.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from costaudit.connectors.base import Cols, ReadOptions
from costaudit.connectors.formats import detect
from costaudit.connectors.formats.focus import FocusFormat
from costaudit.errors import InputError
from costaudit.loader import load_paths

from .conftest import FIXTURES

SAMPLE_DIRS = ["focus-sample-data", "focus-validator", "focus-spec-examples"]
NEED_CURRENCY = ("commitment_discount_flexibility/", "commitment_discount_scenarios/")
# Files that must fail, and what the one-line error must contain.
MUST_FAIL = {
    "focus-validator/multiple_failure_examples.csv": ["'BilledCost'", "missing required column"],
    "focus-validator/sample.parquet": ["'BilledCost'", "missing required column"],
    # hour 30 in ChargePeriodEnd: a broken timestamp, named with its row
    "commitment_discount_scenarios/commitment_discount_purchase_scenario_2.csv": ["row 3", "'ChargePeriodEnd'", "T30:00"],
    "commitment_discount_scenarios/commitment_discount_purchase_scenario_3.csv": ["row 4", "'ChargePeriodEnd'", "T30:00"],
}


def _sample_files() -> list[str]:
    from .conftest import SAMPLES

    files = []
    for folder in SAMPLE_DIRS:
        for path in sorted((SAMPLES / folder).rglob("*")):
            if path.suffix in (".csv", ".parquet"):
                files.append(str(path.relative_to(SAMPLES)))
    return files or ["(shared samples missing)"]


def _expected_failure(relative: str) -> list[str] | None:
    for key, expected in MUST_FAIL.items():
        if relative.endswith(key):
            return expected
    return None


def _raw(path: Path) -> str:
    if path.suffix == ".parquet":
        return f"read_parquet('{path}')"
    return f"read_csv('{path}', header = true, all_varchar = true, nullstr = ['', 'NULL', 'null'])"


def _independent_totals(path: Path, currency: str | None = None) -> dict[tuple, Decimal]:
    """Billed cost per (provider, account, billing month, currency), read here from the raw file.

    Names and fallbacks follow the rules documented in the reader: ProviderName (0.5: Provider)
    else 'Unknown'; BillingAccountId else 'unstated:<file name>'; the billing month is the month
    of the earlier of BillingPeriodStart/End; BillingCurrency (0.5: BilledCurrency) else --currency.
    Spreadsheet-formatted amounts of the SaaS examples ("$10,000.00 ") lose their "$" and commas.
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    names = {row[0].lower(): row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {_raw(path)}").fetchall()}

    def col(*options: str, default: str = "NULL") -> str:
        for option in options:
            if option.lower() in names:
                return f'NULLIF(trim(CAST("{names[option.lower()]}" AS VARCHAR)), \'\')'
        return default

    def month(name: str) -> str:
        text = col(name)
        return (f"coalesce(try_strptime({text}, ['%Y-%m-%dT%H:%M:%SZ', '%Y-%m-%d %H:%M:%S', '%m/%d/%y']),"
                f" TRY_CAST({text} AS TIMESTAMP))")

    start, end = month("BillingPeriodStart"), month("BillingPeriodEnd")
    period = f"strftime(least({start}, coalesce({end}, {start})), '%Y-%m')"
    provider = col("ProviderName", "Provider", default="'Unknown'")
    account = col("BillingAccountId", default=f"'unstated:{path.name}'")
    cur = col("BillingCurrency", "BilledCurrency", default=f"'{currency}'")
    rows = con.execute(
        f"""SELECT coalesce({provider}, 'Unknown'), {account}, {period}, coalesce({cur}, '{currency}'),
                   sum(CAST(regexp_replace(trim(CAST("{names['billedcost']}" AS VARCHAR)), '[$,]', '', 'g')
                            AS DECIMAL(38, 12)))
            FROM {_raw(path)} GROUP BY ALL"""
    ).fetchall()
    return {tuple(r[:4]): Decimal(r[4]) for r in rows}


def _stored_totals(store, files: list[Path] | None = None) -> dict[tuple, Decimal]:
    where = ""
    if files:
        where = "WHERE x_SourceFile IN (" + ", ".join(f"'{f.resolve()}'" for f in files) + ")"
    rows = store.execute(
        f"""SELECT ProviderName, BillingAccountId, strftime(BillingPeriodStart, '%Y-%m'), BillingCurrency,
                   sum(BilledCost) FROM line_items {where} GROUP BY ALL"""
    ).fetchall()
    return {tuple(r[:4]): Decimal(r[4]) for r in rows}


@pytest.mark.parametrize("relative", _sample_files())
def test_every_shared_focus_sample_loads_exactly_or_fails_clearly(relative, samples_dir, store, cli):
    path = samples_dir / relative
    currency = "USD" if any(part in relative for part in NEED_CURRENCY) else None
    expected_failure = _expected_failure(relative)
    args = ["load", "--quiet", str(path)] + (["--currency", currency] if currency else [])
    if expected_failure:
        result = cli(*args)
        message = result.output.strip()
        assert result.exit_code != 0 and "Traceback" not in message, message
        assert len(message.splitlines()) == 1 and message.startswith("error:"), message
        for text in [path.name, *expected_failure]:
            assert text in message, message
        return
    report = load_paths(store, [str(path)], opts=ReadOptions(default_currency=currency))
    assert all(abs(p.difference) <= Decimal("0.01") for p in report.partitions)
    assert _stored_totals(store) == _independent_totals(path, currency)


def test_fragments_without_currency_say_what_to_pass(samples_dir, cli):
    path = samples_dir / "focus-spec-examples/commitment_discount_scenarios/commitment_discount_usage_scenario_1.csv"
    result = cli("load", str(path))
    message = result.output.strip()
    assert result.exit_code != 0 and len(message.splitlines()) == 1, message
    assert "'BillingCurrency'" in message and "--currency" in message and path.name in message


def test_focus_sample_values(samples_dir, store):
    """The 1.0 sample: NULL literals, Oracle's blank strings, 'Usage-based', bare Id, tags, totals."""
    path = samples_dir / "focus-sample-data" / "focus_sample.csv"
    load_paths(store, [str(path)])
    count, billed, effective, listed = store.execute(
        "SELECT count(*), sum(BilledCost), sum(EffectiveCost), sum(ListCost) FROM line_items").fetchone()
    raw = duckdb.connect().execute(
        f"SELECT count(*), sum(BilledCost::DECIMAL(38,12)), sum(EffectiveCost::DECIMAL(38,12)),"
        f" sum(ListCost::DECIMAL(38,12)) FROM {_raw(path)}").fetchone()
    assert (count, billed, effective, listed) == raw
    assert round(billed, 2) == Decimal("20.52")
    assert store.execute("SELECT DISTINCT ChargeFrequency FROM line_items ORDER BY 1").fetchall() == [
        ("One-Time",), ("Usage-Based",)]
    # Oracle rows state '' rather than NULL: stored as NULL, never as blanks
    blanks = store.execute(
        "SELECT count(*) FROM line_items WHERE AvailabilityZone = '' OR CommitmentDiscountId = '' OR ChargeClass = ''"
    ).fetchone()[0]
    assert blanks == 0
    tags = store.execute("SELECT Tags FROM line_items WHERE Tags IS NOT NULL LIMIT 1").fetchone()[0]
    assert isinstance(json.loads(tags), dict)
    assert store.execute("SELECT DISTINCT x_SourceFormat FROM line_items").fetchall() == [("focus-1.0",)]
    # a FOCUS 1.0 file prices in its billing currency: the 1.2 pricing-currency columns follow
    assert store.execute(
        "SELECT count(*) FROM line_items WHERE PricingCurrency IS DISTINCT FROM BillingCurrency"
        " OR PricingCurrencyEffectiveCost IS DISTINCT FROM EffectiveCost").fetchone()[0] == 0
    # ContractedCost is never null (7 Oracle rows leave it empty: it falls back to BilledCost)
    assert store.execute("SELECT count(*) FROM line_items WHERE ContractedCost IS NULL").fetchone()[0] == 0


# The sample's units that are not in FOCUS Unit Format but have an exact Unit Format spelling.
MAPPED_UNITS = "('Lambda-GB-Seconds', 'GiB/Second-Months', 'GB Hours', 'GB Months', 'OCPU Hours')"


def test_focus_sample_is_converted_to_focus_12(samples_dir, store):
    """The 1.0 sample breaks FOCUS 1.2 nullness, unit and category rules: each conversion rule fires on
    exactly the rows that break it (counted here from the raw file), nothing stated is lost, and
    afterwards no row breaks them."""
    path = samples_dir / "focus-sample-data" / "focus_sample.csv"
    load_paths(store, [str(path)])
    raw = duckdb.connect()
    raw.execute(f"CREATE VIEW r AS SELECT * FROM {_raw(path)}")

    def raw_count(where: str) -> int:
        return raw.execute(f"SELECT count(*) FROM r WHERE {where}").fetchone()[0]

    def rule_count(rule: str) -> int:
        return store.execute("SELECT count(*) FROM line_items WHERE list_contains(string_split("
                             "x_ConformanceAdjustments, ','), ?)", [rule]).fetchone()[0]

    assert rule_count("consumed-not-usage") == raw_count("ChargeCategory <> 'Usage' AND ConsumedQuantity IS NOT NULL") == 2
    assert rule_count("unit-price-negative") == raw_count(
        "ChargeCategory NOT IN ('Usage', 'Purchase') AND CAST(ContractedUnitPrice AS DECIMAL(38, 12)) < 0") == 1
    assert rule_count("region-name-from-id") == raw_count("RegionId IS NOT NULL AND RegionName IS NULL") == 2
    assert rule_count("region-name-without-id") == raw_count("RegionId IS NULL AND RegionName IS NOT NULL") == 7
    assert rule_count("resource-type-without-id") == raw_count("ResourceId IS NULL AND ResourceType IS NOT NULL") == 36
    assert rule_count("resource-type-from-id") + rule_count("resource-type-generic") == raw_count(
        "ResourceId IS NOT NULL AND ResourceType IS NULL") == 752
    assert rule_count("unit-format") == raw_count(f"PricingUnit IN {MAPPED_UNITS}") == 14
    assert rule_count("service-category") == raw_count(
        "ServiceName = 'Amazon Elastic Compute Cloud' AND ServiceCategory = 'Storage'") == 132
    # afterwards every row meets the rules
    broken = store.execute(
        f"""SELECT count(*) FILTER (WHERE ChargeCategory <> 'Usage' AND ConsumedQuantity IS NOT NULL),
                  count(*) FILTER (WHERE (ConsumedQuantity IS NULL) <> (ConsumedUnit IS NULL)),
                  count(*) FILTER (WHERE (RegionId IS NULL) <> (RegionName IS NULL)),
                  count(*) FILTER (WHERE (ResourceId IS NULL) <> (ResourceType IS NULL)),
                  count(*) FILTER (WHERE ContractedUnitPrice < 0),
                  count(*) FILTER (WHERE PricingUnit IN {MAPPED_UNITS} OR ConsumedUnit IN {MAPPED_UNITS})
           FROM line_items""").fetchone()
    assert broken == (0, 0, 0, 0, 0, 0)
    assert store.execute("SELECT ServiceName FROM line_items GROUP BY 1 HAVING count(DISTINCT ServiceCategory) > 1"
                         " OR count(DISTINCT coalesce(ServiceSubcategory, '')) > 1").fetchall() == []
    assert store.execute("SELECT DISTINCT ServiceCategory, ServiceSubcategory FROM line_items"
                         " WHERE ServiceName = 'Amazon Elastic Compute Cloud'").fetchall() == [("Compute", "Virtual Machines")]
    # what the sample stated survives in x_OriginalValues
    for column, where in [("RegionName", "RegionId IS NULL AND RegionName IS NOT NULL"),
                          ("ResourceType", "ResourceId IS NULL AND ResourceType IS NOT NULL"),
                          ("ServiceCategory", "ServiceCategory = 'Storage' AND ServiceName = 'Amazon Elastic Compute Cloud'"),
                          ("PricingUnit", f"PricingUnit IN {MAPPED_UNITS}")]:
        kept = store.execute(f"SELECT x_OriginalValues->>'{column}' AS v FROM line_items WHERE v IS NOT NULL ORDER BY 1")
        stated = raw.execute(f"SELECT {column} FROM r WHERE {where} ORDER BY 1").fetchall()
        assert (column, kept.fetchall()) == (column, stated)
    # SkuMeter: the 1.0 sample names no meter, and costaudit does not invent one
    assert store.execute("SELECT count(*) FROM line_items WHERE SkuMeter IS NOT NULL").fetchone()[0] == 0


def test_focus_05_names_and_swapped_period_bounds(samples_dir, store):
    load_paths(store, [str(samples_dir / "focus-validator" / "all_pass_0.5.csv")])
    rows = store.execute(
        """SELECT ProviderName, ChargeCategory, EffectiveCost, ResourceId, RegionId, InvoiceIssuerName,
                  x_OriginalValues, x_ConformanceAdjustments, BillingPeriodStart, BillingPeriodEnd, x_SourceFormat
           FROM line_items ORDER BY ProviderName"""
    ).fetchall()
    # 0.5 'Region' is the region id; FOCUS 1.2 wants a RegionName beside any RegionId, and providers
    # 'A' and 'B' have no region table: the id is kept and stands in as the name (a 0.5 file has no
    # RegionName column, so there is no stated value to record).
    assert [r[:6] for r in rows] == [
        ("A", "Purchase", Decimal("0.01"), "r1", "A", "test-entity-1"),
        ("B", "Adjustment", Decimal("1"), "r2", "B", "test-entity-2"),
    ]
    assert store.execute("SELECT list(RegionName ORDER BY ProviderName) FROM line_items").fetchone()[0] == ["A", "B"]
    # 0.5 had no ResourceType: the ids 'r1'/'r2' state none, so the service names the kind
    adjusted = "region-id-without-name,resource-type-generic"
    assert [(r[6], r[7]) for r in rows] == [(None, adjusted), (None, adjusted)]
    assert store.execute("SELECT DISTINCT ResourceType FROM line_items").fetchall() == [("Sample-service-1 resource",)]
    start, end, version = rows[0][8:]
    assert (start.isoformat(), end.isoformat(), version) == (
        "2023-06-01T00:00:00+00:00", "2023-06-30T00:00:00+00:00", "focus-0.5")


def test_fixtures_reconcile_file_by_file(store):
    folder = FIXTURES / "focus"
    files = sorted(p for p in folder.iterdir() if p.suffix in (".csv", ".parquet"))
    assert len(files) == 4
    report = load_paths(store, [str(folder)])
    assert all(abs(p.difference) <= Decimal("0.01") for p in report.partitions)
    for path in files:
        assert _stored_totals(store, [path]) == _independent_totals(path), path.name
    currencies = {p.currency for p in report.partitions}
    assert currencies == {"USD", "EUR"}
    periods = {f"{p.billing_period_start:%Y-%m}" for p in report.partitions}
    assert periods == {"2024-09", "2024-10"}


def test_fixture_contents_survive_loading(store):
    load_paths(store, [str(FIXTURES / "focus")])

    def one(sql: str):
        return store.execute(sql).fetchall()

    # AI: token-priced APIs and GPU instances from every provider
    assert len(one("SELECT * FROM line_items WHERE PricingUnit = '1000 Tokens'")) >= 8
    assert {r[0] for r in one("SELECT DISTINCT x_InstanceType FROM line_items WHERE x_InstanceType IS NOT NULL")} >= {
        "p5.48xlarge", "Standard_ND96asr_v4", "a2-highgpu-1g"}
    # network transfer details kept in the x_ columns
    assert {r[0] for r in one("SELECT DISTINCT x_TransferType FROM line_items WHERE x_TransferType IS NOT NULL")} == {
        "AWS Outbound", "InterRegion Outbound", "IntraRegion"}
    # commitment discounts, credits, tax
    statuses = one("SELECT CommitmentDiscountStatus, count(*) FROM line_items WHERE CommitmentDiscountStatus"
                   " IS NOT NULL GROUP BY 1 ORDER BY 1")
    assert [s for s, _ in statuses] == ["Unused", "Used"]
    assert {r[0] for r in one("SELECT DISTINCT ChargeCategory FROM line_items")} == {
        "Usage", "Purchase", "Credit", "Tax"}
    # virtual currency of the SaaS publishers stays in PricingCurrency
    assert {r[0] for r in one("SELECT DISTINCT PricingCurrency FROM line_items")} == {"USD", "EUR", "Credits"}
    # Parquet MAP columns become JSON objects; AWS x_ columns are kept
    tags, details, categories, operation = one(
        "SELECT Tags, SkuPriceDetails, x_CostCategories, x_Operation FROM line_items"
        " WHERE BillingAccountId = '100000000002' AND SkuId = 'TRN1' LIMIT 1")[0]
    assert json.loads(tags) == {"user:team": "research", "aws:createdBy": "AssumedRole"}
    assert json.loads(details) == {"InstanceType": "trn1.32xlarge", "OperatingSystem": "Linux"}
    assert json.loads(categories) == {"Team": "research"}
    assert operation == "RunInstances"
    # Azure FocusCost 1.0: brace-less tags, NULL literals, 'Usage-based', x_SkuMeterName -> SkuMeter
    azure = one("""SELECT Tags, ChargeFrequency, SkuMeter, x_UsageType, x_ResourceGroup, ResourceName
                   FROM line_items WHERE BillingAccountId LIKE '%900001' AND SkuId = 'DZH318Z0CSHN' LIMIT 1""")[0]
    assert json.loads(azure[0]) == {"env": "prod", "team": "ml"}
    assert azure[1:] == ("Usage-Based", "NC24ads A100 v4", "NC24ads A100 v4", "rg-gpu", None)
    versions = {r[0] for r in one("SELECT DISTINCT x_SourceFormat FROM line_items")}
    # files are grouped by FOCUS version: each file records its own
    assert versions == {"focus-1.0", "focus-1.1", "focus-1.2"}


@pytest.mark.parametrize(
    "name, version",
    [("focus-1.0-azure.csv", "focus-1.0"), ("focus-1.1-gcp.csv", "focus-1.1"), ("focus-1.2-multicloud.csv", "focus-1.2")],
)
def test_version_is_recorded(store, name, version):
    load_paths(store, [str(FIXTURES / "focus" / name)])
    assert store.execute("SELECT DISTINCT x_SourceFormat FROM line_items").fetchall() == [(version,)]
    formats = store.execute("SELECT DISTINCT source_format, format_version FROM loads").fetchall()
    assert formats == [("focus", version.removeprefix("focus-"))]


def _write_parquet(path: Path, columns: dict[str, pa.Array]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def test_typed_parquet_columns(store, tmp_path):
    """Google-style key/value lists, STRUCT details, TIMESTAMPTZ and DATE, DECIMAL costs, NULL
    literals, enum variants, columns in any order."""
    struct_list = pa.list_(pa.struct([("key", pa.string()), ("value", pa.string()), ("inherited", pa.bool_())]))
    path = _write_parquet(tmp_path / "google-focus.parquet", {
        "ChargeFrequency": pa.array(["usage based", "ONE-TIME"]),
        "BilledCost": pa.array([Decimal("1.10"), Decimal("-0.10")], type=pa.decimal128(18, 6)),
        "Tags": pa.array([[{"key": "team", "value": "ml", "inherited": False},
                           {"key": "env", "value": "prod", "inherited": True}], []], type=struct_list),
        "SkuPriceDetails": pa.array([{"CoreCount": "4"}, None], type=pa.struct([("CoreCount", pa.string())])),
        "BillingPeriodStart": pa.array([0, 0], type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "ChargePeriodStart": pa.array(["2024-07-01", "2024-07-02"]).cast(pa.date32()),
        "BillingAccountId": pa.array(["0123-4567", "0123-4567"]),
        "BillingCurrency": pa.array(["usd", "usd"]),
        "ProviderName": pa.array(["Google Cloud", "Google Cloud"]),
        "ChargeCategory": pa.array(["usage", "Credit"]),
        "ServiceCategory": pa.array(["ai and machine learning", "NULL"]),
        "ResourceName": pa.array(["NULL", "null"]),
    })
    load_paths(store, [str(path)])
    rows = store.execute(
        """SELECT ChargeFrequency, BilledCost, Tags, SkuPriceDetails, BillingPeriodStart, ChargePeriodStart,
                  BillingCurrency, ChargeCategory, ServiceCategory, ResourceName, BillingPeriodEnd
           FROM line_items ORDER BY BilledCost DESC"""
    ).fetchall()
    first, second = rows
    assert first[0:2] == ("Usage-Based", Decimal("1.1"))
    assert json.loads(first[2]) == {"team": "ml", "env": "prod"} and second[2] is None
    assert json.loads(first[3]) == {"CoreCount": "4"} and second[3] is None
    assert first[4].isoformat() == "1970-01-01T00:00:00+00:00"
    assert first[5].isoformat() == "2024-07-01T00:00:00+00:00"
    assert first[6:10] == ("USD", "Usage", "AI and Machine Learning", None)
    assert second[0] == "One-Time" and second[8] == "Other" and second[9] is None
    assert first[10].isoformat() == "1970-02-01T00:00:00+00:00"


def test_aws_focus_map_columns_and_double_costs(store, tmp_path):
    """AWS Data Exports FOCUS: MAP tags, MAP<string,double> discounts, DOUBLE costs, ms timestamps."""
    money = [0.1, 0.2, 0.3]
    start = pa.array([1_725_148_800_000] * 3, type=pa.timestamp("ms"))  # 2024-09-01
    path = _write_parquet(tmp_path / "aws-focus.parquet", {
        "BilledCost": pa.array(money, type=pa.float64()),
        "BillingAccountId": pa.array(["111"] * 3), "BillingCurrency": pa.array(["USD"] * 3),
        "BillingPeriodStart": start, "ProviderName": pa.array(["AWS"] * 3),
        "Tags": pa.array([[("user:team", "ml")], [], None], type=pa.map_(pa.string(), pa.string())),
        "x_Discounts": pa.array([[("EdpDiscount", -0.01)], None, None], type=pa.map_(pa.string(), pa.float64())),
        "x_UsageType": pa.array(["USE1-BoxUsage:p5.48xlarge", None, None]),
        "x_ServiceCode": pa.array(["AmazonEC2"] * 3), "x_Operation": pa.array(["RunInstances"] * 3),
    })
    report = load_paths(store, [str(path)])
    assert [p.stored_total for p in report.partitions] == [Decimal("0.6")]
    rows = store.execute("SELECT Tags, x_UsageType, SkuMeter, x_ServiceCode FROM line_items ORDER BY BilledCost").fetchall()
    assert json.loads(rows[0][0]) == {"user:team": "ml"} and rows[1][0] is None and rows[2][0] is None
    assert rows[0][1:] == ("USE1-BoxUsage:p5.48xlarge", "USE1-BoxUsage:p5.48xlarge", "AmazonEC2")


def test_native_exports_are_not_taken_for_focus(samples_dir):
    """Azure EA shares names with FOCUS (BillingAccountId, ResourceId, ChargeType...): not FOCUS."""
    con = duckdb.connect()
    path = samples_dir / "finops-toolkit" / "EA_ActualCost_Small.csv"
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {_raw(path)}").fetchall()}
    assert FocusFormat().score(Cols(types=types)) == 0
    focus = samples_dir / "focus-sample-data" / "focus_sample.csv"
    focus_types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {_raw(focus)}").fetchall()}
    fmt = detect(Cols(types=focus_types))
    assert fmt is not None and fmt.id == "focus"


@pytest.mark.parametrize(
    "header, expected",
    [
        (["BillingAccountId", "ChargeCategory", "BillingCurrency", "BillingPeriodStart"], "'BilledCost'"),
        (["BilledCost", "ChargeCategory", "BillingCurrency", "ProviderName"], "'BillingPeriodStart'"),
        (["BilledCost", "ChargeCategory", "BillingPeriodStart", "ProviderName"], "--currency"),
    ],
)
def test_missing_columns_are_named(tmp_path, header, expected):
    path = tmp_path / "fragment.csv"
    path.write_text(",".join(header) + "\n" + ",".join("1" for _ in header) + "\n")
    con = duckdb.connect()
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {_raw(path)}").fetchall()}
    cols = Cols(types=types, source=str(path))
    with pytest.raises(InputError) as caught:
        FocusFormat().check(cols, ReadOptions())
    assert expected in str(caught.value) and str(path) in str(caught.value)


def test_tags_of_an_unusable_type_are_refused(tmp_path, cli):
    path = _write_parquet(tmp_path / "odd.parquet", {
        "BilledCost": pa.array(["1"]), "BillingCurrency": pa.array(["USD"]),
        "BillingPeriodStart": pa.array(["2024-09-01"]), "ProviderName": pa.array(["X"]),
        "Tags": pa.array([7], type=pa.int64()),
    })
    result = cli("load", str(path))
    message = result.output.strip()
    assert result.exit_code != 0 and len(message.splitlines()) == 1, message
    assert "'Tags'" in message and "key-value" in message and "odd.parquet" in message


def test_azure_focuscost_12_export(samples_dir, store, tmp_path):
    """An Azure FocusCost 1.2 export with the column list Microsoft's export schema declares (it has
    PricingCurrency but none of the PricingCurrency* amounts, which stay null)."""
    schema = json.loads((samples_dir / "finops-toolkit/export-schemas/focuscost_1.2.json").read_text())
    columns = [m["source"]["name"] for m in schema["translator"]["mappings"]]
    base = {
        "BilledCost": "12.5", "EffectiveCost": "12.5", "ListCost": "14", "ContractedCost": "12.5",
        "BillingAccountId": "/providers/Microsoft.Billing/billingAccounts/123:456", "BillingAccountName": "Contoso",
        "BillingCurrency": "EUR", "BillingPeriodStart": "2025-01-01T00:00:00Z", "BillingPeriodEnd": "2025-02-01T00:00:00Z",
        "ChargePeriodStart": "2025-01-03T00:00:00Z", "ChargePeriodEnd": "2025-01-04T00:00:00Z",
        "ChargeCategory": "Usage", "ChargeFrequency": "Usage-Based", "ProviderName": "Microsoft",
        "PublisherName": "Microsoft", "InvoiceIssuerName": "Microsoft", "ServiceName": "Azure OpenAI",
        "ServiceCategory": "AI and Machine Learning", "ServiceSubcategory": "Generative AI",
        "PricingCurrency": "USD", "PricingUnit": "1000 Tokens",
        "x_SkuMeterCategory": "Cognitive Services", "x_SkuMeterSubcategory": "Azure OpenAI",
        "x_ResourceGroupName": "rg-ai", "x_SkuDescription": "gpt-4o Input global Tokens",
        "Tags": '"team": "ai","cost-center": "42"', "SkuMeter": "gpt-4o-0513-Inp-glbl",
    }
    assert set(base) <= set(columns)
    path = tmp_path / "part_0_0001.csv"
    with path.open("w", newline="") as handle:
        import csv

        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerow([base.get(c, "") for c in columns])
        writer.writerow([{"BilledCost": "-1.25", "ChargeCategory": "Credit"}.get(c, base.get(c, "")) for c in columns])
    con = duckdb.connect()
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {_raw(path)}").fetchall()}
    assert detect(Cols(types=types)).id == "focus"
    load_paths(store, [str(path)])
    assert _stored_totals(store) == _independent_totals(path)
    row = store.execute(
        """SELECT Tags, x_SkuMeterCategory, x_ProductFamily, x_SkuMeterSubcategory, x_ResourceGroup, x_SkuDescription,
                  x_UsageType, PricingCurrency, PricingCurrencyEffectiveCost, x_SourceFormat
           FROM line_items WHERE ChargeCategory = 'Usage'"""
    ).fetchone()
    assert json.loads(row[0]) == {"team": "ai", "cost-center": "42"}
    assert row[1:] == ("Cognitive Services", "Cognitive Services", "Azure OpenAI", "rg-ai", "gpt-4o Input global Tokens",
                       "gpt-4o-0513-Inp-glbl", "USD", None, "focus-1.2")


# -- FOCUS 1.2 conversion rules (connectors/formats/focus_conformance.py) --------------------------

RULE_BASE = {
    "BilledCost": "1", "BillingCurrency": "USD", "BillingPeriodStart": "2024-09-01T00:00:00Z",
    "BillingAccountId": "acct", "ProviderName": "AWS", "ChargeCategory": "Usage", "ChargeClass": "",
    "CommitmentDiscountStatus": "", "ConsumedQuantity": "", "ConsumedUnit": "", "PricingQuantity": "1",
    "PricingUnit": "Hours", "ListUnitPrice": "1", "ContractedUnitPrice": "1", "RegionId": "", "RegionName": "",
    "ResourceId": "", "ResourceType": "", "ServiceName": "AWS Lambda", "ServiceCategory": "Compute",
    "ServiceSubcategory": "Serverless Compute", "SkuId": "SKU",
}
# ChargeDescription labels each row: label -> the values that differ from RULE_BASE.
RULE_ROWS = {
    # ConsumedQuantity/ConsumedUnit: null unless Usage and not an Unused commitment
    "credit": {"ChargeCategory": "Credit", "ConsumedQuantity": "5", "ConsumedUnit": "Hours", "ContractedUnitPrice": "-3",
               "ListUnitPrice": "2"},
    "usage": {"ConsumedQuantity": "5", "ConsumedUnit": "Hours"},
    "unused": {"CommitmentDiscountStatus": "Unused", "ConsumedQuantity": "5", "ConsumedUnit": "Hours"},
    "unit-only": {"ConsumedUnit": "Hours"},
    # unit prices: null on Tax; a negative one nulled only where FOCUS allows a null price
    "tax": {"ChargeCategory": "Tax", "ListUnitPrice": "0.1", "ContractedUnitPrice": "0.1", "PricingQuantity": "",
            "PricingUnit": ""},
    "usage-negative": {"ContractedUnitPrice": "-1"},
    "correction-negative": {"ChargeClass": "Correction", "ContractedUnitPrice": "-1"},
    # units: exact respellings only
    "lambda": {"PricingUnit": "Lambda-GB-Seconds", "ConsumedUnit": "Lambda-GB-Seconds", "ConsumedQuantity": "2"},
    "gp3": {"PricingUnit": "GiB/Second-Months"},
    "oracle-rate": {"ProviderName": "Oracle", "PricingUnit": "OCPU Per Hour"},
    # regions: looked up in costaudit's tables for the row's provider, else the lone value is dropped
    "aws-id": {"RegionId": "us-east-1"},
    "aws-name": {"RegionName": "US West (Oregon)"},
    "azure-name": {"ProviderName": "Microsoft", "RegionName": "West Europe", "ServiceName": "Virtual Machines",
                   "ServiceSubcategory": "Virtual Machines"},
    "oracle-name": {"ProviderName": "Oracle", "RegionName": "us-phoenix-1"},
    "oracle-id": {"ProviderName": "Oracle", "RegionId": "us-phoenix-1"},
    "both": {"RegionId": "us-east-1", "RegionName": "External"},
    # ResourceType: null without ResourceId; else what the id states, else '<ServiceName> resource'
    "arn-slash": {"ResourceId": "arn:aws:ec2:us-east-1:123456789012:natgateway/nat-0abc"},
    "arn-colon": {"ResourceId": "arn:aws:lambda:us-east-1:123456789012:function:resize"},
    "arn-typeless": {"ResourceId": "arn:aws:sqs:us-east-1:123456789012:orders"},
    "arn-path": {"ResourceId": "arn:aws:apigateway:us-east-1::/restapis/a1b2/stages/prod"},
    "ec2-id": {"ResourceId": "i-0abc123"},
    "tgw-id": {"ResourceId": "tgw-attach-0abc123"},
    "ec2-id-oracle": {"ProviderName": "Oracle", "ResourceId": "i-0abc123", "ServiceName": "COMPUTE",
                      "ServiceSubcategory": "Virtual Machines"},
    "arm": {"ProviderName": "Microsoft", "ServiceName": "Virtual Machines", "ServiceSubcategory": "Virtual Machines",
            "ResourceId": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Sql/servers/db1/databases/d1"},
    "ocid": {"ProviderName": "Oracle", "ResourceId": "ocid1.bootvolume.oc1.phx.abc", "ServiceName": "COMPUTE",
             "ServiceSubcategory": "Virtual Machines"},
    "bare-name": {"ResourceId": "my-bucket"},
    "stated-type": {"ResourceId": "i-0abc999", "ResourceType": "Virtual machine"},
    "type-without-id": {"ResourceType": "bucket"},
    # one category pair per (provider, ServiceName): the service table, else the most rows, else alphabetical
    "ec2-a": {"ServiceName": "Amazon Elastic Compute Cloud", "ServiceSubcategory": "Virtual Machines"},
    "ec2-b": {"ServiceName": "Amazon Elastic Compute Cloud", "ServiceCategory": "Storage", "ServiceSubcategory": "Block Storage"},
    "ec2-c": {"ServiceName": "Amazon Elastic Compute Cloud", "ServiceCategory": "Storage", "ServiceSubcategory": "Block Storage"},
    "widget-a": {"ServiceName": "Widget", "ServiceCategory": "Analytics", "ServiceSubcategory": "Data Processing"},
    "widget-b": {"ServiceName": "Widget", "ServiceCategory": "Analytics", "ServiceSubcategory": "Data Processing"},
    "widget-c": {"ServiceName": "Widget", "ServiceCategory": "Other", "ServiceSubcategory": "Other (Other)"},
    "tie-a": {"ProviderName": "Oracle", "ServiceName": "TIE", "ServiceCategory": "Storage", "ServiceSubcategory": "Other (Storage)"},
    "tie-b": {"ProviderName": "Oracle", "ServiceName": "TIE", "ServiceCategory": "Compute", "ServiceSubcategory": "Other (Compute)"},
}


def _rules_file(tmp_path: Path) -> Path:
    import csv

    path = tmp_path / "rules.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["ChargeDescription", *RULE_BASE])
        writer.writeheader()
        for label, changes in RULE_ROWS.items():
            writer.writerow({"ChargeDescription": label, **RULE_BASE, **changes})
    return path


@pytest.fixture
def rule_rows(store, tmp_path):
    """{label: row dict} of the rule file as stored."""
    path = _rules_file(tmp_path)
    report = load_paths(store, [str(path)])
    assert all(abs(p.difference) <= Decimal("0.01") for p in report.partitions)  # money untouched
    cursor = store.execute("SELECT * FROM line_items")
    names = [d[0] for d in cursor.description]
    rows = {r[names.index("ChargeDescription")]: dict(zip(names, r, strict=True)) for r in cursor.fetchall()}
    assert len(rows) == len(RULE_ROWS)
    return rows


def _adjusted(row: dict) -> set[str]:
    return set((row["x_ConformanceAdjustments"] or "").split(",")) - {""}


def _originals(row: dict) -> dict:
    return json.loads(row["x_OriginalValues"]) if row["x_OriginalValues"] else {}


def test_rule_consumed_quantity_only_on_usage(rule_rows):
    credit, usage, unused, unit_only = (rule_rows[k] for k in ("credit", "usage", "unused", "unit-only"))
    assert (credit["ConsumedQuantity"], credit["ConsumedUnit"]) == (None, None)
    assert "consumed-not-usage" in _adjusted(credit)
    assert _originals(credit)["ConsumedQuantity"] == "5.000000000000" and _originals(credit)["ConsumedUnit"] == "Hours"
    assert (unused["ConsumedQuantity"], unused["ConsumedUnit"]) == (None, None)
    assert _adjusted(unused) == {"consumed-not-usage"}
    # a Usage row keeps its consumption, and a unit without a quantity goes
    assert (usage["ConsumedQuantity"], usage["ConsumedUnit"]) == (Decimal(5), "Hours") and not _adjusted(usage)
    assert unit_only["ConsumedUnit"] is None and _adjusted(unit_only) == {"consumed-unit-without-quantity"}
    assert _originals(unit_only) == {"ConsumedUnit": "Hours"}


def test_rule_unit_prices(rule_rows):
    credit, tax = rule_rows["credit"], rule_rows["tax"]
    # a credit may have no unit price, so its negative one goes; its positive list price stays
    assert credit["ContractedUnitPrice"] is None and credit["ListUnitPrice"] == Decimal(2)
    assert credit["PricingCurrencyContractedUnitPrice"] is None and credit["PricingCurrencyListUnitPrice"] == Decimal(2)
    assert "unit-price-negative" in _adjusted(credit) and _originals(credit)["ContractedUnitPrice"] == "-3.000000000000"
    # a 1.2 file without PricingCurrency* columns: the derived copies are not recorded as stated
    assert "PricingCurrencyContractedUnitPrice" not in _originals(credit)
    assert (tax["ListUnitPrice"], tax["ContractedUnitPrice"]) == (None, None) and _adjusted(tax) == {"unit-price-tax"}
    # FOCUS: a Usage price MUST NOT be null, so a negative one stays (and stays wrong); a correction's goes
    assert rule_rows["usage-negative"]["ContractedUnitPrice"] == Decimal(-1) and not _adjusted(rule_rows["usage-negative"])
    assert rule_rows["correction-negative"]["ContractedUnitPrice"] is None
    assert rule_rows["usage"]["ContractedUnitPrice"] == Decimal(1)


def test_rule_units(rule_rows):
    lam, gp3, rate = rule_rows["lambda"], rule_rows["gp3"], rule_rows["oracle-rate"]
    assert (lam["PricingUnit"], lam["ConsumedUnit"]) == ("GB-Seconds", "GB-Seconds") and _adjusted(lam) == {"unit-format"}
    assert _originals(lam) == {"PricingUnit": "Lambda-GB-Seconds", "ConsumedUnit": "Lambda-GB-Seconds"}
    assert gp3["PricingUnit"] == "GiBps-Months"
    # not an exact equivalent: kept as stated
    assert rate["PricingUnit"] == "OCPU Per Hour" and "unit-format" not in _adjusted(rate)
    assert rule_rows["usage"]["PricingUnit"] == "Hours"


def test_rule_regions(rule_rows):
    region = {k: (r["RegionId"], r["RegionName"]) for k, r in rule_rows.items()}
    assert region["aws-id"] == ("us-east-1", "US East (N. Virginia)")
    assert region["aws-name"] == ("us-west-2", "US West (Oregon)")
    assert region["azure-name"] == ("westeurope", "West Europe")
    assert _adjusted(rule_rows["aws-id"]) == {"region-name-from-id"} and not _originals(rule_rows["aws-id"])
    assert _adjusted(rule_rows["aws-name"]) == {"region-id-from-name"}
    # no region table for Oracle: a lone name cannot stand without an id (it moves to x_OriginalValues),
    # while a lone id is kept and stands in as its own name
    assert region["oracle-name"] == (None, None) and _originals(rule_rows["oracle-name"]) == {"RegionName": "us-phoenix-1"}
    assert region["oracle-id"] == ("us-phoenix-1", "us-phoenix-1")
    assert _adjusted(rule_rows["oracle-id"]) == {"region-id-without-name"} and not _originals(rule_rows["oracle-id"])
    # both stated: kept as stated, even a name that is not AWS's
    assert region["both"] == ("us-east-1", "External") and not _adjusted(rule_rows["both"])
    assert region["usage"] == (None, None)


def test_rule_resource_types(rule_rows):
    types = {k: r["ResourceType"] for k, r in rule_rows.items()}
    assert types["arn-slash"] == "natgateway" and types["arn-colon"] == "function"
    assert types["arn-typeless"] == "queue" and types["arn-path"] == "restapis"
    assert types["ec2-id"] == "instance" and types["tgw-id"] == "transit-gateway-attachment"
    assert types["arm"] == "Microsoft.Sql/servers/databases" and types["ocid"] == "bootvolume"
    assert _adjusted(rule_rows["ec2-id"]) == {"resource-type-from-id"}
    # an id that states no type (and EC2 prefixes only count for AWS): the service names the kind
    assert types["bare-name"] == "AWS Lambda resource" and _adjusted(rule_rows["bare-name"]) == {"resource-type-generic"}
    assert types["ec2-id-oracle"] == "COMPUTE resource"
    assert types["stated-type"] == "Virtual machine" and not _adjusted(rule_rows["stated-type"])
    assert types["type-without-id"] is None and _originals(rule_rows["type-without-id"]) == {"ResourceType": "bucket"}
    assert types["usage"] is None and not _adjusted(rule_rows["usage"])


def test_rule_one_category_per_service(rule_rows):
    pairs = {k: (r["ServiceCategory"], r["ServiceSubcategory"]) for k, r in rule_rows.items()}
    # costaudit's AWS service table files EC2 under Compute, though two of three rows say Storage
    assert {pairs[k] for k in ("ec2-a", "ec2-b", "ec2-c")} == {("Compute", "Virtual Machines")}
    assert _originals(rule_rows["ec2-b"]) == {"ServiceCategory": "Storage", "ServiceSubcategory": "Block Storage"}
    assert not _adjusted(rule_rows["ec2-a"])
    # not in a table: the pair on most rows; a tie: alphabetical
    assert {pairs[k] for k in ("widget-a", "widget-b", "widget-c")} == {("Analytics", "Data Processing")}
    assert {pairs[k] for k in ("tie-a", "tie-b")} == {("Compute", "Other (Compute)")}
    # a service filed consistently is left alone
    assert pairs["usage"] == ("Compute", "Serverless Compute") and not _adjusted(rule_rows["usage"])


def test_rules_are_idempotent_through_an_export(rule_rows, store, tmp_path):
    """Conformed rows exported and read back: nothing more changes, nothing is recorded twice."""
    from costaudit.focus_export import export_focus

    result = export_focus(store, tmp_path / "out", file_format="csv")
    assert result.metadata["conformance_adjustments"]["ResourceType read from the ResourceId"] == 8
    from costaudit.store import connect

    again = connect(tmp_path / "again.duckdb")
    load_paths(again, [str(tmp_path / "out" / "focus-1.2")])
    columns = "ChargeDescription, ConsumedQuantity, ConsumedUnit, ContractedUnitPrice, PricingUnit, RegionId, " \
              "RegionName, ResourceType, ServiceCategory, ServiceSubcategory, x_OriginalValues, x_ConformanceAdjustments"
    before = store.execute(f"SELECT {columns} FROM line_items ORDER BY 1").fetchall()
    after = again.execute(f"SELECT {columns} FROM line_items ORDER BY 1").fetchall()
    assert before == after
