"""The FinOps Foundation FOCUS validator (PyPI ``focus-validator``), installed once, run from tests.

``focus-validator`` 2.2.1 needs Python >= 3.12 while costaudit runs on 3.11, so it lives in its
own cached venv (``$COSTAUDIT_VALIDATOR_CACHE`` or ``~/.cache/costaudit``), built with the first
Python >= 3.12 found: ``$COSTAUDIT_VALIDATOR_PYTHON``, ``python3.12``, ``python3.13``, ``python3``,
then pyenv's versions folder. Its quirks, handled here:

* it pins numpy < 2 but not pyarrow; pyarrow 26 needs numpy 2, so pyarrow is pinned to 25.0.1;
* it opens ``focus_validator/rules/currency_codes.csv`` relative to the working directory, so it
  runs in a scratch folder holding a symlink at that path;
* its exit code is 0 even when rules fail, so results are read from its JUnit XML;
* ``--block-download`` keeps it offline with the bundled 1.2 rule model.

`validator()` returns a `Validator` or raises `ValidatorUnavailable` with the reason, which
tests turn into a skip.
"""

from __future__ import annotations

import csv
import fcntl
import glob
import os
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

VERSION = "2.2.1"
PINS = [f"focus-validator=={VERSION}", "pyarrow==25.0.1"]
FOCUS_VERSION = "1.2"

# The validator's applicability criteria that hold for the data costaudit exports: what every
# cloud costaudit reads supports AND what the store fills from every source format.
# Not claimed: ACCOUNT_NAMING_SUPPORTED and SUB_ACCOUNT_SUPPORTED (display names are missing from
# some sources, e.g. the legacy CUR has none); CAPACITY_RESERVATION_SUPPORTED (costaudit does not
# model capacity reservations); MULTIPLE_BILLING_ACCOUNT_TYPES_SUPPORTED (BillingAccountType is a
# 1.2 column older exports do not state); PUBLIC_PRICE_LIST_SUPPORTED and
# PRICING_BILLING_CURRENCY_DIFFERENCES_SUPPORTED (they demand PricingCurrency* on every row, which
# native exports do not always state).
CRITERIA = (
    "AVAILABILITY_ZONE_SUPPORTED",
    "BILLING_BASED_ON_PROVISIONED_RESOURCES_SUPPORTED",
    "COMMITMENT_DISCOUNT_SUPPORTED",
    "MULTIPLE_PRICING_CATEGORIES_SUPPORTED",
    "MULTIPLE_SUB_ACCOUNT_TYPES_SUPPORTED",
    "NEGOTIATED_PRICING_SUPPORTED",
    "REGION_SUPPORTED",
    "RESOURCE_TYPE_ASSIGNMENT_SUPPORTED",
    "TAGGING_SUPPORTED",
    "UNIT_PRICING_SUPPORTED",
    "USAGE_MEASUREMENT_SUPPORTED",
    "VIRTUAL_CURRENCY_SUPPORTED",
)

REPO = Path(__file__).resolve().parent.parent
# The one list of known validator failures: validator defects, input samples that lack what a rule
# asks for where no faithful conversion exists, and reader gaps still open. The README lists it.
KNOWN_FAILURES = REPO / "src" / "costaudit" / "data" / "focus_validator_known_failures.csv"


class ValidatorUnavailable(Exception):
    """No Python >= 3.12, or the validator cannot be installed here."""


@dataclass(frozen=True)
class KnownFailure:
    rule_id: str
    kind: str  # 'validator' (defect), 'source-data' (the input lacks it; no faithful conversion), 'reader' (open gap)
    scope: str  # '*' or a test case name
    reason: str


def known_failures(case: str | None = None) -> list[KnownFailure]:
    """Entries of the known-failures file, all of them or those applying to one test case."""
    with KNOWN_FAILURES.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    entries = [KnownFailure(r["rule_id"], r["kind"], r["scope"], r["reason"]) for r in rows]
    return [e for e in entries if case is None or e.scope in ("*", case)]


@dataclass
class Result:
    """One validator run: every rule's status and the failures that count."""

    statuses: dict[str, str] = field(default_factory=dict)  # rule id -> pass / fail / error / skip
    messages: dict[str, str] = field(default_factory=dict)
    console: str = ""

    @property
    def counted_failures(self) -> dict[str, str]:
        """Failed leaf rules that make the file fail.

        Composite rules only repeat their children; errors that say "Upstream dependency failed"
        repeat a failure reported on its own; and a leaf under an OR (e.g. InvoiceId "all null"
        vs "none null") fails harmlessly when the column's top rule ``<Column>-C-000`` passes.
        """
        failures = {}
        for rule, status in self.statuses.items():
            message = self.messages.get(rule, "")
            if status not in ("fail", "error") or message.startswith("Composite check"):
                continue
            if status == "error" and "Upstream dependency failed" in message:
                continue
            if "-C-" in rule:
                top = [r for r in self.statuses if r.startswith(rule.split("-C-")[0] + "-C-000-")]
                if top and all(self.statuses[t] == "pass" for t in top):
                    continue
            failures[rule] = message
        return failures


class Validator:
    def __init__(self, venv: Path):
        self.venv = venv
        self.executable = venv / "bin" / "focus-validator"
        found = glob.glob(str(venv / "lib" / "python3*" / "site-packages" / "focus_validator" / "rules"))
        if not found:
            raise ValidatorUnavailable(f"focus_validator package not found in {venv}")
        self.rules = Path(found[0])

    def command(self, data_file: Path, criteria: tuple[str, ...] = CRITERIA) -> list[str]:
        args = [str(self.executable), "--data-file", str(data_file), "--validate-version", FOCUS_VERSION,
                "--block-download"]
        if criteria:
            args += ["--applicability-criteria", ",".join(criteria)]
        return args

    def run(self, data_file: Path, criteria: tuple[str, ...] = CRITERIA, timeout: int = 120) -> Result:
        """Validate one CSV or Parquet file; returns every rule's status."""
        with tempfile.TemporaryDirectory(prefix="focus-validator-") as scratch:
            work = Path(scratch)
            (work / "focus_validator" / "rules").mkdir(parents=True)
            (work / "focus_validator" / "rules" / "currency_codes.csv").symlink_to(self.rules / "currency_codes.csv")
            report = work / "report.xml"
            args = self.command(data_file.resolve(), criteria)
            done = subprocess.run(
                [*args, "--output-type", "unittest", "--output-destination", str(report)],
                cwd=work, capture_output=True, text=True, timeout=timeout,
            )
            if not report.exists():
                raise RuntimeError(f"focus-validator wrote no report (exit {done.returncode}): {done.stderr[-2000:]}")
            result = _parse_junit(report)
            result.console = done.stdout + done.stderr
            return result

    def explain(self, data_file: Path, rules: list[str], criteria: tuple[str, ...] = CRITERIA) -> str:
        """Console lines (with sample violations) for the given rules: for assertion messages."""
        with tempfile.TemporaryDirectory(prefix="focus-validator-") as scratch:
            work = Path(scratch)
            (work / "focus_validator" / "rules").mkdir(parents=True)
            (work / "focus_validator" / "rules" / "currency_codes.csv").symlink_to(self.rules / "currency_codes.csv")
            done = subprocess.run([*self.command(data_file.resolve(), criteria), "--show-violations"],
                                  cwd=work, capture_output=True, text=True, timeout=120)
        shown, keep = [], False
        for line in done.stdout.splitlines():
            if line[:1].strip():  # a rule's first line; its details follow indented
                keep = any(f"{r}:" in line for r in rules)
            if keep:
                shown.append(line)
        return "\n".join(shown)


def _parse_junit(path: Path) -> Result:
    result = Result()
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "")
        rule, _, kind = name.partition(" :: ")
        status, message = "pass", kind
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = {"failure": "fail", "error": "error", "skipped": "skip"}[child.tag]
                message = child.get("message") or kind
        result.statuses[rule] = status
        result.messages[rule] = message
    return result


# -- installation -------------------------------------------------------------------------------


def _python_candidates() -> list[str]:
    names = [os.environ.get("COSTAUDIT_VALIDATOR_PYTHON", ""), "python3.12", "python3.13", "python3"]
    found = [n for n in names if n]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for version in sorted(pyenv_root.glob("versions/3.1[2-9]*")):
        found += sorted(str(p) for p in version.glob("bin/python3.1[2-9]"))
    return found


def find_python() -> str | None:
    """The first Python >= 3.12 that actually runs (pyenv shims exist for versions not enabled)."""
    for candidate in _python_candidates():
        executable = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if not executable:
            continue
        try:
            probe = subprocess.run([executable, "-c", "import sys, venv; print(sys.version_info >= (3, 12))"],
                                   capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return executable
    return None


def cache_dir() -> Path:
    return Path(os.environ.get("COSTAUDIT_VALIDATOR_CACHE", Path.home() / ".cache" / "costaudit"))


def validator() -> Validator:
    """The cached validator, installing it on first use. Raises ValidatorUnavailable.

    The suite runs in several worker processes (pytest-xdist), and more than one may ask for
    the validator first on a fresh machine: the check and the install hold a lock file, so one
    installs and the others then find it installed."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    with (cache_dir() / f"focus-validator-{VERSION}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _installed_validator()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _installed_validator() -> Validator:
    venv = cache_dir() / f"focus-validator-{VERSION}"
    marker = venv / ".costaudit-installed"
    if marker.exists() and marker.read_text() == " ".join(PINS):
        return Validator(venv)
    python = find_python()
    if python is None:
        raise ValidatorUnavailable(
            f"focus-validator {VERSION} needs Python >= 3.12; none found "
            "(set COSTAUDIT_VALIDATOR_PYTHON to one)"
        )
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = [[python, "-m", "venv", str(venv)], [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *PINS]]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ValidatorUnavailable(f"cannot install focus-validator {VERSION}: {exc}") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ValidatorUnavailable(f"cannot install focus-validator {VERSION} with {python}: {tail[0]}")
    marker.write_text(" ".join(PINS))
    return Validator(venv)
