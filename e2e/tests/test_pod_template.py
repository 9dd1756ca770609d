"""The typed pod template in the real cluster: the API server validates it with the
real Kubernetes schemas, and what it sets reaches the step pods."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from conftest import Kubectl

from .support import REPO, apply_crds, execution, status, wait_phase

pytestmark = pytest.mark.e2e

EXAMPLES = "/opt/baton/examples"
GPU = "example.com/gpu"


@pytest.fixture(scope="module", autouse=True)
def current_crds(kubectl: Kubectl) -> None:
    apply_crds(kubectl)


def job(name: str, steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "baton.dev/v1alpha1",
        "kind": "BatchJob",
        "metadata": {"name": name},
        "spec": {"steps": steps, **spec},
    }


def test_a_bad_toleration_is_refused_at_apply(kubectl: Kubectl, ns: str) -> None:
    bad = job(
        "bad-tol",
        [{"name": "a", "tasklet": "m:f"}],
        template={"spec": {"tolerations": [{"key": "k", "operator": "Bogus"}]}},
    )
    r = kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(bad), check=False)
    assert r.returncode != 0 and "spec.template.spec.tolerations[0].operator" in r.stderr
    assert "Unsupported value" in r.stderr and "Bogus" in r.stderr, r.stderr
    ours = job(
        "bad-env",
        [{"name": "a", "tasklet": "m:f"}],
        template={"spec": {"env": [{"name": "BATON_DB_URL", "value": "x"}]}},
    )
    r = kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(ours), check=False)
    assert r.returncode != 0 and "env names BATON_* are Baton's" in r.stderr, r.stderr
    explain = kubectl("explain", "bj.spec.template.spec.tolerations").stdout
    assert "operator" in explain and "tolerationSeconds" in explain


def test_env_from_a_secret_and_a_mounted_configmap(
    kubectl: Kubectl, ns: str, operator: Any
) -> None:
    for part in ("configmap", "secret", "job", "execution"):
        kubectl.apply(yaml.safe_load((REPO / "examples/mounted" / f"{part}.yaml").read_text()), ns)
    st = wait_phase(kubectl, ns, "mounted-prices-1", "Completed", "Failed")
    assert st["phase"] == "Completed", st
    steps = {s["name"]: s for s in st["steps"]}
    assert steps["load"]["readCount"] == 3 and steps["load"]["writeCount"] == 3, steps
    pods = kubectl.pods(ns, "baton.dev/execution=mounted-prices-1")
    assert pods and all(p["metadata"]["labels"]["app"] == "mounted-prices" for p in pods)
    load = next(p for p in pods if p["metadata"]["labels"]["baton.dev/step"] == "load")
    step = load["spec"]["containers"][0]
    assert step["envFrom"] == [{"secretRef": {"name": "prices-api"}}]
    assert step["resources"]["limits"]["memory"] == "256Mi"
    assert step["securityContext"]["readOnlyRootFilesystem"] is True
    assert load["metadata"]["annotations"]["example.com/requested-by"] == "readme"
    # parameters[].valueFrom: the Secret's value reached the step (check_credential compared
    # it) by reference only; the ConfigMap's is an ordinary, identifying parameter
    token = {"name": "BATON_SECRET_PARAM_APITOKEN"}
    token["valueFrom"] = {"secretKeyRef": {"name": "prices-api", "key": "PRICES_API_TOKEN"}}
    assert token in step["env"]
    events = kubectl("-n", ns, "get", "events", "-o", "json").stdout
    shown = json.dumps(st) + events + json.dumps(pods)
    assert "not-a-real-token" not in shown
    changed = kubectl(
        "-n", ns, "patch", "bx", "mounted-prices-1", "--type", "merge", "-p",
        '{"spec":{"template":{"metadata":{"annotations":{"a":"b"}}}}}', check=False,
    )  # fmt: skip
    assert changed.returncode != 0 and "spec.template is immutable" in changed.stderr


@pytest.fixture
def gpu_node(kubectl: Kubectl) -> Iterator[str]:
    """The node labelled, tainted NoSchedule and given one example.com/gpu; all undone."""
    node = kubectl.json("get", "nodes")["items"][0]["metadata"]["name"]
    path = "/status/capacity/example.com~1gpu"
    kubectl("label", "node", node, "example.com/gpu-node=true", "--overwrite")
    kubectl("patch", "node", node, "--subresource=status", "--type=json",
            "-p", json.dumps([{"op": "add", "path": path, "value": "1"}]))  # fmt: skip
    kubectl("taint", "node", node, f"{GPU}=true:NoSchedule", "--overwrite")
    try:
        yield node
    finally:
        kubectl("taint", "node", node, f"{GPU}=true:NoSchedule-", check=False)
        kubectl("label", "node", node, "example.com/gpu-node-", check=False)
        kubectl("patch", "node", node, "--subresource=status", "--type=json", "-p",
                json.dumps([{"op": "remove", "path": path}]), check=False)  # fmt: skip


def test_a_gpu_step_with_a_toleration_runs_on_the_tainted_node(
    kubectl: Kubectl, ns: str, operator: Any, gpu_node: str
) -> None:
    gpu = {
        "nodeSelector": {"example.com/gpu-node": "true"},
        "resources": {"limits": {GPU: "1"}},
        "tolerations": [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}],
    }
    steps = [
        {"name": "train", "tasklet": "counting:prepare", "template": {"spec": gpu}},
        {"name": "small", "tasklet": "counting:check"},
    ]
    params = [{"name": "count", "type": "int"}]
    kubectl.apply(job("gpu-job", steps, parameters=params), ns)
    execution(kubectl, ns, "gpu", "gpu-job", {"count": 1}, workingDir=f"{EXAMPLES}/numbers")

    def small_unschedulable() -> dict[str, Any] | None:
        pods = kubectl.pods(ns, "baton.dev/execution=gpu,baton.dev/step=small")
        conds = pods[0]["status"].get("conditions", []) if pods else []
        blocked = any(c["type"] == "PodScheduled" and c["status"] == "False" for c in conds)
        return pods[0] if blocked else None

    pending = kubectl.wait_until("step small unschedulable", small_unschedulable, timeout=180)

    def train_done() -> bool:
        steps = {s["name"]: s["status"] for s in status(kubectl, ns, "gpu").get("steps", [])}
        return steps.get("train") == "COMPLETED"

    kubectl.wait_until("step train COMPLETED in the status", train_done, timeout=60)
    train = kubectl.pods(ns, "baton.dev/execution=gpu,baton.dev/step=train")[0]
    assert train["spec"]["nodeName"] == gpu_node
    assert train["spec"]["containers"][0]["resources"]["limits"][GPU] == "1"
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in train["spec"][
        "tolerations"
    ]
    cond = next(c for c in pending["status"]["conditions"] if c["type"] == "PodScheduled")
    assert cond["reason"] == "Unschedulable" and "untolerated taint" in cond["message"], cond
    assert GPU not in json.dumps(pending["spec"]["containers"][0]["resources"])
    kubectl("taint", "node", gpu_node, f"{GPU}=true:NoSchedule-")
    st = wait_phase(kubectl, ns, "gpu", "Completed", "Failed")
    assert st["phase"] == "Completed", status(kubectl, ns, "gpu")
