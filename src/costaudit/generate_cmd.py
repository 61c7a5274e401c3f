"""`costaudit generate`: deterministic synthetic billing exports for benchmarks and demos.

A thin command over ``bench/generate.py`` (the generator lives with the benchmarks, outside the
package, so it needs a source checkout). Register in cli.py with
``main.add_command(generate)`` (``from costaudit.generate_cmd import generate``).
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import date
from pathlib import Path
from types import ModuleType

import click

from costaudit.errors import CostauditError, UsageError

MODULE_NAME = "costaudit_bench_generate"


def generator_path() -> Path:
    """bench/generate.py of the checkout this package is installed from (editable install)."""
    return Path(__file__).resolve().parents[2] / "bench" / "generate.py"


def load_generator() -> ModuleType:
    """Import bench/generate.py (not a package module) once, by path."""
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME]
    path = generator_path()
    if not path.is_file():
        raise CostauditError(
            f"costaudit generate needs the source checkout: {path} not found "
            "(install costaudit from its repository with `pip install -e .`)"
        )
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


@click.command("generate")
@click.option("--rows", default="1M", show_default=True, help="Rows per billing month and provider (2000, 50k, 1M, ...).")
@click.option("--provider", type=click.Choice(["aws", "gcp", "azure", "all"]), default="all", show_default=True)
@click.option("--months", type=click.IntRange(min=1), default=1, show_default=True, help="Consecutive billing months.")
@click.option("--start", default="2024-09", show_default=True, help="First billing month, YYYY-MM.")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same rows (on the same DuckDB version).")
@click.option("--part-rows", default="1M", show_default=True, help="Rows per part file.")
@click.option("--azure-format", type=click.Choice(["parquet", "csv.gz"]), default="parquet", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder to write into.")
def generate(rows: str, provider: str, months: int, start: str, seed: int, part_rows: str, azure_format: str,
             out: Path) -> None:
    """Write synthetic native exports: AWS CUR 2.0 Parquet parts with their Data Exports manifest,
    a Google Cloud detailed billing export (nested Parquet) and an Azure EA actual-cost export run
    with its manifest.json. Every file loads with `costaudit load` and reconciles to the cent."""
    module = load_generator()
    try:
        first = date.fromisoformat(f"{start}-01" if len(start) == 7 else start)
        written = module.generate(
            out, module.parse_count(rows), provider=provider, months=months, seed=seed, start=first,
            part_rows=module.parse_count(part_rows), azure_format=azure_format,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for name, files in written.items():
        click.echo(f"{name}: {len(files)} files under {out / name}  (load with: costaudit load {out / name})")
