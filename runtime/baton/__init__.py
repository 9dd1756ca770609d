"""Baton: batch jobs with Spring Batch's restart semantics, locally or on Kubernetes.

The public API is this flat namespace; import ``baton``, not its submodules. It is
lazy (PEP 562): ``import baton`` loads nothing but :mod:`baton.core.exports`, and a
name loads its defining module on first use, so a step process (``python -m
baton.step``, which runs inside this package) pays only for the modules it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from baton.core.exports import lazy_exports

if TYPE_CHECKING:
    from baton.core.entities import JobExecution, JobInstance, StepExecution
    from baton.core.errors import (
        BatonError,
        DatabaseUnavailable,
        ImportFailed,
        InvalidDefinition,
        InvalidParameters,
        JobExecutionAlreadyRunning,
        JobInstanceAlreadyComplete,
        JobRestartRejected,
        LaunchRejected,
        NoSuchExecution,
        OptimisticLockingFailure,
        UnexpectedJobExecutionState,
        UnknownJob,
    )
    from baton.core.parameters import JobParameter, JobParameters, ParamType
    from baton.core.status import BatchStatus, ExitCode
    from baton.explore.caching import CachingJobExplorer
    from baton.explore.explorer import JobExplorer
    from baton.items import (
        CsvReader,
        CsvWriter,
        IterableReader,
        JsonLinesReader,
        JsonLinesWriter,
        ListWriter,
        SqlReader,
        SqlWriter,
        write_rows,
    )
    from baton.launch.operator import JobOperator
    from baton.registry.decorators import chunk, job, param, tasklet
    from baton.registry.jobs import JobRegistry, RegisteredJob
    from baton.repository import JobRepository
    from baton.spec.manifests import load_manifests
    from baton.spec.model import BatchJob, ChunkSpec, JobSpec, ParameterSpec, StepSpec
    from baton.step.context import StepContext

__version__ = "0.1.0"

_HOMES: dict[str, tuple[str, ...]] = {
    "baton.core.entities": ("JobExecution", "JobInstance", "StepExecution"),
    "baton.core.errors": (
        "BatonError",
        "DatabaseUnavailable",
        "ImportFailed",
        "InvalidDefinition",
        "InvalidParameters",
        "JobExecutionAlreadyRunning",
        "JobInstanceAlreadyComplete",
        "JobRestartRejected",
        "LaunchRejected",
        "NoSuchExecution",
        "OptimisticLockingFailure",
        "UnexpectedJobExecutionState",
        "UnknownJob",
    ),
    "baton.core.parameters": ("JobParameter", "JobParameters", "ParamType"),
    "baton.core.status": ("BatchStatus", "ExitCode"),
    "baton.items": (
        "CsvReader",
        "CsvWriter",
        "IterableReader",
        "JsonLinesReader",
        "JsonLinesWriter",
        "ListWriter",
        "SqlReader",
        "SqlWriter",
        "write_rows",
    ),
    "baton.explore.caching": ("CachingJobExplorer",),
    "baton.explore.explorer": ("JobExplorer",),
    "baton.launch.operator": ("JobOperator",),
    "baton.registry.decorators": ("chunk", "job", "param", "tasklet"),
    "baton.registry.jobs": ("JobRegistry", "RegisteredJob"),
    "baton.repository": ("JobRepository",),
    "baton.spec.manifests": ("load_manifests",),
    "baton.spec.model": ("BatchJob", "ChunkSpec", "JobSpec", "ParameterSpec", "StepSpec"),
    "baton.step.context": ("StepContext",),
}
__all__ = [
    "BatchJob",
    "BatchStatus",
    "BatonError",
    "CachingJobExplorer",
    "ChunkSpec",
    "CsvReader",
    "CsvWriter",
    "DatabaseUnavailable",
    "ExitCode",
    "ImportFailed",
    "InvalidDefinition",
    "InvalidParameters",
    "IterableReader",
    "JobExecution",
    "JobExecutionAlreadyRunning",
    "JobExplorer",
    "JobInstance",
    "JobInstanceAlreadyComplete",
    "JobOperator",
    "JobParameter",
    "JobParameters",
    "JobRegistry",
    "JobRepository",
    "JobRestartRejected",
    "JobSpec",
    "JsonLinesReader",
    "JsonLinesWriter",
    "LaunchRejected",
    "ListWriter",
    "NoSuchExecution",
    "OptimisticLockingFailure",
    "ParamType",
    "ParameterSpec",
    "RegisteredJob",
    "SqlReader",
    "SqlWriter",
    "StepContext",
    "StepExecution",
    "StepSpec",
    "UnexpectedJobExecutionState",
    "UnknownJob",
    "chunk",
    "job",
    "load_manifests",
    "param",
    "tasklet",
    "write_rows",
]


__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
