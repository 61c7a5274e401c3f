"""`costaudit import inventory`: S3 Inventory (manifest + CSV/Parquet), GCS inventory reports and
Azure blob inventory, stored with comparable content hashes. Stored sizes are checked against an
independent read of the raw files."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from costaudit.audit_cmd import import_group
from costaudit.connectors.imports_inventory import import_inventory
from costaudit.errors import InputError

from .conftest import FIXTURES

DATA = Path(__file__).resolve().parent / "data" / "rules" / "storage_duplicate_content"
CLOUDS = DATA / "fires_copies_across_clouds" / "inventory"
QUIET = DATA / "quiet_nothing_comparable" / "inventory"


def objects(store, where: str = "true"):
    return store.execute(
        f"SELECT location, object_key, size_bytes, hash_kind, content_hash, storage_class, region, storage_account "
        f"FROM storage_objects WHERE {where} ORDER BY location, object_key"
    ).fetchall()


def test_three_providers_sizes_match_the_raw_files(store):
    report = import_inventory(store, [str(CLOUDS)])
    raw = duckdb.connect()
    s3 = raw.execute(
        f"""SELECT column0, count(*), sum(column2::BIGINT) FROM read_csv('{CLOUDS}/s3/*/daily/data/*.csv.gz',
            header = false, all_varchar = true) GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    gcs = raw.execute(f"SELECT count(*), sum(size) FROM read_csv('{CLOUDS}/gcs/*.csv')").fetchall()
    azure = raw.execute(f"SELECT count(*), sum(\"Content-Length\") FROM read_csv('{CLOUDS}/azure/**/*.csv')").fetchall()
    expected = {f"s3://{bucket}": (n, total) for bucket, n, total in s3}
    expected["gs://acme-raw-gcs"] = gcs[0]
    expected["https://acmeblob.blob.core.windows.net/raw"] = azure[0]
    assert report.locations == expected
    stored = dict(
        ((loc, (n, total)) for loc, n, total in store.execute(
            "SELECT location, count(*), sum(size_bytes) FROM storage_objects GROUP BY 1"
        ).fetchall())
    )
    assert stored == expected


def test_hashes_are_normalised_with_their_kind(store):
    import_inventory(store, [str(CLOUDS)])
    rows = {(r[0], r[1]): r for r in objects(store)}
    md5_a = "0cc175b9c0f1b6a831c399e269772661"
    # S3: single-part ETag of a plain or SSE-S3 object is an MD5; a multipart ETag keeps its part count;
    # an SSE-KMS ETag is not a digest of the content; CSV keys are URL-decoded.
    assert rows[("s3://acme-raw", "data/a.bin")][3:5] == ("md5", md5_a)
    assert rows[("s3://acme-raw", "data/b.bin")][3] == "md5"
    assert rows[("s3://acme-raw", "data/big.bin")][3:5] == ("multipart-etag", "e2fc714c4727ee9395f324cd2e7f331f-640")
    assert rows[("s3://acme-raw", "kms/k.bin")][3] == "opaque-etag"
    assert ("s3://acme-raw", "dir x/c.bin") in rows
    # GCS md5Hash and Azure Content-MD5 are base64: stored as the same hex digest
    assert rows[("gs://acme-raw-gcs", "a.bin")][3:7] == ("md5", md5_a, "STANDARD", "us-central1")
    azure = rows[("https://acmeblob.blob.core.windows.net/raw", "a.bin")]
    assert azure[3:5] == ("md5", md5_a) and azure[5] == "Hot" and azure[7] == "acmeblob"
    [(crc,)] = store.execute("SELECT crc32c FROM storage_objects WHERE location = 'gs://acme-raw-gcs' AND object_key = 'a.bin'").fetchall()
    assert crc == "c99465aa"
    [(when,)] = store.execute("SELECT DISTINCT strftime(inventory_time, '%Y-%m-%dT%H:%M') FROM storage_objects "
                              "WHERE location = 's3://acme-raw'").fetchall()
    assert when == "2024-03-01T01:00"


def test_s3_parquet_without_manifest_and_crc_only_objects(store):
    import_inventory(store, [str(QUIET)])
    rows = {(r[0], r[1]): r for r in objects(store)}
    assert rows[("s3://q-b", "k.bin")][3] == "opaque-etag"
    assert rows[("s3://q-b", "t.txt")][3:5] == ("md5", "4" * 32)
    assert rows[("gs://q-gcs", "comp1.bin")][3:5] == ("crc32c", "abcdef12")


def test_a_new_listing_replaces_that_bucket_only(store, tmp_path):
    import_inventory(store, [str(CLOUDS)])
    newer = tmp_path / "gcs.csv"
    newer.write_text("bucket,name,size,md5Hash\nacme-raw-gcs,only.bin,5,\n", encoding="utf-8")
    import_inventory(store, [str(newer)])
    assert [r[1] for r in objects(store, "location = 'gs://acme-raw-gcs'")] == ["only.bin"]
    assert len(objects(store, "location = 's3://acme-raw'")) == 6
    import_inventory(store, [str(CLOUDS)])  # importing again changes nothing
    assert store.execute("SELECT count(*) FROM storage_objects").fetchall() == [(6 + 3 + 3 + 2,)]


def test_manifest_checksum_and_missing_files_are_errors(store, tmp_path):
    copy = tmp_path / "s3"
    shutil.copytree(CLOUDS / "s3" / "acme-raw", copy / "acme-raw")
    data = copy / "acme-raw" / "daily" / "data" / "acme-raw-1.csv.gz"
    data.write_bytes(gzip.compress(b'"acme-raw","x","1","2024-01-01T00:00:00.000Z","","","","",""\n', mtime=0))
    with pytest.raises(InputError, match="does not match the MD5 checksum in its manifest"):
        import_inventory(store, [str(copy)])
    data.unlink()
    with pytest.raises(InputError, match="named by the manifest was not found near it"):
        import_inventory(store, [str(copy / "acme-raw" / "daily" / "2024-03-01T01-00Z" / "manifest.json")])
    assert store.execute("SELECT count(*) FROM storage_objects").fetchall() == [(0,)]


def test_azure_without_manifest_needs_the_account(store, tmp_path):
    listing = next((CLOUDS / "azure").rglob("*.csv"))
    with pytest.raises(InputError, match="the storage account is unknown; pass --account NAME"):
        import_inventory(store, [str(listing)])
    import_inventory(store, [str(listing)], account="otheraccount", region="westeurope")
    assert {r[0] for r in objects(store)} == {"https://otheraccount.blob.core.windows.net/raw"}
    assert {r[6] for r in objects(store)} == {"westeurope"}


def test_headerless_s3_csv_and_foreign_files_are_refused(store, tmp_path):
    data = next((CLOUDS / "s3" / "acme-raw").rglob("*.csv.gz"))
    with pytest.raises(InputError, match=r"not a storage inventory: expected S3 Inventory \(give its manifest.json\)"):
        import_inventory(store, [str(data)])
    other = tmp_path / "other.json"
    other.write_text('{"hello":\n "world"}\n', encoding="utf-8")
    report = import_inventory(store, [str(other), str(QUIET / "gcs")])
    assert report.skipped == [(str(other.resolve()), "a JSON file that is not an S3 or Azure inventory manifest")]


def test_bad_size_is_named(store, tmp_path):
    bad = tmp_path / "gcs.csv"
    bad.write_text("bucket,name,size\nb,x,12\nb,y,twelve\n", encoding="utf-8")
    with pytest.raises(InputError, match="1 row\\(s\\) without a bucket, an object name or a whole-number size"):
        import_inventory(store, [str(bad)])


def test_demo_inventories_import(store):
    folder = FIXTURES / "inventory"
    if not folder.is_dir():
        pytest.skip("demo inventories not generated")
    report = import_inventory(store, [str(folder)])
    assert any(loc.startswith("s3://") for loc in report.locations)
    assert any(loc.startswith("gs://") for loc in report.locations)
    assert any(loc.startswith("https://") for loc in report.locations)


def test_cli_import_inventory(db_path):
    result = CliRunner().invoke(import_group, ["inventory", str(CLOUDS)], obj={"db": db_path})
    assert result.exit_code == 0, result.output
    assert "s3://acme-raw-copy" in result.output and "62,914,560" in result.output
