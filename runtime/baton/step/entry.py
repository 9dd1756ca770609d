"""The step entrypoint as a process: ``baton step ID STEP ...`` and ``python -m baton.step``.

Every pod of a step's Indexed Job (and every local unit) is one short process, so its
start-up is paid once per partition: this module imports nothing beyond the step
runtime (no Typer, Rich, Alembic or Kubernetes client), and the repository is opened
without a migration check, which ``JobRepository.open_unit`` does inside the query
that reads the execution anyway. The ``baton`` script (:func:`baton.cli.main`) hands
``baton step`` here before it imports the CLI app.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn

from baton.core.errors import BatonError
from baton.core.logformat import FORMAT_ENV, configure_logging, log_format
from baton.core.status import ExitCode, UnitKind
from baton.repository import DEFAULT_URL, JobRepository
from baton.step import events
from baton.step.runner import run_step


def unit_argv(
    execution_id: int,
    step: str,
    *,
    kind: UnitKind = UnitKind.STEP,
    partition: int | None = None,
    from_index: bool = False,
) -> list[str]:
    """The arguments after ``baton step`` that :func:`parser` reads back: the one place
    the unit command is written (pods prefix ``baton step``, local units
    ``python -m baton.step``)."""
    argv = [str(execution_id), step]
    if kind is not UnitKind.STEP:
        argv += ["--kind", kind.value]
    if partition is not None:
        argv += ["--partition", str(partition)]
    if from_index:
        argv.append("--partition-from-index")
    return argv


def partition_for_index(env: Mapping[str, str]) -> int:
    """An Indexed Job pod's partition: BATON_PARTITIONS[JOB_COMPLETION_INDEX]."""
    pending = env.get("BATON_PARTITIONS", "").split(",")
    return int(pending[int(env["JOB_COMPLETION_INDEX"])])


def run_unit(
    db: str,
    execution_id: int,
    step: str,
    partition: int | None = None,
    *,
    partition_from_index: bool = False,
    kind: str = UnitKind.STEP,
    ready: Callable[[], None] | None = None,
) -> ExitCode:
    """Run one unit of an execution against the repository at ``db``; ``ready`` is
    called once the repository (and so its database driver) is loaded."""
    if partition_from_index:
        partition = partition_for_index(os.environ)
    events.listen(os.environ)  # the local executor's progress pipe, if it gave one
    repo = JobRepository(db, auto_migrate=False)  # open_unit checks the schema
    if ready is not None:
        ready()
    try:
        return run_step(repo, execution_id, step, partition, kind=kind)
    finally:
        repo.dispose()


def _execution_id(text: str) -> int:
    """A positive id that fits the repository's BIGINT (else no execution can have it)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an execution id: {text!r}") from None
    if not 0 < value < 2**63:
        raise argparse.ArgumentTypeError(f"no job execution with id {value}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """A usage error is one line and exit code 2, as everywhere in the CLI."""
        self.exit(int(ExitCode.USAGE), f"error: {self.prog}: {message}\n")


def parser(prog: str = "baton step") -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description="Run one unit of an execution (what pods run).")
    p.add_argument("execution_id", metavar="ID", type=_execution_id)
    p.add_argument("step", metavar="STEP")
    p.add_argument("--partition", type=int, default=None, help="Partition index.")
    p.add_argument(
        "--partition-from-index",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Indexed Job pod: run partition BATON_PARTITIONS[JOB_COMPLETION_INDEX].",
    )
    p.add_argument("--kind", default=UnitKind.STEP.value, help=f"{', '.join(UnitKind)}.")
    p.add_argument(
        "--db",
        default=os.environ.get("BATON_DB_URL", DEFAULT_URL),
        help="Job repository URL (default: $BATON_DB_URL, else sqlite:///baton.db).",
    )
    return p


def imports_done() -> None:
    """The unit process's start-up objects (its imports: SQLAlchemy, pydantic, the
    runtime) live until it exits, so the cyclic garbage collector need not walk them.
    The entry points disable it before they import this module (no collections of a
    growing heap during the imports); here everything so far moves to the permanent
    generation and collection resumes for what the unit's work allocates. That also
    spares the interpreter's exit its walk of the whole heap: a pod pays start-up and
    exit once per partition."""
    gc.freeze()
    gc.enable()


def main(argv: Sequence[str] | None = None, prog: str = "baton step") -> int:
    """Parse the ``baton step`` arguments, run the unit, return its exit code."""
    args = parser(prog).parse_args(argv)
    try:
        configure_logging(log_format(os.environ.get(FORMAT_ENV)))
    except ValueError as e:
        sys.stderr.write(f"error: {FORMAT_ENV}: {e}\n")
        return int(ExitCode.USAGE)
    try:
        return int(
            run_unit(
                args.db,
                args.execution_id,
                args.step,
                args.partition,
                partition_from_index=args.partition_from_index,
                kind=args.kind,
                ready=imports_done,
            )
        )
    except BatonError as e:
        sys.stderr.write(f"error: {e}\n")
        return int(e.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return int(ExitCode.STOPPED)
    except Exception as e:  # one line, as in the CLI; BATON_DEBUG=1 for the traceback
        if os.environ.get("BATON_DEBUG"):
            raise
        message = " ".join(f"{type(e).__name__}: {e}".split())
        sys.stderr.write(f"error: internal error: {message}\n")
        return int(ExitCode.FAILED)
