"""costaudit: a cloud billing and egress cost auditor built on a FOCUS 1.2 DuckDB store."""

__version__ = "0.1.0"
