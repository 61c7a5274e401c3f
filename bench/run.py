"""End-to-end benchmark: a month of billing through load, analysis, rules and report, beside a bare scan.

    .venv/bin/python bench/run.py --sizes 1M,10M,50M          # what issue 7's targets are judged on
    .venv/bin/python bench/run.py --sizes 1M --note "machine shared with other jobs"

For each size (rows per billing month) it generates, or reuses from ``--data`` (cached by provider,
size and seed), two months of a native export (default: AWS CUR 2.0 Parquet in parts with its
manifest; see bench/generate.py), then runs each step in a process of its own so that its peak
RSS is its own (``os.wait4`` rusage of that child):

1. bare scan: DuckDB ``count(*), sum(cost) GROUP BY account, service, usage type`` over the first
   month's Parquet files (median of ``--scan-repeat`` runs), the yardstick;
2. ``costaudit load`` of the first month (plan, checksums, value checks, source totals, normalise,
   insert, reconcile, commit, the printed summaries);
3. analysis (``run_analysis``);
4. all rules (``costaudit audit``, the analysis being fresh);
   (before the analysis, the AWS data's EC2 utilisation samples are imported with
   ``costaudit import metrics`` so that the compute rules run; timed, but not counted end to end);
5. the HTML report (``costaudit report --format html``), skipped with a note when unavailable;
6. a rerun with nothing new (``costaudit load`` of the same files again);
7. one new month (``costaudit load`` of the second month into the store holding the first).

It prints and writes the tables, the machine's description and the targets of issue 7 (met / not
met, with the numbers) into the "end-to-end audit" section of bench/RESULTS.md, keeping the other
sections and the results of sizes not run this time. Timing never goes into unit tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402
import results_e2e  # noqa: E402

PYTHON = sys.executable
START = date(2024, 9, 1)
SECOND = date(2024, 10, 1)


@dataclass
class Step:
    """One measured step: wall time of its process, time inside it, CPU, peak RSS, breakdown."""

    name: str
    label: str
    ok: bool
    seconds: float  # inside the process (imports excluded)
    wall: float  # the whole process, as a user running the command sees it
    cpu: float
    rss_mb: float
    parts: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    error: str | None = None
    runs: list[float] = field(default_factory=list)


def run_step(name: str, label: str, argv: list[str], work: Path, timeout: float) -> Step:
    """Run bench/run_steps.py in a child process; rusage of that child alone gives its peak RSS.
    A step still running after `timeout` seconds is killed (its process group) and reported so."""
    result = work / f"{name}.json"
    result.unlink(missing_ok=True)
    cmd = [PYTHON, str(HERE / "run_steps.py"), *argv, "--result", str(result)]
    timed_out = False
    with (work / f"{name}.log").open("w") as log:
        clock = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=work, start_new_session=True)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - clock > timeout and not timed_out:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)  # the step's own process group, started above
            time.sleep(0.05)
        wall = time.perf_counter() - clock
        proc.returncode = os.waitstatus_to_exitcode(status)
    if timed_out:
        data = {"ok": False, "seconds": wall, "error": f"timed out: killed after {timeout:.0f} s (--step-timeout)"}
    else:
        data = json.loads(result.read_text()) if result.exists() else {"ok": False, "error": f"exit {proc.returncode}"}
    return Step(
        name=name, label=label, ok=bool(data.get("ok")), seconds=float(data.get("seconds", wall)), wall=round(wall, 3),
        cpu=round(usage.ru_utime + usage.ru_stime, 3), rss_mb=round(usage.ru_maxrss / 1024, 1), parts=data.get("parts", {}),
        info=data.get("info", {}), error=data.get("error"),
    )


def ensure_data(data_root: Path, provider: str, rows: int, seed: int, months: int, part_rows: int) -> tuple[Path, float]:
    """The generated export for this size, reused when a folder with the same request exists."""
    folder = data_root / f"{provider}-{rows}-s{seed}"
    info_path = folder / ".generated.json"
    if info_path.exists():
        info = json.loads(info_path.read_text())
        import duckdb

        if (info.get("generator_version") == generate.GENERATOR_VERSION and info.get("metrics", False) and info.get("rows_per_month") == rows
                and info.get("months", 0) >= months and info.get("seed") == seed
                and info.get("duckdb") == duckdb.__version__ and provider in info.get("providers", [])
                and info.get("part_rows") == part_rows):
            return folder, 0.0
    shutil.rmtree(folder, ignore_errors=True)
    clock = time.perf_counter()
    subprocess.run(
        [PYTHON, str(HERE / "generate.py"), "--rows", str(rows), "--provider", provider, "--months", str(months),
         "--seed", str(seed), "--start", f"{START:%Y-%m}", "--part-rows", str(part_rows), "--out", str(folder)],
        check=True,
    )
    return folder, time.perf_counter() - clock


def bench_size(rows: int, args: argparse.Namespace) -> dict:
    months = 1 if args.no_new_month else 2
    data, generated = ensure_data(args.data, args.provider, rows, args.seed, months, args.part_rows)
    work = data / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    db = str(work / "store.duckdb")
    glob, first_paths = generate.month_inputs(data, args.provider, START)
    _, second_paths = generate.month_inputs(data, args.provider, SECOND)
    parquet_bytes = sum(p.stat().st_size for p in Path(data).glob(str(Path(glob).relative_to(data))))
    scan_sql = generate.bare_scan_sql(data, args.provider, START)
    print(f"\n== {rows:,} rows ({args.provider}), data in {data}" + (f", generated in {generated:.0f} s" if generated
                                                                      else ", reused"), flush=True)
    steps: list[Step] = []
    scans = [run_step(f"scan{n}", "bare DuckDB scan", ["scan", "--db", db, "--sql", scan_sql], work, args.step_timeout)
             for n in range(args.scan_repeat)]
    scan = min(scans, key=lambda s: abs(s.seconds - statistics.median(x.seconds for x in scans)))
    scan.runs = [s.seconds for s in scans]
    scan.rss_mb = max(s.rss_mb for s in scans)
    steps.append(scan)
    _report(scan, rows, scan.seconds)
    metrics = generate.metrics_file(data, args.provider, START)
    plan = [("load", "`costaudit load` (first month)", ["load", "--db", db, *map(str, first_paths)])]
    if metrics is not None:
        plan.append(("metrics", "`costaudit import metrics` (EC2 utilisation; not in end to end)",
                     ["import_metrics", "--db", db, str(metrics)]))
    plan += [
        ("analysis", "analysis (`run_analysis`)", ["analysis", "--db", db]),
        ("rules", "all rules (`costaudit audit`)", ["rules", "--db", db]),
        ("report", "report (`costaudit report --format html`)", ["report", "--db", db]),
        ("rerun", "rerun, nothing new (`costaudit load`)", ["load", "--db", db, *map(str, first_paths)]),
    ]
    if not args.no_new_month:
        plan.append(("new_month", "one new month (`costaudit load`)", ["load", "--db", db, *map(str, second_paths)]))
    store_mb = None
    done: dict[str, Step] = {}
    for name, label, argv in plan:
        needed = {"metrics": "load", "analysis": "load", "rules": "analysis", "report": "rules"}.get(name)
        if needed and needed in done and not done[needed].ok:
            # The report would run the audit itself; after a failed or killed step it only costs time.
            step = Step(name, label, False, 0.0, 0.0, 0.0, 0.0, error=f"not run: the {needed} step did not finish")
        else:
            step = run_step(name, label, argv, work, args.step_timeout)
        done[name] = step
        steps.append(step)
        _report(step, rows, scan.seconds)
        if name == "load":
            store_mb = Path(db).stat().st_size / 2**20 if Path(db).exists() else None
    result = {
        "rows": rows, "provider": args.provider, "seed": args.seed, "when": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "load_average": [round(x, 2) for x in os.getloadavg()], "note": args.note, "generated_seconds": round(generated, 1),
        "parquet_mb": round(parquet_bytes / 2**20, 1), "store_mb_after_first_load": round(store_mb, 1) if store_mb else None,
        "steps": [step.__dict__ for step in steps], "machine": machine(),
    }
    if not args.keep_store:
        Path(db).unlink(missing_ok=True)
        Path(db + ".wal").unlink(missing_ok=True)
    return result


def _report(step: Step, rows: int, scan: float) -> None:
    status = "" if step.ok else f"  FAILED: {step.error}"
    skipped = step.info.get("skipped") if step.info else None
    print(f"  {step.label:<45} {step.seconds:8.2f} s (process {step.wall:6.2f} s, cpu {step.cpu:6.2f} s) "
          f"{rows / step.seconds if step.seconds else 0:>12,.0f} rows/s  {step.rss_mb:7.0f} MB  "
          f"x{step.seconds / scan if scan else 0:6.1f}{status}{'  (' + skipped + ')' if skipped else ''}", flush=True)


def machine() -> dict:
    """CPU model, cores, memory, OS, versions and the store's memory limit."""
    import duckdb
    import polars

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        memory = f"{mem_kb / 2**20:.1f} GiB"
    except (OSError, AttributeError):
        memory = "unknown"
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory": memory, "os": platform.platform(),
        "python": platform.python_version(), "duckdb": duckdb.__version__, "polars": polars.__version__,
        "memory_limit": os.environ.get("COSTAUDIT_MEMORY_LIMIT", "2GB (default)"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1M,10M,50M", help="rows per billing month, comma separated")
    parser.add_argument("--provider", default="aws", choices=generate.PROVIDERS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("COSTAUDIT_BENCH_DATA", "/tmp/costaudit-bench")),
                        help="where generated exports are cached (default $COSTAUDIT_BENCH_DATA or /tmp/costaudit-bench)")
    parser.add_argument("--part-rows", type=generate.parse_count, default=1_000_000)
    parser.add_argument("--scan-repeat", type=int, default=3)
    parser.add_argument("--no-new-month", action="store_true", help="skip the second month (halves generation)")
    parser.add_argument("--keep-store", action="store_true", help="keep each size's store.duckdb")
    parser.add_argument("--step-timeout", type=float, default=3600.0,
                        help="kill a step still running after this many seconds (default 3600)")
    parser.add_argument("--note", default="", help="a remark printed with the results (e.g. the machine was busy)")
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    parser.add_argument("--suite", action="store_true",
                        help="also time the whole test suite (pytest) on this machine, for the suite target")
    args = parser.parse_args(argv)
    sizes = [generate.parse_count(s) for s in args.sizes.split(",") if s.strip()]
    args.data.mkdir(parents=True, exist_ok=True)
    results = [bench_size(rows, args) for rows in sizes]
    suite = time_suite() if args.suite else None
    if not args.no_write:
        results_e2e.write(results, suite=suite)
        print(f"\nwrote {results_e2e.RESULTS}")
    failed = [s["name"] for r in results for s in r["steps"] if not s["ok"]]
    return 1 if failed or (suite and not suite["ok"]) else 0


def time_suite() -> dict:
    """Run the README's test command's pytest in this checkout; its wall time, and the slowest
    test (setup + call + teardown, from the JUnit XML pytest writes)."""
    import xml.etree.ElementTree as ElementTree

    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="costaudit-suite-") as tmp:
        junit = Path(tmp) / "junit.xml"
        print("\n== test suite (pytest)", flush=True)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"],
                              cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        seconds = time.perf_counter() - started
        cases = ElementTree.parse(junit).getroot().iter("testcase") if junit.exists() else []
        times = [(float(c.get("time") or 0), f"{c.get('classname')}::{c.get('name')}") for c in cases]
    slowest = max(times, default=(0.0, "-"))
    result = {"ok": done.returncode == 0, "exit_code": done.returncode, "seconds": round(seconds, 1),
              "tests": len(times), "slowest_seconds": round(slowest[0], 2), "slowest": slowest[1],
              "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"  {result['tests']} tests in {result['seconds']} s (exit code {done.returncode}); slowest "
          f"{result['slowest_seconds']} s {result['slowest']}", flush=True)
    return result


if __name__ == "__main__":
    sys.exit(main())
