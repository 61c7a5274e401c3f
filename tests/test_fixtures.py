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


def _main_job_paths() -> list[str]:
    """The paths the README's first command loads, read from the README itself so the two
    cannot drift apart."""
    readme = (FIXTURES.parent / "README.md").read_text()
    first = next(line for line in readme.splitlines() if "costaudit load" in line and line.startswith("python3"))
    return first.split("costaudit load", 1)[1].split()


def test_main_job_loads_every_provider(store):
    paths = _main_job_paths()
    assert paths, "README's first command names no fixtures"
    report = load_paths(store, [str(FIXTURES.parent / p) for p in paths])
    providers = {p.provider for p in report.partitions}
    assert {"AWS", "Microsoft", "Google Cloud"} <= providers
    for part in report.partitions:
        assert abs(part.difference) <= 0.01
    currencies = {p.currency for p in report.partitions}
    assert len(currencies) >= 2, "fixtures should exercise more than one billing currency"
    # a second run of the main job changes nothing
    again = load_paths(store, [str(FIXTURES.parent / p) for p in paths])
    assert not again.changed
