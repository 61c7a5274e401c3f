"""Shared test fixtures: the shared samples folder, a fresh store, and the CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from costaudit.store import connect

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "samples"
FIXTURES = REPO / "fixtures"


@pytest.fixture
def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"shared samples not found at {SAMPLES}")
    return SAMPLES


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.duckdb"


@pytest.fixture
def store(db_path: Path):
    con = connect(db_path)
    yield con
    con.close()


@pytest.fixture
def cli(db_path: Path):
    """Run `costaudit --db <tmp store> ARGS...`; returns the click Result (exit_code, output)."""
    from costaudit.cli import main

    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, ["--db", str(db_path), *args], catch_exceptions=False)

    return run
