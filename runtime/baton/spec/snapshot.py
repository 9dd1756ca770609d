"""The job spec an execution snapshotted at launch, parsed once per process.

An execution's ``job_spec`` never changes after launch, yet the executor, the operator
(every reconcile tick) and the step runner all need it as a model. ``job_of`` keys a
small cache by the spec's canonical JSON, so each distinct snapshot is validated once
per process however many records (re-read from the repository) carry it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Protocol

from baton.spec.model import BatchJob


class HasJobSpec(Protocol):
    @property
    def job_spec(self) -> Mapping[str, Any]: ...


def job_of(execution: HasJobSpec) -> BatchJob:
    """The execution's job, as launched (validated once per distinct snapshot)."""
    return _parse(json.dumps(execution.job_spec, sort_keys=True, separators=(",", ":")))


@lru_cache(maxsize=256)
def _parse(canonical: str) -> BatchJob:
    return BatchJob.model_validate(json.loads(canonical))
