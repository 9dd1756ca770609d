"""``spec.parameters`` of a BatchExecution: a map ``NAME: VALUE`` (a VALUE may be
``{valueFrom: ...}``) or a list of ``{name, value}`` / ``{name, valueFrom}`` entries (Argo's
``arguments.parameters[]``, Kubernetes' ``env[].valueFrom``). A ``valueFrom`` names a
ConfigMap or Secret key in the execution's namespace, read once at launch and bound with
the literal values.

A Secret-sourced value is a credential, not an identity: it is never identifying (two
launches differing only in a password are the same instance), it must be declared a
string (so no type error can quote it), and the repository stores it as
:data:`REDACTED`, so it never reaches a status, an event, a log or ``baton show``. The
step pods get the value itself from the Secret by ``secretKeyRef`` (:func:`secret_env`),
and the step runtime puts it back into ``ctx.params``.
The decisions are pure; the reading goes through the :class:`Cluster` Protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from baton.core.errors import InvalidParameters
from baton.core.parameters import REDACTED, JobParameter, JobParameters, ParamType, secret_env_name
from baton.spec.model import BatchJob
from pydantic import ValidationError

from baton_operator.k8s.cluster import Cluster
from baton_operator.k8s.resources import KeyRef, ParameterEntry

__all__ = ["REDACTED", "Lookup", "Parsed", "launch_parameters", "parse", "secret_env"]


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


@dataclass(frozen=True)
class Parsed:
    """The parameters of a spec: literal values, and values to read at launch."""

    literal: dict[str, int | str]
    lookups: list[Lookup]


def _scalar(name: str, value: Any) -> int | str:
    """A literal value as the binding takes it (booleans and floats as text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return repr(value)
    raise InvalidParameters(
        f"parameter '{name}': a value is a string, a number, a boolean or {{valueFrom: ...}}"
    )


def _entries(raw: Any) -> list[ParameterEntry]:
    """Both forms as one list of entries."""
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        items = []
        for k, v in raw.items():
            if isinstance(v, Mapping) and set(v) != {"valueFrom"}:
                raise InvalidParameters(f"parameter '{k}': an object value is {{valueFrom: ...}}")
            items.append(
                {"name": k, "valueFrom": v["valueFrom"]}
                if isinstance(v, Mapping)
                else {"name": k, "value": v}
            )
    elif isinstance(raw, list):
        items = raw
    else:
        raise InvalidParameters(
            "spec.parameters is a map NAME: VALUE or a list of {name, value} / {name, valueFrom}"
        )
    out: list[ParameterEntry] = []
    for i, item in enumerate(items):
        try:
            out.append(ParameterEntry.model_validate(item))
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            name = item.get("name") if isinstance(item, Mapping) else None
            label = f"parameter '{name}'" if isinstance(name, str) else f"spec.parameters[{i}]"
            raise InvalidParameters(f"{label}: {where}: {err['msg']}") from None
    return out


def parse(raw: Any) -> Parsed:
    """The spec's ``parameters`` (either form), checked: a name once, exactly one of
    value or valueFrom, and a valueFrom with exactly one source."""
    literal: dict[str, int | str] = {}
    found: list[Lookup] = []
    seen: set[str] = set()
    envs: dict[str, str] = {}
    for e in _entries(raw):
        if e.name in seen:
            raise InvalidParameters(f"parameter '{e.name}' is given more than once")
        seen.add(e.name)
        if (e.value is None) == (e.value_from is None):
            raise InvalidParameters(f"parameter '{e.name}' needs exactly one of value or valueFrom")
        if e.value_from is None:
            literal[e.name] = _scalar(e.name, e.value)
            continue
        cm, secret = e.value_from.config_map_key_ref, e.value_from.secret_key_ref
        if (cm is None) == (secret is None):
            raise InvalidParameters(
                f"parameter '{e.name}': valueFrom needs exactly one of "
                "configMapKeyRef or secretKeyRef"
            )
        if secret is not None:
            env = secret_env_name(e.name)
            if env in envs:
                raise InvalidParameters(
                    f"parameters '{envs[env]}' and '{e.name}' come from Secrets and would "
                    f"share the environment variable {env}; rename one"
                )
            envs[env] = e.name
        found.append(Lookup(e.name, secret is not None, cm or secret))  # type: ignore[arg-type]
    return Parsed(literal, found)


def secret_env(raw: Any) -> list[dict[str, Any]]:
    """The step container's env entries that carry the Secret-sourced parameters (by
    reference: the value is never in the Job's manifest)."""
    return [
        {
            "name": secret_env_name(x.parameter),
            "valueFrom": {"secretKeyRef": {"name": x.ref.name, "key": x.ref.key}},
        }
        for x in parse(raw).lookups
        if x.secret
    ]


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


def launch_parameters(cluster: Cluster, namespace: str, raw: Any, job: BatchJob) -> JobParameters:
    """Read the ``valueFrom`` parameters (one read per ConfigMap/Secret), bind them with
    the literal ones against the BatchJob, and seal the Secret-sourced ones (whose value
    is only checked to exist: it is never bound, so no error can quote it)."""
    parsed = parse(raw)
    secret_names = {x.parameter for x in parsed.lookups if x.secret}
    check_secret_types(job, secret_names)
    values: dict[str, Any] = dict(parsed.literal)
    cache: dict[tuple[bool, str], dict[str, str] | None] = {}
    for x in parsed.lookups:
        key = (x.secret, x.ref.name)
        if key not in cache:
            read = cluster.get_secret_data if x.secret else cluster.get_config_map_data
            cache[key] = read(namespace, x.ref.name)
        value = value_of(x, cache[key])
        values[x.parameter] = REDACTED if x.secret else value  # the secret is never bound
    return seal(job.spec.bind(values), secret_names)
