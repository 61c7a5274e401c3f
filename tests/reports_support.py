"""Shared by the tests/test_reports_*.py files: the demo store, a hostile store, and headless Chromium.

The demo store is built once per test session (module-level cache: the fixture is used from
several test modules) from the bundled fixtures: the billing rooms, metrics and inventories,
without an audit run, so the first report also exercises "run the audit when there is none".

`Chromium` drives Debian's /usr/bin/chromium through the DevTools protocol (websocket-client):
it opens a file, collects console messages, exceptions and log entries (CSP violations are
logged there), evaluates DOM queries and takes screenshots and PDFs. Nothing is fetched from
the network: the browser runs with networking features off and the pages reference nothing.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from costaudit.rules.contract import Finding, Need, Rule

from .conftest import FIXTURES, REPO
from .focus_rows import HEADER, row, write

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "tests" / "artifacts"
BILLING_ROOMS = ("aws", "azure", "gcp", "focus")

_demo_cache: dict[str, Path] = {}


def demo_store(tmp_root: Path) -> Path:
    """A store file with the bundled demo data loaded and imported, and no audit run yet."""
    if "path" not in _demo_cache:
        from costaudit.connectors.imports_inventory import import_inventory
        from costaudit.connectors.imports_metrics import import_metrics
        from costaudit.loader import load_paths
        from costaudit.store import connect

        path = tmp_root / "demo.duckdb"
        con = connect(path)
        try:
            load_paths(con, [str(FIXTURES / room) for room in BILLING_ROOMS])
            import_metrics(con, [str(FIXTURES / "metrics")])
            import_inventory(con, [str(FIXTURES / "inventory")])
        finally:
            con.close()
        _demo_cache["path"] = path
    return _demo_cache["path"]


def copy_store(source: Path, target_dir: Path) -> Path:
    """A private copy of a store file, for tests that add runs or loads."""
    target = target_dir / source.name
    shutil.copyfile(source, target)
    return target


# ------------------------------------------------------------------------------------ hostile
SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="document.title=\'pwned\'">'
FORMULA = '=HYPERLINK("http://evil.example/x","click")'
CMD = "+cmd|' /C calc'!A0"
AT = "@SUM(1+1)"
DASH = "-2+3+cmd|' /C calc'!A0"
FULLWIDTH = "\uff1d1+1"
TAB = "\t=1+1"
MARKDOWN = "| *bold* _em_ [link](http://evil.example) `code` @channel $x$ |"
LINKS = "see https://evil.example/login or www.evil.example, mail ops@evil.example"
HOSTILE = (SCRIPT, IMG, FORMULA, CMD, AT, DASH, FULLWIDTH, TAB, MARKDOWN, LINKS)


def hostile_bills(folder: Path) -> Path:
    """A FOCUS file whose account, service, resource ids, regions, sub-account and tags are
    hostile: in each of two months one AI charge per hostile resource id, and one data-transfer
    credit (a negative amount) on a route between two hostile regions."""
    header = [*HEADER, "RegionId", "x_FromRegionCode", "x_ToRegionCode", "SubAccountId", "SubAccountName",
              "ConsumedQuantity", "ConsumedUnit", "PricingQuantity", "PricingUnit"]
    rows = []
    tags = json.dumps({"team": IMG, "dataset": FORMULA, "owner": CMD, "note": MARKDOWN})
    for period in ("2024-09", "2024-10"):
        for resource in HOSTILE:
            rows.append(row(account=FORMULA, period=period, cost="100.10", ServiceCategory="AI and Machine Learning",
                            ServiceName=f"{SCRIPT} API", ChargeDescription="input tokens", ResourceId=resource,
                            Tags=tags, SubAccountId=CMD, SubAccountName=SCRIPT, RegionId=AT))
        rows.append(row(account=FORMULA, period=period, cost="-20.05", ServiceCategory="Networking",
                        ServiceName="Network", ChargeDescription="data transfer out", ResourceId="net-credit",
                        RegionId=SCRIPT, x_FromRegionCode=SCRIPT, x_ToRegionCode=FORMULA, ConsumedQuantity="10",
                        ConsumedUnit="GB", PricingQuantity="10", PricingUnit="GB", Tags=tags))
    return write(folder / "focus-hostile.csv", rows, header)


def _hostile_evaluate(ctx) -> list[Finding]:
    """One finding per resource, built from the store's own hostile values (tags, ids, accounts)."""
    found = []
    for resource, account, sub, region, team, dataset, owner, note, cost in ctx.query(
        """SELECT ResourceId, min(BillingAccountId), min(SubAccountId), min(RegionId),
                  min(json_extract_string(Tags, '$.team')), min(json_extract_string(Tags, '$.dataset')),
                  min(json_extract_string(Tags, '$.owner')), min(json_extract_string(Tags, '$.note')),
                  sum(EffectiveCost)
           FROM current_line_items WHERE BillingPeriodStart >= $since AND BillingPeriodStart < $until
           GROUP BY ResourceId ORDER BY ResourceId"""
    ).fetchall():
        found.append(Finding(
            rule_id="other_hostile_probe", provider="TestCloud", billing_account_id=account, sub_account_id=sub,
            region=region, resource_id=resource, billing_period=datetime(2024, 10, 1, tzinfo=UTC),
            summary=f"tag team={team}; {SCRIPT}; {MARKDOWN}",
            evidence={"team": team, "dataset": dataset, "owner": owner, "note": note, "at": AT, "dash": DASH,
                      "fullwidth": FULLWIDTH, "tab": TAB, SCRIPT: "key is hostile too"},
            monthly_cost_in_scope=Decimal(cost), estimated_monthly_saving=Decimal(cost) / 2, currency="USD",
            estimate_method=f"half of it {FORMULA}", cost_basis=ctx.cost_basis,
        ))
    return found


def hostile_rules():
    """One rule (family `other`) whose metadata and findings carry hostile text."""
    from costaudit.rules.contract import LoadedRule

    rule = Rule(
        id="other_hostile_probe", title=f"Probe {SCRIPT}", family="other", severity="high",
        why=f"why {IMG}", how_to_fix=f"fix {FORMULA} {MARKDOWN}",
        needs=(Need("current_line_items", ("ResourceId",)),), parameters={}, references=("test",),
    )
    return [LoadedRule(rule=rule, evaluate=_hostile_evaluate, origin="test")]


# ------------------------------------------------------------------------------------ chromium
class Chromium:
    """Headless Chromium over the DevTools protocol: one page, its console and log collected."""

    FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars")

    def __init__(self, width: int = 1200, height: int = 900):
        import websocket  # websocket-client, a test dependency

        self.profile = Path(tempfile.mkdtemp(prefix="costaudit-chromium-"))
        self.process = subprocess.Popen(
            [str(CHROMIUM), *self.FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             "--remote-allow-origins=*", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port = self._port()
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def _port(self) -> int:
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text().strip():
                return int(marker.read_text().splitlines()[0])
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.process.returncode}")
            time.sleep(0.05)
        raise RuntimeError("chromium did not open its DevTools port")

    def call(self, method: str, **params: Any) -> dict:
        self.next_id += 1
        ident = self.next_id
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        for event in self.events:
            if event.get("method") == method:
                self.events.remove(event)
                return event
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(self.socket.recv())
            if message.get("method") == method:
                return message
            self.events.append(message)
        raise TimeoutError(method)

    def open(self, path: Path) -> None:
        self.call("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")
        self.evaluate("1")  # let queued console and log events arrive

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions and error/warning log entries."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params.get('exceptionDetails', {}).get('text')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"):
                found.append(f"log {params['entry']['level']}: {params['entry'].get('text')}")
        return found

    def screenshot(self, target: Path, *, media: str = "screen") -> Path:
        """A full-page PNG (the whole document, not just the window)."""
        self.call("Emulation.setEmulatedMedia", media=media)
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        self.call("Emulation.setEmulatedMedia", media="")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(shot["data"]))
        return target

    def pdf(self) -> bytes:
        return base64.b64decode(self.call("Page.printToPDF", preferCSSPageSize=True, printBackground=True)["data"])

    def close(self) -> None:
        try:
            self.socket.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            shutil.rmtree(self.profile, ignore_errors=True)


# ------------------------------------------------------------------------------------ CLI
def cli_main():
    """`costaudit.cli.main` with the report command (registered here until cli.py does it)."""
    from costaudit.cli import main
    from costaudit.reports.command import report

    if "report" not in main.commands:
        main.add_command(report)
    return main


def run_cli(db: Path, *args: str):
    """`costaudit --db DB ARGS...` in-process; returns click's Result."""
    from click.testing import CliRunner

    return CliRunner().invoke(cli_main(), ["--db", str(db), *args], catch_exceptions=False)


_report_cache: dict[str, Any] = {}
FORMATS = ("html", "xlsx", "csv", "json", "md")


def demo_reports(tmp_root: Path) -> tuple[Path, Path, str]:
    """(store, folder, CLI output): `costaudit report` with every format on the fresh demo store."""
    if "out" not in _report_cache:
        store = demo_store(tmp_root)
        out = tmp_root / "reports"
        out.mkdir()
        args = ["report", "--out", str(out)]
        for fmt in FORMATS:
            args += ["--format", fmt]
        result = run_cli(store, *args)
        assert result.exit_code == 0, result.output
        _report_cache.update(store=store, out=out, output=result.output)
    return _report_cache["store"], _report_cache["out"], _report_cache["output"]
