"""The operator (``kopf run``) against a real kube-apiserver + etcd, with the Jobs'
pods stood in for by running their command on this machine.

Proves what a fake cannot: the CRDs are accepted and enforce their CEL rules, the Job
manifests pass the API server's validation (podFailurePolicy, backoffLimitPerIndex),
status patches survive schema pruning, the Kopf wiring reacts to events.

Needs the kube-apiserver and etcd binaries: BATON_KUBE_BIN (a folder holding both) or
the e2e cache (/var/cache/baton-e2e[.warm]); skipped without them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = ROOT / "examples" / "numbers"


def _find_bin() -> Path | None:
    candidates = [os.environ.get("BATON_KUBE_BIN", "")]
    for cache in ("/var/cache/baton-e2e", "/var/cache/baton-e2e.warm"):
        candidates += [f"{cache}/k8s/v1.34.4/bin"]
    for c in candidates:
        if c and (Path(c) / "kube-apiserver").exists():
            return Path(c)
    return None


BIN = _find_bin()


def _etcd() -> Path | None:
    for c in (
        os.environ.get("BATON_ETCD", ""),
        str(BIN / "etcd") if BIN else "",
        "/var/cache/baton-e2e/etcd/v3.5.35/bin/etcd",
        "/var/cache/baton-e2e.warm/etcd/v3.5.35/bin/etcd",
        shutil.which("etcd") or "",
    ):
        if c and Path(c).exists():
            return Path(c)
    return None


ETCD = _etcd()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        BIN is None or ETCD is None or shutil.which("openssl") is None,
        reason="no kube-apiserver/etcd binaries (set BATON_KUBE_BIN, or bring up e2e once)",
    ),
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A kube-apiserver on etcd; yields a kubeconfig path (admin via a static token)."""
    assert BIN and ETCD
    d = tmp_path_factory.mktemp("apiserver")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, cwd=d)  # noqa: E731
    run("openssl", "genrsa", "-out", "sa.key", "2048")
    run("openssl", "rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
    run(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-keyout", "tls.key", "-out", "tls.crt", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1",
    )  # fmt: skip
    (d / "tokens.csv").write_text('admin-token,admin,admin,"system:masters"\n')
    etcd_port, peer_port, api_port = _port(), _port(), _port()
    logs = []
    etcd_log = open(d / "etcd.log", "w")  # noqa: SIM115
    logs.append(etcd_log)
    etcd = subprocess.Popen(
        [
            str(ETCD), "--data-dir", str(d / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level", "warn",
        ],
        stdout=etcd_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    api_log = open(d / "apiserver.log", "w")  # noqa: SIM115
    logs.append(api_log)
    api = subprocess.Popen(
        [
            str(BIN / "kube-apiserver"),
            "--etcd-servers", f"http://127.0.0.1:{etcd_port}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(api_port),
            "--tls-cert-file", str(d / "tls.crt"), "--tls-private-key-file", str(d / "tls.key"),
            "--token-auth-file", str(d / "tokens.csv"),
            "--service-account-key-file", str(d / "sa.pub"),
            "--service-account-signing-key-file", str(d / "sa.key"),
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-cluster-ip-range", "10.250.0.0/24",
            "--authorization-mode", "RBAC",
            "--disable-admission-plugins", "ServiceAccount",
        ],
        stdout=api_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    kubeconfig = d / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "t",
                        "cluster": {
                            "server": f"https://127.0.0.1:{api_port}",
                            "certificate-authority": str(d / "tls.crt"),
                        },
                    }
                ],
                "users": [{"name": "admin", "user": {"token": "admin-token"}}],
                "contexts": [{"name": "t", "context": {"cluster": "t", "user": "admin"}}],
                "current-context": "t",
            }
        )
    )
    try:
        from kubernetes import client, config

        config.load_kube_config(str(kubeconfig))
        _wait(
            "kube-apiserver",
            lambda: (
                client.CoreV1Api().list_namespace().items is not None
                and client.CoreV1Api().read_namespace("default")
            ),
            timeout=90,
        )
        yield kubeconfig
    finally:
        for p in (api, etcd):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in logs:
            f.close()


def _apply_crds() -> None:
    from kubernetes import client

    ext = client.ApiextensionsV1Api()
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        ext.create_custom_resource_definition(body)
    for name in ("batchjobs.baton.dev", "batchexecutions.baton.dev"):
        _wait(
            f"CRD {name} established",
            lambda n=name: any(
                c.type == "Established" and c.status == "True"
                for c in (ext.read_custom_resource_definition(n).status.conditions or [])
            ),
        )
    time.sleep(1)


@pytest.fixture(scope="module")
def cluster(apiserver: Path) -> Path:
    _apply_crds()
    return apiserver


def _custom() -> Any:
    from kubernetes import client

    return client.CustomObjectsApi()


def _create(plural: str, body: dict[str, Any]) -> None:
    _custom().create_namespaced_custom_object("baton.dev", "v1alpha1", "default", plural, body)


def _get(name: str) -> dict[str, Any]:
    obj: Any = _custom().get_namespaced_custom_object(
        "baton.dev", "v1alpha1", "default", "batchexecutions", name
    )
    return dict(obj)


def _patch(name: str, spec: dict[str, Any]) -> None:
    _custom().patch_namespaced_custom_object(
        "baton.dev", "v1alpha1", "default", "batchexecutions", name, {"spec": spec}
    )


def test_cel_rules_refuse_changes_to_job_and_restart(cluster: Path) -> None:
    from kubernetes.client.exceptions import ApiException

    _create(
        "batchexecutions",
        {
            "apiVersion": "baton.dev/v1alpha1",
            "kind": "BatchExecution",
            "metadata": {"name": "cel"},
            "spec": {"job": "j", "parameters": {"count": 1}},
        },
    )
    for spec, message in (
        ({"job": "other"}, "spec.job is immutable"),
        # spec.parameters (a map or a list) is the chart's admission policy's: e2e
    ):
        with pytest.raises(ApiException) as e:
            _patch("cel", spec)
        assert e.value.status == 422 and message in str(e.value.body)
    _patch("cel", {"restart": 2})
    with pytest.raises(ApiException) as e:
        _patch("cel", {"restart": 1})
    assert "can only be increased" in str(e.value.body)
    with pytest.raises(ApiException) as e:
        _create(
            "batchjobs",
            {
                "apiVersion": "baton.dev/v1alpha1",
                "kind": "BatchJob",
                "metadata": {"name": "twokinds"},
                "spec": {"steps": [{"name": "a"}]},
            },
        )
    assert "exactly one of 'tasklet' or 'chunk'" in str(e.value.body)
    _custom().delete_namespaced_custom_object(
        "baton.dev", "v1alpha1", "default", "batchexecutions", "cel"
    )


class OperatorProcess(tuple[str, Path, int]):
    """(database URL, log path, metrics port) of a running ``kopf run``; ``.proc``."""

    proc: subprocess.Popen[bytes]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def operator_process(cluster: Path, tmp_path: Path) -> Iterator[OperatorProcess]:
    db = f"sqlite:///{tmp_path / 'repo.db'}"
    metrics_port = _port()
    env = dict(
        os.environ,
        KUBECONFIG=str(cluster),
        BATON_DB_URL=db,
        BATON_METRICS_PORT=str(metrics_port),
        BATON_IMAGE="baton:test",
    )
    log = open(tmp_path / "operator.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "kopf", "run", "-m", "baton_operator.handlers",
         "--all-namespaces", "--standalone", "--verbose"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    running = OperatorProcess((db, tmp_path / "operator.log", metrics_port))
    running.proc = proc
    try:
        yield running
    finally:
        _stop(proc)
        log.close()


def _run_pods(db: str, done: set[str]) -> None:
    """Stand in for the kubelet: run each new Job's command once, here."""
    from kubernetes import client

    for job in client.BatchV1Api().list_namespaced_job("default").items:
        name = job.metadata.name
        if name in done:
            continue
        done.add(name)
        command = job.spec.template.spec.containers[0].command
        subprocess.run(
            [sys.executable, "-m", "baton", *command[1:]],
            env=dict(os.environ, BATON_DB_URL=db),
            cwd=NUMBERS,
            check=False,
            timeout=120,
        )


def test_operator_runs_an_execution_to_completion(
    operator_process: tuple[str, Path, int],
) -> None:
    import urllib.request

    from kubernetes import client

    db, log, metrics_port = operator_process
    _create("batchjobs", yaml.safe_load((NUMBERS / "job.yaml").read_text()))
    bx = yaml.safe_load((NUMBERS / "execution.yaml").read_text())
    bx["spec"]["parameters"] = {"count": 250}
    _create("batchexecutions", bx)
    name = bx["metadata"]["name"]
    done: set[str] = set()

    def completed() -> bool:
        _run_pods(db, done)
        return _get(name).get("status", {}).get("phase") == "Completed"

    try:
        _wait("phase Completed", completed, timeout=90)
    except AssertionError:
        print(log.read_text()[-5000:])
        raise
    status = _get(name)["status"]
    assert (status["readCount"], status["writeCount"], status["progress"]) == (250, 250, "100%")
    assert [s["status"] for s in status["steps"]] == ["COMPLETED"] * 3
    jobs = client.BatchV1Api().list_namespaced_job("default").items
    assert sorted(j.metadata.name for j in jobs) == [
        f"{name}-1-check",
        f"{name}-1-load",
        f"{name}-1-prepare",
    ]
    for j in jobs:  # accepted by the API server's validation, owned by the execution
        assert j.spec.pod_failure_policy.rules[0].action == "Ignore"
        assert j.spec.backoff_limit_per_index == 2
        assert j.metadata.owner_references[0].kind == "BatchExecution"
    events = client.CoreV1Api().list_namespaced_event(
        "default", field_selector=f"involvedObject.name={name}"
    )
    reasons = {e.reason for e in events.items}
    assert {"Launched", "StepStarted", "Completed"} <= reasons
    # /metrics agrees with the status
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read().decode()
    assert 'baton_items_total{job="count-numbers",kind="read",step="load"} 250.0' in text
    assert 'baton_items_total{job="count-numbers",kind="written",step="load"} 250.0' in text
    assert 'baton_executions{job="count-numbers",namespace="default",phase="Completed"} 1.0' in text
    assert "baton_reconcile_duration_seconds_count" in text


def test_cluster_cli_creates_and_patches_executions(cluster: Path) -> None:
    def baton(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "baton", *args, "--kubeconfig", str(cluster)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    made = baton(
        "start", "count-numbers", "-p", "count=12", "--ctx", "region=eu", "--ctx", "limit=3",
        "--name", "cli-1", "--deadline", "90",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "batchexecution/cli-1 created" in made.stdout
    assert _get("cli-1")["spec"]["parameters"] == {"count": "12"}
    assert _get("cli-1")["spec"]["deadlineSeconds"] == 90
    assert _get("cli-1")["spec"]["context"] == {"region": "eu", "limit": 3}
    listed = baton("executions", "--job", "count-numbers")
    assert "cli-1" in listed.stdout
    refused = baton("restart", "cli-1")  # not launched yet: the wrong state
    assert refused.returncode == 7 and "cannot restart cli-1" in refused.stderr
    assert baton("abandon", "cli-1").returncode == 0
    assert _get("cli-1")["spec"]["abandon"] is True
    missing = baton("stop", "nope")
    assert missing.returncode != 0 and "not found" in missing.stderr


def _finalizers(name: str) -> list[str]:
    return list(_get(name)["metadata"].get("finalizers") or [])


def _gone(name: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        _get(name)
    except ApiException as e:
        return e.status == 404
    return False


def test_a_running_execution_is_deleted_after_the_operator_is_gone(
    operator_process: OperatorProcess,
) -> None:
    """No finalizer on BatchExecutions (a Kopf timer would put one on every running
    execution): one that runs when the operator is uninstalled is deleted at once, so
    its namespace never stays Terminating. A finalizer an older operator left is
    removed by this one."""
    from kubernetes.client.exceptions import ApiException

    try:
        _create("batchjobs", yaml.safe_load((NUMBERS / "job.yaml").read_text()))
    except ApiException as e:
        assert e.status == 409  # made by an earlier test of this module
    legacy = yaml.safe_load((NUMBERS / "execution.yaml").read_text())
    legacy["metadata"] = {"name": "legacy", "finalizers": ["baton.dev/operator"]}
    legacy["spec"]["parameters"] = {"count": 3}
    _create("batchexecutions", legacy)
    bx = yaml.safe_load((NUMBERS / "execution.yaml").read_text())
    bx["metadata"] = {"name": "orphaned"}
    bx["spec"]["parameters"] = {"count": 4}
    _create("batchexecutions", bx)
    log = operator_process[1]
    try:
        _wait("Running", lambda: _get("orphaned").get("status", {}).get("phase") == "Running")
        _wait("the legacy finalizer removed", lambda: not _finalizers("legacy"))
        time.sleep(3)  # ticks of the running execution (a Kopf timer adds its finalizer)
        assert _finalizers("orphaned") == []
    except AssertionError:
        print(log.read_text()[-5000:])
        raise
    _stop(operator_process.proc)
    for name in ("orphaned", "legacy"):
        _custom().delete_namespaced_custom_object(
            "baton.dev", "v1alpha1", "default", "batchexecutions", name
        )
        _wait(f"{name} deleted without the operator", lambda n=name: _gone(n), timeout=10)
