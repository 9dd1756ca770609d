"""The chart's Grafana dashboard in a real Prometheus: Debian's prometheus (installed by
``e2e/cluster up``) runs on this machine and scrapes the operator through the chart's
metrics Service while an execution completes and a saga compensates; then every query
of the dashboard is evaluated through Prometheus's HTTP API. None may error, and the
core panels must show what ran. (tests/operator/test_dashboard.py checks the same
queries statically against the operator's registry.)"""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Database, Kubectl

from .support import RELEASE, REPO, SYSTEM, apply_job, execution, wait_phase

pytestmark = pytest.mark.e2e

PROMETHEUS = Path("/usr/bin/prometheus")
DASHBOARD = REPO / "charts" / "baton" / "dashboards" / "baton.json"
PORT = 9090  # metrics.port in the chart's values


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:  # the API answers errors with a JSON body
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


@dataclass
class Prometheus:
    url: str
    target: str
    log: Path

    def api(self, path: str, **params: str) -> dict[str, Any]:
        query = urllib.parse.urlencode(params)
        code, body = http_get(f"{self.url}/api/v1/{path}?{query}", timeout=30)
        try:
            return dict(json.loads(body))
        except ValueError:
            raise AssertionError(f"/api/v1/{path}: HTTP {code}: {body[:500]}") from None

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("query", query=expr)

    def vector(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant query's series: (labels, value); fails on any error."""
        answer = self.query(expr)
        assert answer.get("status") == "success", (expr, answer)
        data = answer["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def value(self, expr: str) -> float:
        return sum(v for _, v in self.vector(expr))

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape_target(kubectl: Kubectl) -> str:
    """The metrics Service's ClusterIP (reached from this host through kube-proxy's
    iptables rules); the operator pod's own IP if that does not answer."""
    service = kubectl.get("service", f"{RELEASE}-metrics", SYSTEM)
    cluster_ip = f"{service['spec']['clusterIP']}:{PORT}"
    try:
        kubectl.wait_until(
            f"http://{cluster_ip}/metrics from the host",
            lambda: http_get(f"http://{cluster_ip}/metrics", timeout=3)[0] == 200,
            timeout=30,
        )
        return cluster_ip
    except AssertionError:
        pods = kubectl.pods(SYSTEM, "app.kubernetes.io/component=operator")
        ips = [p["status"]["podIP"] for p in pods if p["status"].get("podIP")]
        assert ips, "no operator pod IP"
        print(f"\nthe ClusterIP {cluster_ip} did not answer from the host; scraping pod {ips[0]}")
        return f"{ips[0]}:{PORT}"


@pytest.fixture
def prometheus(
    kubectl: Kubectl, operator: Database, e2e_env: dict[str, str], tmp_path: Path
) -> Iterator[Prometheus]:
    """Prometheus on this machine scraping the operator every second, target up."""
    if e2e_env.get("E2E_PROVIDER", "local") != "local":
        pytest.skip("Prometheus runs on this machine and scrapes a ClusterIP (local provider)")
    if not PROMETHEUS.exists():
        pytest.fail(f"{PROMETHEUS} missing: `make cluster-up` installs Debian's prometheus")
    target = scrape_target(kubectl)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "baton-operator",
                # The operator's series carry their own `job` (the BatchJob) and
                # `namespace` labels; without honor_labels Prometheus would rename them
                # exported_job / exported_namespace and the dashboard's `by (job)` would
                # group by this scrape job instead.
                "honor_labels": True,
                "static_configs": [{"targets": [target]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}", target, log)
    try:

        def ready() -> bool:
            assert proc.poll() is None, f"prometheus exited {proc.returncode}:\n{prom.tail()}"
            return http_get(f"{prom.url}/-/ready", timeout=2)[0] == 200

        kubectl.wait_until("Prometheus ready", ready, timeout=60, interval=0.5)

        def target_up() -> bool:
            active = prom.api("targets", state="active")["data"]["activeTargets"]
            return bool(active) and all(t["health"] == "up" for t in active)

        try:
            kubectl.wait_until(f"the scrape target {target} up", target_up, timeout=60)
        except AssertionError:
            print(json.dumps(prom.api("targets"), indent=2), "\n", prom.tail())
            raise
        yield prom
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(panel title, refId, expr), Grafana's interval variables made concrete."""
    out = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for t in panel.get("targets", []):
            expr = re.sub(r"\$__(rate_interval|interval|range)", "1m", t["expr"])
            out.append((panel["title"], t["refId"], expr))
    return out


def show(series: list[tuple[dict[str, str], float]]) -> str:
    if not series:
        return "no data"
    parts = []
    for labels, value in sorted(series, key=lambda s: sorted(s[0].items())):
        name = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__")
        parts.append(f"{{{name}}} {value:.4g}")
    return "; ".join(parts)


def test_every_dashboard_query_works_in_a_real_prometheus(
    kubectl: Kubectl, ns: str, prometheus: Prometheus
) -> None:
    count = 2000
    apply_job(kubectl, ns, "numbers")
    apply_job(kubectl, ns, "saga")
    # delayMs: the load step takes several of the operator's 2 s ticks, so its items
    # are counted in steps that Prometheus sees (throughput as a rate)
    execution(
        kubectl, ns, "counted", "count-numbers", {"count": count, "delayMs": 3},
        workingDir="/opt/baton/examples/numbers",
    )  # fmt: skip
    execution(
        kubectl, ns, "bob", "onboard-user", {"user": "dash", "failAt": "init-settings"},
        workingDir="/opt/baton/examples/saga",
    )  # fmt: skip
    assert wait_phase(kubectl, ns, "counted", "Completed", "Failed")["phase"] == "Completed"
    st = wait_phase(kubectl, ns, "bob", "Compensated", "CompensationFailed", "Failed")
    assert st["phase"] == "Compensated", st

    def scraped_the_end() -> bool:
        mine = f'namespace="{ns}"'
        return (
            prometheus.value(f'baton_executions{{{mine},phase="Completed"}}') >= 1
            and prometheus.value(f'baton_executions{{{mine},phase="Compensated"}}') >= 1
            and prometheus.value('baton_items_total{job="count-numbers",kind="written"}') >= count
        )

    kubectl.wait_until("Prometheus to scrape both ends", scraped_the_end, timeout=60)
    # the counter itself, as Prometheus stored it (>=: earlier scenarios of the session
    # may have counted with the same job)
    assert (
        prometheus.value('baton_items_total{job="count-numbers",step="load",kind="read"}') >= count
    )

    results: dict[tuple[str, str], list[tuple[dict[str, str], float]]] = {}
    print(f"\nPrometheus scraping {prometheus.target}:")
    for raw in ("baton_transitions_total", "baton_reconcile_errors_total"):
        print(f"  (raw {raw}: {show(prometheus.vector(raw))})")
    for title, ref, expr in dashboard_queries():
        answer = prometheus.query(expr)
        assert answer.get("status") == "success", (title, ref, expr, answer)
        assert not answer.get("warnings"), (title, ref, expr, answer)
        series = prometheus.vector(expr)
        results[(title, ref)] = series
        print(f"  {title} [{ref}]: {show(series)}")

    def panel(title: str, ref: str = "A") -> list[tuple[dict[str, str], float]]:
        assert (title, ref) in results, f"no panel {title!r} {ref} in the dashboard"
        return results[(title, ref)]

    def finite(series: list[tuple[dict[str, str], float]]) -> list[float]:
        return [v for _, v in series if not math.isnan(v)]

    by_phase = {labels.get("phase"): v for labels, v in panel("Executions by phase")}
    assert by_phase.get("Completed", 0) >= 1 and by_phase.get("Compensated", 0) >= 1, by_phase
    assert len(panel("Running executions")) == 1  # one number, whatever the replicas
    assert finite(panel("Failures (1h)")) and sum(finite(panel("Failures (1h)"))) >= 1
    rates = {
        labels["kind"]: v
        for labels, v in panel("Throughput: items/s")
        if labels.get("job") == "count-numbers"
    }
    assert rates.get("read", 0) > 0 and rates.get("written", 0) > 0, rates
    for title, ref in (
        ("Step duration p50/p95", "A"),
        ("Step duration p50/p95", "B"),
        ("Chunk duration p95", "A"),
    ):
        load = [
            s
            for s in panel(title, ref)
            if (s[0].get("job"), s[0].get("step")) == ("count-numbers", "load")
        ]
        assert finite(load) and finite(load)[0] > 0, (title, ref, panel(title, ref))
    compensated = [
        v
        for labels, v in panel("Failed / stopped transitions")
        if (labels.get("job"), labels.get("phase")) == ("onboard-user", "Compensated")
    ]
    assert compensated and compensated[0] >= 1, panel("Failed / stopped transitions")
    latency = finite(panel("Reconcile latency p95 and errors"))
    assert len(latency) == 1 and latency[0] > 0, panel("Reconcile latency p95 and errors")

    with_data = [key for key, series in results.items() if finite(series)]
    panels = {title for title, _ in results}
    print(
        f"MEASURE dashboard queries returning data in a real Prometheus: "
        f"{len(with_data)}/{len(results)} queries, "
        f"{len({t for t, _ in with_data})}/{len(panels)} panels "
        f"(without: {sorted(f'{t} [{r}]' for t, r in results if (t, r) not in with_data)})"
    )
