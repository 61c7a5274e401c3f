"""Azure export manifests: the latest run per (export, month) is loaded, older runs are claimed,
blob names resolve only to the files given, and the manifest's dataset type picks the format."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from costaudit.connectors import azure_delivery
from costaudit.errors import InputError
from costaudit.loader import load_paths

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "azure"
MTD = FIXTURES / "exports" / "northwind-mtd"
AMORTIZED = FIXTURES / "exports" / "northwind-amortized"
RUN1 = "11111111-aaaa-4bbb-8ccc-000000000001"
RUN2 = "11111111-aaaa-4bbb-8ccc-000000000002"


def raw_sum(files: list[Path]) -> Decimal:
    paths = ", ".join(f"'{p}'" for p in files)
    sql = f"SELECT sum(CAST(CostInBillingCurrency AS DECIMAL(38,12))) FROM read_csv([{paths}], header = true, all_varchar = true)"
    return duckdb.sql(sql).fetchall()[0][0]


def run_files(root: Path, run_id: str) -> list[Path]:
    return sorted(p for p in root.rglob("part_*.csv") if run_id in p.parts)


def test_latest_run_wins_and_a_second_load_changes_nothing(store):
    report = load_paths(store, [str(MTD)])
    assert [(p.source_export, p.source_format, p.billing_account_id, p.action) for p in report.partitions] == [
        ("azure/northwind-mtd", "azure-actual", "86310003", "loaded")]
    latest = run_files(MTD, RUN2)
    assert len(latest) == 2  # the second run is split into two partitions
    assert report.partitions[0].source_total == raw_sum(latest) != raw_sum(run_files(MTD, RUN1))
    assert store.execute("SELECT sum(BilledCost) FROM line_items").fetchone()[0] == raw_sum(latest)
    files = {row[0] for row in store.execute("SELECT DISTINCT x_SourceFile FROM line_items").fetchall()}
    assert files == {str(p) for p in latest}
    load = store.execute("SELECT delivery_id, files FROM loads WHERE status = 'active'").fetchone()
    assert load[0] == RUN2 and {f["path"] for f in json.loads(load[1])} == {str(p) for p in latest}
    again = load_paths(store, [str(MTD)])
    assert not again.changed and [p.action for p in again.partitions] == ["unchanged"]


def _copy_exports(tmp_path: Path) -> Path:
    target = tmp_path / "msexports"
    shutil.copytree(MTD, target / "northwind-mtd")
    return target


def _edit_manifest(root: Path, run_id: str, **run_info) -> Path:
    manifest = next(p for p in root.rglob("manifest.json") if run_id in p.parts)
    doc = json.loads(manifest.read_text())
    doc["runInfo"].update(run_info)
    manifest.write_text(json.dumps(doc))
    return manifest


def test_submitted_time_decides_not_folder_order(tmp_path, store):
    """(The edited manifest is written on one line, as Azure may write it: still a manifest.)"""
    root = _copy_exports(tmp_path)
    _edit_manifest(root, RUN1, submittedTime="2024-03-25T00:00:00.0000001Z")
    report = load_paths(store, [str(root)])
    assert report.partitions[0].source_total == raw_sum(run_files(root, RUN1))
    assert store.execute("SELECT delivery_id FROM loads").fetchall() == [(RUN1,)]


def test_a_later_run_replaces_the_month(tmp_path, store):
    root = _copy_exports(tmp_path)
    shutil.rmtree(next(p for p in root.rglob(RUN2) if p.is_dir()))
    first = load_paths(store, [str(root)])
    assert first.partitions[0].source_total == raw_sum(run_files(root, RUN1))
    shutil.copytree(MTD, root / "northwind-mtd", dirs_exist_ok=True)
    second = load_paths(store, [str(root)])
    assert [p.action for p in second.partitions] == ["replaced"]
    assert store.execute("SELECT sum(BilledCost) FROM line_items").fetchone()[0] == raw_sum(run_files(root, RUN2))


def test_manifest_type_selects_the_amortized_format(store):
    report = load_paths(store, [str(AMORTIZED)])
    assert [(p.source_format, p.basis, p.source_export) for p in report.partitions] == [
        ("azure-amortized", "EffectiveCost", "azure/northwind-amortized")]
    # without the manifest, the same file (no commitment rows, so its rows cannot tell) is read
    # as actual, the conservative default: the manifest's type is what chose amortized above
    data = next(AMORTIZED.rglob("part_0_0001.csv"))
    assert {p.source_format for p in load_paths(store, [str(data)]).partitions} == {"azure-actual"}


def test_manifest_contradicted_by_its_rows_is_refused(tmp_path, store):
    root = tmp_path / "export"
    shutil.copytree(AMORTIZED, root)
    data = next(root.rglob("part_0_0001.csv"))
    shutil.copy(FIXTURES / "ea_actual.csv", data)  # actual rows (commitment purchases) under an AmortizedCost manifest
    with pytest.raises(InputError, match="look like an ACTUAL cost export"):
        load_paths(store, [str(root)])
    assert store.execute("SELECT count(*) FROM loads").fetchone()[0] == 0


def _single_run(tmp_path: Path, blob_name: str) -> Path:
    root = tmp_path / "run"
    source = next(AMORTIZED.rglob("manifest.json"))
    shutil.copytree(source.parent, root)
    doc = json.loads((root / "manifest.json").read_text())
    doc["blobs"] = [{"blobName": blob_name, "byteCount": 1}]
    (root / "manifest.json").write_text(json.dumps(doc))
    return root


def test_blob_names_cannot_escape_the_given_files(tmp_path, store):
    root = _single_run(tmp_path, "costexports/../../../etc/part_0_0001.csv")
    with pytest.raises(InputError, match="contains '..'"):
        load_paths(store, [str(root)])
    root = _single_run(tmp_path / "b", "/etc/hostname")  # absolute, and not among the given files
    with pytest.raises(InputError, match="no such file was given"):
        load_paths(store, [str(root)])


def test_blob_names_resolve_by_path_suffix(tmp_path, store):
    root = _single_run(tmp_path, "/somewhere/else/entirely/part_0_0001.csv")
    report = load_paths(store, [str(root)])
    assert report.partitions[0].source_total == raw_sum([root / "part_0_0001.csv"])


def test_same_file_names_in_two_runs_resolve_to_their_own_run(tmp_path, store):
    root = _copy_exports(tmp_path)
    for run_id in (RUN1, RUN2):
        manifest = next(p for p in root.rglob("manifest.json") if run_id in p.parts)
        doc = json.loads(manifest.read_text())
        for blob in doc["blobs"]:
            blob["blobName"] = blob["blobName"].rsplit("/", 1)[-1]  # bare "part_0_0001.csv" in both runs
        manifest.write_text(json.dumps(doc))
    report = load_paths(store, [str(root)])
    assert report.partitions[0].source_total == raw_sum(run_files(root, RUN2))


def test_other_dataset_manifests_are_claimed_but_their_files_not_loaded(tmp_path, store):
    root = _single_run(tmp_path, "prices/part_0_0001.csv")
    doc = json.loads((root / "manifest.json").read_text())
    doc["exportConfig"]["type"] = "PriceSheet"
    (root / "manifest.json").write_text(json.dumps(doc))
    (root / "part_0_0001.csv").write_text("MeterId,UnitPrice\nabc,1.0\n")
    deliveries, claimed = azure_delivery.claim({root / "manifest.json": doc}, [root / "manifest.json", root / "part_0_0001.csv"])
    assert deliveries == [] and claimed == {root / "manifest.json"}


def test_claim_names_export_run_and_dataset():
    paths = sorted(p.resolve() for p in MTD.rglob("*") if p.is_file())
    docs = {p: json.loads(p.read_text()) for p in paths if p.name == "manifest.json"}
    deliveries, claimed = azure_delivery.claim(docs, paths)
    assert claimed == set(paths)  # both manifests and the files of both runs
    assert [(d.source_export, d.delivery_id, d.manifest.parent.name) for d in deliveries] == [
        ("azure/northwind-mtd", RUN2, RUN2)]
    assert [p.name for p in deliveries[0].files] == ["part_0_0001.csv", "part_1_0001.csv"]
    assert getattr(deliveries[0], "format_hint", "azure-actual") == "azure-actual"
