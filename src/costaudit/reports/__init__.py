"""Findings reports: HTML, XLSX, CSV, JSON and Markdown."""
