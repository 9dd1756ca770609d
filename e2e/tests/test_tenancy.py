"""Who may do what, whose rows are whose, and why a pod does not start (issue 11),
through kubectl and helm only: the chart's aggregated ClusterRoles decide who may read
or patch BatchExecutions; with ``tenants`` each namespace's step pods get a PostgreSQL
role that cannot read or write another namespace's rows; a step pod that cannot start
(its Secret missing) shows on its BatchExecution as condition PodsReady=False with the
pod's own reason until it starts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Database, Kubectl, Postgres

from .support import RELEASE, REPO, apply_job, execution, status, wait_phase

pytestmark = pytest.mark.e2e

STOP = json.dumps({"spec": {"stop": True}})


def bind(kubectl: Kubectl, ns: str, user: str, cluster_role: str) -> None:
    kubectl(
        "-n", ns, "create", "rolebinding", f"{user}-{cluster_role}",
        f"--clusterrole={cluster_role}", f"--user={user}",
    )  # fmt: skip


def patch_as(kubectl: Kubectl, ns: str, name: str, user: str) -> Any:
    return kubectl(
        "-n", ns, "patch", "bx", name, "--type", "merge", "-p", STOP, f"--as={user}",
        check=False,
    )  # fmt: skip


def test_baton_view_may_read_but_not_stop_baton_edit_may_stop(
    kubectl: Kubectl, namespace: str, operator: Database
) -> None:
    ns = namespace
    view, edit = f"{RELEASE}-view", f"{RELEASE}-edit"
    for role in (view, edit):
        labels = kubectl.json("get", "clusterrole", role)["metadata"]["labels"]
        assert labels["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    # a BatchExecution whose BatchJob does not exist: it waits (Pending), harmlessly
    execution(kubectl, ns, "idle", "no-such-job", {})
    bind(kubectl, ns, "vera", view)
    bind(kubectl, ns, "eddie", edit)
    assert kubectl.can_i("get", "batchexecutions.baton.dev", ns, as_user="vera")
    assert not kubectl.can_i("patch", "batchexecutions.baton.dev", ns, as_user="vera")
    assert kubectl.can_i("patch", "batchexecutions.baton.dev", ns, as_user="eddie")
    assert not kubectl.can_i("patch", "batchexecutions.baton.dev", ns, as_user="nobody")
    shown = kubectl("-n", ns, "get", "bx", "idle", "--as=vera", "-o", "json")
    assert json.loads(shown.stdout)["spec"]["job"] == "no-such-job"
    refused = patch_as(kubectl, ns, "idle", "vera")
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr
    assert not kubectl.get("bx", "idle", ns)["spec"].get("stop")
    done = patch_as(kubectl, ns, "idle", "eddie")
    assert done.returncode == 0, done.stderr
    assert kubectl.get("bx", "idle", ns)["spec"]["stop"] is True


def test_the_builtin_view_and_edit_roles_include_batons(
    kubectl: Kubectl, namespace: str, operator: Database
) -> None:
    """Aggregation: whoever may view or edit the namespace may read or patch too."""
    ns = namespace
    execution(kubectl, ns, "idle", "no-such-job", {})
    bind(kubectl, ns, "val", "view")
    bind(kubectl, ns, "ed", "edit")
    kubectl.wait_until(
        "baton's rules aggregated into edit",
        lambda: kubectl.can_i("patch", "batchexecutions.baton.dev", ns, as_user="ed"),
        timeout=60,
    )
    assert kubectl.can_i("list", "batchjobs.baton.dev", ns, as_user="val")
    assert patch_as(kubectl, ns, "idle", "val").returncode != 0
    assert patch_as(kubectl, ns, "idle", "ed").returncode == 0


def pods_ready(kubectl: Kubectl, ns: str, name: str) -> dict[str, Any] | None:
    found = status(kubectl, ns, name).get("conditions") or []
    return next((dict(c) for c in found if c["type"] == "PodsReady"), None)


def test_a_missing_secret_shows_as_a_condition_until_it_exists(
    kubectl: Kubectl, namespace: str, operator: Database
) -> None:
    ns = namespace  # no baton-db Secret here (the `ns` fixture would make one)
    apply_job(kubectl, ns, "numbers")
    execution(
        kubectl, ns, "nosecret", "count-numbers", {"count": 20},
        workingDir="/opt/baton/examples/numbers",
    )  # fmt: skip
    cond = kubectl.wait_until(
        "PodsReady=False",
        lambda: (c := pods_ready(kubectl, ns, "nosecret")) and c["status"] == "False" and c,
        timeout=120,
    )
    assert cond["reason"] == "CreateContainerConfigError", cond
    assert 'secret "baton-db" not found' in cond["message"], cond
    pod = cond["message"].split(":")[0]
    assert pod.startswith("nosecret-1-prepare"), cond
    assert status(kubectl, ns, "nosecret")["phase"] == "Running"
    events = kubectl("-n", ns, "get", "events", "--field-selector",
                     "involvedObject.name=nosecret", "-o", "json")  # fmt: skip
    reasons = {e["reason"] for e in json.loads(events.stdout)["items"]}
    assert "CreateContainerConfigError" in reasons
    # the Secret arrives: the kubelet starts the same pod, the condition clears
    kubectl(
        "-n", ns, "create", "secret", "generic", "baton-db",
        f"--from-literal=url={operator.url}",
    )  # fmt: skip
    cond = kubectl.wait_until(
        "PodsReady=True",
        lambda: (c := pods_ready(kubectl, ns, "nosecret")) and c["status"] == "True" and c,
        timeout=240,
    )
    assert (cond["reason"], cond["message"]) == ("Started", f"{pod}: started")
    wait_phase(kubectl, ns, "nosecret", "Completed")


# ---------------------------------------------------------------- per-namespace roles

PROBE = """
import json, os, sys
from sqlalchemy import create_engine, text
engine = create_engine(os.environ["URL"], isolation_level="AUTOCOMMIT")
theirs = {"e": int(sys.argv[1])}
out = {}
with engine.connect() as c:
    out["user"] = c.execute(text("SELECT current_user")).scalar()
    out["namespaces"] = sorted(
        c.execute(text("SELECT namespace FROM baton_job_instance")).scalars().all()
    )
    out["executions"] = c.execute(text("SELECT count(*) FROM baton_job_execution")).scalar()
    out["updated"] = c.execute(
        text("UPDATE baton_job_execution SET exit_description = 'x' WHERE id = :e"), theirs
    ).rowcount
    try:
        c.execute(text(
            "INSERT INTO baton_job_execution_param (execution_id, name, type, value, "
            "identifying) VALUES (:e, 'x', 'str', 'y', false)"), theirs)
        out["insert"] = "allowed"
    except Exception as e:
        out["insert"] = str(e).splitlines()[0]
print(json.dumps(out))
"""


@pytest.fixture
def team_b(kubectl: Kubectl) -> Iterator[str]:
    name = f"e2e-team-b-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", name)
    kubectl.wait_until(
        f"the default ServiceAccount in {name}",
        lambda: kubectl("-n", name, "get", "sa", "default", check=False).returncode == 0,
        timeout=60,
    )
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def probe_pod(ns: str, image: str, theirs: int) -> dict[str, Any]:
    """A pod of the tenant (its step pods' Secret) that tries to read and write the
    other namespace's rows."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-c", PROBE, str(theirs)],
                    "env": [
                        {
                            "name": "URL",
                            "valueFrom": {"secretKeyRef": {"name": "baton-db", "key": "url"}},
                        }
                    ],
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                }
            ],
        },
    }


def test_a_tenants_pod_cannot_touch_another_namespaces_rows(
    kubectl: Kubectl,
    helm: Callable[..., Any],
    project_image: str,
    namespace: str,
    team_b: str,
    operator: Database,
    new_database: Callable[[], Database],
    postgres: Postgres,
) -> None:
    """Each namespace's step pods run as its own PostgreSQL role (the chart's tenants):
    both executions complete; a team-a pod that reads team-b's rows gets none, and its
    writes to them are refused by PostgreSQL."""
    team_a = namespace
    repo, tag = project_image.split(":", 1)
    # a release of its own, with its own database (its tenants' roles own schemas there
    # and nothing of the session's database is touched), owning the executions labelled
    # with its name; the session's operator leaves those alone
    db = new_database()
    release = f"tenancy-{uuid.uuid4().hex[:5]}"
    helm(
        "install", release, str(REPO / "charts" / "baton"), "-n", team_a,
        "--set", f"image.repository={repo}", "--set", f"image.tag={tag}",
        "--set", f"database.url={db.url}",
        "--set", f"watch.labelSelector=baton.dev/release={release}",
        # a shard: its watches narrowed to the two namespaces (kopf --namespace each)
        "--set", f"watch.namespaces={{{team_a},{team_b}}}",
        "--set", "rbac.aggregatedRoles=false", "--set", "admission.parameterPolicy=false",
        "--set", f"tenants[0].namespace={team_a}", "--set", f"tenants[1].namespace={team_b}",
        "--wait", "--timeout", "180s",
    )  # fmt: skip
    try:
        ids = {}
        for ns, count in ((team_a, 20), (team_b, 30)):
            url = kubectl.get("secret", "baton-db", ns)["data"]["url"]
            assert url  # made by the chart, with the namespace's own role
            apply_job(kubectl, ns, "numbers")
            kubectl.apply(
                {
                    "apiVersion": "baton.dev/v1alpha1",
                    "kind": "BatchExecution",
                    "metadata": {"name": "tenant", "labels": {"baton.dev/release": release}},
                    "spec": {
                        "job": "count-numbers",
                        "parameters": {"count": count},
                        "workingDir": "/opt/baton/examples/numbers",
                    },
                },
                ns,
            )
        for ns in (team_a, team_b):
            ids[ns] = wait_phase(kubectl, ns, "tenant", "Completed")["jobExecutionId"]
        kubectl.apply(probe_pod(team_a, project_image, ids[team_b]), team_a)
        kubectl.wait_until(
            "the probe pod ended",
            lambda: (
                kubectl.get("pod", "probe", team_a)["status"].get("phase")
                in ("Succeeded", "Failed")
            ),
            timeout=120,
        )
        logs = kubectl.logs(team_a, "probe")
        found = json.loads(logs.strip().splitlines()[-1])
        assert found["user"] == "baton_" + team_a.replace("-", "_"), found
        assert found["namespaces"] == [team_a], found  # team-b's instance is invisible
        assert found["executions"] == 1, found
        assert found["updated"] == 0, found
        assert "row-level security" in found["insert"], found
    finally:
        helm("uninstall", release, "-n", team_a, "--wait", check=False)
        for ns in (team_a, team_b):  # roles are cluster-wide in PostgreSQL: not left behind
            role = "baton_" + ns.replace("-", "_")
            postgres.sql(
                f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
                f"GRANT {role} TO CURRENT_USER; DROP OWNED BY {role}; DROP ROLE {role}; "
                f"DROP SCHEMA IF EXISTS {role} CASCADE; END IF; END $$",
                db.name,
            )
