"""Late binding: ``${params.NAME}`` and ``${context.KEY}`` inside component args.

A string value that is exactly one reference becomes the referenced value itself, so
its type survives (an int parameter stays an int, a date a date); a reference inside a
longer string is formatted as text; ``$${`` is a literal ``${``. Lists and dicts are
bound item by item; keys and other values are left as they are.

Args are bound once per unit, in the step process, from the execution's parameters
and the job context as the unit finds it. Parameters are known when a job is launched,
so a reference to an undeclared one — or a reference that does not parse — is refused
then (:func:`check_bindings`), before anything is recorded; a context key may still be
written by an earlier step, so a missing one fails only the unit that needs it.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from baton.core.errors import InvalidDefinition

if TYPE_CHECKING:
    from baton.spec.model import JobSpec, StepBody

OPEN = "${"
ESCAPE = "$${"
NAMESPACES = ("params", "context")


@dataclass(frozen=True)
class Ref:
    """One ``${namespace.name}`` reference."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"${{{self.namespace}.{self.name}}}"


Piece = str | Ref
Lookup = Callable[[Ref], Any]


def escape(text: str) -> str:
    """``text`` as a literal: binding the result gives ``text`` back."""
    return text.replace(OPEN, ESCAPE)


def parse(text: str) -> list[Piece]:
    """The literal runs and references of ``text``, left to right (``$${`` unescaped);
    an InvalidDefinition on an unclosed ``${``, a bad namespace or an empty name."""
    pieces: list[Piece] = []
    literal: list[str] = []
    i = 0
    while (dollar := text.find("$", i)) >= 0:
        literal.append(text[i:dollar])
        if text.startswith(ESCAPE, dollar):
            literal.append(OPEN)
            i = dollar + len(ESCAPE)
        elif text.startswith(OPEN, dollar):
            end = text.find("}", dollar)
            if end < 0:
                raise InvalidDefinition(
                    f"unclosed '${{' in {text!r} (write '$${{' for a literal '${{')"
                )
            if any(literal):
                pieces.append("".join(literal))
                literal = []
            pieces.append(_ref(text[dollar + len(OPEN) : end]))
            i = end + 1
        else:
            literal.append("$")
            i = dollar + 1
    literal.append(text[i:])
    if any(literal):
        pieces.append("".join(literal))
    return pieces


def _ref(body: str) -> Ref:
    namespace, dot, name = body.partition(".")
    if namespace not in NAMESPACES or not dot or not name or "{" in name:
        raise InvalidDefinition(
            f"bad reference '${{{body}}}': expected ${{params.NAME}} or ${{context.KEY}}"
        )
    return Ref(namespace, name)


def as_text(value: Any) -> str:
    """How a value reads inside a longer string: strings as they are, booleans as
    true/false, dates and datetimes in ISO form, numbers as Python prints them,
    anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):  # datetime included
        return value.isoformat()
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, default=str)


def bind(value: Any, lookup: Lookup, path: str = "") -> Any:
    """``value`` with every reference replaced through ``lookup``; errors name the path."""
    if isinstance(value, str):
        try:
            return _bind_text(value, lookup)
        except InvalidDefinition as e:
            raise InvalidDefinition(f"{path}: {e}" if path else str(e)) from None
    if isinstance(value, Mapping):
        return {k: bind(v, lookup, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [bind(v, lookup, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _bind_text(text: str, lookup: Lookup) -> Any:
    if "$" not in text:
        return text
    pieces = parse(text)
    if len(pieces) == 1 and isinstance(pieces[0], Ref):
        return lookup(pieces[0])  # the whole value: its own type
    return "".join(p if isinstance(p, str) else as_text(lookup(p)) for p in pieces)


def values_lookup(params: Mapping[str, Any], context: Mapping[str, Any]) -> Lookup:
    """Look references up in a unit's parameters and job context (copies of lists and
    dicts, so a component that changes its args leaves the context alone)."""

    def lookup(ref: Ref) -> Any:
        if ref.namespace == "params":
            source, what, known = params, f"no parameter '{ref.name}'", "parameters"
        else:
            source, what, known = context, f"no key '{ref.name}' in the job context", "keys"
        if ref.name not in source:
            raise InvalidDefinition(f"{ref}: {what}{_known(ref.name, source, known)}")
        return copy.deepcopy(source[ref.name])

    return lookup


class Scope(Protocol):
    """What a unit binds from (a :class:`baton.step.context.StepContext`)."""

    params: Mapping[str, Any]
    context: Mapping[str, Any]


def bind_args(args: Mapping[str, Any], unit: Scope, field: str) -> dict[str, Any]:
    """A component's ``field`` (``readerArgs``...) bound for one unit: from its
    parameters and the job context as the unit opened with it."""
    return dict(bind(args, values_lookup(unit.params, unit.context), field))


def _known(name: str, names: Iterable[str], label: str) -> str:
    """`` (did you mean 'x'?); <label>: a, b`` — the close match and what there is."""
    ordered = sorted(names)
    close = difflib.get_close_matches(name, ordered, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{hint}; {label}: {', '.join(ordered) or 'none'}"


def component_args(step: StepBody) -> Iterator[tuple[str, dict[str, Any]]]:
    """The manifest's args of each component of ``step``, by field name."""
    if step.tasklet:
        yield "taskletArgs", step.tasklet_args
    if step.chunk is not None:
        yield "readerArgs", step.chunk.reader_args
        yield "processorArgs", step.chunk.processor_args
        yield "writerArgs", step.chunk.writer_args


def check_bindings(spec: JobSpec) -> None:
    """Refuse, before launch, a reference that does not parse or names an undeclared
    parameter (context keys are checked when a unit binds its args)."""
    declared = {p.name for p in spec.parameters} | (
        {spec.incrementer} if spec.incrementer else set()
    )

    def lookup(ref: Ref) -> Any:
        if ref.namespace == "params" and ref.name not in declared:
            raise InvalidDefinition(
                f"{ref}: unknown parameter '{ref.name}'{_known(ref.name, declared, 'declared')}"
            )
        return ""

    for step in spec.all_steps():
        for field, args in component_args(step):
            try:
                bind(args, lookup, field)
            except InvalidDefinition as e:
                raise InvalidDefinition(f"step '{step.name}': {e}") from None
