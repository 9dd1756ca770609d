"""JobOperator against a cluster: start, stop, restart and abandon BatchExecutions,
list them. What ``baton start`` and ``baton stop|restart|abandon NAME`` run; the operator
in the cluster does the work.

Each call is one Kubernetes API request (create, merge-patch, list), so the restart
table, the checkpoints and the Jobs stay the operator's business.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from baton.core.errors import BatonError, UnexpectedJobExecutionState
from rich.table import Table

from baton_operator.k8s.resources import API_VERSION, GROUP, PLURAL, VERSION, Phase


class ClusterError(BatonError):
    """The Kubernetes API refused or could not be reached."""


def load_config(kubeconfig: str | None, context: str | None) -> None:
    """The client configuration as kubectl finds it: ``--kubeconfig``/``--context`` when
    given, else in a pod its ServiceAccount, else the default kubeconfig."""
    from kubernetes import config

    try:
        if kubeconfig is None and context is None:
            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_kube_config()  # type: ignore[no-untyped-call]
        else:
            config.load_kube_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError) as e:
        raise ClusterError(f"no usable kubeconfig: {e}") from None


def _api(kubeconfig: str | None, context: str | None) -> Any:
    from kubernetes import client

    load_config(kubeconfig, context)
    return client.CustomObjectsApi()


SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def default_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace a command acts in when none is given, as kubectl picks it: the
    kubeconfig context's (``--context``, else the current one), in a pod its own,
    else ``default``."""
    from kubernetes import config

    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError):
        contexts, current = [], None
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
    if chosen is not None:
        return str((chosen.get("context") or {}).get("namespace") or "default")
    if kubeconfig is None and context is None:
        try:
            with open(SERVICE_ACCOUNT_NAMESPACE) as f:
                return f.read().strip() or "default"
        except OSError:
            pass
    return "default"


def _call(fn: Any, *args: Any) -> Any:
    from kubernetes.client.exceptions import ApiException

    try:
        return fn(*args)
    except ApiException as e:
        reason = e.reason
        try:
            import json

            reason = json.loads(e.body or "{}").get("message", reason)
        except ValueError:
            pass
        raise ClusterError(f"Kubernetes API: {reason}") from None
    except OSError as e:
        raise ClusterError(f"cannot reach the Kubernetes API: {e}") from None


def execution_name(job: str) -> str:
    """A fresh, valid name for an execution of ``job``."""
    base = re.sub(r"[^a-z0-9-]+", "-", job.lower()).strip("-")[:40] or "execution"
    return f"{base}-{uuid.uuid4().hex[:6]}"


class NamespacedObjects:
    """Get and spec-patch one kind of Baton resource (``plural``) in a namespace."""

    plural = PLURAL
    api: Any
    namespace: str

    def get(self, name: str) -> dict[str, Any]:
        return dict(
            _call(
                self.api.get_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                self.plural,
                name,
            )
        )

    def _patch(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return dict(
            _call(
                self.api.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                self.plural,
                name,
                {"spec": spec},
            )
        )


class ClusterJobOperator(NamespacedObjects):
    """The JobOperator facade for a cluster: BatchExecutions instead of local runs."""

    def __init__(
        self,
        namespace: str | None = "default",
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        api: Any = None,
        all_namespaces: bool = False,
    ):
        """``namespace`` None: the kubeconfig context's (like kubectl);
        ``all_namespaces``: listings span every namespace (``-A``)."""
        self.api = api if api is not None else _api(kubeconfig, context)
        if namespace is None:
            namespace = "default" if api is not None else default_namespace(kubeconfig, context)
        self.namespace = namespace
        self.all_namespaces = all_namespaces

    def start(
        self,
        job: str,
        params: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        working_dir: str | None = None,
        context: Mapping[str, Any] | None = None,
        deadline_seconds: int | None = None,
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {"job": job, "parameters": dict(params or {})}
        if working_dir:
            spec["workingDir"] = working_dir
        if deadline_seconds is not None:
            spec["deadlineSeconds"] = deadline_seconds
        if context:
            spec["context"] = dict(context)
        body = {
            "apiVersion": API_VERSION,
            "kind": "BatchExecution",
            "metadata": {"name": name or execution_name(job)},
            "spec": spec,
        }
        return dict(
            _call(
                self.api.create_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                body,
            )
        )

    def stop(self, name: str) -> dict[str, Any]:
        phase = self.get(name).get("status", {}).get("phase")
        if phase and Phase(phase).terminal:
            raise UnexpectedJobExecutionState(f"cannot stop {name}: it is {phase}, not running")
        return self._patch(name, {"stop": True})

    def restart(self, name: str) -> dict[str, Any]:
        current = self.get(name)
        phase = current.get("status", {}).get("phase")
        if phase not in (Phase.FAILED.value, Phase.STOPPED.value, Phase.REJECTED.value):
            raise UnexpectedJobExecutionState(
                f"cannot restart {name}: it is {phase or 'not launched yet'}; "
                "only Failed or Stopped executions restart"
            )
        bump = int(current["spec"].get("restart", 0)) + 1
        return self._patch(name, {"restart": bump, "stop": False})

    def abandon(self, name: str) -> dict[str, Any]:
        return self._patch(name, {"abandon": True})

    def executions(self, job: str | None = None) -> list[dict[str, Any]]:
        if self.all_namespaces:
            found = _call(self.api.list_cluster_custom_object, GROUP, VERSION, PLURAL)
        else:
            found = _call(
                self.api.list_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL
            )
        items = [dict(i) for i in found.get("items", [])]
        if job:
            items = [i for i in items if i["spec"].get("job") == job]
        return sorted(items, key=lambda i: i["metadata"].get("creationTimestamp", ""))

    def wait(self, name: str, timeout: float = 3600, poll: float = 2) -> dict[str, Any]:
        """Until the execution reaches a terminal phase."""
        deadline = time.monotonic() + timeout
        while True:
            obj = self.get(name)
            phase = obj.get("status", {}).get("phase")
            if phase and Phase(phase).terminal:
                return obj
            if time.monotonic() > deadline:
                raise ClusterError(f"{name} still {phase} after {timeout:g}s")
            time.sleep(poll)


# ---------------------------------------------------------------- output


def executions_table(objects: list[dict[str, Any]], namespaces: bool = False) -> Table:
    """BatchExecutions as a table (also used by the top-level `baton executions`);
    ``namespaces``: with a Namespace column first (``-A``)."""
    head = ("Name", "Job", "Phase", "Progress", "Attempt", "Execution", "Created")
    t = Table(*(("Namespace", *head) if namespaces else head))
    for obj in objects:
        st = obj.get("status") or {}
        where = (obj["metadata"].get("namespace", ""),) if namespaces else ()
        t.add_row(
            *where,
            obj["metadata"]["name"],
            obj["spec"]["job"],
            st.get("phase") or "",
            st.get("progress") or "",
            str(st.get("attempt") or ""),
            str(st.get("jobExecutionId") or ""),
            obj["metadata"].get("creationTimestamp", ""),
        )
    return t
