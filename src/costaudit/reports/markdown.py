"""The Markdown summary, short enough for a chat message or an email body.

Headline figures per currency, the top findings by estimated saving, counts per family and what
the audit could not cover. Every value from the store goes through `safe.markdown_text`, so a tag
value cannot add links, images, HTML, mentions or table cells.
"""

from __future__ import annotations

from .data import ReportData
from .safe import markdown_text as md
from .safe import money, percent

TOP = 10
SKIPPED_SHOWN = 12


def render_markdown(data: ReportData, top: int = TOP) -> str:
    """The Markdown summary of a report."""
    run = data.run
    counts = data.status_counts()
    lines = [
        f"# Cloud cost audit: {md(run.span)}",
        "",
        f"Audit run {md(run.run_id)}, cost basis {md(run.cost_basis)}; generated "
        f"{data.generated_at:%Y-%m-%d %H:%M} UTC by {md(data.generator)}. "
        "Amounts per billing currency, never added across currencies.",
        "",
    ]
    lines += [f"- {md(note)}" for note in data.notes]
    if data.notes:
        lines.append("")
    lines += [
        f"| Currency | Spend ({md(run.cost_basis)}) | AI | AI share | Network | Network share | "
        "Est. saving / month | Open findings |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in data.currencies:
        lines.append(
            f"| {md(c.currency)} | {money(c.total)} | {money(c.ai)} | {percent(c.ai_share)} | {money(c.network)} | "
            f"{percent(c.network_share)} | {money(c.estimated_saving)} | {c.open_findings} |"
        )
    lines += ["", f"Findings: {counts['open']} open, {counts['suppressed']} suppressed, "
                  f"{counts['not_assessed']} not assessed."]
    if data.changes:
        lines.append("Since the previous run: " + ", ".join(f"{n} {md(k)}" for k, n in data.changes.items()) + ".")
    for c in data.currencies:
        best = data.top_findings(c.currency, top)
        if not best:
            continue
        lines += ["", f"## Top findings by estimated monthly saving ({md(c.currency)})", ""]
        for index, f in enumerate(best, 1):
            lines.append(
                f"{index}. **{money(f.estimated_monthly_saving)} {md(f.currency)}**: {md(f.title)}, "
                f"{md(f.provider)} {md(f.resource_id)} ({md(f.billing_account_id or '-')}, {md(f.period or '-')}): "
                f"{md(f.summary)}"
            )
    lines += ["", "## Findings by family", ""]
    for family in data.families():
        by_status = {s: data.count_of(family, s) for s in ("open", "suppressed", "not_assessed")}
        lines.append(f"- {md(family)}: {by_status['open']} open, {by_status['suppressed']} suppressed, "
                     f"{by_status['not_assessed']} not assessed")
    skipped = data.coverage.skipped
    if skipped:
        lines += ["", "## Not covered", ""]
        lines += [f"- {md(s.kind)} {md(s.subject)}: {md(s.reason)}" for s in skipped[:SKIPPED_SHOWN]]
        if len(skipped) > SKIPPED_SHOWN:
            lines.append(f"- and {len(skipped) - SKIPPED_SHOWN} more (see the full report)")
    lines += ["", "Full details: the HTML, XLSX or JSON report of the same run.", ""]
    return "\n".join(lines)
