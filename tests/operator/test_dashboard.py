"""The chart's Grafana dashboard against the operator's metrics, without a Prometheus:
every PromQL expression parses, names only metrics the operator registers (with their
sample suffixes), groups and matches only by labels those series have, and matches
phases that exist; counters are only read through rate()/increase() (or as operands of
and/or/unless); the JSON is a Grafana dashboard. e2e/tests/test_dashboard.py evaluates
the same expressions in a real Prometheus scraping the operator."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from baton.core.status import BatchStatus
from baton_operator import metrics
from baton_operator.k8s.resources import Phase
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.metrics import MetricWrapperBase

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "baton" / "dashboards" / "baton.json"

# ---------------------------------------------------------------- the dashboard


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def targets() -> Iterator[tuple[str, str, str]]:
    """(panel title, refId, expr) of every query of the dashboard."""
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["refId"], target["expr"]


# ---------------------------------------------------------------- what the operator exports

# Sample names a family exposes, by type (prometheus_client's text exposition).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}
# Samples that only ever grow (read them with rate()/increase()).
MONOTONIC = ("_total", "_bucket", "_count", "_sum")


@dataclass(frozen=True)
class Series:
    name: str
    type: str
    labels: frozenset[str]

    @property
    def monotonic(self) -> bool:
        return self.type in ("counter", "histogram", "summary") and self.name.endswith(MONOTONIC)


def exported() -> dict[str, Series]:
    """Every sample name the operator's registry exposes, with its label names."""
    declared = {
        m._name: frozenset(m._labelnames)  # the label names of labelled metrics
        for m in vars(metrics).values()
        if isinstance(m, MetricWrapperBase)
    }
    out: dict[str, Series] = {}
    for family in metrics.REGISTRY.collect():
        labels = set(declared.get(family.name, ()))
        for sample in family.samples:  # unlabelled and collector metrics (process_*)
            labels |= set(sample.labels) - {"le", "quantile"}
        for suffix in SUFFIXES[family.type]:
            name = family.name + suffix
            extra = {"le"} if suffix == "_bucket" else set()
            if family.type == "summary" and not suffix:
                extra = {"quantile"}
            out[name] = Series(name, family.type, frozenset(labels | extra))
    return out


def item_kinds(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The `kind` values of baton_items_total, from observe_steps itself (on a private
    counter, so the real registry is untouched)."""
    private = Counter("items", "", ["job", "step", "kind"], registry=CollectorRegistry())
    monkeypatch.setattr(metrics, "ITEMS", private)
    monkeypatch.setattr(metrics, "_seen_counts", {})
    step = SimpleNamespace(
        id=1, step_name="s", read_count=1, write_count=1, filter_count=1, skip_count=1,
        status=BatchStatus.STARTED, end_time=None,
    )  # fmt: skip
    metrics.observe_steps("j", [step])
    return {s.labels["kind"] for f in private.collect() for s in f.samples if "kind" in s.labels}


# ---------------------------------------------------------------- a small PromQL parser

AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
}  # fmt: skip
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp",
    "floor", "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_sum",
    "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace",
    "ln", "log2", "log10", "minute", "month", "predict_linear", "rate", "resets", "round",
    "scalar", "sgn", "sort", "sort_desc", "sqrt", "time", "timestamp", "vector", "year",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
    "quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time",
    "present_over_time",
}  # fmt: skip
COUNTER_FUNCTIONS = {"rate", "irate", "increase", "resets"}
SET_OPERATORS = {"and", "or", "unless"}
BINARY = {"+", "-", "*", "/", "%", "^", "==", "!=", "<", ">", "<=", ">=", *SET_OPERATORS, "atan2"}

TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<dur>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*(?![\w.]))
  | (?P<num>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}@])
    """,
    re.VERBOSE,
)


@dataclass
class Node:
    pass


@dataclass
class Selector(Node):
    metric: str
    matchers: list[tuple[str, str, str]] = field(default_factory=list)
    range: str | None = None


@dataclass
class Call(Node):
    name: str
    args: list[Node]
    grouping: tuple[str, list[str]] | None = None


@dataclass
class Binary(Node):
    op: str
    left: Node
    right: Node
    on: list[str] | None = None  # on(...) labels


@dataclass
class Scalar(Node):
    pass


class PromQLError(ValueError):
    pass


def tokenize(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise PromQLError(f"cannot read {expr[pos:]!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            assert m.lastgroup is not None
            out.append((m.lastgroup, m.group()))
    return out


class Parser:
    """Recursive descent over PromQL's grammar; operator precedence is ignored (the
    checks need the nesting of calls and selectors, not the evaluation order)."""

    def __init__(self, expr: str) -> None:
        self.tokens = tokenize(expr)
        self.i = 0

    def peek(self, ahead: int = 0) -> tuple[str, str]:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else ("eof", "")

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        k, v = self.peek()
        if (value is not None and v != value) or (kind is not None and k != kind):
            raise PromQLError(f"expected {value or kind}, found {v or 'the end'!r}")
        self.i += 1
        return v

    def parse(self) -> Node:
        node = self.expr()
        if self.peek()[0] != "eof":
            raise PromQLError(f"unexpected {self.peek()[1]!r}")
        return node

    def labels(self) -> list[str]:
        self.take("(")
        out = []
        while self.peek()[1] != ")":
            out.append(self.take(kind="ident"))
            if self.peek()[1] == ",":
                self.take(",")
        self.take(")")
        return out

    def expr(self) -> Node:
        left = self.unary()
        while self.peek()[1] in BINARY:
            op = self.take()
            on = None
            if self.peek()[1] == "bool":
                self.take()
            if self.peek()[1] in ("on", "ignoring"):
                kind = self.take()
                names = self.labels()
                on = names if kind == "on" else None
            if self.peek()[1] in ("group_left", "group_right"):
                self.take()
                if self.peek()[1] == "(":
                    self.labels()
            left = Binary(op, left, self.unary(), on)
        return left

    def unary(self) -> Node:
        if self.peek()[1] in ("+", "-"):
            self.take()
            return self.unary()
        node = self.primary()
        while True:
            kind, value = self.peek()
            if kind == "range":
                self.take()
                if isinstance(node, Selector) and ":" not in value:
                    node.range = value[1:-1]
                else:
                    node = Call("<subquery>", [node])
            elif value == "offset":
                self.take()
                if self.peek()[1] == "-":
                    self.take()
                self.take(kind="dur")
            elif value == "@":
                self.take()
                if self.peek()[0] == "ident":  # start() / end()
                    self.take()
                    self.take("(")
                    self.take(")")
                else:
                    self.take(kind="num")
            else:
                return node

    def primary(self) -> Node:
        kind, value = self.peek()
        if kind in ("num", "str") or value.lower() in ("nan", "inf"):
            self.take()
            return Scalar()
        if value == "(":
            self.take()
            inner = self.expr()
            self.take(")")
            return inner
        if value == "{":
            raise PromQLError("a selector without a metric name")
        name = self.take(kind="ident")
        if name in AGGREGATIONS:
            grouping = None
            if self.peek()[1] in ("by", "without"):
                grouping = (self.take(), self.labels())
            args = self.args()
            if self.peek()[1] in ("by", "without"):
                grouping = (self.take(), self.labels())
            return Call(name, args, grouping)
        if self.peek()[1] == "(":
            if name not in FUNCTIONS:
                raise PromQLError(f"unknown function {name}()")
            return Call(name, self.args())
        selector = Selector(name)
        if self.peek()[1] == "{":
            self.take("{")
            while self.peek()[1] != "}":
                label = self.take(kind="ident")
                op = self.take()
                if op not in ("=", "!=", "=~", "!~"):
                    raise PromQLError(f"bad matcher operator {op!r}")
                text = self.take(kind="str")
                selector.matchers.append(
                    (label, op, json.loads(text) if text[0] == '"' else text[1:-1])
                )
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("}")
        return selector

    def args(self) -> list[Node]:
        self.take("(")
        out = []
        while self.peek()[1] != ")":
            out.append(self.expr())
            if self.peek()[1] == ",":
                self.take(",")
        self.take(")")
        return out


def parse(expr: str) -> Node:
    # Grafana's variables are durations (the only ones this dashboard may use)
    return Parser(re.sub(r"\$__(rate_interval|interval|range)", "5m", expr)).parse()


# ---------------------------------------------------------------- the checks


@dataclass
class Checker:
    series: dict[str, Series]
    domains: dict[str, set[str]]
    problems: list[str] = field(default_factory=list)

    def labels_of(self, node: Node) -> frozenset[str]:
        """The label names a node's result can have."""
        if isinstance(node, Selector):
            s = self.series.get(node.metric)
            return s.labels if s else frozenset()
        if isinstance(node, Call):
            vectors = [a for a in node.args if not isinstance(a, Scalar)]
            inner = frozenset().union(*(self.labels_of(a) for a in vectors))
            if node.name in AGGREGATIONS:
                if node.grouping is None:
                    return frozenset()
                kind, names = node.grouping
                return frozenset(names) if kind == "by" else inner - set(names)
            if node.name == "histogram_quantile":
                return inner - {"le"}
            return inner
        if isinstance(node, Binary):
            left, right = self.labels_of(node.left), self.labels_of(node.right)
            if node.op in ("and", "unless"):
                return left
            if isinstance(node.left, Scalar):
                return right
            return left | right if node.op == "or" else left
        return frozenset()

    def check(self, where: str, node: Node, parent: Node | None = None) -> None:
        if isinstance(node, Selector):
            self.selector(where, node, parent)
        elif isinstance(node, Call):
            vector = next((a for a in reversed(node.args) if not isinstance(a, Scalar)), None)
            if node.grouping and node.grouping[0] == "by" and vector is not None:
                have = self.labels_of(vector)
                for label in node.grouping[1]:
                    if label not in have:
                        self.problems.append(
                            f"{where}: {node.name} by ({label}): the series have only "
                            f"{sorted(have)}"
                        )
            if (
                node.name == "histogram_quantile"
                and vector is not None
                and "le" not in self.labels_of(vector)
            ):
                self.problems.append(f"{where}: histogram_quantile() without `le`")
            for arg in node.args:
                self.check(where, arg, node)
        elif isinstance(node, Binary):
            for label in node.on or []:
                for side in (node.left, node.right):
                    if label not in self.labels_of(side):
                        self.problems.append(f"{where}: on({label}) but a side lacks it")
            self.check(where, node.left, node)
            self.check(where, node.right, node)

    def selector(self, where: str, node: Selector, parent: Node | None) -> None:
        s = self.series.get(node.metric)
        if s is None:
            self.problems.append(f"{where}: {node.metric} is not exported by the operator")
            return
        for label, op, value in node.matchers:
            if label not in s.labels:
                self.problems.append(f"{where}: {node.metric} has no label {label!r}")
            elif label in self.domains:
                self.values(where, node.metric, label, op, value)
        in_function = isinstance(parent, Call) and parent.name in FUNCTIONS
        if node.range and not in_function:
            self.problems.append(f"{where}: range selector {node.metric}[...] outside a function")
        counter_read = (isinstance(parent, Call) and parent.name in COUNTER_FUNCTIONS) or (
            isinstance(parent, Binary) and parent.op in SET_OPERATORS
        )
        if s.monotonic and not counter_read:
            self.problems.append(f"{where}: counter {node.metric} read without rate()/increase()")
        if node.range is None and isinstance(parent, Call) and parent.name in COUNTER_FUNCTIONS:
            self.problems.append(f"{where}: {parent.name}({node.metric}) needs a range")

    def values(self, where: str, metric: str, label: str, op: str, value: str) -> None:
        known = self.domains[label]
        if op in ("=", "!="):
            wanted = [value]
        elif re.fullmatch(r"[\w|]+", value):
            wanted = value.split("|")  # a plain alternation: every branch must be real
        else:
            if not any(re.fullmatch(value, k) for k in known):
                self.problems.append(f"{where}: {metric}{{{label}{op}{value!r}}} matches nothing")
            return
        for v in wanted:
            if v not in known:
                self.problems.append(
                    f"{where}: {metric}{{{label}{op}...}}: {v!r} is not one of {sorted(known)}"
                )


@pytest.fixture
def checker(monkeypatch: pytest.MonkeyPatch) -> Checker:
    return Checker(
        exported(),
        {
            "phase": {p.value for p in Phase},
            "status": {s.value for s in BatchStatus},  # baton_step_duration_seconds
            "kind": item_kinds(monkeypatch),
        },
    )


# ---------------------------------------------------------------- tests


def test_the_registry_is_read_as_prometheus_sees_it(checker: Checker) -> None:
    s = checker.series
    assert s["baton_items_total"].labels == {"job", "step", "kind"}
    assert s["baton_items_total"].monotonic
    assert s["baton_executions"].labels == {"namespace", "job", "phase"}
    assert s["baton_step_duration_seconds_bucket"].labels == {"job", "step", "status", "le"}
    assert s["baton_reconcile_duration_seconds_count"].labels == frozenset()
    assert "process_resident_memory_bytes" in s and "baton_items" not in s
    assert checker.domains["kind"] == {"read", "written", "filtered", "skipped"}


def test_the_checker_finds_what_it_should(checker: Checker) -> None:
    bad = {
        "sum(rate(baton_item_total[5m]))": "not exported",
        "sum by (kind) (baton_executions)": "by (kind)",
        'baton_executions{phase="Complete"}': "'Complete' is not one of",
        'sum(baton_executions{phase=~"Failed|Compensation"})': "'Compensation'",
        'baton_executions{state="Failed"}': "no label 'state'",
        "sum(baton_items_total)": "without rate()",
        "histogram_quantile(0.9, sum by (job) (rate(baton_step_duration_seconds_bucket[5m])))": (
            "without `le`"
        ),
        "sum by (job) (sum by (phase) (baton_executions))": "by (job)",
        "rate(baton_items_total)": "needs a range",
        "sum(rat(baton_items_total[5m]))": "unknown function",
        "sum(baton_executions": "found 'the end'",
        'sum(increase(baton_items_total{kind="skiped"}[1h]))': "'skiped'",
    }
    for expr, problem in bad.items():
        checker.problems.clear()
        try:
            checker.check(expr, parse(expr))
        except PromQLError as e:
            checker.problems.append(str(e))
        assert any(problem in p for p in checker.problems), (expr, checker.problems)
    checker.problems.clear()
    good = 'sum((increase(baton_transitions_total{phase="Failed"}[1h]) and '
    good += 'baton_transitions_total offset 1h) or baton_transitions_total{phase="Failed"})'
    checker.check(good, parse(good))
    assert checker.problems == []


def test_every_query_names_real_metrics_labels_and_phases(checker: Checker) -> None:
    exprs = list(targets())
    assert len(exprs) >= 9
    for title, ref, expr in exprs:
        where = f"panel {title!r} {ref}: {expr}"
        try:
            node = parse(expr)
        except PromQLError as e:
            checker.problems.append(f"{where}: {e}")
            continue
        checker.check(where, node)
    assert checker.problems == [], "\n".join(checker.problems)


def _phase_values(expr: str) -> set[str]:
    out: set[str] = set()
    for m in re.finditer(r'phase\s*(=~|=)\s*"([^"]*)"', expr):
        out |= set(m.group(2).split("|"))
    return out


def test_failure_panels_count_every_failed_end() -> None:
    """A saga that compensated is a failed run: panels counting failures count it."""
    failed = {Phase.FAILED.value}
    for status in (BatchStatus.COMPENSATED, BatchStatus.COMPENSATION_FAILED):
        with contextlib.suppress(KeyError):  # a BatchStatus with no phase of its own
            failed.add(Phase.of(status).value)
    failure_panels = [
        p for p in dashboard()["panels"] if re.search(r"fail", p["title"], re.IGNORECASE)
    ]
    assert len(failure_panels) >= 2
    for panel in failure_panels:
        for target in panel["targets"]:
            assert failed <= _phase_values(target["expr"]), (panel["title"], target["expr"])


def test_is_a_grafana_dashboard() -> None:
    d = dashboard()
    assert re.fullmatch(r"[\w-]{1,40}", d["uid"]) and d["title"]
    assert isinstance(d["schemaVersion"], int)
    variables = {v["name"]: v for v in d["templating"]["list"]}
    ds = variables["datasource"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    panels = d["panels"]
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids) and all(isinstance(i, int) for i in ids)
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        assert p["title"] and p["type"] in ("timeseries", "stat", "gauge", "table", "bargauge")
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in "xywh"), p["title"]
        assert g["w"] >= 1 and g["h"] >= 1 and g["x"] >= 0 and g["y"] >= 0 and g["x"] + g["w"] <= 24
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(set(refs)) == len(refs), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip(), p["title"]
            assert t.get("datasource", p["datasource"]) == p["datasource"], p["title"]


def _helm() -> str | None:
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    env = Path(os.environ.get("E2E_STATE", "/var/lib/baton-e2e")) / "e2e.env"
    if env.is_file():
        for line in env.read_text().splitlines():
            if line.startswith("E2E_HELM=") and os.access(line.split("=", 1)[1], os.X_OK):
                return line.split("=", 1)[1]
    return shutil.which("helm")


def test_the_chart_ships_the_dashboard_unchanged() -> None:
    helm = _helm()
    if helm is None:
        pytest.skip("no helm (make cluster-up brings one, or set HELM)")
    chart = str(ROOT / "charts" / "baton")
    out = subprocess.run(
        [helm, "template", "baton", chart, "-n", "baton-system", "--show-only",
         "templates/dashboard.yaml", "--set", "database.url=postgresql://u:p@db/baton"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    cm = yaml.safe_load(out)
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["baton.json"]) == dashboard()
