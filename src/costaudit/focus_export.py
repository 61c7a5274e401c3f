"""`costaudit export focus`: write the store as a FOCUS 1.2 dataset (placeholder)."""

from __future__ import annotations

import click


@click.group(name="export")
def export_group() -> None:
    """Export the store in open formats."""
