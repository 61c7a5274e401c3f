"""One step of the end-to-end benchmark, run by bench/run.py in a process of its own.

    python bench/run_steps.py STEP --db STORE --result OUT.json [--sql SQL] [PATH ...]

STEP is ``scan`` (the bare DuckDB group-by over the files), ``load`` (``costaudit load PATH...``),
``import_metrics`` (``costaudit import metrics FILE``),
``analysis`` (``run_analysis``), ``rules`` (``costaudit audit``; the analysis is already fresh) or
``report`` (``costaudit report --format html``). Each step runs what a user runs, with timing
wrappers put around the functions it calls (the code itself is unchanged), so the result says
where the time went: checksums, value checks, source totals, the insert, reconciliation, each rule.

The result file holds: ok, seconds (the step inside this process, imports excluded), parts
(seconds per wrapped function; they overlap where one calls another), info (row and key counts)
and error.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import time
import traceback
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


class Clock:
    """Accumulates seconds per label; `wrap` times every call of a module attribute."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.started: float | None = None
        self.ended: float | None = None

    def begin(self) -> None:
        """Start the step's clock: imports and wrapping are done, the measured work starts."""
        self.started = time.perf_counter()

    def end(self) -> None:
        """Stop the step's clock before bookkeeping that is not part of the step."""
        self.ended = time.perf_counter()

    def add(self, label: str, seconds: float) -> None:
        self.seconds[label] += seconds
        self.calls[label] += 1

    def timed(self, label: str, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - start)

        return wrapper

    def wrap(self, owner: object, name: str, label: str) -> None:
        setattr(owner, name, self.timed(label, getattr(owner, name)))

    def parts(self) -> dict[str, dict[str, float]]:
        return {k: {"seconds": round(v, 3), "calls": self.calls[k]} for k, v in self.seconds.items()}


def _cli(args: list[str]) -> int:
    """Run the costaudit CLI in this process; returns its exit code."""
    from costaudit.cli import main

    try:
        main(args, standalone_mode=False)
    except SystemExit as exc:  # CostauditError ends in sys.exit(code)
        return int(exc.code or 0)
    return 0


def step_scan(args, clock: Clock) -> dict:
    import duckdb

    limit = os.environ.get("COSTAUDIT_MEMORY_LIMIT", "2GB")
    clock.begin()
    con = duckdb.connect(config={"memory_limit": limit})
    table = con.sql(args.sql).to_arrow_table()
    rows = sum(v or 0 for v in table.column("n").to_pylist())
    con.close()
    return {"groups": table.num_rows, "rows": rows}


def step_load(args, clock: Clock) -> dict:
    from costaudit import cli, loader
    from costaudit.connectors import deliveries, files

    clock.wrap(files, "_sha256", "load: sha256 of every input file")
    clock.wrap(deliveries, "plan", "load: plan (find, sniff, checksum, detect format)")
    clock.wrap(loader, "_check_values", "load: value checks (distinct values of each checked column)")
    clock.wrap(loader, "_check_problems", "load: format problem checks")
    clock.wrap(loader, "_check_totals", "load: source totals sanity")
    clock.wrap(loader, "_prepare", "load: prepare (checks + source totals scan)")
    clock.wrap(cli, "print_spend_summary", "load: print the spend summary (scan of the store)")
    marks: dict[str, float] = {}
    pause = loader.pause_point

    def mark(name: str) -> None:
        marks[name] = time.perf_counter()
        pause(name)

    loader.pause_point = mark
    load_one = loader._load_one

    def timed_load_one(*a, **k):
        start = time.perf_counter()
        marks.pop("load:mid-transaction", None)
        try:
            return load_one(*a, **k)
        finally:
            end = time.perf_counter()
            mid = marks.get("load:mid-transaction")
            if mid is not None and mid >= start:
                clock.add("load: transaction - delete old rows, insert normalised rows", mid - start)
                clock.add("load: transaction - reconcile and ledger", end - mid)
            else:
                clock.add("load: transaction - nothing to insert, ledger check", end - start)

    loader._load_one = timed_load_one
    load_paths = cli.load_paths

    def timed_load_paths(*a, **k):
        try:
            return load_paths(*a, **k)
        finally:
            if "load:before-commit" in marks:
                clock.add("load: commit", time.perf_counter() - marks["load:before-commit"])

    cli.load_paths = timed_load_paths
    clock.begin()
    code = _cli(["--db", args.db, "load", *args.paths])
    if code:
        raise RuntimeError(f"costaudit load exited with {code}")
    return {}


def step_import_metrics(args, clock: Clock) -> dict:
    from costaudit import cli  # noqa: F401  (imports the command group before the clock starts)

    clock.begin()
    code = _cli(["--db", args.db, "import", "metrics", *args.paths])
    if code:
        raise RuntimeError(f"costaudit import metrics exited with {code}")
    return {}


def step_analysis(args, clock: Clock) -> dict:
    from costaudit.analysis import run as analysis
    from costaudit.analysis.config import load_analysis_config
    from costaudit.store import connect

    clock.wrap(analysis, "discover_keys", "analysis: distinct charge keys (group by over line_items)")
    clock.wrap(analysis, "classify_keys", "analysis: classify the keys (polars)")
    clock.wrap(analysis, "_account_names", "analysis: account names")
    clock.wrap(analysis, "_shared_tags", "analysis: shared tags of AI spend")
    clock.wrap(analysis, "create_views", "analysis: views")
    clock.begin()
    con = connect(args.db)
    try:
        run = analysis.run_analysis(con, load_analysis_config(None))
    finally:
        con.close()
    return {"keys": run.keys, "ai_keys": run.ai_keys, "network_keys": run.network_keys, "line_items": run.line_items}


def step_rules(args, clock: Clock) -> dict:
    from costaudit import audit_cmd
    from costaudit.rules import runner

    clock.wrap(audit_cmd, "_run_analysis", "rules: analysis freshness check")
    clock.wrap(runner, "refresh_catalogue", "rules: instance catalogue refresh")
    clock.wrap(runner, "resolve_window", "rules: window")
    clock.wrap(runner, "check_needs", "rules: data checks of every rule (one EXISTS query per table)")
    clock.wrap(runner, "_store", "rules: store the run and findings")
    clock.wrap(audit_cmd, "print_audit", "rules: print findings")
    all_rules = runner.all_rules

    def timed_rules():
        return [dataclasses.replace(r, evaluate=clock.timed(f"rule {r.id}", r.evaluate)) for r in all_rules()]

    runner.all_rules = timed_rules
    # A rule's SELECT runs when the runner stages its rows (evaluate only builds shared scratch
    # tables): both count as the rule's time.
    stage = runner._stage_rule

    def timed_stage(con, rule, *rest):
        return clock.timed(f"rule {rule.id}", stage)(con, rule, *rest)

    runner._stage_rule = timed_stage
    clock.wrap(runner, "_apply_suppressions", "rules: suppressions (SQL)")
    clock.wrap(runner, "_summarise", "rules: counts, totals and the top findings read back (SQL)")
    from costaudit.store import connect

    clock.begin()
    code = _cli(["--db", args.db, "audit", "--no-evidence"])
    clock.end()

    con = connect(args.db, read_only=True)
    try:
        rows = con.execute(
            "SELECT r.rule_id, r.status, r.findings FROM rule_results r "
            "WHERE run_id = (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1) ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    info = {"exit_code": code, "rules": {rule: f"{status} ({count})" for rule, status, count in rows}}
    return info


def step_report(args, clock: Clock) -> dict:
    from costaudit import cli

    try:
        from costaudit.reports import command
    except ImportError as exc:
        return {"skipped": f"costaudit.reports is not available ({exc})"}
    clock.wrap(command, "build_report_data", "report: gather the report data")
    clock.wrap(command, "write_report", "report: render and write HTML")
    out = Path(args.db).parent / "report"
    out.mkdir(exist_ok=True)
    report_args = ["--format", "html", "--out", str(out)]
    clock.begin()
    if "report" in cli.main.commands:
        code = _cli(["--db", args.db, "report", *report_args])
    else:
        try:
            command.report.main(report_args, obj={"db": Path(args.db)}, standalone_mode=False)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    if code:
        raise RuntimeError(f"costaudit report exited with {code}")
    return {"registered_in_cli": "report" in cli.main.commands}


STEPS = {"scan": step_scan, "load": step_load, "import_metrics": step_import_metrics, "analysis": step_analysis, "rules": step_rules, "report": step_report}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("--db", required=True)
    parser.add_argument("--result", required=True, type=Path)
    parser.add_argument("--sql", default="")
    parser.add_argument("paths", nargs="*")
    args = parser.parse_intermixed_args(argv)
    clock = Clock()
    result: dict = {"ok": False, "step": args.step}
    start = time.perf_counter()
    try:
        result["info"] = STEPS[args.step](args, clock)
        result["ok"] = True
    except BaseException as exc:  # the driver reports it; the other steps still run
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
    end = clock.ended or time.perf_counter()
    result["seconds"] = round(end - (clock.started or start), 3)
    result["parts"] = clock.parts()
    args.result.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
