"""Kopf handlers: thin. They keep what the watches deliver in the operator's cache
(:class:`~baton_operator.k8s.informer.CachedCluster`: BatchExecution bodies; step Jobs
through a Kopf index, complete before any handler runs) and put the BatchExecution
concerned on the work queue (:class:`~baton_operator.dispatch.Dispatcher`), whose
workers reconcile it: read the state, call the pure reconciler, apply its actions. The
controller and the dispatcher live in Kopf's operator-level memo (set at startup; every
handler gets a copy that shares them).

While an execution runs, the dispatcher's ticker queues it every ``BATON_POLL_SECONDS``
after one repository read for all (no Kopf timer: that would put a finalizer on every
BatchExecution, and a namespace deleted after the operator was uninstalled would
stay Terminating).

Run: ``kopf run -m baton_operator.handlers --all-namespaces --liveness=http://0.0.0.0:8080/healthz``
with BATON_DB_URL (from a Secret) and BATON_IMAGE in the environment.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping
from typing import Any

import kopf
from baton.core.logformat import FORMAT_ENV, configure_logging, log_format
from baton.repository import JobRepository
from kubernetes import client

from baton_operator.config import OperatorConfig
from baton_operator.dispatch import Dispatcher
from baton_operator.k8s import throttle
from baton_operator.k8s.cleanup import ApiCleanup
from baton_operator.k8s.cluster import ApiCluster, load_kube_config
from baton_operator.k8s.informer import CachedCluster
from baton_operator.k8s.labels import LABEL_ATTEMPT, LABEL_EXECUTION
from baton_operator.k8s.resources import GROUP, TERMINAL_PHASES, VERSION
from baton_operator.loop import Controller
from baton_operator.metrics import API_REQUESTS, API_THROTTLED, API_WRITES, serve
from baton_operator.reconcile import podhealth, selector
from baton_operator.retention import Retention
from baton_operator.ticker import PeeringGate, own_namespace

log = logging.getLogger("baton.operator")

TERMINAL = {p.value for p in TERMINAL_PHASES}
# The executions this operator owns: by label (chart: watch.labelSelector) and by
# namespace (watch.namespaces; empty: all), so several releases can split a cluster.
SELECTOR = selector.parse(os.environ.get("BATON_WATCH_LABELS", ""))
NAMESPACES = frozenset(
    ns.strip() for ns in os.environ.get("BATON_WATCH_NAMESPACES", "").split(",") if ns.strip()
)


def watched(namespace: str | None, **_: Any) -> bool:
    """A BatchExecution (or namespace) this operator watches (BATON_WATCH_NAMESPACES)."""
    return not NAMESPACES or namespace in NAMESPACES


def _kopf_labels(sel: tuple[selector.Requirement, ...]) -> dict[str, Any]:
    """The selector as Kopf's ``labels=`` filter of the BatchExecution handler."""
    return {
        r.key: (kopf.ABSENT if not r.present else kopf.PRESENT if r.value is None else r.value)
        for r in sel
    }


# The finalizer name Kopf used while the operator had a timer (a timer makes Kopf put
# its finalizer on every object it times). Nothing needs it now: Kopf removes it from
# the objects it sees, so an upgrade releases what an older operator left.
FINALIZER = "baton.dev/operator"


def controller(memo: kopf.Memo) -> Controller:
    found: Controller = memo["controller"]
    return found


def dispatcher(memo: kopf.Memo) -> Dispatcher:
    found: Dispatcher = memo["dispatch"]
    return found


def cache(memo: kopf.Memo) -> CachedCluster:
    found: CachedCluster = memo["cluster"]
    return found


def _count_write(verb: str, resource: str) -> None:
    API_WRITES.labels(verb, resource).inc()


def _peering_reader(settings: kopf.OperatorSettings) -> Any:
    """How the ticker reads Kopf's peering object (None: standalone, always active)."""
    if settings.peering.standalone:
        return None
    api = client.CustomObjectsApi()
    name = settings.peering.name
    if settings.peering.clusterwide:
        return lambda: api.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", name)
    namespace = own_namespace()
    return lambda: api.get_namespaced_custom_object(
        "kopf.dev", "v1", namespace, "kopfpeerings", name
    )


def _peering(settings: kopf.OperatorSettings) -> None:
    """Several replicas: one active, the others stand by (Kopf peering).
    (`kopf run --standalone` for a single operator without the peering CRDs.)"""
    if settings.peering.standalone:
        return
    settings.peering.name = os.environ.get("BATON_PEERING", settings.peering.name)
    if os.environ.get("BATON_PEERING_CLUSTERWIDE") == "1":
        # watches narrowed to some namespaces (`--namespace` each), one peering object
        # for the release all the same (the chart's ClusterKopfPeering)
        settings.peering.clusterwide = True
    settings.peering.mandatory = True
    # Kopf freezes *all* peers of equal priority; replicas of one Deployment share
    # their arguments, so each draws its own: the highest works, the others wait.
    priority = os.environ.get("BATON_PEERING_PRIORITY", "")
    settings.peering.priority = int(priority) if priority else random.randint(1, 2**30)
    log.info("peering %s, priority %d", settings.peering.name, settings.peering.priority)


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    if log_format(os.environ.get(FORMAT_ENV)) == "json":  # chart operator.logFormat
        # Kopf's own handler re-formatted, at the level Kopf chose
        configure_logging("json", level=None, every_handler=True)
    cfg = OperatorConfig.from_env()
    url = os.environ.get("BATON_DB_URL")
    if not url:
        raise kopf.PermanentError("BATON_DB_URL is not set (the chart takes it from a Secret)")
    load_kube_config()
    # every request of the official client from here on: rate-limited and counted
    throttle.install(
        cfg.api_qps,
        cfg.api_burst,
        lambda verb, resource: API_REQUESTS.labels(verb, resource).inc(),
        API_THROTTLED.inc,
    )
    repo = JobRepository(url)
    memo["retention"] = Retention(ApiCleanup(_count_write), cfg)
    memo["cluster"] = CachedCluster(ApiCluster(_count_write))
    memo["controller"] = Controller(
        repo,
        memo["cluster"],
        cfg,
        selector=SELECTOR,
        namespaces=NAMESPACES,
        retention=memo["retention"],
    )
    memo["stuck"] = set()  # (namespace, execution): PodsReady=False (see pod_health_event)
    serve(cfg.metrics_port)
    _peering(settings)
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = int(os.environ.get("BATON_WORKERS", "8"))
    settings.watching.server_timeout = 300
    settings.persistence.finalizer = FINALIZER
    gate = PeeringGate(_peering_reader(settings), settings.peering.priority)
    memo["gate"] = gate  # the schedule ticker's too (baton_operator.schedule.handlers)
    memo["dispatch"] = Dispatcher(
        controller(memo),
        terminal=frozenset(TERMINAL),
        active=gate,
        interval=cfg.poll_seconds,
        workers=settings.execution.max_workers or 8,
        backoff=(cfg.retry_base_seconds, cfg.retry_max_seconds),
        chores=(memo["retention"].sweep,),  # finished executions whose TTL is up
        cache=memo["cluster"],
    )
    dispatcher(memo).start()
    log.info(
        "baton operator started; job repository %s; step image %s",
        repo.repository_id,
        cfg.image,
    )


@kopf.on.cleanup()
def cleanup(memo: kopf.Memo, **_: Any) -> None:
    dispatch: Dispatcher | None = memo.pop("dispatch", None)
    if dispatch is not None:
        dispatch.stop()
    found: Controller | None = memo.pop("controller", None)
    if found is not None:
        found.repo.dispose()


@kopf.on.event(GROUP, VERSION, "batchexecutions", labels=_kopf_labels(SELECTOR), when=watched)
def execution_event(
    type: str,
    name: str,
    namespace: str | None,
    body: kopf.Body,
    status: kopf.Status,
    spec: kopf.Spec,
    uid: str | None,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Any change of a BatchExecution (spec or status): keep its body, queue it. Our
    own status writes come back here too: their version is held already (from the
    write's response), so they queue nothing."""
    assert namespace is not None
    if type == "DELETED":
        cache(memo).executions.discard(namespace, name)
        dispatcher(memo).ticker.forget(namespace, name)
        job = spec.get("job")
        controller(memo).deleted(namespace, name, dict(status), job=job, uid=uid)
        return
    if cache(memo).executions.observe(body):
        dispatcher(memo).enqueue(namespace, name)


JOB_ENDS = frozenset({"Complete", "Failed", "SuccessCriteriaMet", "FailureTarget"})


def job_ended(
    type: str | None, status: Mapping[str, Any], meta: Mapping[str, Any], **_: Any
) -> bool:
    """Only a Job's end (or its deletion, or the first listing) can change a decision:
    while it runs, its pod counters change with every pod of an Indexed Job, and the
    progress they show is the repository's, mirrored by the timer. Skipping those
    events keeps the operator's work per execution flat in the number of partitions."""
    if type in (None, "DELETED") or meta.get("deletionTimestamp"):
        return True
    return any(
        c.get("type") in JOB_ENDS and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def terminating(meta: Mapping[str, Any], **_: Any) -> bool:
    return bool(meta.get("deletionTimestamp"))


@kopf.on.event("", "v1", "namespaces", when=terminating)
def namespace_event(name: str, memo: kopf.Memo, **_: Any) -> None:
    """A namespace being deleted (also found so at the operator's start): delete its step
    Jobs, without which Kubernetes could wait for ever for their pods (see
    :meth:`Controller.release_namespace`) — in the namespaces this operator watches."""
    if watched(name):
        controller(memo).release_namespace(name)


def disrupted(status: Mapping[str, Any], **_: Any) -> bool:
    """A pod condition DisruptionTarget=True: an eviction, drain or preemption."""
    return any(
        c.get("type") == "DisruptionTarget" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


@kopf.index("batch", "v1", "jobs", labels={LABEL_EXECUTION: kopf.PRESENT})
async def step_jobs(body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """Every change of a step Job, into the operator's Job cache (deletions: in
    job_event). A Kopf index because Kopf lists every indexed resource completely before
    it runs any handler: no reconcile sees a Job cache that is still filling."""
    cache(memo).jobs.observe(body)
    return {}  # the cache is the index; Kopf's own stays empty


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_EXECUTION: kopf.PRESENT}, when=job_ended)
def job_event(
    type: str | None,
    namespace: str | None,
    body: kopf.Body,
    labels: kopf.Labels,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """A step Job ended or went away: queue its owner; an ended Job of an execution of
    ours gets its outcome's ttlSecondsAfterFinished (also those found at start)."""
    assert namespace is not None
    execution = labels[LABEL_EXECUTION]
    if type == "DELETED":
        cache(memo).jobs.discard(body)
    dispatcher(memo).enqueue(namespace, execution)
    gone = type == "DELETED" or body.get("metadata", {}).get("deletionTimestamp")
    if not gone and controller(memo).owned(namespace, execution):
        retention: Retention = memo["retention"]
        retention.job_ended(body)


@kopf.on.event("", "v1", "pods", labels={LABEL_EXECUTION: kopf.PRESENT}, when=disrupted)
def pod_event(
    namespace: str | None, name: str, labels: kopf.Labels, memo: kopf.Memo, **_: Any
) -> None:
    """A step pod about to be evicted, drained or preempted (DisruptionTarget): record
    it, so a stop it causes can restart by itself (spec.autoRestart.onDisruption)."""
    assert namespace is not None  # only disrupted pods get here (when=disrupted)
    attempt = int(labels.get(LABEL_ATTEMPT, "0"))
    controller(memo).record_disruption(namespace, labels[LABEL_EXECUTION], name, attempt)


@kopf.on.event("", "v1", "pods", labels={LABEL_EXECUTION: kopf.PRESENT})
def pod_health_event(
    type: str | None,
    namespace: str | None,
    body: kopf.Body,
    labels: kopf.Labels,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """A step pod that cannot start (missing Secret, image pull, unschedulable), or that
    started after all: the execution's PodsReady condition says so. A started pod costs
    a read only for an execution known to have a stuck pod, or in the listing at the
    operator's start (which also finds what changed while it was away)."""
    assert namespace is not None
    health = podhealth.assess(body)
    if type == "DELETED" or health is None:
        return
    key = (namespace, labels[LABEL_EXECUTION])
    stuck: set[tuple[str, str]] = memo["stuck"]
    if health.started and key not in stuck and type is not None:
        return
    if controller(memo).record_pod_health(namespace, key[1], health):
        stuck.add(key)
    else:
        stuck.discard(key)


# The BatchSchedule handlers (registered with Kopf when imported).
import baton_operator.schedule.handlers  # noqa: E402, F401
