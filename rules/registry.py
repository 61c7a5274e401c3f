"""Find every rule: the modules of this package, then the ``costaudit.rules`` entry points.

A module of this package is a rule when it defines ``RULE``; framework modules (this one,
``contract``, ``runner`` ...) do not, and modules whose names start with ``_`` are skipped.
A third-party package registers a rule module in its own metadata::

    [project.entry-points."costaudit.rules"]
    acme_idle_gpu = "acme_costaudit.acme_idle_gpu"

The entry point's name must equal the rule id. Every rule is validated as it loads; a broken
rule is an error naming the module, not a silent omission.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
from types import ModuleType

from .contract import LoadedRule, RuleContractError, validate_rule

ENTRY_POINT_GROUP = "costaudit.rules"


def builtin_rules() -> list[LoadedRule]:
    """The rules shipped in this package, validated, sorted by id."""
    package = importlib.import_module(__package__ or "costaudit.rules")
    found: list[LoadedRule] = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if not hasattr(module, "RULE"):
            continue
        found.append(_loaded(module.__name__, module, "builtin"))
    return sorted(found, key=lambda r: r.id)


def entry_point_rules() -> list[LoadedRule]:
    """Rules registered by installed distributions under the ``costaudit.rules`` group."""
    found: list[LoadedRule] = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(getattr(entry, "dist", None), "name", None) or "unknown distribution"
        origin = f"entry point {entry.name!r} ({dist})"
        try:
            target = entry.load()
        except Exception as exc:  # a plugin's import error must name the plugin
            raise RuleContractError(f"{origin}: cannot be imported ({type(exc).__name__}: {exc})") from None
        found.append(_loaded(entry.name, target, origin))
    return sorted(found, key=lambda r: r.id)


def all_rules() -> list[LoadedRule]:
    """Built-in and entry-point rules; an id used twice is an error."""
    rules = builtin_rules()
    seen = {r.id: r.origin for r in rules}
    for rule in entry_point_rules():
        if rule.id in seen:
            raise RuleContractError(f"{rule.origin}: rule id {rule.id!r} is already used by {seen[rule.id]}")
        seen[rule.id] = rule.origin
        rules.append(rule)
    return sorted(rules, key=lambda r: r.id)


def _loaded(name: str, target: ModuleType | object, origin: str) -> LoadedRule:
    rule = getattr(target, "RULE", None)
    evaluate = getattr(target, "evaluate", None)
    problems = validate_rule(name, rule, evaluate, origin)
    if problems:
        raise RuleContractError("; ".join(problems))
    return LoadedRule(rule=rule, evaluate=evaluate, origin=origin)  # type: ignore[arg-type]
