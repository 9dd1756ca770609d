"""Scenarios on the bare cluster (no operator yet), driven with kubectl only."""

from __future__ import annotations

import re
import textwrap
from typing import Any

import pytest
from conftest import Database, Kubectl, Postgres

pytestmark = pytest.mark.e2e


def job(
    name: str,
    image: str,
    *,
    command: list[str] | None = None,
    args: list[str] | None = None,
    spec: dict[str, Any] | None = None,
    env: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image, "imagePullPolicy": "IfNotPresent"}
    if command is not None:
        container["command"] = command
    if args is not None:
        container["args"] = args
    if env:
        container["env"] = env
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 600,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 2,
                    "containers": [container],
                }
            },
            **(spec or {}),
        },
    }


def test_baton_run_job_completes_against_host_postgres(
    kubectl: Kubectl, namespace: str, project_image: str, database: Database, postgres: Postgres
) -> None:
    """The project image's `baton run` of the orders example, as a batch/v1
    Job, runs to COMPLETED against the host's PostgreSQL."""
    kubectl.apply(
        job(
            "orders",
            project_image,
            args=["run", "examples/orders/job.yaml", "-p", "date=2026-01-01", "--no-progress"],
            env=[{"name": "BATON_DB_URL", "value": database.url}],
        ),
        namespace,
    )
    kubectl.wait_for_job(namespace, "orders", timeout=300)
    logs = kubectl.job_logs(namespace, "orders")
    assert "COMPLETED" in logs, logs
    # The job repository really is in the host database, and says COMPLETED.
    status = postgres.sql(
        "SELECT string_agg(status, ',') FROM baton_job_execution", dbname=database.name
    )
    assert status == "COMPLETED", status
    written = postgres.sql(
        "SELECT coalesce(sum(write_count), 0) FROM baton_step_execution", dbname=database.name
    )
    assert int(written) > 0, f"no items written: {written}"


def test_indexed_job_sees_completion_index(kubectl: Kubectl, namespace: str, image: str) -> None:
    """An Indexed Job of 4 completions: each pod sees its JOB_COMPLETION_INDEX."""
    kubectl.apply(
        job(
            "indexed",
            image,
            command=["sh", "-c", 'echo "index=$JOB_COMPLETION_INDEX"'],
            spec={
                "completions": 4,
                "parallelism": 2,
                "completionMode": "Indexed",
                "backoffLimit": 2,
            },
        ),
        namespace,
    )
    done = kubectl.wait_for_job(namespace, "indexed", timeout=180)
    assert done["status"]["succeeded"] == 4
    seen = {}
    for pod in kubectl.pods(namespace, "job-name=indexed"):
        if pod["status"]["phase"] != "Succeeded":
            continue
        out = kubectl.logs(namespace, pod["metadata"]["name"])
        m = re.search(r"index=(\d+)", out)
        assert m, out
        annotation = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert m.group(1) == annotation
        seen[int(m.group(1))] = pod["metadata"]["name"]
    assert sorted(seen) == [0, 1, 2, 3], seen


def test_deleted_pod_is_replaced_and_job_completes(
    kubectl: Kubectl, namespace: str, image: str
) -> None:
    """A Job's pod deleted mid-run is replaced by a new pod; the Job completes."""
    kubectl.apply(
        job(
            "sleeper",
            image,
            command=["sh", "-c", "echo started; sleep 12; echo finished"],
            spec={"backoffLimit": 3},
        ),
        namespace,
    )

    def running_pod() -> dict[str, Any] | None:
        for pod in kubectl.pods(namespace, "job-name=sleeper"):
            if pod["status"].get("phase") == "Running" and not pod["metadata"].get(
                "deletionTimestamp"
            ):
                return pod
        return None

    first = kubectl.wait_until("the first sleeper pod running", running_pod, timeout=90)
    first_uid = first["metadata"]["uid"]
    kubectl(
        "-n",
        namespace,
        "delete",
        "pod",
        first["metadata"]["name"],
        "--grace-period=1",
        "--wait=false",
    )

    def replacement() -> dict[str, Any] | None:
        for pod in kubectl.pods(namespace, "job-name=sleeper"):
            if pod["metadata"]["uid"] != first_uid:
                return pod
        return None

    second = kubectl.wait_until("a replacement pod", replacement, timeout=60)
    assert second["metadata"]["name"] != first["metadata"]["name"]
    done = kubectl.wait_for_job(namespace, "sleeper", timeout=120)
    assert done["status"]["succeeded"] == 1
    assert "finished" in kubectl.logs(namespace, second["metadata"]["name"])


def test_rbac_is_enforced_for_a_plain_service_account(
    kubectl: Kubectl, namespace: str, image: str
) -> None:
    """RBAC is real: a ServiceAccount with no bindings may do nothing, one
    bound to a Role may do exactly that, from kubectl and from inside a pod
    (through the API service IP)."""
    plain = f"system:serviceaccount:{namespace}:plain"
    reader = f"system:serviceaccount:{namespace}:reader"
    kubectl("-n", namespace, "create", "serviceaccount", "plain")
    kubectl("-n", namespace, "create", "serviceaccount", "reader")
    kubectl("-n", namespace, "create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
    kubectl(
        "-n",
        namespace,
        "create",
        "rolebinding",
        "reader-pods",
        "--role=pod-reader",
        f"--serviceaccount={namespace}:reader",
    )

    assert kubectl.can_i("create", "pods", namespace), "the admin must be allowed (control)"
    assert not kubectl.can_i("create", "pods", namespace, as_user=plain)
    assert not kubectl.can_i("list", "secrets", namespace, as_user=plain)
    assert not kubectl.can_i("list", "pods", namespace, as_user=plain)
    assert kubectl.can_i("list", "pods", namespace, as_user=reader)
    assert not kubectl.can_i("list", "secrets", namespace, as_user=reader)
    denied = kubectl("-n", namespace, "get", "secrets", f"--as={plain}", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied

    # From inside the cluster: the reader's token against https://10.96.0.1
    # (kube-proxy) may list pods but not secrets.
    probe = textwrap.dedent(
        """
        import json, os, ssl, urllib.request, urllib.error
        sa = "/var/run/secrets/kubernetes.io/serviceaccount"
        ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
        token = open(sa + "/token").read()
        ns = open(sa + "/namespace").read()
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        for res in ("pods", "secrets"):
            req = urllib.request.Request(f"https://{host}/api/v1/namespaces/{ns}/{res}",
                                         headers={"Authorization": "Bearer " + token})
            try:
                code = urllib.request.urlopen(req, context=ctx, timeout=10).status
            except urllib.error.HTTPError as e:
                code = e.code
            print(f"{res}={code}")
        """
    )
    manifest = job("probe", image, command=["python3", "-c", probe])
    manifest["spec"]["template"]["spec"]["serviceAccountName"] = "reader"
    kubectl.apply(manifest, namespace)
    kubectl.wait_for_job(namespace, "probe", timeout=120)
    out = kubectl.job_logs(namespace, "probe")
    assert "pods=200" in out and "secrets=403" in out, out
