"""PgBouncer (chart ``pgbouncer.enabled``): a fan-out whose step pods, running at once,
outnumber the connections PostgreSQL allows their role (``CONNECTION LIMIT``) completes
with every row written exactly once, because the step pods connect through the
release's PgBouncer in transaction mode and share its few server connections.

A release of its own (namespace pool-system, executions labelled baton.dev/release=pool)
whose database URL names a role made for this test, so the limit is the test's own and
the shared PostgreSQL is never restarted. That the same fan-out straight against
PostgreSQL fails with "too many connections for role" is shown by
tests/step/test_step_pgbouncer.py on the host (cheaper and deterministic there).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import yaml
from conftest import Database, Kubectl, Postgres

from .support import REPO, rows, wait_phase

pytestmark = pytest.mark.e2e

NAME, NS = "pool", "pool-system"  # the release (fullname pool-baton) and its namespace
LIMIT = 8  # the role's CONNECTION LIMIT: the operator's few + PgBouncer's POOL
POOL = 3
PARTS = 24  # step pods at once: three times the limit
COUNT = PARTS * 200


@pytest.fixture
def limited(postgres: Postgres) -> Iterator[Database]:
    """A role allowed LIMIT connections, owning a database of its own."""
    role = f"pool_{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    e = postgres.env
    postgres.sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}' CONNECTION LIMIT {LIMIT}")
    postgres.sql(f"GRANT {role} TO {e['E2E_DB_USER']}")  # to make it a database's owner
    postgres.sql(f"CREATE DATABASE {role} OWNER {role}")
    yield Database(role, e["E2E_DB_HOST"], e["E2E_DB_PORT"], role, password)
    if os.environ.get("E2E_KEEP_DATABASES") != "1":
        postgres.sql(f"DROP DATABASE IF EXISTS {role} WITH (FORCE)")
        postgres.sql(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture
def pooled_release(
    kubectl: Kubectl,
    helm: Callable[..., Any],
    project_image: str,
    e2e_env: dict[str, str],
    limited: Database,
) -> Iterator[Database]:
    pgbouncer = e2e_env.get("E2E_PGBOUNCER_IMAGE")
    if not pgbouncer:
        pytest.fail("no E2E_PGBOUNCER_IMAGE: run `make cluster-up` to build it", pytrace=False)
    repo, tag = project_image.split(":", 1)
    helm("uninstall", NAME, "-n", NS, "--wait", check=False)
    helm(
        "upgrade", "--install", NAME, str(REPO / "charts" / "baton"),
        "-n", NS, "--create-namespace",
        "--set", f"image.repository={repo}", "--set", f"image.tag={tag}",
        "--set", f"database.url={limited.url}",
        "--set", f"watch.labelSelector=baton.dev/release={NAME}",
        "--set", "rbac.aggregatedRoles=false",
        "--set", "pgbouncer.enabled=true",
        "--set", f"pgbouncer.image=docker.io/library/{pgbouncer}",
        "--set", "pgbouncer.pullPolicy=Never",
        "--set", f"pgbouncer.poolSize={POOL}",
        "--wait", "--timeout", "180s",
    )  # fmt: skip
    # this cluster has no DNS: the step pods get the Service's ClusterIP (pgbouncer.stepHost)
    service = kubectl.json("-n", NS, "get", "service", f"{NAME}-baton-pgbouncer")
    helm(
        "upgrade", NAME, str(REPO / "charts" / "baton"), "-n", NS, "--reuse-values",
        "--set", f"pgbouncer.stepHost={service['spec']['clusterIP']}",
        "--wait", "--timeout", "180s",
    )  # fmt: skip
    for deploy in (f"{NAME}-baton", f"{NAME}-baton-pgbouncer"):
        kubectl("-n", NS, "rollout", "status", f"deploy/{deploy}", "--timeout=180s", timeout=200)
    yield limited
    if os.environ.get("E2E_KEEP_NAMESPACES") != "1":
        helm("uninstall", NAME, "-n", NS, "--wait", check=False)
        kubectl("delete", "namespace", NS, "--wait=false", check=False)


def most_at_once(pods: list[dict[str, Any]]) -> int:
    """The most step containers that were running at the same moment (from their
    started and finished times, as Kubernetes recorded them)."""
    edges: list[tuple[datetime, int]] = []
    for p in pods:
        for c in p["status"].get("containerStatuses") or []:
            done = (c.get("state") or {}).get("terminated") or {}
            if done.get("startedAt") and done.get("finishedAt"):
                edges.append((datetime.fromisoformat(done["startedAt"]), 1))
                edges.append((datetime.fromisoformat(done["finishedAt"]), -1))
    running = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):  # an end before a start
        running += step
        peak = max(peak, running)
    return peak


def test_a_fan_out_wider_than_the_role_s_connection_limit_completes_through_pgbouncer(
    kubectl: Kubectl, namespace: str, postgres: Postgres, pooled_release: Database
) -> None:
    db = pooled_release
    kubectl(
        "-n", namespace, "create", "secret", "generic", "baton-db", f"--from-literal=url={db.url}"
    )  # fmt: skip
    doc = yaml.safe_load((REPO / "examples" / "numbers" / "partitioned.yaml").read_text())
    doc["metadata"]["name"] = "pooled"
    load = doc["spec"]["steps"][1]
    load["partitions"], load["parallelism"] = {"count": PARTS}, PARTS
    load["chunk"]["size"] = 20  # 10 checkpoints per pod
    kubectl.apply(doc, namespace)
    kubectl.apply(
        {
            "apiVersion": "baton.dev/v1alpha1",
            "kind": "BatchExecution",
            "metadata": {"name": "pooled-1", "labels": {"baton.dev/release": NAME}},
            "spec": {
                "job": "pooled",
                "parameters": {"count": COUNT, "delayMs": 75},
                "workingDir": "/opt/baton/examples/numbers",
            },
        },
        namespace,
    )
    wait_phase(kubectl, namespace, "pooled-1", "Completed", timeout=420)
    assert rows(postgres, db, COUNT) == (COUNT, COUNT)  # every row, each once
    selector = "baton.dev/execution=pooled-1,baton.dev/step=load"

    def succeeded() -> list[dict[str, Any]] | None:
        """The step pods once the kubelet has reported each one's end (it may lag the
        Job's own count)."""
        pods = kubectl.pods(namespace, selector)
        return pods if all(p["status"]["phase"] == "Succeeded" for p in pods) else None

    pods = kubectl.wait_until("the load pods reported Succeeded", succeeded, timeout=60)
    assert most_at_once(pods) > LIMIT  # more step pods at once than the role may connect
    # ... and each got its connection at once: one pod per partition, none waited for
    # the database (straight to PostgreSQL, the ninth would have been refused)
    assert len(pods) == PARTS
    for p in pods:
        log = kubectl.logs(namespace, p["metadata"]["name"])
        assert "database unavailable" not in log and "too many" not in log, log
    env = {e["name"]: e.get("value") for e in pods[0]["spec"]["containers"][0].get("env") or []}
    assert env["BATON_DB_POOLER"].endswith(":6432")  # sent through PgBouncer
