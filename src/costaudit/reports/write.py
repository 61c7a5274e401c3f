"""Write a report file atomically.

The report is written to a temporary file in the target's own folder (HTML and Markdown rendered
in memory first; CSV, JSON and XLSX streamed into it, finding by finding), flushed to disk and
renamed over the target: a reader (a mail job, a web server) sees the old file or the new one,
never half of one, and nothing is written outside that folder.

``out`` may name a file or an existing folder; for a folder the report is written as
``<folder>/costaudit-report.<ext>``. The folder must exist (a typo is an error, not a new tree).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from costaudit.errors import CostauditError, UsageError

from .data import ReportData

EXTENSIONS = {"html": "html", "xlsx": "xlsx", "csv": "csv", "json": "json", "md": "md"}
FORMATS = tuple(EXTENSIONS)
# Formats that show the largest findings and count the rest: their data may be built with a
# findings limit (see `findings_limit`); the others list every finding.
SUMMARY_FORMATS = ("html", "md")
DEFAULT_NAME = "costaudit-report"


Writer = Callable[[ReportData, BinaryIO], None]


def _writer(fmt: str, html_findings: int | None = None) -> Writer:
    """What writes `fmt` into an open binary file."""
    if fmt == "html":
        from .html import HTML_FINDINGS_PER_FAMILY, render_html

        limit = HTML_FINDINGS_PER_FAMILY if html_findings is None else html_findings
        return lambda data, stream: stream.write(render_html(data, limit).encode("utf-8"))
    if fmt == "xlsx":
        from .xlsx import write_xlsx

        return write_xlsx
    if fmt == "csv":
        from .tabular import write_csv

        return write_csv
    if fmt == "json":
        from .tabular import write_json

        return write_json
    from .markdown import render_markdown

    return lambda data, stream: stream.write(render_markdown(data).encode("utf-8"))


def target_path(fmt: str, out: Path) -> Path:
    """Where a report of `fmt` goes for ``--out out``: the file itself, or, for an existing
    folder, ``costaudit-report.<ext>`` inside it."""
    out = Path(out)
    if out.is_dir():
        return out / f"{DEFAULT_NAME}.{EXTENSIONS[fmt]}"
    if out.exists() and not out.is_file():
        raise CostauditError(f"{out}: exists and is not a regular file; name a file or a folder")
    if not out.parent.is_dir():
        raise CostauditError(f"{out.parent}: folder does not exist; create it or choose another --out")
    return out


def atomic_write(target: Path, payload: bytes | Callable[[BinaryIO], object]) -> None:
    """Write `payload` (bytes, or a function writing into an open binary file) to `target`
    through a temporary file in the same folder and a rename."""
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as stream:
            if isinstance(payload, bytes):
                stream.write(payload)
            else:
                payload(stream)
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp makes the file private (0600); give it the mode a newly created file would get.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable; not every platform lets a folder be opened
        folder = os.open(target.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(folder)
    except OSError:
        pass
    finally:
        os.close(folder)


def findings_limit(formats: tuple[str, ...] | list[str], html_findings: int | None = None) -> int | None:
    """The findings a report needs per family, status and currency for `formats`: None (all) when
    one of them lists every finding, else enough for the HTML cap and the Markdown top list."""
    from .html import HTML_FINDINGS_PER_FAMILY
    from .markdown import TOP

    if not formats or any(fmt not in SUMMARY_FORMATS for fmt in formats):
        return None
    cap = HTML_FINDINGS_PER_FAMILY if html_findings is None else html_findings
    if "html" in formats and cap == 0:
        return None
    return max(cap if "html" in formats else 0, TOP)


def write_report(data: ReportData, fmt: str, out: Path, *, html_findings: int | None = None) -> Path:
    """Render `data` as `fmt` (html, xlsx, csv, json, md) and write it atomically to `out`
    (a file, or an existing folder: ``<folder>/costaudit-report.<ext>``). Returns the path written.
    `html_findings` caps the findings the HTML shows in full per family and currency (0: all)."""
    if fmt not in EXTENSIONS:
        raise UsageError(f"report format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt not in SUMMARY_FORMATS and not data.findings_complete:
        raise ValueError(f"a {fmt} report lists every finding: build its data without findings_limit")
    target = target_path(fmt, Path(out))
    writer = _writer(fmt, html_findings)
    try:
        atomic_write(target, lambda stream: writer(data, stream))
    except OSError as exc:
        raise CostauditError(f"{target}: cannot write the report ({exc.strerror or exc})") from None
    return target
