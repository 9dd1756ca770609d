"""The job repository (Spring Batch's JobRepository): schema, migrations, and one
``JobRepository`` made of a module per role (session, instances, executions,
transitions, steps, partitions, mapping)."""

from baton.repository.engine import DEFAULT_URL, normalize_url, redact
from baton.repository.facade import JobRepository

__all__ = ["DEFAULT_URL", "JobRepository", "normalize_url", "redact"]
