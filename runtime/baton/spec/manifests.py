"""Reading BatchJob manifests: YAML files and parsed documents into validated models,
with one short error naming where the first problem is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from baton.core.errors import InvalidDefinition
from baton.spec.model import BatchJob
from baton.spec.values import MAX_DEPTH, plain_problem, short_repr


def first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(x) for x in err["loc"]) or "manifest"
    msg = str(err["msg"]).removeprefix("Value error, ")
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{where}: {msg}{more}"


def parse_job(doc: Any, source: str = "manifest") -> BatchJob:
    if not isinstance(doc, dict):
        raise InvalidDefinition(f"{source}: expected a BatchJob mapping, got {type(doc).__name__}")
    if doc.get("kind") not in (None, "BatchJob"):
        raise InvalidDefinition(
            f"{source}: kind is {short_repr(doc.get('kind'))}, expected BatchJob"
        )
    problem = plain_problem(doc)
    if problem:
        raise InvalidDefinition(f"{source}: invalid BatchJob: {problem}")
    try:
        job = BatchJob.model_validate(doc)
    except ValidationError as e:
        raise InvalidDefinition(f"{source}: invalid BatchJob: {first_error(e)}") from None
    try:  # the definition is snapshotted as JSON into every execution
        json.dumps(job.dump(), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidDefinition(f"{source}: invalid BatchJob: not storable as JSON: {e}") from None
    return job


def load_manifests(path: Path) -> list[BatchJob]:
    """All BatchJob documents of a YAML file (other kinds are ignored)."""
    docs = read_documents(path)
    jobs = [
        parse_job(d, str(path))
        for d in docs
        if not (isinstance(d, dict) and d.get("kind") not in (None, "BatchJob"))
    ]
    if not jobs:
        raise InvalidDefinition(f"{path}: no BatchJob document found")
    return jobs


def read_documents(path: Path) -> list[Any]:
    """The YAML documents of a file (empty ones dropped); one short error for a file
    that cannot be read, is not UTF-8 or not YAML."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InvalidDefinition(f"cannot read manifest {path}: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidDefinition(
            f"{path}: not a YAML manifest: byte 0x{data[e.start]:02x} at offset {e.start} "
            "is not UTF-8 text"
        ) from None
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise InvalidDefinition(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise InvalidDefinition(f"{path}: nested deeper than {MAX_DEPTH} levels") from None
