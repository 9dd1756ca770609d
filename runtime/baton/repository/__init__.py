"""The job repository: schema, migrations and queries (Spring Batch's JobRepository)."""

from baton.core.entities import JobExecution, JobInstance, SkippedItem, StepExecution
from baton.repository.codec import decode_context, encode_context
from baton.repository.engine import DEFAULT_URL, normalize_url, redact
from baton.repository.store import ContextDelta, Counts, JobRepository

__all__ = [
    "DEFAULT_URL",
    "ContextDelta",
    "Counts",
    "JobExecution",
    "JobInstance",
    "JobRepository",
    "SkippedItem",
    "StepExecution",
    "decode_context",
    "encode_context",
    "normalize_url",
    "redact",
]
