"""The PromQL of deploy/: every alert expression and dashboard query, and the metric
names they read (a crude parser, but exact for the PromQL these files use)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "orderhooks.json"

# Made by Prometheus itself, never by an orderhooks process.
PROMETHEUS_METRICS = frozenset({"up"})
# Grafana's variables, as a query would read after substitution.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$instance": ".*", "$webhook": ".*"}

_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
     "bool", "offset", "inf", "nan"}
)  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_OFFSET = re.compile(r"\boffset\s+-?[0-9a-z]+", re.IGNORECASE)
_TOKEN = re.compile(
    r"(?P<number>(?<![A-Za-z0-9_:])[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?P<call>\s*\()?"
)
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*\w+\s*\)\s*$")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: what is left once strings, label
    matchers, ranges, offsets, grouping label lists, numbers, keywords and function or
    aggregation names are taken out."""
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    names = set()
    for token in _TOKEN.finditer(text):
        name = token.group("name")
        if name is None or token.group("call") or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of alerts.yml."""
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard."""
    result: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return result


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_exprs() -> list[str]:
    """Every PromQL query of the dashboard's panels."""
    return [
        target["expr"]
        for panel in _panels(dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def variable_metrics() -> set[str]:
    """The metrics the dashboard's template variables list label values of."""
    names = set()
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(text)
        assert match, f"variable {variable['name']}: unexpected query {text!r}"
        names.add(match.group(1))
    return names


def substitute_variables(expr: str) -> str:
    """A dashboard query as Grafana sends it, with the variables filled in."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def referenced_metrics() -> dict[str, set[str]]:
    """Each metric name read by deploy/, with where it is read."""
    where: dict[str, set[str]] = {}
    for rule in alert_rules():
        for name in metric_names(rule["expr"]):
            where.setdefault(name, set()).add(f"alert {rule['alert']}")
    for expr in dashboard_exprs():
        for name in metric_names(expr):
            where.setdefault(name, set()).add("dashboard")
    for name in variable_metrics():
        where.setdefault(name, set()).add("dashboard variable")
    return where
