"""Late binding of ``${params.x}`` / ``${context.x}`` into component args, and the
launch-time checks of args against the components' signatures: pure, no database."""

from __future__ import annotations

import datetime as dt
import inspect
from types import SimpleNamespace
from typing import Any

import pytest
from baton.core.errors import InvalidDefinition
from baton.spec.binding import Ref, bind, bind_args, check_bindings, escape, parse, values_lookup
from baton.spec.model import JobSpec
from baton.spec.refs import OFFERED, check_args
from baton.step.context import StepContext
from hypothesis import given
from hypothesis import strategies as st

PARAMS = {"n": 3, "day": dt.date(2026, 1, 2), "ok": True, "rate": 0.5, "input": "/data/in.csv"}
CONTEXT = {"files": ["a", "b"], "seen": {"k": 1}, "run.at": dt.datetime(2026, 1, 2, 3, 4)}
LOOKUP = values_lookup(PARAMS, CONTEXT)
texts = st.text(alphabet=st.sampled_from("${}.ab pc"), max_size=30) | st.text(max_size=30)


@given(texts)
def test_escaping_any_text_binds_back_to_it(text: str) -> None:
    assert bind(escape(text), LOOKUP) == text


@given(texts.filter(lambda t: "${" not in t))
def test_a_text_without_a_reference_is_left_as_it_is(text: str) -> None:
    assert bind(text, LOOKUP) == text
    assert bind({"a": [text, 1, None]}, LOOKUP) == {"a": [text, 1, None]}


@given(
    st.sampled_from(sorted(PARAMS)),
    st.one_of(st.integers(), st.dates(), st.booleans(), st.floats(allow_nan=False), st.text()),
)
def test_a_whole_value_reference_keeps_the_value_and_its_type(name: str, value: Any) -> None:
    bound = bind(f"${{params.{name}}}", values_lookup({name: value}, {}))
    assert bound == value and type(bound) is type(value)


@given(st.text(alphabet=st.sampled_from("ab-/ "), max_size=10), st.integers())
def test_a_reference_inside_a_string_is_formatted_as_text(prefix: str, n: int) -> None:
    assert bind(f"{prefix}${{params.n}}!", values_lookup({"n": n}, {})) == f"{prefix}{n}!"


def test_text_forms_of_typed_values_and_context_objects() -> None:
    args = {
        "path": "${params.input}",
        "label": "n=${params.n} day=${params.day} ok=${params.ok} rate=${params.rate}",
        "nested": [{"files": "${context.files}", "at": "at ${context.run.at}"}],
        "json": "seen=${context.seen}",
        "literal": "$${params.n} costs $$5 and $",
        "number": 7,
    }
    assert bind(args, LOOKUP) == {
        "path": "/data/in.csv",
        "label": "n=3 day=2026-01-02 ok=true rate=0.5",
        "nested": [{"files": ["a", "b"], "at": "at 2026-01-02T03:04:00"}],
        "json": 'seen={"k": 1}',
        "literal": "${params.n} costs $$5 and $",
        "number": 7,
    }


def test_a_bound_context_object_is_a_copy() -> None:
    bound = bind("${context.files}", LOOKUP)
    bound.append("c")
    assert CONTEXT["files"] == ["a", "b"]


def test_parse_splits_literals_and_references() -> None:
    assert parse("a${params.x}b${context.y.z}") == [
        "a",
        Ref("params", "x"),
        "b",
        Ref("context", "y.z"),
    ]
    assert parse("${params.x}") == [Ref("params", "x")]
    assert str(Ref("context", "day")) == "${context.day}"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("in-${params.n", "readerArgs.path: unclosed '${' in 'in-${params.n'"),
        ("${env.HOME}", "readerArgs.path: bad reference '${env.HOME}'"),
        ("${params}", "bad reference '${params}'"),
        ("${params.}", "bad reference '${params.}'"),
        ("${}", "bad reference '${}'"),
        ("${params.nope}", "${params.nope}: no parameter 'nope'; parameters: day, input, n, ok"),
        ("${params.inptu}", "no parameter 'inptu' (did you mean 'input'?)"),
        ("${context.fils}", "no key 'fils' in the job context (did you mean 'files'?); keys:"),
    ],
)
def test_bad_references_name_the_arg_and_the_cause(text: str, needle: str) -> None:
    with pytest.raises(InvalidDefinition) as e:
        bind({"path": text}, LOOKUP, "readerArgs")
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_bind_args_reads_a_units_params_and_context() -> None:
    unit = SimpleNamespace(params=PARAMS, context={"day": "mon"})
    assert bind_args({"p": "${params.n}", "d": "on ${context.day}"}, unit, "x") == {
        "p": 3,
        "d": "on mon",
    }


def spec(args: dict[str, Any], **extra: Any) -> JobSpec:
    return JobSpec.model_validate(
        {
            "parameters": [{"name": "input"}, {"name": "n", "type": "int"}],
            "steps": [
                {"name": "a", "tasklet": "m:f"},
                {
                    "name": "load",
                    "chunk": {"reader": "m:R", "writer": "m:W", "writerArgs": args},
                },
            ],
            **extra,
        }
    )


def test_check_bindings_accepts_declared_parameters_and_any_context_key() -> None:
    check_bindings(spec({"p": "${params.input}", "c": ["${context.anything}", "$${x"]}))
    check_bindings(spec({"id": "${params.run.id}"}, incrementer="run.id"))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            {"p": "${params.inpt}"},
            "step 'load': writerArgs.p: ${params.inpt}: unknown parameter 'inpt' "
            "(did you mean 'input'?); declared: input, n",
        ),
        ({"p": ["${params.run.id}"]}, "writerArgs.p[0]: ${params.run.id}: unknown parameter"),
        ({"p": {"q": "${ctx.day}"}}, "writerArgs.p.q: bad reference '${ctx.day}'"),
        ({"p": "${context.day"}, "writerArgs.p: unclosed '${'"),
    ],
)
def test_check_bindings_refuses_what_cannot_bind(args: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidDefinition) as e:
        check_bindings(spec(args))
    assert needle in str(e.value)


# ---------------------------------------------------------------- args vs. signatures


class Writer:
    def __init__(self, table: str, mode: str = "copy", *, conflict: list[str] | None = None):
        pass


class Open:
    def __init__(self, path: str, **options: Any):
        pass


class Asks:
    def __init__(self, engine: Any, params: Any, batch: int = 10):
        pass


def a_function(items: Any) -> None:
    pass


def refusal(obj: Any, args: dict[str, Any]) -> str:
    with pytest.raises(InvalidDefinition) as e:
        check_args(obj, args, what="writer m:W", field="writerArgs")
    return str(e.value)


def test_an_unknown_arg_is_refused_with_the_close_match_and_the_accepted_ones() -> None:
    assert refusal(Writer, {"table": "t", "use_copy": False, "mdoe": "insert"}) == (
        "writer m:W: unknown writerArgs 'mdoe', 'use_copy' (did you mean 'mode'?); "
        "accepted: table, mode, conflict"
    )


def test_a_missing_required_arg_is_refused_unless_the_step_offers_it() -> None:
    assert refusal(Writer, {"mode": "insert"}) == (
        "writer m:W: missing required writerArgs 'table'; accepted: table, mode, conflict"
    )
    check_args(Asks, {}, what="w", field="writerArgs")  # engine and params are offered


def test_kwargs_accept_anything_and_a_function_takes_no_args() -> None:
    check_args(Open, {"path": "p", "anything": 1}, what="w", field="writerArgs")
    assert "missing required writerArgs 'path'" in refusal(Open, {"anything": 1})
    check_args(a_function, {}, what="w", field="writerArgs")
    assert refusal(a_function, {"size": 1}) == (
        "writer m:W: writerArgs given (size), but a function is used as it is and takes "
        "no args; make it a class"
    )


def test_the_offered_names_are_what_a_step_offers() -> None:
    fields = inspect.signature(StepContext).parameters
    given: dict[str, Any] = {n: None for n, p in fields.items() if p.default is p.empty}
    ctx = StepContext(**{**given, "params": {}, "context": {}, "step_context": {}})
    assert set(ctx.offered()) == set(OFFERED)
