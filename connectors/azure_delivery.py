"""Manifest handling (placeholder until the provider's delivery reader lands)."""

from __future__ import annotations

from pathlib import Path


def claim(docs: dict[Path, dict], files: list[Path]) -> tuple[list, set[Path]]:
    return [], set()
