"""The HTML report in headless Chromium: charts drawn with one bar per value, the key numbers
shown, nothing loaded from anywhere, no console error, and it prints to PDF. The test saves a
full-page screenshot in its tmp folder and, with the PDF, in tests/artifacts/ (gitignored)."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser

import pytest

from costaudit.reports.html import content_security_policy, stylesheet
from costaudit.reports.safe import money
from costaudit.store import connect

from .reports_support import ARTIFACTS, CHROMIUM, Chromium, demo_reports

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (Debian package 'chromium'; .ci/run installs it)")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    store, out, _ = demo_reports(tmp_path_factory.getbasetemp())
    return store, out / "costaudit-report.html"


@pytest.fixture(scope="module")
def expected(demo):
    """What the page must show, from SQL over the store and its views written here."""
    store, _ = demo
    con = connect(store, read_only=True)
    try:
        [(run_id,)] = con.execute("SELECT run_id FROM runs").fetchall()
        currencies = [c for (c,) in con.execute(
            "SELECT DISTINCT BillingCurrency FROM current_line_items ORDER BY 1").fetchall()]
        bars = {}
        for currency in currencies:
            [(ai, classes, routes, findings)] = con.execute(
                """SELECT
                     (SELECT count(*) FROM (SELECT strftime(BillingPeriodStart, '%Y-%m'), ai_category FROM ai_spend
                        WHERE BillingCurrency = $c GROUP BY ALL HAVING sum(EffectiveCost) <> 0)),
                     (SELECT count(DISTINCT network_class) FROM network_transfer WHERE BillingCurrency = $c),
                     (SELECT least(count(DISTINCT (route, network_class)), 10) FROM network_transfer
                        WHERE BillingCurrency = $c AND network_class <> 'inbound'),
                     (SELECT least(count(*), 10) FROM latest_findings WHERE currency = $c AND status = 'open'
                        AND estimated_monthly_saving IS NOT NULL)""",
                {"c": currency},
            ).fetchall()
            bars[currency] = {"ai-by-month": ai, "network-classes": classes, "top-routes": routes,
                              "top-findings": findings}
        saving = dict(con.execute(
            "SELECT currency, sum(estimated_monthly_saving) FROM latest_findings WHERE status = 'open' GROUP BY 1"
        ).fetchall())
        spend = dict(con.execute("SELECT BillingCurrency, sum(EffectiveCost) FROM current_line_items GROUP BY 1").fetchall())
        open_count = con.execute("SELECT count(*) FROM latest_findings WHERE status = 'open'").fetchall()[0][0]
        families = {f for (f,) in con.execute("SELECT DISTINCT family FROM latest_findings").fetchall()}
    finally:
        con.close()
    return {"run_id": run_id, "bars": bars, "saving": saving, "spend": spend, "open": open_count,
            "families": families}


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_html_is_self_contained_and_script_free(demo):
    _, page = demo
    text = page.read_text(encoding="utf-8")
    parser = _Collect()
    parser.feed(text)
    tags = [t for t, _ in parser.tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags and "iframe" not in tags
    csp = [a["content"] for t, a in parser.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp == [content_security_policy(stylesheet())]
    assert "default-src 'none'" in csp[0] and "script-src 'none'" in csp[0] and "unsafe-inline" not in csp[0]
    for _, attrs in parser.tags:
        for name in ("href", "src", "action", "xlink:href"):
            assert not attrs.get(name) or attrs[name].startswith("#"), attrs


@needs_chromium
def test_report_in_headless_chromium(demo, expected, tmp_path):
    _, page = demo
    browser = Chromium()
    try:
        browser.open(page)
        facts = browser.evaluate("""(() => {
          const charts = [...document.querySelectorAll('svg[data-chart]')].map(svg => ({
            name: svg.dataset.chart, currency: svg.dataset.currency,
            bars: svg.querySelectorAll('rect.bar').length,
            drawn: [...svg.querySelectorAll('rect.bar')].filter(r => r.getBBox().height > 0).length,
            role: svg.getAttribute('role'),
            title: (document.getElementById((svg.getAttribute('aria-labelledby') || '').split(' ')[0]) || {}).textContent,
            width: svg.getBoundingClientRect().width}));
          const keys = Object.fromEntries([...document.querySelectorAll('[data-key]')].map(e => [e.dataset.key, e.textContent.trim()]));
          return {charts, keys, title: document.title,
                  scripts: document.querySelectorAll('script').length,
                  resources: performance.getEntriesByType('resource').length,
                  bodyWidth: getComputedStyle(document.body).maxWidth,
                  barFill: document.querySelector('rect.bar') && getComputedStyle(document.querySelector('rect.bar')).fill,
                  findings: document.querySelectorAll('article.finding[data-status="open"]').length,
                  families: [...document.querySelectorAll('section.family')].map(s => s.dataset.family)};
        })()""")
        shot = browser.screenshot(tmp_path / "report.png")
        pdf = browser.pdf()
        problems = browser.problems()
    finally:
        browser.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "report.png")
    (ARTIFACTS / "report.pdf").write_bytes(pdf)

    assert problems == []
    assert facts["scripts"] == 0 and facts["resources"] == 0
    # The stylesheet applied: its hash in the CSP matches (a mismatch would leave the page unstyled).
    assert facts["bodyWidth"] == "1040px" and facts["barFill"] not in (None, "", "rgb(0, 0, 0)")
    assert facts["title"] == f"Cloud cost audit {expected['run_id']}"
    drawn = {(c["currency"], c["name"]): c for c in facts["charts"]}
    for currency, charts in expected["bars"].items():
        for name, count in charts.items():
            if count == 0:
                assert (currency, name) not in drawn
                continue
            chart = drawn[(currency, name)]
            assert chart["bars"] == count, (currency, name, chart)
            assert chart["drawn"] >= 1 and chart["width"] > 300
            assert chart["role"] == "img" and currency in chart["title"]
    assert len(drawn) >= 7
    for currency, amount in expected["saving"].items():
        assert facts["keys"][f"saving-{currency}"] == f"{money(amount)} {currency}"
    for currency, amount in expected["spend"].items():
        assert facts["keys"][f"spend-{currency}"] == f"{money(amount)} {currency}"
    assert facts["keys"]["run-id"] == expected["run_id"]
    assert facts["findings"] == expected["open"]
    assert expected["families"] <= set(facts["families"])
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) >= 3
    assert shot.read_bytes().startswith(b"\x89PNG")


@needs_chromium
def test_console_error_detection_works(tmp_path):
    """The check above can fail: a page under the same policy with an inline script is caught."""
    css = stylesheet()
    page = tmp_path / "bad.html"
    page.write_text(
        f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        f'content="{content_security_policy(css)}"><style>{css}</style></head>'
        "<body><p>x</p><script>console.error('ran')</script></body></html>",
        encoding="utf-8",
    )
    browser = Chromium()
    try:
        browser.open(page)
        problems = browser.problems()
    finally:
        browser.close()
    assert problems and not any("ran" in p for p in problems), problems
