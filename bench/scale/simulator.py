#!/usr/bin/env python
"""The step simulator: plays the step processes of pods on kwok's fake nodes.

A fake pod runs no code, so this host process watches Baton's step pods (label
``baton.dev/execution``) bound to kwok nodes and, for each one kwok has made Running,
runs its unit through the real step runtime — the command in the pod's manifest read
back with ``baton.step.entry.parser``, the partition from ``BATON_PARTITIONS`` and the
pod's completion index, then ``JobRepository`` + ``run_step`` exactly as
``baton.step.entry.run_unit`` does — and finally patches the pod's status to Succeeded
(or Failed) with the unit's exit code as the container's, so the Job controller counts
it as it would a real pod. Every pod gets its own ``JobRepository`` (its own engine and
connection pool), as every real pod is its own process, so connection use is faithful.

Units are threads (mostly asleep between checkpoints), bounded by ``--max-units``.
A JSON status file (``--status``) tells the bench what ran: counts, errors, and when
each execution's last unit ended.

    python bench/scale/simulator.py --db-url postgresql://baton:...@127.0.0.1:55435/db
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from baton.core.errors import BatonError
from baton.core.status import ExitCode
from baton.repository import JobRepository
from baton.step.entry import parser as step_parser
from baton.step.entry import partition_for_index
from baton.step.runner import run_step
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scale_steps, the jobs' code

LABEL_EXECUTION = "baton.dev/execution"  # baton_operator.k8s.labels.LABEL_EXECUTION
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
STEP_CONTAINER = "step"
log = logging.getLogger("simulator")


class Tally:
    """What ran, for the bench: counts, the first errors, each execution's last end."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.started = self.finished = self.failed = self.too_many_clients = 0
        self.running = 0
        self.errors: list[str] = []
        self.last_end: dict[str, float] = {}

    def start(self) -> None:
        with self.lock:
            self.started += 1
            self.running += 1

    def end(self, execution: str, code: int, error: str | None) -> None:
        with self.lock:
            self.running -= 1
            self.finished += 1
            self.failed += int(code != 0)
            self.last_end[execution] = time.time()
            if error:
                self.too_many_clients += int("too many clients" in error)
                if len(self.errors) < 20:
                    self.errors.append(error)

    def write(self) -> None:
        if self.path is None:
            return
        with self.lock:
            body = {
                "started": self.started,
                "finished": self.finished,
                "failed": self.failed,
                "running": self.running,
                "tooManyClients": self.too_many_clients,
                "errors": list(self.errors),
                "lastEnd": dict(self.last_end),
            }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        tmp.replace(self.path)


def unit_of(
    command: list[str], env: dict[str, str], annotations: dict[str, str]
) -> tuple[int, str, int | None, str]:
    """(execution id, step, partition, kind) from a step container's command and env
    and its pod's annotations, read back as ``baton step`` reads them."""
    args = step_parser().parse_args(command[command.index("step") + 1 :])  # after `baton step`
    partition = args.partition
    if args.partition_from_index:
        index = {"JOB_COMPLETION_INDEX": annotations[INDEX_ANNOTATION]}
        partition = partition_for_index({**env, **index})
    return args.execution_id, args.step, partition, args.kind


def pod_unit(pod: Any) -> tuple[int, str, int | None, str]:
    """:func:`unit_of` for a pod object of the Kubernetes client."""
    container = next(c for c in pod.spec.containers if c.name == STEP_CONTAINER)
    command = list(container.command or []) + list(container.args or [])
    env = {e.name: e.value or "" for e in container.env or []}
    return unit_of(command, env, dict(pod.metadata.annotations or {}))


def run_unit(db_url: str, unit: tuple[int, str, int | None, str]) -> tuple[int, str | None]:
    """The unit's exit code as its process would return it, and its error line."""
    execution_id, step, partition, kind = unit
    try:
        repo = JobRepository(db_url, auto_migrate=False)  # as run_unit: its own engine
        try:
            return int(run_step(repo, execution_id, step, partition, kind=kind)), None
        finally:
            repo.dispose()
    except BatonError as e:
        return int(e.exit_code), str(e)
    except Exception as e:  # the process would exit 1 with this line
        return int(ExitCode.FAILED), f"{type(e).__name__}: {e}"


def finished_status(code: int) -> dict[str, Any]:
    """The status a kubelet reports for a step container that exited ``code``."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    state = {
        "running": None,
        "terminated": {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": now,
            "finishedAt": now,
        },
    }
    return {
        "status": {
            "phase": "Succeeded" if code == 0 else "Failed",
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "PodCompleted"},
                {"type": "ContainersReady", "status": "False", "reason": "PodCompleted"},
            ],
            "containerStatuses": [
                {"name": STEP_CONTAINER, "ready": False, "started": False, "state": state}
            ],
        }
    }


class Simulator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        conf = client.Configuration.get_default_copy()
        conf.connection_pool_maxsize = 64  # status patches from many unit threads
        self.api = client.CoreV1Api(client.ApiClient(conf))
        self.tally = Tally(args.status)
        self.pool = ThreadPoolExecutor(args.max_units, thread_name_prefix="unit")
        self.seen: set[str] = set()
        self.stopping = threading.Event()

    def take(self, pod: Any) -> None:
        """Start the unit of a Running pod on a kwok node, once per pod."""
        node = pod.spec.node_name or ""
        if not node.startswith(self.args.node_prefix) or pod.status.phase != "Running":
            return
        if pod.metadata.uid in self.seen or pod.metadata.deletion_timestamp:
            return
        self.seen.add(pod.metadata.uid)
        self.tally.start()
        self.pool.submit(self.play, pod)

    def play(self, pod: Any) -> None:
        execution = f"{pod.metadata.namespace}/{pod.metadata.labels[LABEL_EXECUTION]}"
        try:
            code, error = run_unit(self.args.db_url, pod_unit(pod))
        except Exception as e:  # a pod this simulator cannot read: it fails
            code, error = int(ExitCode.FAILED), f"{type(e).__name__}: {e}"
        if error:
            error = f"{pod.metadata.name}: {error}"
            log.warning("%s", error)
        try:
            self.api.patch_namespaced_pod_status(
                pod.metadata.name, pod.metadata.namespace, finished_status(code)
            )
        except ApiException as e:
            if e.status != 404:  # deleted meanwhile (its execution was deleted)
                error = error or f"{pod.metadata.name}: status patch: HTTP {e.status}"
        self.tally.end(execution, code, error)

    def watch(self) -> None:
        """Watch step pods (relisting on expiry) until stopped."""
        while not self.stopping.is_set():
            listed = self.api.list_pod_for_all_namespaces(label_selector=LABEL_EXECUTION)
            for pod in listed.items:
                self.take(pod)
            stream = watch.Watch().stream(
                self.api.list_pod_for_all_namespaces,
                label_selector=LABEL_EXECUTION,
                resource_version=listed.metadata.resource_version,
                timeout_seconds=120,
            )
            try:
                for event in stream:
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self.take(event["object"])
                    if self.stopping.is_set():
                        break
            except ApiException as e:
                if e.status != 410:  # 410 Gone: the resourceVersion expired, relist
                    raise

    def report(self) -> None:
        while not self.stopping.wait(self.args.report_seconds):
            self.tally.write()
            t = self.tally
            log.info("units: %d running, %d finished, %d failed", t.running, t.finished, t.failed)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db-url", required=True, help="The repository URL the units use.")
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    p.add_argument("--node-prefix", default="kwok-node-", help="Fake nodes' name prefix.")
    p.add_argument("--max-units", type=int, default=1500, help="Units running at once.")
    p.add_argument("--status", type=Path, default=None, help="JSON status file.")
    p.add_argument("--report-seconds", type=float, default=2.0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s simulator %(message)s")
    logging.getLogger("baton").setLevel(logging.CRITICAL)  # the units' own step logs
    os.environ["BATON_WORKER"] = "step-simulator"
    config.load_kube_config(args.kubeconfig)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # ends like SIGINT
    sim = Simulator(args)
    threading.Thread(target=sim.report, daemon=True).start()
    try:
        sim.watch()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stopping.set()
        sim.tally.write()
    return 0


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    os._exit(code)  # without waiting for unit threads still asleep in a checkpoint
