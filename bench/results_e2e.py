"""The "end-to-end audit" section of bench/RESULTS.md: tables per size and issue 7's targets.

Each size's raw numbers are kept in the section as an HTML comment, so a run of one size replaces
that size only and the targets are judged over every size measured so far. Other sections of
RESULTS.md (the classification benchmark's) are left as they are.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TITLE = "## end-to-end audit"
DATA = re.compile(r"<!-- e2e-data (\{.*?\}) -->", re.S)
SUITE = re.compile(r"<!-- e2e-suite (\{.*?\}) -->", re.S)
SUITE_LIMIT_S = 600
TEST_LIMIT_S = 30
SECTION = re.compile(r"^## end-to-end audit\n.*?(?=^## |\Z)", re.S | re.M)
RSS_LIMIT_MB = 3 * 1024
TARGET_SIZE = 50_000_000
PIPELINE = ("load", "analysis", "rules", "report")


def _steps(result: dict) -> dict[str, dict]:
    return {s["name"]: s for s in result["steps"]}


def _scan(result: dict) -> dict:
    return next(s for s in result["steps"] if s["name"].startswith("scan"))


def _mb(value: float) -> str:
    return f"{value / 1024:.2f} GB" if value >= 1024 else f"{value:.0f} MB"


def _rows(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n:,}"


def end_to_end(result: dict) -> tuple[float, list[str]]:
    """Seconds of load + analysis + rules + report, and the steps missing from that sum."""
    steps = _steps(result)
    total, missing = 0.0, []
    for name in PIPELINE:
        step = steps.get(name)
        if step is None or not step["ok"] or (step.get("info") or {}).get("skipped"):
            missing.append(name)
            continue
        total += step["seconds"]
    return total, missing


def size_section(result: dict) -> str:
    rows = result["rows"]
    scan = _scan(result)["seconds"]
    m = result["machine"]
    lines = [
        f"### {rows:,} rows per month ({result['provider']}, seed {result['seed']})",
        "",
        f"Run {result['when']} on {m['cpu']}, {m['cores']} cores, {m['memory']}; load average at the end "
        f"{', '.join(str(x) for x in result['load_average'])}; DuckDB memory limit {m['memory_limit']}."
        + (f" **Note: {result['note']}**" if result.get("note") else ""),
        f"First month: {result['parquet_mb']:,.0f} MB of Parquet; store after loading it: "
        f"{result['store_mb_after_first_load'] or 0:,.0f} MB"
        + (f"; data generated in {result['generated_seconds']:.0f} s" if result.get("generated_seconds") else
           "; data reused from the cache") + ".",
        "",
        "| step | seconds | process s | CPU s | rows/s | peak RSS | x bare scan |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for step in result["steps"]:
        skipped = (step.get("info") or {}).get("skipped")
        label = step["label"] + ("" if step["ok"] else f" **FAILED: {step['error']}**") + (
            f" (skipped: {skipped})" if skipped else "")
        rate = f"{rows / step['seconds']:,.0f}" if step["seconds"] and step["ok"] else "-"
        lines.append(
            f"| {label} | {step['seconds']:.2f} | {step['wall']:.2f} | {step['cpu']:.2f} | {rate} | "
            f"{_mb(step['rss_mb'])} | {step['seconds'] / scan:.1f} |"
        )
    total, missing = end_to_end(result)
    lines.append(
        f"| **end to end** (load + analysis + rules + report{', without ' + ', '.join(missing) if missing else ''}) | "
        f"{total:.2f} | | | {rows / total if total else 0:,.0f} | | {total / scan:.1f} |"
    )
    scans = _scan(result).get("runs") or []
    lines += ["", f"Bare scan runs (s): {', '.join(f'{x:.2f}' for x in scans)} (median shown)." if scans else ""]
    lines += ["", "Where the time went (seconds inside each step; nested wrappers overlap):", ""]
    for step in result["steps"]:
        parts = step.get("parts") or {}
        if not parts:
            continue
        detail = "; ".join(f"{k.split(': ', 1)[-1]} {v['seconds']:.2f}" + (f" ({v['calls']}x)" if v["calls"] > 1 else "")
                           for k, v in sorted(parts.items(), key=lambda kv: -kv[1]["seconds"]))
        lines.append(f"- {step['label']}: {detail}")
    info = _steps(result).get("analysis", {}).get("info") or {}
    if info:
        lines.append(f"- analysis found {info.get('keys', 0):,} distinct charge keys ({info.get('ai_keys', 0):,} AI, "
                     f"{info.get('network_keys', 0):,} network) over {info.get('line_items', 0):,} line items")
    rules = (_steps(result).get("rules", {}).get("info") or {}).get("rules") or {}
    if rules:
        lines.append("- rules (status, findings): " + ", ".join(f"{k} {v}" for k, v in rules.items()))
    compact = {k: v for k, v in result.items()}
    lines += ["", f"<!-- e2e-data {json.dumps(compact, separators=(',', ':'), default=str)} -->", ""]
    return "\n".join(lines)


def suite_line(suite: dict | None) -> str:
    """The test-suite target from `run.py --suite`'s measurement (or how to measure it)."""
    if not suite:
        return ("| test suite fast (no test over 30 s, all under 10 min) | not measured yet | "
                "`bench/run.py --suite` times `pytest` on this machine |")
    ok = suite["ok"] and suite["seconds"] < SUITE_LIMIT_S and suite["slowest_seconds"] < TEST_LIMIT_S
    verdict = "met" if ok else "NOT met"
    outcome = "" if suite["ok"] else f", exit code {suite['exit_code']}"
    return (f"| test suite fast (no test over 30 s, all under 10 min) | {verdict} | {suite['tests']} tests in "
            f"{suite['seconds']:.0f} s{outcome}; slowest {suite['slowest_seconds']:.1f} s "
            f"(`{suite['slowest']}`), measured {suite['when']} |")


def targets(results: list[dict], suite: dict | None = None) -> str:
    """Issue 7's targets, judged over every size measured (the largest for the time targets)."""
    by_size = {r["rows"]: r for r in results}
    sizes = sorted(by_size)
    largest = by_size[sizes[-1]]
    lines = ["### Targets (issue 7)", "", "| target | result | numbers |", "| --- | --- | --- |"]

    target = by_size.get(TARGET_SIZE)
    judged = target or largest
    total, missing = end_to_end(judged)
    ratio = total / _scan(judged)["seconds"]
    where = f"{_rows(judged['rows'])}: {total:.1f} s vs bare scan {_scan(judged)['seconds']:.2f} s = {ratio:.1f}x"
    if missing:
        where += f" (without {', '.join(missing)})"
    others = ", ".join(f"{_rows(r['rows'])}: {end_to_end(r)[0] / _scan(r)['seconds']:.1f}x" for r in results if r is not judged)
    verdict = ("met" if ratio <= 5 else "NOT met") if target else "not measured at 50M"
    lines.append(f"| end-to-end audit of 50M rows within 5x the bare scan | {verdict} | {where}"
                 + (f"; also {others}" if others else "") + " |")

    peaks = {r["rows"]: max(s["rss_mb"] for s in r["steps"]) for r in results}
    worst = max(peaks.values())
    lines.append(f"| peak RSS under 3 GB at every size | {'met' if worst < RSS_LIMIT_MB else 'NOT met'} "
                 f"(sizes measured: {', '.join(_rows(s) for s in sizes)}) | "
                 + ", ".join(f"{_rows(s)}: {_mb(v)}" for s, v in sorted(peaks.items())) + " |")

    reruns = {r["rows"]: _steps(r).get("rerun") for r in results}
    measured = {s: st for s, st in reruns.items() if st}
    if measured:
        slow = {s: st["wall"] for s, st in measured.items() if st["wall"] >= 3}
        verdict = "NOT met" if slow else "met" if TARGET_SIZE in measured else "met so far"
        lines.append(f"| rerun with nothing new under 3 s | {verdict} (sizes: {', '.join(_rows(s) for s in sorted(measured))}) | "
                     + ", ".join(f"{_rows(s)}: {st['wall']:.2f} s (process)" for s, st in sorted(measured.items())) + " |")

    months = {r["rows"]: (_steps(r).get("new_month"), _steps(r).get("load")) for r in results}
    pairs = {s: (new, first) for s, (new, first) in months.items() if new and first and new["ok"] and first["ok"]}
    if pairs:
        ratios = {s: new["seconds"] / first["seconds"] for s, (new, first) in pairs.items()}
        verdict = "met" if all(v <= 1.3 for v in ratios.values()) else "NOT met"
        lines.append("| loading one new month costs in proportion to that month only (new month / first month "
                     f"load <= 1.3) | {verdict} | "
                     + ", ".join(f"{_rows(s)}: {pairs[s][0]['seconds']:.1f} s vs {pairs[s][1]['seconds']:.1f} s = {v:.2f}x"
                                 for s, v in sorted(ratios.items())) + " |")
    lines.append(suite_line(suite))
    return "\n".join(lines) + "\n"


def _machine_block(latest: dict) -> str:
    m = latest["machine"]
    return (f"Machine of the latest run: {m['cpu']}; {m['cores']} cores; {m['memory']} memory; {m['os']}; "
            f"Python {m['python']}; DuckDB {m['duckdb']}; polars {m['polars']}; "
            f"COSTAUDIT_MEMORY_LIMIT {m['memory_limit']}.")


def write(new_results: list[dict], path: Path = RESULTS, suite: dict | None = None) -> None:
    """Merge `new_results` (and a new `suite` timing) with what the section already holds and
    rewrite the section."""
    existing = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    kept: dict[int, dict] = {}
    match = SECTION.search(existing)
    if match and suite is None:
        old_suite = SUITE.search(match.group(0))
        if old_suite:
            try:
                suite = json.loads(old_suite.group(1))
            except ValueError:
                suite = None
    if match:
        for blob in DATA.findall(match.group(0)):
            try:
                old = json.loads(blob)
                kept[old["rows"]] = old
            except (ValueError, KeyError):
                continue
    for result in new_results:
        kept[result["rows"]] = result
    results = [kept[k] for k in sorted(kept)]
    body = [
        TITLE, "",
        "Written by `bench/run.py` (see bench/README.md, \"End-to-end benchmark\"). Seconds are measured inside each "
        "step's own process (imports excluded); \"process s\" is the whole command as a user runs it; CPU s is user + "
        "system time of that process; peak RSS is that process's maximum resident set (`wait4` rusage). Ratios are "
        "to the bare DuckDB scan of the same Parquet files.",
        "",
        *([_machine_block((new_results or results)[-1]), ""] if results else []),
        targets(results, suite),
        *([f"<!-- e2e-suite {json.dumps(suite, separators=(',', ':'))} -->", ""] if suite else []),
        *[size_section(r) for r in results],
    ]
    section = "\n".join(body).rstrip() + "\n"
    if match:
        updated = existing[: match.start()] + section + "\n" + existing[match.end():]
    else:
        updated = existing.rstrip() + "\n\n" + section
    path.write_text(updated.rstrip() + "\n", encoding="utf-8")
