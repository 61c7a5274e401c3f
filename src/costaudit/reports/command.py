"""`costaudit report`: write the findings report of an audit run as HTML, XLSX, CSV, JSON or Markdown.

Register in cli.py with ``main.add_command(report)``. Expects ``ctx.obj["db"]`` (the store path).
"""

from __future__ import annotations

from pathlib import Path

import click

from costaudit.errors import CostauditError, UsageError
from costaudit.store import connect, store_files

from .build import build_report_data
from .write import FORMATS, findings_limit, target_path, write_report


@click.command("report")
@click.option("--format", "formats", type=click.Choice(FORMATS), multiple=True, default=("html",),
              show_default=True, help="Report format; repeat it to write several formats of the same run.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="File to write, or an existing folder (the report is written there as "
                   "costaudit-report.<ext>). Default: the current folder. Several formats need a folder.")
@click.option("--since", default=None, help="First billing month, YYYY-MM (inclusive; default: the latest audit's).")
@click.option("--until", default=None, help="Billing month after the last one, YYYY-MM (exclusive).")
@click.option("--run-id", default=None, help="Report this stored audit run as it was (see the runs table).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="costaudit.toml for the analysis and audit the report may run (default: ./costaudit.toml if present).")
@click.option("--html-findings", type=click.IntRange(min=0), default=None,
              help="Findings the HTML shows in full per family and currency, largest saving first; the "
                   "others are counted with their saving (default 100; 0 shows all). Other formats list all.")
@click.pass_context
def report(ctx: click.Context, formats: tuple[str, ...], out: Path | None, since: str | None, until: str | None,
           run_id: str | None, config_path: Path | None, html_findings: int | None) -> None:
    """Write the report of the latest audit run: executive summary per currency, charts, findings
    by family with evidence and remediation, and data coverage.

    When the store has no audit run yet, or bills were loaded, the window or the rule
    configuration changed since the latest one, the analysis and the audit run first (as
    `costaudit audit` does). --run-id reports a stored run as it was.
    """
    formats = tuple(dict.fromkeys(formats))  # each format once, in the order given
    target = out if out is not None else Path.cwd()
    if len(formats) > 1 and not target.is_dir():
        raise UsageError(f"--out {target}: several formats are written into a folder; name an existing folder")
    db = Path(ctx.obj["db"])
    for fmt in formats:
        if target_path(fmt, target).expanduser().resolve() in store_files(db):
            raise UsageError(f"--out {target}: that is the store (or one of its files); choose another file")
    if not db.exists():
        raise CostauditError(f"{db}: no store here yet; run `costaudit load PATH...` first")
    con = connect(db)
    try:
        # Only the HTML / Markdown? Then only the findings they show are read (all are counted).
        data = build_report_data(con, since=since, until=until, run_id=run_id, config_path=config_path,
                                 findings_limit=findings_limit(formats, html_findings))
    finally:
        con.close()
    for note in data.notes:
        click.echo(note)
    for fmt in formats:
        click.echo(f"wrote {write_report(data, fmt, target, html_findings=html_findings)}")
