"""Helpers of the operator scenarios: kubectl and SQL, as a user would use them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from conftest import Database, Kubectl, Postgres

REPO = Path(__file__).resolve().parents[2]
RELEASE = "baton"
SYSTEM = "baton-system"
LOGS_URL = "https://logs.example/explore?q={app=%22x%22}&ns={namespace}&bx={execution}&s={step}"


def apply_job(kubectl: Kubectl, ns: str, example: str) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "examples" / example / "job.yaml").read_text())
    kubectl.apply(doc, ns)
    return dict(doc)


def execution(
    kubectl: Kubectl, ns: str, name: str, job: str, params: dict[str, Any], **spec: Any
) -> None:
    kubectl.apply(
        {
            "apiVersion": "baton.dev/v1alpha1",
            "kind": "BatchExecution",
            "metadata": {"name": name},
            "spec": {"job": job, "parameters": params, **spec},
        },
        ns,
    )


def status(kubectl: Kubectl, ns: str, name: str) -> dict[str, Any]:
    return dict(kubectl.get("bx", name, ns).get("status") or {})


def wait_phase(
    kubectl: Kubectl, ns: str, name: str, *phases: str, timeout: float = 240
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        st = status(kubectl, ns, name)
        return st if st.get("phase") in phases else None

    try:
        return dict(kubectl.wait_until(f"{name} in {phases}", check, timeout=timeout))
    except AssertionError:
        print(json.dumps(status(kubectl, ns, name), indent=2))
        print(operator_logs(kubectl))
        raise


def wait_condition(
    kubectl: Kubectl, ns: str, name: str, type_: str, *, status_: str = "False", reason: str = ""
) -> dict[str, Any]:
    """Until the execution has condition ``type_`` with this status (and reason)."""

    def check() -> dict[str, Any] | None:
        for c in status(kubectl, ns, name).get("conditions") or []:
            if c["type"] == type_ and c["status"] == status_ and reason in (c["reason"], ""):
                return dict(c)
        return None

    return dict(kubectl.wait_until(f"{name}: condition {type_}={status_}", check, timeout=60))


def operator_logs(kubectl: Kubectl) -> str:
    return kubectl("-n", SYSTEM, "logs", "deploy/baton", "--tail=200", check=False).stdout


def patch(kubectl: Kubectl, ns: str, name: str, spec: dict[str, Any]) -> None:
    kubectl("-n", ns, "patch", "bx", name, "--type", "merge", "-p", json.dumps({"spec": spec}))


def rows(postgres: Postgres, db: Database, count: int) -> tuple[int, int]:
    out = postgres.sql(
        f"SELECT count(*), count(DISTINCT n) FROM numbers WHERE count_to = {count}", db.name
    )
    total, distinct = out.split("|")
    return int(total), int(distinct)


def jobs(kubectl: Kubectl, ns: str) -> list[str]:
    return sorted(j["metadata"]["name"] for j in kubectl.json("-n", ns, "get", "jobs")["items"])


def apply_crds(kubectl: Kubectl, timeout: float = 60) -> None:
    """This checkout's CRDs applied and Established.

    Helm installs CRDs but never upgrades them, so apply them first, as a user
    upgrading the chart must (server-side: the BatchJob CRD is large). A CRD just
    created has no status yet, and `kubectl wait --for=condition=Established` fails
    on it instead of waiting, so poll the condition.
    """
    kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"), timeout=120
    )  # fmt: skip
    names = [
        f"{doc['spec']['names']['plural']}.{doc['spec']['group']}"
        for path in sorted((REPO / "crds").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    established = 'jsonpath={.status.conditions[?(@.type=="Established")].status}'
    for name in names:
        kubectl.wait_until(
            f"CRD {name} Established",
            lambda n=name: kubectl("get", "crd", n, "-o", established).stdout == "True",
            timeout=timeout,
            interval=0.5,
        )


def install_operator(
    kubectl: Kubectl, helm: Callable[..., Any], project_image: str, db: Database
) -> None:
    """The chart installed (CRDs, RBAC, operator Deployment) and its operator ready."""
    repo, tag = project_image.split(":", 1)
    apply_crds(kubectl)
    helm(
        "upgrade", "--install", RELEASE, str(REPO / "charts" / "baton"),
        "-n", SYSTEM, "--create-namespace",
        "--set", f"image.repository={repo}", "--set", f"image.tag={tag}",
        "--set", f"database.url={db.url}",
        "--set", "operator.logLevel=debug",
        # executions labelled baton.dev/release belong to other releases (test_namespaces)
        "--set", "watch.labelSelector=!baton.dev/release",
        "--set-string", f"logs.urlTemplate={LOGS_URL}",  # status.logs (test_logs)
        "--wait", "--timeout", "180s",
    )  # fmt: skip
    kubectl("-n", SYSTEM, "rollout", "status", "deploy/baton", "--timeout=180s", timeout=200)


def step_processes(execution_id: int, index: int | None = None) -> list[int]:
    """PIDs (on this node) of the step pods' `baton step EXECUTION_ID load` processes
    whose Indexed Job index is ``index`` (any, for None)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        mine = b"step" in cmd and str(execution_id).encode() in cmd and b"load" in cmd
        if mine and (index is None or f"JOB_COMPLETION_INDEX={index}".encode() in env):
            pids.append(int(proc.name))
    return pids
