"""The bundled fixtures: reproducible from their generator, and the README's main job loads them."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import duckdb
import pytest

from costaudit.loader import load_paths

from .conftest import FIXTURES

sys.path.insert(0, str(FIXTURES))
import generate  # noqa: E402

ROOMS = [room for room in generate.ROOMS if (FIXTURES / f"gen_{room}.py").exists()]


def _content(path: Path):
    data = path.read_bytes()
    if data.startswith(b"PAR1"):
        con = duckdb.connect()
        return con.execute(f"SELECT * FROM read_parquet('{path}')").fetchall()
    if data.startswith(b"\x1f\x8b"):
        return gzip.decompress(data)
    return data


@pytest.mark.parametrize("room", ROOMS)
def test_fixtures_are_reproducible(room, tmp_path):
    written = generate.generate(tmp_path, [room])
    assert written, f"gen_{room}.py wrote nothing"
    for path in written:
        committed = FIXTURES / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} is generated but not committed"
        assert _content(path) == _content(committed), f"{committed} differs from what gen_{room}.py makes"
    assert sum(p.stat().st_size for p in written) < 500_000, "fixtures must stay small"


def _main_job_args() -> list[str]:
    """The costaudit arguments of the README's first command, read from the README itself so the
    two cannot drift apart."""
    readme = (FIXTURES.parent / "README.md").read_text()
    first = next(line for line in readme.splitlines() if line.startswith("python3") and "costaudit run" in line)
    return first.split(".venv/bin/costaudit", 1)[1].split()


def _demo_folder(tmp_path: Path) -> Path:
    """The demo config beside links to the fixture rooms, so its relative paths (store, reports)
    land in a temporary folder instead of the repository."""
    folder = tmp_path / "fixtures"
    folder.mkdir()
    (folder / "costaudit.toml").write_text((FIXTURES / "costaudit.toml").read_text())
    for room in ("aws", "azure", "gcp", "focus", "metrics", "inventory"):
        (folder / room).symlink_to(FIXTURES / room)
    return folder


def test_main_job_runs_on_the_fixtures_and_writes_the_html_report(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from costaudit.cli import main

    _demo_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COSTAUDIT_DB", raising=False)
    args = _main_job_args()
    assert args[:3] == ["run", "--config", "fixtures/costaudit.toml"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    html = [line.split("report: ", 1)[1] for line in result.output.splitlines() if line.startswith("report: ")]
    html = [Path(p) for p in html if p.endswith(".html")]
    assert len(html) == 1 and html[0].is_file() and html[0].parent == (tmp_path / "reports").resolve()
    assert result.output.rstrip().splitlines()[-1].startswith("report: "), "the job ends by saying where the reports are"
    assert (tmp_path / "costaudit.duckdb").is_file()

    again = CliRunner().invoke(main, args, catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert "0 new" in again.output


def test_main_job_bills_cover_every_provider(store):
    from costaudit.config import load_config

    config = load_config(FIXTURES / "costaudit.toml")
    billing = [s for s in config.sources if s.settings.get("kind", "billing") == "billing"]
    paths = [str(FIXTURES / p) for s in billing for p in s.settings["path"]]
    report = load_paths(store, paths)
    providers = {p.provider for p in report.partitions}
    assert {"AWS", "Microsoft", "Google Cloud"} <= providers
    for part in report.partitions:
        assert abs(part.difference) <= 0.01
    assert len({p.currency for p in report.partitions}) >= 2, "fixtures should exercise more than one currency"
    assert not load_paths(store, paths).changed
