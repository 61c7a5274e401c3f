"""`costaudit run`: end to end on the bundled fixtures, exit codes, the diff with the previous
run, logging, and a reader that works while a run writes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from costaudit.cli import main
from costaudit.connectors.imports_inventory import import_inventory
from costaudit.connectors.imports_metrics import import_metrics
from costaudit.loader import load_paths
from costaudit.runjob import run_window
from costaudit.store import connect
from costaudit.swap import building_path, store_lock

from .conftest import FIXTURES

ROOMS = ("aws", "azure", "gcp", "focus")
WINDOW = ("--since", "2024-01", "--until", "2024-11")


@pytest.fixture(scope="module")
def base_store(tmp_path_factory) -> Path:
    """A store with the demo metrics and inventories but no bills: `run` loads those."""
    path = tmp_path_factory.mktemp("base") / "store.duckdb"
    con = connect(path)
    import_metrics(con, [str(FIXTURES / "metrics")])
    import_inventory(con, [str(FIXTURES / "inventory")])
    con.close()
    return path


@pytest.fixture(scope="module")
def billed_store(base_store, tmp_path_factory) -> Path:
    """The base store with every fixture room loaded and analysed: runs without sources audit it."""
    from costaudit.analysis import ensure_analysis

    path = tmp_path_factory.mktemp("billed") / "store.duckdb"
    shutil.copyfile(base_store, path)
    con = connect(path)
    for room in ROOMS:
        load_paths(con, [str(FIXTURES / room)])
    ensure_analysis(con)
    con.close()
    return path


@pytest.fixture
def store(base_store, tmp_path) -> Path:
    path = tmp_path / "store.duckdb"
    shutil.copyfile(base_store, path)
    return path


@pytest.fixture
def billed(billed_store, tmp_path) -> Path:
    path = tmp_path / "billed.duckdb"
    shutil.copyfile(billed_store, path)
    return path


def _config(folder: Path, rooms=ROOMS, extra: str = "") -> Path:
    parts = [f'[[sources]]\nname = "{room}-files"\nprovider = "local"\npath = "{FIXTURES / room}"\n' for room in rooms]
    path = folder / "costaudit.toml"
    path.write_text("\n".join(parts) + extra, encoding="utf-8")
    return path


def _invoke(*args: str):
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def _run(store: Path, config: Path, *extra: str, options: tuple[str, ...] = ()):
    return _invoke(*options, "--db", str(store), "run", "--config", str(config), *extra)


def _query(store: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _open_high(store: Path, run_id: str) -> list[str]:
    return [f for (f,) in _query(store, "SELECT fingerprint FROM findings WHERE run_id = ? AND status = 'open' "
                                        "AND severity = 'high' ORDER BY 1", [run_id])]


def _run_id(output: str) -> str:
    found = re.search(r"^Run (\S+):", output, re.M)
    assert found, output
    return found.group(1)


def _diff_counts(output: str) -> tuple[int, int, int]:
    found = re.search(r"(\d+) new, (\d+) resolved, (\d+) persisting", output)
    assert found, output
    return tuple(int(n) for n in found.groups())  # type: ignore[return-value]


def test_run_end_to_end_on_the_fixtures(store, billed_store, tmp_path):
    """Loads every fixture room, analyses, audits, writes reports; the second run finds nothing new."""
    config = _config(tmp_path, extra='\n[reports]\nformats = ["html", "json"]\nout = "out/"\n')
    first = _run(store, config, *WINDOW)
    run_id = _run_id(first.stdout)
    high = _open_high(store, run_id)
    assert high, "the demo bills and metrics have an idle GPU (high severity)"
    assert first.exit_code == 3, first.stdout + first.stderr
    assert f"{len(high)} open finding(s) at or above high severity (exit 3)" in first.stdout
    assert "First run on this store" in first.stdout

    # The run loaded what `costaudit load` loads: same partitions, same totals, to the cent.
    totals = """SELECT provider, billing_account_id, billing_period_start, currency, source_total, stored_total
                FROM loads JOIN load_totals USING (load_id) WHERE status = 'active' ORDER BY ALL"""
    expected = _query(billed_store, totals)  # the same rooms loaded with load_paths, as `costaudit load` does
    assert _query(store, totals) == expected
    loaded = sum(int(n) for n in re.findall(r"(\d+) partition\(s\) loaded", first.stdout))
    assert loaded == len(expected)
    assert _query(store, "SELECT count(*) FROM runs") == [(1,)]
    assert _query(store, "SELECT max(run_id) FROM latest_findings") == [(run_id,)]

    try:
        import costaudit.reports as reports

        has_reports = hasattr(reports, "build_report_data")
    except ImportError:
        has_reports = False
    if has_reports:
        written = {p.suffix for p in (tmp_path / "out").iterdir()}
        assert written == {".html", ".json"}
        report = json.loads((tmp_path / "out" / f"costaudit-{run_id}.json").read_text(encoding="utf-8"))
        assert run_id in json.dumps(report)
    else:
        assert "reports not written" in first.stdout

    second = _run(store, config, *WINDOW)
    assert second.exit_code == 3
    assert re.findall(r"0 partition\(s\) loaded, 0 replaced, (\d+) unchanged", second.stdout)
    open_now = _query(store, "SELECT count(*) FROM latest_findings WHERE status = 'open'")[0][0]
    assert _diff_counts(second.stdout) == (0, 0, open_now)
    assert "change +0.00" in second.stdout and "change -" not in second.stdout
    assert _query(store, "SELECT count(*) FROM runs") == [(2,)]
    assert not building_path(store).exists()


def test_diff_against_the_previous_run(billed, tmp_path):
    """New, resolved and persisting counts and the saving per currency, checked against the
    findings table directly (not through the findings_changes view the command reads)."""
    store, config = billed, _config(tmp_path, rooms=())
    wide = _run(store, config, *WINDOW, "--fail-on", "none")
    narrow = _run(store, config, "--since", "2024-10", "--until", "2024-11", "--fail-on", "none")
    assert wide.exit_code == 0 and narrow.exit_code == 0, narrow.stdout + narrow.stderr
    before, after = _run_id(wide.stdout), _run_id(narrow.stdout)

    def open_set(run_id):
        return {f: (s, c) for f, s, c in _query(
            store, "SELECT fingerprint, estimated_monthly_saving, currency FROM findings "
                   "WHERE run_id = ? AND status = 'open'", [run_id])}

    old, new = open_set(before), open_set(after)
    expected = (len(new.keys() - old.keys()), len(old.keys() - new.keys()), len(old.keys() & new.keys()))
    assert expected[1] > 0, "the narrower window must resolve findings of other months"
    assert _diff_counts(narrow.stdout) == expected
    assert "the previous run covered other billing months" in narrow.stdout
    for currency in {c for _, c in old.values()} | {c for _, c in new.values()}:
        if currency is None:
            continue
        was = sum((s for s, c in old.values() if c == currency and s is not None), Decimal(0))
        now = sum((s for s, c in new.values() if c == currency and s is not None), Decimal(0))
        change = (now - was).quantize(Decimal("0.01"))
        line = re.search(rf"open findings: ([\d,.]+) {currency} \(previous ([\d,.]+), change ([+-][\d,.]+)\)",
                         narrow.stdout)
        assert line, narrow.stdout
        assert Decimal(line.group(1).replace(",", "")) == now.quantize(Decimal("0.01"))
        assert Decimal(line.group(2).replace(",", "")) == was.quantize(Decimal("0.01"))
        assert Decimal(line.group(3).replace(",", "")) == change


def test_fail_on_thresholds_and_suppressions(billed, tmp_path):
    store = billed
    config = _config(tmp_path, rooms=())
    first = _run(store, config, *WINDOW)
    high = _open_high(store, _run_id(first.stdout))
    assert first.exit_code == 3 and high
    # Suppress every high finding; medium ones stay open. [run] fail_on = "medium" -> 3.
    suppress = "".join(f'\n[[suppress]]\nfingerprint = "{f}"\nreason = "test: accepted"\n' for f in high)
    config = _config(tmp_path, rooms=(), extra=suppress + '\n[run]\nfail_on = "medium"\n')
    medium = _run(store, config, *WINDOW)
    assert medium.exit_code == 3 and "at or above medium severity" in medium.stdout
    # --fail-on overrides the config; with the high findings suppressed nothing is at or above high -> 0.
    assert _run(store, config, *WINDOW, "--fail-on", "high").exit_code == 0


def test_default_window_is_last_closed_and_open_month(store, tmp_path):
    config = _config(tmp_path, rooms=())
    result = _run(store, config)
    today = date.today()
    window = run_window(None, None, today)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"{window.open_month:%Y-%m} open, provisional" in result.stdout
    assert _query(store, "SELECT strftime(since, '%Y-%m'), strftime(until, '%Y-%m') FROM runs") == [
        (f"{window.since:%Y-%m}", f"{window.until:%Y-%m}")]
    assert run_window(None, None, date(2025, 1, 15)).label() == "2024-12 to 2025-01 (2025-01 open, provisional)"
    assert run_window("2024-03", "2024-05", date(2025, 1, 15)).label() == "2024-03 to 2024-04"


def test_an_input_error_is_exit_1_and_keeps_the_store(store, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("this,is\nnot,a bill\n", encoding="utf-8")
    config = _config(tmp_path, rooms=("focus",))
    config.write_text(config.read_text() + f'\n[[sources]]\nname = "broken"\nprovider = "local"\npath = "{bad}"\n')
    identity = (store.stat().st_ino, store.stat().st_mtime_ns)
    result = _run(store, config, *WINDOW)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("error: ") and "bad.csv" in lines[-1] and "expected" in lines[-1]
    assert all(" INFO " in line for line in lines[:-1]), "one error line, no traceback"
    assert (store.stat().st_ino, store.stat().st_mtime_ns) == identity, "a failed run must not touch the store"
    assert not building_path(store).exists()


def test_a_second_run_stops_when_the_lock_is_held(store, tmp_path):
    config = _config(tmp_path, rooms=())
    with store_lock(store, wait=0):
        result = _run(store, config, *WINDOW, "--wait", "0")
    assert result.exit_code == 1
    assert "another costaudit run is writing this store" in result.stderr and "--wait" in result.stderr


@pytest.mark.parametrize(
    ("args", "toml", "message"),
    [
        (("--since", "2024-13"), "", "expected a billing month"),
        (("--since", "2024-05", "--until", "2024-05"), "", "must be before --until"),
        (("--fail-on", "critical"), "", "Invalid value for '--fail-on'"),
        ((), '[run]\nfail_on = "urgent"\n', "run.fail_on must be one of"),
        ((), "[run]\nretries = 3\n", "unknown key(s) in run: retries"),
        ((), '[reports]\nformats = ["pdf"]\n', "unknown format(s) pdf"),
        ((), '[[sources]]\nname = "x"\nprovider = "local"\npaths = "a"\n', "unknown key(s) paths"),
        ((), '[store]\npth = "other.duckdb"\n', "unknown key(s) in store: pth"),
        ((), '[store]\nmemory_limit = "lots"\n', "store.memory_limit = 'lots': expected an amount of memory"),
        ((), '[store]\nmemory_limit = 2\n', "store.memory_limit must be a string"),
        # Found before any source is loaded: the local source below would fail if it were read.
        ((), '[rules.compute_rightsize]\ncpu_p95_threshold = "abc"\n[[sources]]\nname = "x"\nprovider = "local"\n'
             'path = "no-such-folder"\n', "rules.compute_rightsize.cpu_p95_threshold = 'abc'"),
        ((), '[rules]\ndisabled = ["no_such_rule"]\n[[sources]]\nname = "x"\nprovider = "local"\n'
             'path = "no-such-folder"\n', "unknown rule id(s) no_such_rule"),
    ],
)
def test_usage_errors_exit_2(store, tmp_path, args, toml, message):
    config = tmp_path / "costaudit.toml"
    config.write_text(toml, encoding="utf-8")
    result = _run(store, config, *args)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert _query(store, "SELECT count(*) FROM runs") == [(0,)]


def test_cloud_source_without_connectors_is_a_usage_error(store, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "costaudit.connectors.cloud", None)  # as if not installed
    config = tmp_path / "costaudit.toml"
    config.write_text('[[sources]]\nname = "cur"\nprovider = "aws"\nbucket = "b"\n', encoding="utf-8")
    result = _run(store, config, *WINDOW)
    assert result.exit_code == 2
    assert "source 'cur': pulling from aws needs the cloud connectors" in result.stderr
    assert not building_path(store).exists()


def test_cloud_sources_are_pulled_through_the_connector_hook(store, tmp_path, monkeypatch):
    """The hook hands pull_source the window and the real store's download folder (not the
    copy's), and reports what the pull's load step did."""
    import types

    import costaudit.connectors.cloud as cloud

    calls = []

    def fake_pull(con, source, *, since=None, until=None, workdir):
        calls.append((source.name, since, until, workdir))
        report = load_paths(con, [str(FIXTURES / "focus")])
        return types.SimpleNamespace(load=report, downloaded=["a", "b"], reused=[], notes=["fake pull"])

    monkeypatch.setattr(cloud, "pull_source", fake_pull, raising=False)
    config = tmp_path / "costaudit.toml"
    config.write_text('[[sources]]\nname = "cur"\nprovider = "aws"\nbucket = "b"\n', encoding="utf-8")
    result = _run(store, config, *WINDOW)
    assert calls == [("cur", "2024-01", "2024-11", store.resolve().with_name("store.duckdb.d") / "downloads")]
    partitions = _query(store, "SELECT count(*) FROM loads WHERE status = 'active'")[0][0]
    assert partitions > 0
    assert (f"source cur (aws): {partitions} partition(s) loaded, 0 replaced, 0 unchanged; "
            "2 file(s) downloaded, 0 reused from the cache; fake pull") in result.stdout
    assert result.exit_code == 3


def test_store_path_from_the_config_unless_db_is_given(tmp_path, monkeypatch):
    monkeypatch.delenv("COSTAUDIT_DB", raising=False)
    config = tmp_path / "costaudit.toml"
    config.write_text('[store]\npath = "data/configured.duckdb"\n', encoding="utf-8")
    (tmp_path / "data").mkdir()
    assert _invoke("run", "--config", str(config), *WINDOW).exit_code == 0
    assert (tmp_path / "data" / "configured.duckdb").exists()
    given = tmp_path / "given.duckdb"
    assert _invoke("--db", str(given), "run", "--config", str(config), *WINDOW).exit_code == 0
    assert given.exists()
    assert _query(tmp_path / "data" / "configured.duckdb", "SELECT count(*) FROM runs") == [(1,)]


def test_quiet_and_verbose(billed, tmp_path):
    store, config = billed, _config(tmp_path, rooms=())
    quiet = _run(store, config, *WINDOW, options=("--quiet",))
    assert quiet.exit_code == 3
    assert quiet.stdout == ""
    # cron mails whatever is printed: with --quiet only the reason for exit 3 is.
    lines = quiet.stderr.splitlines()
    assert len(lines) == 1 and " costaudit WARNING " in lines[0] and "at or above high severity" in lines[0]
    verbose = _run(store, config, *WINDOW, options=("--verbose",))
    assert " DEBUG " in verbose.stderr and " INFO " in verbose.stderr
    assert "\x1b[" not in verbose.stderr and "\r" not in verbose.stderr, "no progress display off a terminal"
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ costaudit INFO audit: done in", verbose.stderr, re.M)
    both = _invoke("--quiet", "--verbose", "--db", str(store), "run")
    assert both.exit_code == 2


def test_progress_on_a_terminal(monkeypatch):
    import io

    from rich.console import Console

    from costaudit import progress

    screen = io.StringIO()
    monkeypatch.setattr(progress, "stderr_console",
                        lambda: Console(file=screen, force_terminal=True, width=100, highlight=False))
    with progress.Steps(enabled=True) as steps:
        with steps.step("sources", total=2) as advance:
            advance("source demo (local)", done=0)
            steps._progress.refresh()
            assert "source demo (local)" in screen.getvalue() and "0/2" in screen.getvalue()
            advance()
            steps._progress.refresh()
            assert "1/2" in screen.getvalue()
    with progress.Steps(enabled=False) as quiet:  # off a terminal, or --quiet: nothing on screen
        with quiet.step("sources", total=2) as advance:
            advance("x", done=0)
            advance()


def test_a_reader_works_while_a_run_writes(store, tmp_path):
    """A run paused after writing its copy (test hook): `sql` reads the store, a reader opened
    before the swap keeps its consistent view, a second run is refused; after the swap the new
    data is there."""
    config = _config(tmp_path, rooms=("focus",))
    sync = tmp_path / "sync"
    sync.mkdir()
    env = {**os.environ, "COSTAUDIT_PAUSE_AT": "run:before-swap", "COSTAUDIT_PAUSE_FILE": str(sync / "paused"),
           "COSTAUDIT_RESUME_FILE": str(sync / "resume"), "COSTAUDIT_PAUSE_SECONDS": "120"}
    process = subprocess.Popen(
        [sys.executable, "-m", "costaudit.cli", "--db", str(store), "run", "--config", str(config), *WINDOW],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (sync / "paused").exists():  # synchronise on the file the run writes, not on time
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the run never reached its pause point"
            time.sleep(0.05)
        assert building_path(store).exists()
        during = _invoke("--db", str(store), "sql", "SELECT count(*) AS runs FROM runs; SELECT count(*) AS loads FROM loads",
                         "--format", "csv")
        assert during.exit_code == 0, during.stderr
        assert during.stdout.split() == ["runs", "0", "loads", "0"]
        held = connect(store, read_only=True)
        second = _run(store, config, *WINDOW, "--wait", "0")
        assert second.exit_code == 1 and "another costaudit run is writing this store" in second.stderr
        (sync / "resume").write_text("go")
        out, err = process.communicate(timeout=120)
        assert process.returncode == 3, out + err
        # The reader opened before the swap still sees the store it opened, whole.
        assert held.execute("SELECT count(*) FROM runs").fetchall() == [(0,)]
        held.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    after = _invoke("--db", str(store), "sql", "SELECT count(*) AS runs FROM runs", "--format", "csv")
    assert after.stdout.split() == ["runs", "1"]
    assert _query(store, "SELECT count(*) > 0 FROM loads") == [(True,)]
