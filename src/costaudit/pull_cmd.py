"""`costaudit pull`: fetch what is new from the cloud sources of costaudit.toml and load it.

Expects ``ctx.obj["db"]`` (the store path), as `costaudit.cli.main` sets it; when ``--db`` was
not given and costaudit.toml names a store (``[store] path``), that store is used.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from costaudit.config import load_config
from costaudit.store import connect
from costaudit.textout import terminal_console


def _console() -> Console:
    return terminal_console()


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{count} bytes"


@click.command("pull")
@click.option("--provider", type=click.Choice(["aws", "gcp", "azure"]), default=None, help="Pull only this provider's sources.")
@click.option("--source", "names", multiple=True, help="Pull only the source with this name (repeatable).")
@click.option("--since", default=None, help="First billing month to pull, YYYY-MM (inclusive).")
@click.option("--until", default=None, help="Billing month after the last one to pull, YYYY-MM (exclusive).")
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="costaudit.toml with the [[sources]] to pull (default: ./costaudit.toml).",
)
@click.option("--quiet", is_flag=True, help="Print nothing on success.")
@click.pass_context
def pull(ctx: click.Context, provider: str | None, names: tuple[str, ...], since: str | None, until: str | None,
         config_path: Path | None, quiet: bool) -> None:
    """Download new billing exports, inventories and metrics from the cloud sources and load them.

    Only what is new is downloaded (manifests and objects already loaded are recognised by their
    ETag or by the assembly/run id in the load ledger); downloads go to <store>.d/downloads/ and
    resume where they stopped. Credentials come from each SDK's default chain, never from the
    config. Each source's billing is loaded all or nothing, reconciled like `costaudit load`.
    """
    from costaudit.connectors.cloud import pull_all

    config = load_config(config_path)
    db = ctx.obj["db"]
    root_params = ctx.find_root().params
    if root_params.get("db") is None and config.store_path() is not None:
        db = config.store_path()
    con = connect(db)
    try:
        reports = pull_all(con, config, provider, since, until, names=names)
        if quiet:
            return
        from costaudit.cli import print_load_report

        console = _console()
        for report in reports:
            console.print(
                f"{escape(report.source)} ({report.provider}): downloaded {len(report.downloaded)} file(s), "
                f"{_size(report.bytes_downloaded)}; {len(report.reused)} found in the cache; "
                f"{len(report.up_to_date)} already loaded"
            )
            for account in report.accounts:
                console.print(f"  {escape(account)}")
            for note in report.notes:
                console.print(f"  note: {escape(note)}")
            if report.load is not None:
                print_load_report(report.load)
            if report.inventory is not None:
                for location, (objects, size) in report.inventory.locations.items():
                    console.print(f"  inventory {escape(location)}: {objects:,} objects, {_size(size)}")
            if report.metrics is not None:
                console.print(f"  metrics: {report.metrics.samples:,} samples of {report.metrics.resources:,} resources")
            if report.prices:
                console.print(f"  instance prices refreshed: {report.prices:,}")
    finally:
        con.close()
