"""``baton logs ID|NAME``: the output of an execution's units, each line prefixed by
its ``step[partition]``, oldest run first; and the global options ``--log-format`` and
``--log-dir``.

One command for both places, chosen as ``stop``/``abandon`` choose: a BatchExecution
NAME (or ``-n``/``--context``/``--kubeconfig``) reads its step pods in the cluster
(:mod:`baton_operator.k8s.podlogs`); a numeric ID reads the files the local executor
kept for that execution and its earlier attempts (:mod:`baton.executors.logfiles`).
Both are a *provider*: its sources with their state, a source's lines, and whether the
execution is over; printing, selection and following are the same for both.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from queue import Empty, Queue
from typing import Annotated, Protocol

import typer

from baton.cli.cluster import cluster_for
from baton.cli.options import Context, Db, Kubeconfig, Namespace, Target, id_of
from baton.cli.session import session
from baton.core.errors import BatonError
from baton.core.logformat import FORMAT_ENV, configure_logging, log_format
from baton.core.logsources import LogSource, numbered, prefixed, select
from baton.executors.logfiles import LOG_DIR_ENV, execution_dir, log_root, tail
from baton.executors.logfiles import sources as file_sources
from baton.repository.engine import DEFAULT_URL
from baton.repository.facade import JobRepository

FOLLOW_POLL_SECONDS = 1.0
Sourced = list[tuple[LogSource, str]]  # a source and its state: pending, running, ended


class Provider(Protocol):
    def sources(self) -> Sourced: ...

    def lines(self, source: LogSource, follow: bool) -> Iterator[str]: ...

    def ended(self) -> bool: ...


def global_options(
    log_format_: Annotated[
        str,
        typer.Option(
            "--log-format",
            envvar=FORMAT_ENV,
            help="Log lines as text, or json (one object per line); also for the steps.",
        ),
    ] = "text",
    log_dir: Annotated[
        str | None,
        typer.Option(
            "--log-dir",
            envvar=LOG_DIR_ENV,
            help="Where local runs keep their units' output (default .baton/logs next to "
            "a SQLite repository).",
        ),
    ] = None,
) -> None:
    """Run batch jobs with checkpoints and restarts, locally or on Kubernetes."""
    try:
        chosen = log_format(log_format_)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="'--log-format'") from None
    if chosen != "text" or FORMAT_ENV in os.environ:
        os.environ[FORMAT_ENV] = chosen  # the step processes of a local run log alike
    if log_dir:
        os.environ[LOG_DIR_ENV] = log_dir
    configure_logging(chosen)


def logs(
    target: Target,
    step: Annotated[str | None, typer.Option("--step", "-s", help="Only this step.")] = None,
    partition: Annotated[
        int | None, typer.Option("--partition", help="Only this partition.")
    ] = None,
    attempt: Annotated[
        int | None,
        typer.Option("--attempt", min=1, help="Only each unit's Nth run (retries, restarts)."),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Stream until the execution ends.")
    ] = False,
    db: Db = DEFAULT_URL,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    r"""Print the output of an execution's units, each line prefixed by step\[partition].

    With a BatchExecution NAME (or --namespace/--context), its step, compensation and
    callback pods; with an ID, what local runs of it and its earlier attempts kept."""
    in_cluster = cluster_for(target, namespace, context, kubeconfig)
    provider: Provider
    if in_cluster is not None:
        from baton_operator.k8s.podlogs import PodLogs

        provider = PodLogs(in_cluster, target)
    else:
        provider = FileLogs(session.repository(db), id_of(target))
    try:
        shown = stream(provider, step, partition, attempt, follow)
    except KeyboardInterrupt:  # Ctrl-C ends following: not an error
        return
    if not shown:
        session.err.print(f"note: no logs of {target} match", highlight=False, markup=False)


class FileLogs:
    """The files local runs kept for an execution and the earlier attempts of its
    instance (a restart is a new execution: its logs continue the same units)."""

    def __init__(self, repo: JobRepository, execution_id: int):
        self.repo = repo
        self.execution = repo.get_execution(execution_id)  # unknown: one line, exit 5
        self.root = log_root(repo.engine.url.database, os.environ.get(LOG_DIR_ENV))
        earlier = repo.executions(instance_id=self.execution.instance_id)
        self.attempts = sorted(e.id for e in earlier if e.id <= execution_id)

    def sources(self) -> Sourced:
        state = "ended" if self.ended() else "running"
        out: Sourced = []
        for eid in self.attempts:
            folder = execution_dir(self.root, self.repo.repository_id, eid)
            now = state if eid == self.execution.id else "ended"
            out += [(s, now) for s in file_sources(folder, eid)]
        return out

    def lines(self, source: LogSource, follow: bool) -> Iterator[str]:
        if follow:
            yield from tail(source.ref, self.ended)
            return
        with open(source.ref, encoding="utf-8", errors="replace", newline="") as f:
            yield from (line.rstrip("\n") for line in f)

    def ended(self) -> bool:
        return not self.repo.get_execution(self.execution.id).status.running


def chosen(
    provider: Provider, step: str | None, partition: int | None, attempt: int | None
) -> Sourced:
    """The provider's sources that match, oldest first (attempts counted over all)."""
    found = provider.sources()
    states = {s.ref: state for s, state in found}
    picked = select(numbered(s for s, _ in found), step, partition, attempt)
    return [(s, states[s.ref]) for s in picked]


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def stream(
    provider: Provider,
    step: str | None,
    partition: int | None,
    attempt: int | None,
    follow: bool,
) -> int:
    """Print the chosen sources' lines; how many sources were shown. Without
    ``follow``, one after the other. With it, sources that ended are printed in order,
    then running ones are read side by side (a thread each, lines multiplexed as they
    come) and new ones picked up, until the execution is over and all have ended."""
    if not follow:
        shown = [s for s, state in chosen(provider, step, partition, attempt) if state != "pending"]
        for s in shown:
            for line in provider.lines(s, False):
                emit(prefixed(s, line))
        return len(shown)
    return Follower(provider).run(step, partition, attempt)


class Follower:
    """``baton logs -f``: the multiplexing loop."""

    def __init__(self, provider: Provider):
        self.provider = provider
        self.queue: Queue[str | None] = Queue()
        self.started: set[str] = set()
        self.live = 0

    def run(self, step: str | None, partition: int | None, attempt: int | None) -> int:
        while True:
            over = self.provider.ended()  # before listing: every pod of the end is seen
            for s, state in chosen(self.provider, step, partition, attempt):
                if s.ref in self.started or state == "pending":
                    continue
                self.started.add(s.ref)
                if state == "ended" and not self.live:
                    for line in self.provider.lines(s, False):  # the past, in order
                        emit(prefixed(s, line))
                else:
                    self._start(s)
            self._drain(FOLLOW_POLL_SECONDS, until_idle=over)
            if over and not self.live:
                return len(self.started)

    def _start(self, source: LogSource) -> None:
        self.live += 1

        def read() -> None:
            try:
                for line in self.provider.lines(source, True):
                    self.queue.put(prefixed(source, line))
            except BatonError as e:
                session.err.print(f"note: {source.ref}: {e}", highlight=False, markup=False)
            finally:
                self.queue.put(None)

        threading.Thread(target=read, name=source.ref, daemon=True).start()

    def _drain(self, seconds: float, until_idle: bool) -> None:
        """Print what the readers send for ``seconds`` (``until_idle``: until every
        reader has ended)."""
        deadline = time.monotonic() + seconds
        while self.live:
            left = deadline - time.monotonic()
            if left <= 0 and not until_idle:
                return
            try:
                item = self.queue.get(timeout=max(left, 0.05) if not until_idle else 1.0)
            except Empty:
                continue
            if item is None:
                self.live -= 1
            else:
                emit(item)
        if not until_idle:
            time.sleep(max(deadline - time.monotonic(), 0))
