"""Namespaces and releases (issue 11), through kubectl, helm and the baton CLI only:
two namespaces run the same BatchJob name with the same parameters and both complete,
each with its own instance; a second release with its own database and a label
selector runs its executions, and neither operator touches the other's — an execution
that the first release comes to see (its label removed) stays as the second left it,
with a ForeignExecution event."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Database, Kubectl, Postgres

from .support import REPO, apply_job, execution, status, wait_phase

pytestmark = pytest.mark.e2e

SECOND = "second"  # the second release (fullname second-baton), in its own namespace
SECOND_NS = "baton-second"
LABEL = "baton.dev/release"
WD = "/opt/baton/examples/numbers"


def make_namespace(kubectl: Kubectl, name: str, db: Database) -> None:
    kubectl("create", "namespace", name)
    kubectl.wait_until(
        f"the default ServiceAccount in {name}",
        lambda: kubectl("-n", name, "get", "sa", "default", check=False).returncode == 0,
        timeout=60,
    )
    kubectl(
        "-n", name, "create", "secret", "generic", "baton-db", f"--from-literal=url={db.url}"
    )  # fmt: skip


@pytest.fixture
def second_ns(kubectl: Kubectl, ns: str, operator: Database) -> Iterator[str]:
    """Another namespace for the test, with the first release's database Secret (``ns``,
    the test's own namespace, has one too)."""
    name = f"{ns[:50]}-b"
    make_namespace(kubectl, name, operator)
    yield name
    if os.environ.get("E2E_KEEP_NAMESPACES") != "1":
        kubectl("delete", "namespace", name, "--wait=false", check=False)


def baton(kubectl: Kubectl, *args: str) -> Any:
    """The baton CLI against the cluster, as JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", "baton", *args, "--kubeconfig", kubectl.kubeconfig, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_two_namespaces_same_job_and_parameters_both_complete(
    kubectl: Kubectl, ns: str, second_ns: str, operator: Database, postgres: Postgres
) -> None:
    teams = (ns, second_ns)
    for t in teams:
        apply_job(kubectl, t, "numbers")
        execution(kubectl, t, "etl", "count-numbers", {"count": 60}, workingDir=WD)
    done = [wait_phase(kubectl, t, "etl", "Completed", "Rejected", "Failed") for t in teams]
    assert [st["phase"] for st in done] == ["Completed", "Completed"], done
    assert done[0]["instanceId"] != done[1]["instanceId"]
    assert done[0]["repositoryId"] == done[1]["repositoryId"]
    rows = postgres.sql(
        "SELECT namespace, count(*) FROM baton_job_instance "
        f"WHERE job_name = 'count-numbers' AND namespace IN ('{ns}', '{second_ns}') "
        "GROUP BY namespace ORDER BY namespace",
        operator.name,
    )
    assert sorted(rows.splitlines()) == sorted(f"{t}|1" for t in teams)
    # the CLI, like kubectl, lists one namespace's BatchExecutions
    for t, st in zip(teams, done, strict=True):
        listed = baton(kubectl, "executions", "--namespace", t)
        assert [(o["metadata"]["name"], o["status"]["jobExecutionId"]) for o in listed] == [
            ("etl", st["jobExecutionId"])
        ]
    everywhere = baton(kubectl, "executions", "-A", "--limit", "1000")
    found = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in everywhere}
    assert {(t, "etl") for t in teams} <= found


@pytest.fixture
def second_release(
    kubectl: Kubectl,
    helm: Callable[..., Any],
    project_image: str,
    new_database: Callable[[], Database],
    operator: Database,
) -> Iterator[Database]:
    """A second release in its own namespace with its own database, owning the
    executions labelled baton.dev/release=second (the first owns the unlabelled)."""
    db = new_database()
    repo, tag = project_image.split(":", 1)
    helm("uninstall", SECOND, "-n", SECOND_NS, "--wait", check=False)
    helm(
        "upgrade", "--install", SECOND, str(REPO / "charts" / "baton"),
        "-n", SECOND_NS, "--create-namespace",
        "--set", f"image.repository={repo}", "--set", f"image.tag={tag}",
        "--set", f"database.url={db.url}",
        "--set", f"watch.labelSelector={LABEL}={SECOND}",
        "--set", "rbac.aggregatedRoles=false",
        "--wait", "--timeout", "180s",
    )  # fmt: skip
    kubectl("-n", SECOND_NS, "rollout", "status", f"deploy/{SECOND}-baton", "--timeout=180s")
    yield db
    if os.environ.get("E2E_KEEP_NAMESPACES") != "1":
        helm("uninstall", SECOND, "-n", SECOND_NS, "--wait", check=False)
        kubectl("delete", "namespace", SECOND_NS, "--wait=false", check=False)


def test_two_releases_leave_each_others_executions_alone(
    kubectl: Kubectl,
    ns: str,
    second_ns: str,
    operator: Database,
    second_release: Database,
    postgres: Postgres,
) -> None:
    ns_a, ns_b = ns, second_ns
    # the second release's step pods read its own database
    kubectl("-n", ns_b, "delete", "secret", "baton-db")
    kubectl(
        "-n", ns_b, "create", "secret", "generic", "baton-db",
        f"--from-literal=url={second_release.url}",
    )  # fmt: skip
    for each in (ns_a, ns_b):
        apply_job(kubectl, each, "numbers")
    execution(kubectl, ns_a, "first", "count-numbers", {"count": 30}, workingDir=WD)
    kubectl.apply(
        {
            "apiVersion": "baton.dev/v1alpha1",
            "kind": "BatchExecution",
            "metadata": {"name": "second", "labels": {LABEL: SECOND}},
            "spec": {"job": "count-numbers", "parameters": {"count": 30}, "workingDir": WD},
        },
        ns_b,
    )
    a = wait_phase(kubectl, ns_a, "first", "Completed", "Failed", "Rejected")
    b = wait_phase(kubectl, ns_b, "second", "Completed", "Failed", "Rejected")
    assert (a["phase"], b["phase"]) == ("Completed", "Completed")
    assert a["repositoryId"] != b["repositoryId"]
    for db, other in ((operator, ns_b), (second_release, ns_a)):
        rows = postgres.sql(
            f"SELECT count(*) FROM baton_job_instance WHERE namespace = '{other}'", db.name
        )
        assert rows == "0", (db.name, other)
    # the first release now sees the second's execution: it leaves it as it is
    kubectl("-n", ns_b, "label", "bx", "second", f"{LABEL}-")
    kubectl.wait_until(
        "a ForeignExecution event",
        lambda: (
            "ForeignExecution"
            in kubectl(
                "-n", ns_b, "get", "events", "--field-selector", "involvedObject.name=second"
            ).stdout
        ),
        timeout=60,
    )
    keys = ("phase", "jobExecutionId", "instanceId", "repositoryId", "attempt")
    after = status(kubectl, ns_b, "second")
    assert [after.get(k) for k in keys] == [b.get(k) for k in keys]
    rows = postgres.sql(
        f"SELECT count(*) FROM baton_job_instance WHERE namespace = '{ns_b}'", operator.name
    )
    assert rows == "0"  # nothing launched by the first release
