"""Findings reports: HTML, XLSX, CSV, JSON and Markdown.

Public API (used by `costaudit report` and `costaudit run`)::

    data = build_report_data(con, since=None, until=None, run_id=None)
    path = write_report(data, "html", Path("out/"))

`build_report_data` reads one audit run (the latest current one, or `run_id`), its findings and
the spend it covers, running the analysis and the audit first when the store has no current run;
`write_report` renders one format and writes it atomically. See README "Reports".
"""

from .build import build_report_data
from .data import SCHEMA_VERSION, ReportData
from .write import FORMATS, findings_limit, target_path, write_report

__all__ = ["FORMATS", "SCHEMA_VERSION", "ReportData", "build_report_data", "findings_limit", "target_path",
           "write_report"]
