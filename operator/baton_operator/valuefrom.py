"""``spec.parameterSources``: job parameters read at launch from a ConfigMap or Secret
key in the execution's namespace, resolved once and bound with the literal ones.

A Secret-sourced value is a credential, not an identity: it is never identifying (two
launches differing only in a password are the same instance), it must be declared a
string (so no type error can quote it), and the repository stores it as
:data:`REDACTED`, so it never reaches a status, an event, a log or ``baton show``.
The decisions are pure; the reading goes through the :class:`Cluster` Protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from baton.core.errors import InvalidParameters
from baton.core.parameters import JobParameter, JobParameters, ParamType
from baton.spec.model import BatchJob
from pydantic import ValidationError

from baton_operator.k8s.cluster import Cluster
from baton_operator.k8s.resources import KeyRef, ParameterSource

REDACTED = "<redacted>"


@dataclass(frozen=True)
class Lookup:
    """One value to read: from a ConfigMap or a Secret."""

    parameter: str
    secret: bool
    ref: KeyRef

    @property
    def what(self) -> str:
        kind = "Secret" if self.secret else "ConfigMap"
        return f"parameter '{self.parameter}': {kind} '{self.ref.name}'"


def lookups(spec: Mapping[str, Any]) -> list[Lookup]:
    """The ``parameterSources`` of a raw BatchExecution spec, checked: exactly one
    source each, no name twice, none also given in ``parameters``."""
    try:
        sources = [ParameterSource.model_validate(s) for s in spec.get("parameterSources") or []]
    except ValidationError as e:
        raise InvalidParameters(f"spec.parameterSources: {e.errors()[0]['msg']}") from None
    literal = set(spec.get("parameters") or {})
    seen: set[str] = set()
    out: list[Lookup] = []
    for s in sources:
        cm, secret = s.value_from.config_map_key_ref, s.value_from.secret_key_ref
        if (cm is None) == (secret is None):
            raise InvalidParameters(
                f"parameter '{s.name}': valueFrom needs exactly one of "
                "configMapKeyRef or secretKeyRef"
            )
        if s.name in literal or s.name in seen:
            raise InvalidParameters(f"parameter '{s.name}' is given more than once")
        seen.add(s.name)
        out.append(Lookup(s.name, secret is not None, cm or secret))  # type: ignore[arg-type]
    return out


def value_of(lookup: Lookup, data: Mapping[str, str] | None) -> str:
    """The looked-up value, or why it cannot be had (never the value itself)."""
    if data is None:
        raise InvalidParameters(f"{lookup.what} not found")
    if lookup.ref.key not in data:
        raise InvalidParameters(f"{lookup.what} has no key '{lookup.ref.key}'")
    return data[lookup.ref.key]


def check_secret_types(job: BatchJob, secret_names: set[str]) -> None:
    """A Secret-sourced parameter must be declared a string: typing it could put the
    value into an error message."""
    for p in job.spec.parameters:
        if p.name in secret_names and p.type is not ParamType.STRING:
            raise InvalidParameters(
                f"parameter '{p.name}' comes from a Secret and must be declared type "
                f"string (it is {p.type.value})"
            )


def seal(params: JobParameters, secret_names: set[str]) -> JobParameters:
    """The parameters as the repository stores them: Secret-sourced ones redacted and
    not identifying."""
    for name in sorted(secret_names & {p.name for p in params.items}):
        params = params.with_param(JobParameter(name, ParamType.STRING, REDACTED, False))
    return params


def launch_parameters(
    cluster: Cluster,
    namespace: str,
    spec: Mapping[str, Any],
    job: BatchJob,
    raw_params: Mapping[str, Any] | None,
) -> JobParameters:
    """Resolve ``spec.parameterSources`` (one read per ConfigMap/Secret), bind them with
    the literal parameters against the BatchJob, and seal the Secret-sourced ones (whose
    value is only checked to exist: it is never bound, so no error can quote it)."""
    found = lookups(spec)
    secret_names = {x.parameter for x in found if x.secret}
    check_secret_types(job, secret_names)
    raw = dict(raw_params or {})
    cache: dict[tuple[bool, str], dict[str, str] | None] = {}
    for x in found:
        key = (x.secret, x.ref.name)
        if key not in cache:
            read = cluster.get_secret_data if x.secret else cluster.get_config_map_data
            cache[key] = read(namespace, x.ref.name)
        value = value_of(x, cache[key])
        raw[x.parameter] = REDACTED if x.secret else value  # the secret is never bound
    return seal(job.spec.bind(raw), secret_names)
