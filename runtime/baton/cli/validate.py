"""``baton validate``: check a job before launching it — the schema, the parameters
(bound against the declared ones), every ``module:attr`` importable and able to play
its role — locally, or inside the job's image through a short-lived pod (``--image``),
where the code the steps will import actually lives. Exit 0 when valid, 5 when not."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from baton.cli.options import (
    AsJson,
    Context,
    JobName,
    Kubeconfig,
    Namespace,
    Params,
    parse_cli_params,
)
from baton.cli.session import print_json
from baton.core.errors import BatonError, InvalidDefinition
from baton.core.status import ExitCode
from baton.registry.checks import check_components
from baton.registry.jobs import JobRegistry
from baton.spec.binding import check_bindings
from baton.spec.template import hardened_container_security

MANIFEST_ENV = "BATON_VALIDATE_MANIFEST"  # the manifest text handed to the pod
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName")
POD_TIMEOUT = 300.0  # seconds: image pull + import of the user's code

Image = Annotated[
    str | None,
    typer.Option("--image", help="Validate inside this image, in a short-lived pod."),
]
WorkingDir = Annotated[
    str | None,
    typer.Option("--working-dir", help="With --image: the directory that holds the job's code."),
]
FromEnv = Annotated[
    bool, typer.Option("--manifest-from-env", hidden=True, help=f"Read ${MANIFEST_ENV}.")
]


class ValidationFailed(BatonError):
    """The in-image validation said no; its message is the pod's own error line."""

    exit_code = ExitCode.INVALID


def validate(
    manifest: Annotated[str, typer.Argument(help="BatchJob YAML, a .py file or a module.")],
    param: Params = None,
    job: JobName = None,
    as_json: AsJson = False,
    image: Image = None,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    working_dir: WorkingDir = None,
    manifest_from_env: FromEnv = False,
) -> None:
    """Check a job without running it: schema, parameters, importable components."""
    params = parse_cli_params(param or [])
    if image:
        text = _manifest_text(manifest)
        args = [a for p in param or [] for a in ("--param", p)] + ([f"--job={job}"] if job else [])
        pod = pod_manifest(f"baton-validate-{uuid.uuid4().hex[:8]}", image, text, args, working_dir)
        message = run_in_pod(pod, namespace, context, kubeconfig)
        report = {"valid": True, "image": image, "message": message}
    elif manifest_from_env:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "manifest.yaml"
            path.write_text(os.environ.get(MANIFEST_ENV, ""))
            report = validate_local(str(path), params, job)
    else:
        report = validate_local(manifest, params, job)
    if as_json:
        print_json(report)
    else:
        typer.echo(report.get("message") or _ok_line(report))


def validate_local(manifest: str, params: dict[str, str], job: str | None) -> dict[str, Any]:
    """Load, bind parameters, check references in args and import (with each
    component's args); any problem raises a BatonError (exit 5)."""
    entry = JobRegistry().load(manifest).only(job)
    bound = entry.job.spec.bind(dict(params))
    check_bindings(entry.job.spec)
    check_components(entry.job, entry.source_dir)
    return {
        "valid": True,
        "job": entry.name,
        "parameters": bound.as_json(),
        "steps": [s.name for s in entry.job.spec.all_steps()],
    }


def _ok_line(report: dict[str, Any]) -> str:
    return f"OK: job '{report['job']}' is valid ({len(report['steps'])} step(s))"


def _manifest_text(manifest: str) -> str:
    path = Path(manifest)
    if path.suffix not in (".yaml", ".yml"):
        raise InvalidDefinition(f"--image: {manifest}: expected a YAML manifest")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidDefinition(f"cannot read manifest {manifest}: {e}") from None


def pod_manifest(
    name: str, image: str, text: str, args: list[str], working_dir: str | None = None
) -> dict[str, Any]:
    """The validating pod: ``baton validate`` on the manifest from an env var, hardened
    like a step pod, never restarted."""
    container: dict[str, Any] = {
        "name": "validate",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["baton", "validate", "--manifest-from-env", "-", *args],
        "env": [{"name": MANIFEST_ENV, "value": text}],
        "securityContext": hardened_container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if working_dir:
        container["workingDir"] = working_dir
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/component": "validate"}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True},
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }


def run_in_pod(
    pod: dict[str, Any], namespace: str | None, context: str | None, kubeconfig: str | None
) -> str:
    """Run the validating pod; its last output line is the answer. The pod is deleted
    whatever happens."""
    from baton_operator.k8s.client import _call, default_namespace, load_config
    from kubernetes import client

    load_config(kubeconfig, context)
    ns = namespace or default_namespace(kubeconfig, context)
    core = client.CoreV1Api()
    name, image = pod["metadata"]["name"], pod["spec"]["containers"][0]["image"]
    _call(core.create_namespaced_pod, ns, pod)
    try:
        code = _wait(core, name, ns)
        logs = str(_call(core.read_namespaced_pod_log, name, ns) or "")
    finally:
        with contextlib.suppress(Exception):  # best effort: the answer matters more
            core.delete_namespaced_pod(name, ns, grace_period_seconds=0)
    last = next((ln for ln in reversed(logs.splitlines()) if ln.strip()), "")
    if code != 0:
        raise ValidationFailed(f"in image {image}: {last.removeprefix('error: ') or code}")
    return f"{last} (in image {image})"


def _wait(core: Any, name: str, ns: str) -> int:
    """The exit code of the pod's container, once it has ended."""
    from baton_operator.k8s.client import ClusterError, _call

    deadline = time.monotonic() + POD_TIMEOUT
    while time.monotonic() < deadline:
        pod = _call(core.read_namespaced_pod, name, ns)
        for cs in pod.status.container_statuses or []:
            if cs.state and cs.state.terminated:
                return int(cs.state.terminated.exit_code)
            waiting = cs.state.waiting if cs.state else None
            if waiting and waiting.reason in PULL_FAILURES:
                raise ClusterError(f"validation pod {name}: {waiting.reason}: {waiting.message}")
        time.sleep(1.0)
    raise ClusterError(f"validation pod {name}: not finished after {POD_TIMEOUT:.0f}s")
