"""Credentials in the environment never reach costaudit's logs, output, reports, exports or store.

A scheduled job runs with cloud credentials in its environment. Here every variable the three
SDKs read (AWS access key, secret and session token; Azure client secret, tenant, a storage
connection string with its AccountKey; a Google service-account key file with a private key)
and a few unrelated secrets hold values sharing one marker. Then the demo job runs as cron
would run it (``costaudit --verbose run`` on the bundled fixtures, every report format), and
``sql``, ``summary``, ``audit`` and ``export focus`` (CSV and Parquet) follow, each a separate
process. The marker is searched, case-insensitively, in everything printed (stdout and stderr,
DEBUG logs included), in the store (its bytes, its .wal, and the text of every column of every
table, since DuckDB compresses strings on disk), and in every file under the test folder: raw
bytes and the decompressed content of XLSX (zip), gzip and Parquet files. Only the key file
itself may hold it; a control test shows the search finds the marker in each kind of file.

The pull path (SDK clients really authenticating against local AWS, Azure and Google servers)
is covered by tests/test_pull_credentials.py::test_no_credential_is_stored_printed_logged_or_written.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb

from .conftest import FIXTURES

MARKER = "CaSecretMarker7Q"  # in every secret value; searched case-insensitively
NEEDLE = MARKER.lower().encode()
COSTAUDIT = Path(sys.executable).with_name("costaudit")
PRIVATE_KEY = (f"-----BEGIN PRIVATE KEY-----\nMIIEv{MARKER}gcpPrivateKeyBody0000000000000000000000000000\n"
               "-----END PRIVATE KEY-----\n")
ROOMS = ("aws", "azure", "gcp", "focus", "metrics", "inventory")
FORMATS = ["html", "xlsx", "csv", "json", "md"]


def _secrets(key_file: Path) -> dict[str, str]:
    account_key = f"{MARKER}AzureAccountKey00000000000000000000000000000000000000000000000000=="
    return {
        "AWS_ACCESS_KEY_ID": f"AKIA{MARKER.upper()}01",
        "AWS_SECRET_ACCESS_KEY": f"{MARKER}/awsSecretAccessKey/0000000000",
        "AWS_SESSION_TOKEN": f"FwoGZXIvYXdzE{MARKER}sessionToken0000",
        "AWS_SECURITY_TOKEN": f"{MARKER}legacySecurityToken",
        "AZURE_CLIENT_ID": f"00000000-0000-0000-0000-{MARKER}",
        "AZURE_CLIENT_SECRET": f"{MARKER}~azureClientSecret",
        "AZURE_TENANT_ID": f"11111111-1111-1111-1111-{MARKER}",
        "AZURE_STORAGE_KEY": account_key,
        "AZURE_STORAGE_CONNECTION_STRING": (
            f"DefaultEndpointsProtocol=https;AccountName=acmebilling;AccountKey={account_key};"
            "EndpointSuffix=core.windows.net"),
        "AZURE_STORAGE_SAS_TOKEN": f"sv=2022-11-02&sig={MARKER}sasSignature",
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
        "GOOGLE_OAUTH_ACCESS_TOKEN": f"ya29.{MARKER}accessToken",
        # secrets of other tools in the same cron environment
        "GITHUB_TOKEN": f"ghp_{MARKER}githubToken",
        "DATABASE_URL": f"postgres://finance:{MARKER}dbPassword@db.internal:5432/finance",
        "SLACK_WEBHOOK_URL": f"https://hooks.slack.com/services/T000/B000/{MARKER}webhook",
    }


def _key_file(folder: Path) -> Path:
    key = {"type": "service_account", "project_id": "finops-jobs", "private_key_id": f"{MARKER}keyId0000000000",
           "private_key": PRIVATE_KEY, "client_email": "costaudit@finops-jobs.iam.gserviceaccount.com",
           "client_id": "100000000000000000001", "token_uri": "https://oauth2.googleapis.com/token"}
    path = folder / "gcp-key.json"
    path.write_text(json.dumps(key), encoding="utf-8")
    return path


def _demo_folder(root: Path) -> Path:
    """The demo config (every report format) beside links to the fixture rooms, so its relative
    paths (store, reports) land in `root`, as tests/test_fixtures.py::_demo_folder does."""
    folder = root / "fixtures"
    folder.mkdir()
    text = (FIXTURES / "costaudit.toml").read_text()
    text = "\n".join(f"formats = {json.dumps(FORMATS)}" if line.startswith("formats = ") else line
                     for line in text.splitlines())
    (folder / "costaudit.toml").write_text(text + "\n")
    for room in ROOMS:
        (folder / room).symlink_to(FIXTURES / room)
    return folder


# -- where to look ------------------------------------------------------------------------------


def _store_text(path: Path) -> str:
    """Every value of every table of a DuckDB store as text (strings are compressed on disk)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        parts = []
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall():
            parts += [r[0] or "" for r in con.execute(f'SELECT concat_ws(\'|\', *COLUMNS(*)) FROM "{table}"').fetchall()]
        return "\n".join(parts)
    finally:
        con.close()


def _contents(path: Path) -> list[tuple[str, bytes]]:
    """What a file holds, as bytes to search: itself, and what its container or compression hides."""
    data = path.read_bytes()
    found = [(str(path), data)]
    if data.startswith(b"PK\x03\x04"):  # XLSX and other zip files
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            found += [(f"{path}!{n}", archive.read(n)) for n in archive.namelist()]
    elif data.startswith(b"\x1f\x8b"):
        found.append((f"{path} (gunzipped)", gzip.decompress(data)))
    elif data.startswith(b"PAR1"):
        rows = duckdb.connect().execute(f"SELECT concat_ws('|', *COLUMNS(*)) FROM read_parquet('{path}')").fetchall()
        found.append((f"{path} (parquet values)", "\n".join(r[0] or "" for r in rows).encode()))
    elif data[8:12] == b"DUCK":  # a DuckDB store
        found.append((f"{path} (store values)", _store_text(path).encode()))
    return found


def _files(root: Path, skip: set[Path]) -> list[Path]:
    """Every regular file under `root`, not following links (the fixture rooms are links)."""
    found = []
    for folder, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            path = Path(folder) / name
            if path not in skip and not path.is_symlink():
                found.append(path)
    return found


def _leaks(named: dict[str, bytes]) -> list[str]:
    return [where for where, data in named.items() if NEEDLE in data.lower()]


# -- the test -----------------------------------------------------------------------------------


def test_no_credential_reaches_logs_output_reports_exports_or_the_store(tmp_path):
    key_file = _key_file(tmp_path)
    secrets = _secrets(key_file)
    assert all(NEEDLE.decode() in v.lower() for n, v in secrets.items() if n != "GOOGLE_APPLICATION_CREDENTIALS")
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(("AWS_", "AZURE_", "GOOGLE_", "CLOUDSDK_", "COSTAUDIT_"))}
    environment |= secrets
    _demo_folder(tmp_path)

    def costaudit(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([str(COSTAUDIT), "--verbose", *args], cwd=tmp_path, env=environment,
                              capture_output=True, timeout=120)
        assert done.returncode == 0, (args, done.stdout.decode()[-2000:], done.stderr.decode()[-2000:])
        return done

    store = tmp_path / "costaudit.duckdb"
    runs = [
        costaudit("run", "--config", "fixtures/costaudit.toml", "--since", "2024-09", "--until", "2024-11"),
        costaudit("--db", str(store), "sql", "SELECT * FROM line_items USING SAMPLE 50 ROWS (reservoir, 1)", "--format", "csv"),
        costaudit("--db", str(store), "sql", "SELECT * FROM runs", "--format", "json", "--out", "runs.json"),
        costaudit("--db", str(store), "summary", "--config", "fixtures/costaudit.toml"),
        costaudit("--db", str(store), "audit", "--config", "fixtures/costaudit.toml", "--since", "2024-09",
                  "--until", "2024-11"),
        costaudit("--db", str(store), "export", "focus", "--out", "export-csv", "--format", "csv"),
        costaudit("--db", str(store), "export", "focus", "--out", "export-parquet"),
    ]
    printed = {}
    for index, done in enumerate(runs):
        printed[f"command {index} stdout"] = done.stdout
        printed[f"command {index} stderr"] = done.stderr
    assert b" DEBUG " in runs[0].stderr, "the job logged at DEBUG (--verbose), the most it ever logs"
    assert b"report: " in runs[0].stdout

    files = _files(tmp_path, skip={key_file})
    names = {p.relative_to(tmp_path).as_posix() for p in files}
    reports = {n for n in names if n.startswith("reports/")}
    assert {n.rsplit(".", 1)[1] for n in reports} == set(FORMATS), names
    assert "costaudit.duckdb" in names and "runs.json" in names
    assert any(n.startswith("export-csv/focus-1.2/billing_period=") for n in names)
    assert any(n.startswith("export-parquet/focus-1.2/billing_period=") for n in names)
    searched = dict(printed)
    for path in files:
        searched |= dict(_contents(path))
    assert f"{store} (store values)" in searched, "the store's values were searched, not only its bytes"
    assert any(w.endswith("(parquet values)") for w in searched) and any("!xl/" in w for w in searched)
    assert not _leaks(searched), f"a credential appears in {_leaks(searched)}"
    # the search can fail: the key file (written by the test, not costaudit) does hold the marker
    assert _leaks(dict(_contents(key_file)))


def test_the_search_finds_the_marker_in_every_kind_of_file(tmp_path):
    """Control: a marker hidden in a compressed store column, an XLSX, a gzip or a zstd Parquet file is found."""
    secret = f"prefix-{MARKER.upper()}-suffix"
    store = tmp_path / "store.duckdb"
    con = duckdb.connect(str(store))
    con.execute("CREATE TABLE t AS SELECT 'row ' || range AS note, range AS n FROM range(20000)")
    con.execute("UPDATE t SET note = ? WHERE n = 12345", [secret])
    con.execute("CHECKPOINT")
    con.execute(f"COPY t TO '{tmp_path / 't.parquet'}' (FORMAT parquet, COMPRESSION zstd)")
    con.close()
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(f"a,b\n1,{secret}\n".encode()))
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.active["A1"] = secret
    workbook.save(tmp_path / "t.xlsx")
    for name in ("store.duckdb", "t.parquet", "t.csv.gz", "t.xlsx"):
        assert _leaks(dict(_contents(tmp_path / name))), name
