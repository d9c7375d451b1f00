"""deploy/prometheus and deploy/grafana checked by Debian's promtool: the alert rules
load, every rule passes its unit tests (firing and staying quiet), and every dashboard
query is valid PromQL. promtool missing is a failure: `make system-deps` installs it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.deploy_queries import (
    ALERT_TESTS,
    ALERTS,
    alert_rules,
    dashboard_exprs,
    metric_names,
    substitute_variables,
)

PROMTOOL_TIMEOUT_SECONDS = 120


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool; fails the test when it is not installed."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: run `make system-deps` (Debian's prometheus)")
    return subprocess.run(
        [path, *args],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_SECONDS,
        check=False,
    )


def test_the_alert_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_every_alert_rule_passes_its_unit_tests() -> None:
    result = promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    document = yaml.safe_load(ALERT_TESTS.read_text())
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in document["tests"]:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested staying quiet"
    assert (fires | quiet) - names == set(), "tests of alerts that do not exist"


def test_every_alert_says_what_to_do() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert "docs/operations.md" in rule["annotations"]["description"], rule["alert"]


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    exprs = dashboard_exprs()
    assert exprs, "the dashboard has no queries"
    # promtool parses recording rules' expressions: one rule per query.
    rules = [
        {"record": f"orderhooks:dashboard_query_{index}", "expr": substitute_variables(expr)}
        for index, expr in enumerate(exprs)
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up == 0", {"up"}),
        ('up{job="orderhooks"} == 0', {"up"}),
        (
            "histogram_quantile(0.95, sum by (le, endpoint) (rate(a_bucket[5m])))",
            {"a_bucket"},
        ),
        ("sum(rate(a_total[5m])) by (instance) / ignoring(x) group_left(y) b", {"a_total", "b"}),
        ('a{x="by (b)", y=~"c|d"} unless on (w) c offset 1h > bool 1e3', {"a", "c"}),
        ("max_over_time(a:recorded[1h:5m]) or vector(0) and -b", {"a:recorded", "b"}),
        ('count_values("c", a) > inf', {"a"}),
    ],
)
def test_metric_names_are_what_an_expression_reads(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
