"""The scale bench's side of the cluster: kubectl and helm as a user runs them, the
manifests of its jobs and executions, and the waits. Pure builders, thin runners."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = Path("/var/lib/baton-e2e/e2e.env")
RELEASE = "baton-scale"
SYSTEM = "scale-system"
NAMESPACE = "scale-bench"
RELEASE_LABEL = "baton.dev/release"
RELEASE_VALUE = "scale"
STEP_JOB = "scale-step"
FAN_JOB = "scale-fan"
T = TypeVar("T")


def read_env(path: Path = ENV_FILE) -> dict[str, str]:
    """The e2e cluster's env file (written by ``e2e/cluster up``)."""
    if not path.exists():
        raise SystemExit(f"error: {path} not found: bring the cluster up (make cluster-up)")
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.startswith("#")}


@dataclass
class Cluster:
    kubectl_bin: str
    helm_bin: str
    kubeconfig: str

    def run(self, *args: str, input: str | None = None, timeout: float = 300) -> str:
        cmd = [self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args]
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def json(self, *args: str, timeout: float = 300) -> Any:
        return json.loads(self.run(*args, "-o", "json", timeout=timeout))

    def apply(self, objects: Iterable[dict[str, Any]], namespace: str) -> None:
        body = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
        self.run("-n", namespace, "apply", "-f", "-", input=json.dumps(body), timeout=900)

    def raw(self, path: str) -> str:
        return self.run("get", "--raw", path, timeout=60)

    def helm(self, *args: str, timeout: float = 400) -> str:
        cmd = [self.helm_bin, "--kubeconfig", self.kubeconfig, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"helm {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def names_and_phases(self, namespace: str) -> dict[str, str]:
        out = self.run(
            "-n", namespace, "get", "bx", "-l", f"{RELEASE_LABEL}={RELEASE_VALUE}",
            "-o", "jsonpath={range .items[*]}{.metadata.name} {.status.phase}{'\\n'}{end}",
        )  # fmt: skip
        pairs = (line.split(" ", 1) for line in out.splitlines() if line.strip())
        return {p[0]: (p[1] if len(p) > 1 else "") for p in pairs}

    def count(self, kind: str, namespace: str, selector: str) -> int:
        out = self.run("-n", namespace, "get", kind, "-l", selector, "-o", "name")
        return len(out.split())


def wait_until(what: str, check: Callable[[], T | None], timeout: float, every: float = 1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got is not None and got is not False:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


# ---------------------------------------------------------------- manifests

KWOK_PLACEMENT = {
    "spec": {
        "nodeSelector": {"type": "kwok"},
        "tolerations": [
            {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
        ],
    }
}
PARAMETERS = [
    {"name": "n", "type": "int", "identifying": True},
    {"name": "seconds", "type": "int", "identifying": False, "default": 60},
    {"name": "chunks", "type": "int", "identifying": False, "default": 6},
]
CHUNK = {"reader": "scale_steps:TimedReader", "writer": "scale_steps:NullWriter", "size": 1}


def batch_jobs(partitions: int) -> list[dict[str, Any]]:
    """The two jobs: one chunk step; one step fanned out to ``partitions`` partitions
    all at once. Their pods tolerate kwok's taint and select its nodes."""

    def job(name: str, step: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "baton.dev/v1alpha1",
            "kind": "BatchJob",
            "metadata": {"name": name},
            "spec": {"parameters": PARAMETERS, "template": KWOK_PLACEMENT, "steps": [step]},
        }

    fan = {
        "name": "fan",
        "partitions": {"count": partitions},
        "parallelism": partitions,
        "chunk": CHUNK,
    }
    return [job(STEP_JOB, {"name": "work", "chunk": CHUNK}), job(FAN_JOB, fan)]


def executions(
    prefix: str, job: str, count: int, first_n: int, seconds: int, chunks: int
) -> list[dict[str, Any]]:
    """``count`` BatchExecutions of ``job``, each its own instance (parameter n)."""
    return [
        {
            "apiVersion": "baton.dev/v1alpha1",
            "kind": "BatchExecution",
            "metadata": {
                "name": f"{prefix}-{i}",
                "labels": {RELEASE_LABEL: RELEASE_VALUE, "scale.baton.dev/phase": prefix},
            },
            "spec": {
                "job": job,
                "parameters": {"n": first_n + i, "seconds": seconds, "chunks": chunks},
            },
        }
        for i in range(count)
    ]


def install_operator(cluster: Cluster, env: dict[str, str], db_url: str, extra: list[str]) -> str:
    """CRDs, the chart (release baton-scale, owning only executions labelled
    baton.dev/release=scale), the operator rolled out; returns its pod's name."""
    repo, tag = env["E2E_IMAGE"].split(":", 1)
    cluster.run("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    cluster.helm(
        "upgrade", "--install", RELEASE, str(ROOT / "charts" / "baton"),
        "-n", SYSTEM, "--create-namespace",
        "--set", f"image.repository={repo}", "--set", f"image.tag={tag}",
        "--set", f"database.url={db_url}",
        "--set", f"watch.labelSelector={RELEASE_LABEL}={RELEASE_VALUE}",
        *extra, "--wait", "--timeout", "300s",
    )  # fmt: skip
    cluster.run("-n", SYSTEM, "rollout", "status", f"deploy/{RELEASE}", "--timeout=300s")
    labels = cluster.json("-n", SYSTEM, "get", "deploy", RELEASE)["spec"]["selector"]["matchLabels"]
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    pods = cluster.json("-n", SYSTEM, "get", "pods", "-l", selector)
    running = [
        p
        for p in pods["items"]
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]
    if not running:
        raise RuntimeError("the operator pod is not Running")
    return str(running[0]["metadata"]["name"])


def operator_metrics(cluster: Cluster, pod: str, port: int) -> str:
    return cluster.raw(f"/api/v1/namespaces/{SYSTEM}/pods/{pod}:{port}/proxy/metrics")


def cleanup(cluster: Cluster) -> None:
    """Everything the bench made: executions (their Jobs go with them), the namespace,
    the release and its namespace."""
    with contextlib.suppress(RuntimeError):
        cluster.run("-n", NAMESPACE, "delete", "bx", "--all", "--wait=true", timeout=600)
    cluster.run("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=600)
    with contextlib.suppress(RuntimeError):
        cluster.helm("uninstall", RELEASE, "-n", SYSTEM, "--wait")
    cluster.run("delete", "namespace", SYSTEM, "--ignore-not-found", "--wait=true", timeout=600)
