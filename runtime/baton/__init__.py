"""Baton: batch jobs with Spring Batch's restart semantics, locally or on Kubernetes.

The public API is re-exported here; import ``baton``, not its submodules.
"""

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
from baton.items import (
    CsvReader,
    CsvWriter,
    IterableReader,
    JsonLinesReader,
    JsonLinesWriter,
    ListWriter,
    SqlReader,
    SqlWriter,
)
from baton.ops import CachingJobExplorer, JobExplorer, JobOperator
from baton.registry import JobRegistry, RegisteredJob, chunk, job, param, tasklet
from baton.repository import JobExecution, JobInstance, JobRepository, StepExecution
from baton.spec.model import BatchJob, ChunkSpec, JobSpec, ParameterSpec, StepSpec, load_manifests
from baton.step.context import StepContext

__version__ = "0.1.0"

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
]
