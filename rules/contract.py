"""The rule contract: what a rule module declares, what it receives, and what it returns.

A rule is one module with two names:

``RULE``
    a `Rule`: stable id (equal to the module name), title, family, severity, why it matters,
    how to fix it, the data it needs (`Need`), its parameters with defaults (`Param`) and
    references. It is validated when the registry loads it.

``evaluate(ctx: RuleContext) -> list[Finding]``
    reads the store through ``ctx`` (SQL over the billing relation ``sqlparts.billing(ctx)`` or the
    analysis views, and the side tables) and
    returns findings. It never opens a file or a cloud SDK. Most rules write one SELECT that
    yields the fixed finding columns and return `RuleContext.findings` of it: a `FindingQuery`,
    which behaves as the list but lets the runner keep the rows in DuckDB (a rule that returns
    a plain list works too; its findings go to DuckDB in batches).

The runner checks each `Need` before calling ``evaluate``; when data is missing the rule is
reported as skipped with the reason, so ``evaluate`` may assume its tables and columns exist.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb

from costaudit.errors import CostauditError

SEVERITIES = ("low", "medium", "high")
FAMILIES = ("compute", "storage", "egress", "network", "ai", "commitment", "other")
COST_BASES = ("EffectiveCost", "BilledCost")
# Statuses a rule may give a finding; the runner adds "suppressed".
RULE_STATUSES = ("open", "not_assessed")
STATUSES = (*RULE_STATUSES, "suppressed")
RULE_ID = re.compile(r"^[a-z][a-z0-9_]{2,63}$")
PARAM_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

ParamValue = bool | int | float | str | tuple[str, ...]


class RuleContractError(CostauditError):
    """A rule module (built in or from an entry point) does not follow the contract."""


@dataclass(frozen=True)
class Param:
    """A threshold or setting with its default; `[rules.<id>]` in costaudit.toml overrides it."""

    default: ParamValue
    help: str

    def coerce(self, value: Any) -> ParamValue:
        """The value as the default's type, or ValueError saying what was expected."""
        default = self.default
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            raise ValueError("expected true or false")
        if isinstance(default, int):
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            raise ValueError("expected a whole number")
        if isinstance(default, float):
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            raise ValueError("expected a number")
        if isinstance(default, str):
            if isinstance(value, str):
                return value
            raise ValueError("expected a string")
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ValueError("expected a list of strings")


@dataclass(frozen=True)
class Need:
    """Data a rule needs: a table or view, columns that must hold values, optional row filter.

    ``where`` is SQL written by the rule author (never user input), e.g.
    ``metric = 'gpu_utilization'``. For ``current_line_items`` the runner adds the audit window.
    ``label`` names the data for people and ``how`` says how to provide it; both appear in
    the skip reason.
    """

    table: str
    columns: tuple[str, ...] = ()
    where: str = ""
    label: str = ""
    how: str = ""


@dataclass(frozen=True)
class Rule:
    """A rule's metadata. Validated by `validate_rule` when the registry loads it."""

    id: str
    title: str
    family: str
    severity: str
    why: str
    how_to_fix: str
    needs: tuple[Need, ...]
    parameters: dict[str, Param]
    references: tuple[str, ...]
    version: str = "1"


@dataclass(frozen=True)
class Window:
    """The billing months audited: ``since`` inclusive, ``until`` exclusive (UTC month starts)."""

    since: datetime
    until: datetime


@dataclass(frozen=True, slots=True)  # slots: an audit of a large estate holds ~10^5-10^6 of them
class Finding:
    """One finding with the fixed columns every rule returns."""

    rule_id: str
    provider: str
    billing_account_id: str | None
    sub_account_id: str | None
    region: str | None
    resource_id: str
    billing_period: datetime | None
    summary: str
    evidence: dict[str, Any]
    monthly_cost_in_scope: Decimal | None
    estimated_monthly_saving: Decimal | None
    currency: str | None
    estimate_method: str
    cost_basis: str
    status: str = "open"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule_id, self.provider, self.billing_account_id, self.resource_id)


# The finding's identity, stable across runs: sha256 of rule id, provider, billing account and
# resource, lower-cased (exports spell the same Azure resource id in different cases) and joined
# by the unit separator. Defined once, in SQL: the runner computes it over a rule's rows in
# DuckDB, and `fingerprint` below asks DuckDB too, so the two can never lower-case differently.
FINGERPRINT_SQL = (
    "sha256(concat_ws(chr(31), rule_id, lower(provider), lower(coalesce(billing_account_id, '')), lower(resource_id)))"
)
_FINGERPRINT_CON: duckdb.DuckDBPyConnection | None = None


def fingerprint(rule_id: str, provider: str, billing_account_id: str | None, resource_id: str) -> str:
    """`FINGERPRINT_SQL` of one finding (for findings built in Python, e.g. by a plugin)."""
    global _FINGERPRINT_CON
    if _FINGERPRINT_CON is None:
        _FINGERPRINT_CON = duckdb.connect()
    row = _FINGERPRINT_CON.execute(
        f"SELECT {FINGERPRINT_SQL} FROM (SELECT ? AS rule_id, ? AS provider, ? AS billing_account_id, ? AS resource_id)",
        [rule_id, provider, billing_account_id, resource_id],
    ).fetchone()
    assert row is not None
    return row[0]


FINDING_COLUMNS = (
    "provider", "billing_account_id", "sub_account_id", "region", "resource_id", "billing_period",
    "currency", "monthly_cost_in_scope", "estimated_monthly_saving", "estimate_method", "evidence", "summary",
)
_NAMED_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_SCRATCH_IDS = itertools.count(1)


@dataclass
class RunScratch:
    """TEMP tables that the rules of one run share (e.g. the billed instances the three compute
    rules all read): built by the first rule that asks, reused by the others, dropped by the
    runner when the run ends. A rule evaluated on its own gets a fresh, empty scratch."""

    tables: dict[str, str] = field(default_factory=dict)
    billing: str | None = None  # the relation the rules sum billing over (`sqlparts.billing`)

    def table(self, con: duckdb.DuckDBPyConnection, key: str, select: str, params: dict[str, Any] | None = None) -> str:
        """The name of a TEMP table holding `select` (run with `params`), created on first use of
        `key`. `key` must name everything the SELECT depends on (e.g. the cost column)."""
        name = self.tables.get(key)
        if name is None:
            # A unique name per scratch and key: two runs on one connection never share a table.
            name = f"costaudit_scratch_{next(_SCRATCH_IDS)}"
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {select}", params or {})
            self.tables[key] = name
        return name

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        """Drop every table this scratch created."""
        for name in self.tables.values():
            con.execute(f"DROP TABLE IF EXISTS temp.main.{name}")
        self.tables.clear()


@dataclass
class RuleContext:
    """What `evaluate` receives: the store, the parameters in force, the window, the run."""

    con: duckdb.DuckDBPyConnection
    rule: Rule
    params: dict[str, ParamValue]
    window: Window
    run_id: str
    cost_basis: str = "EffectiveCost"
    today: date = field(default_factory=date.today)
    scratch: RunScratch = field(default_factory=RunScratch)

    @property
    def cost(self) -> str:
        """The cost column savings are based on, quoted for SQL (validated, never user text)."""
        if self.cost_basis not in COST_BASES:
            raise RuleContractError(f"cost basis must be one of {COST_BASES}, not {self.cost_basis!r}")
        return f'"{self.cost_basis}"'

    def bindings(self, sql: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Named values for the ``$name`` placeholders in `sql`: ``$since``, ``$until``,
        ``$cost_basis``, every parameter by name, and `extra`."""
        values: dict[str, Any] = {
            "since": self.window.since,
            "until": self.window.until,
            "cost_basis": self.cost_basis,
            "run_id": self.run_id,
        }
        values.update({k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()})
        values.update(extra or {})
        wanted = set(_NAMED_PARAM.findall(sql))
        missing = wanted - set(values)
        if missing:
            raise RuleContractError(f"rule {self.rule.id}: SQL uses unknown placeholders {sorted(missing)}")
        return {k: values[k] for k in wanted}

    def query(self, sql: str, **extra: Any) -> duckdb.DuckDBPyConnection:
        """Run SQL with the window, parameters and `extra` bound by name."""
        return self.con.execute(sql, self.bindings(sql, extra))

    def findings(self, sql: str, **extra: Any) -> FindingQuery:
        """Findings from a SELECT returning `FINDING_COLUMNS` (plus an optional ``status``).

        ``evidence`` is JSON object text built in SQL; the cost basis is recorded on each finding.
        Nothing runs here: the runner stages the SELECT's rows in DuckDB with one INSERT (no Python
        object per finding, so a run with a million findings stays small); iterating the result
        reads them as `Finding`s."""
        return FindingQuery(self, sql, self.bindings(sql, extra))

    def _finding(self, record: dict[str, Any]) -> Finding:
        evidence = record["evidence"]
        if isinstance(evidence, str):
            evidence = json.loads(evidence)
        return Finding(
            rule_id=self.rule.id,
            provider=record["provider"],
            billing_account_id=record["billing_account_id"],
            sub_account_id=record["sub_account_id"],
            region=record["region"],
            resource_id=record["resource_id"],
            billing_period=record["billing_period"],
            summary=record["summary"],
            evidence=evidence or {},
            monthly_cost_in_scope=_decimal(record["monthly_cost_in_scope"]),
            estimated_monthly_saving=_decimal(record["estimated_monthly_saving"]),
            currency=record["currency"],
            estimate_method=record["estimate_method"],
            cost_basis=self.cost_basis,
            status=record.get("status") or "open",
        )


class FindingQuery:
    """What `RuleContext.findings` returns: a rule's findings SELECT, not yet run.

    The runner hands it to DuckDB whole (`relation`); anyone else may iterate it, index it or
    take its length like the list of `Finding` that `evaluate` is documented to return (the rows
    are then read once, in batches, and kept)."""

    __slots__ = ("ctx", "sql", "params", "_items")

    def __init__(self, ctx: RuleContext, sql: str, params: dict[str, Any]) -> None:
        self.ctx = ctx
        self.sql = sql
        self.params = params
        self._items: list[Finding] | None = None

    def relation(self) -> duckdb.DuckDBPyRelation:
        """The SELECT bound (not run), after checking it has the finding columns."""
        rel = self.ctx.con.sql(self.sql, params=self.params)
        missing = [c for c in FINDING_COLUMNS if c not in rel.columns]
        if missing:
            raise RuleContractError(f"rule {self.ctx.rule.id}: findings query lacks columns {missing}")
        return rel

    def _read(self) -> list[Finding]:
        if self._items is None:
            self.relation()
            cursor = self.ctx.con.execute(self.sql, self.params)
            names = [d[0] for d in cursor.description]
            items: list[Finding] = []
            while rows := cursor.fetchmany(10_000):
                items.extend(self.ctx._finding(dict(zip(names, row, strict=True))) for row in rows)
            self._items = items
        return self._items

    def __iter__(self) -> Iterator[Finding]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())

    def __getitem__(self, index: int) -> Finding:
        return self._read()[index]


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):
        raise RuleContractError("money must be DECIMAL in SQL, not DOUBLE (cast before returning it)")
    return Decimal(value)


Evaluate = Callable[[RuleContext], "list[Finding] | FindingQuery"]


@dataclass(frozen=True)
class LoadedRule:
    """A validated rule: its metadata, its function and where it came from."""

    rule: Rule
    evaluate: Evaluate
    origin: str  # 'builtin' or 'entry point <name> (<distribution>)'

    @property
    def id(self) -> str:
        return self.rule.id


def validate_rule(module_name: str, rule: Any, evaluate: Any, origin: str) -> list[str]:
    """Every way the module breaks the contract, as sentences (empty when it is valid)."""
    problems: list[str] = []
    if not isinstance(rule, Rule):
        return [f"RULE must be a costaudit.rules.contract.Rule, not {type(rule).__name__}"]
    if not RULE_ID.match(rule.id):
        problems.append(f"id {rule.id!r} must be lower-case letters, digits and underscores (3-64)")
    short_name = module_name.rsplit(".", 1)[-1]
    if rule.id != short_name:
        problems.append(f"id {rule.id!r} must equal the module name {short_name!r}")
    if rule.family not in FAMILIES:
        problems.append(f"family {rule.family!r} is not one of {', '.join(FAMILIES)}")
    if rule.severity not in SEVERITIES:
        problems.append(f"severity {rule.severity!r} is not one of {', '.join(SEVERITIES)}")
    for name in ("title", "why", "how_to_fix"):
        if not str(getattr(rule, name) or "").strip():
            problems.append(f"{name} must be a non-empty sentence")
    if not rule.references or not all(isinstance(r, str) and r.strip() for r in rule.references):
        problems.append("references must name at least one source")
    if not rule.needs or not all(isinstance(n, Need) and n.table for n in rule.needs):
        problems.append("needs must list at least one Need(table, ...)")
    if not isinstance(rule.parameters, dict):
        problems.append("parameters must be a dict of name -> Param")
    else:
        for name, param in rule.parameters.items():
            if not PARAM_NAME.match(name):
                problems.append(f"parameter name {name!r} must be lower-case letters, digits and underscores")
            if not isinstance(param, Param) or not param.help.strip():
                problems.append(f"parameter {name!r} must be a Param with a help text")
                continue
            try:
                param.coerce(param.default)
            except ValueError as exc:
                problems.append(f"parameter {name!r} default: {exc}")
    if not callable(evaluate):
        problems.append("the module must define evaluate(ctx) -> list[Finding]")
    return [f"{origin} {module_name}: {p}" for p in problems]
