"""What the commands share in their signatures: Typer option aliases, execution ids
the repository can hold, and the parsing of ``-p NAME=VALUE`` / ``--ctx KEY=VALUE``."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import typer

from baton.core.errors import InvalidParameters, NoSuchExecution
from baton.spec.values import INT_MAX, MAX_DEPTH, plain_problem, short_repr, text_problem


def known_id(value: int) -> int:
    """An execution id the repository can hold (a BIGINT); any other cannot exist."""
    if not 0 < value <= INT_MAX:
        raise NoSuchExecution(f"no job execution with id {value}")
    return value


def id_of(target: str) -> int:
    """The numeric execution id of an ID|NAME argument already known not to be a name."""
    return known_id(int(target))


Db = Annotated[
    str,
    typer.Option(
        "--db", envvar="BATON_DB_URL", help="Job repository URL (sqlite:/// or postgresql://)."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Params = Annotated[
    list[str] | None, typer.Option("-p", "--param", help="Job parameter NAME=VALUE (repeatable).")
]
Ctx = Annotated[
    list[str] | None,
    typer.Option(
        "--ctx",
        help="Initial job context KEY=VALUE (repeatable; VALUE as JSON when it parses).",
    ),
]
JobName = Annotated[
    str | None, typer.Option("--job", "-j", help="Job to run when the file defines several.")
]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="No live progress bar.")]
Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Cluster: namespace of the BatchExecution."),
]
Context = Annotated[
    str | None, typer.Option("--context", help="Cluster: kubeconfig context to use.")
]
Kubeconfig = Annotated[
    str | None, typer.Option("--kubeconfig", help="Cluster: kubeconfig file (else $KUBECONFIG).")
]
Target = Annotated[
    str, typer.Argument(metavar="ID|NAME", help="Execution id, or a BatchExecution name.")
]
ExecutionId = Annotated[int, typer.Argument(metavar="ID", callback=known_id)]
JobArg = Annotated[str, typer.Argument(metavar="JOB")]


def parse_cli_context(pairs: list[str]) -> dict[str, Any]:
    """``--ctx key=value`` pairs into an initial job context: a value that parses as
    strict JSON (a number, true, a list, an object, a quoted string) keeps its type,
    anything else (``NaN`` too) is a string. A JSON number out of float range, nesting
    beyond :data:`MAX_DEPTH` or text that cannot be stored is refused."""
    out: dict[str, Any] = {}
    for key, value in parse_cli_params(pairs, what="context value").items():
        try:
            out[key] = json.loads(value, parse_constant=_no_constant)
        except RecursionError:
            raise InvalidParameters(
                f"context value '{key}': nested deeper than {MAX_DEPTH} levels"
            ) from None
        except ValueError:
            out[key] = value
        problem = plain_problem(out[key], depth=1)
        if problem:
            raise InvalidParameters(f"context value '{key}': {problem}")
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_cli_params(pairs: list[str], what: str = "parameter") -> dict[str, str]:
    """``-p name=value`` pairs into a mapping; the value may contain '='."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not re.match(r"^[A-Za-z_][\w.\-]*$", name.strip()):
            raise InvalidParameters(f"bad {what} {short_repr(pair)}: expected NAME=VALUE")
        problem = text_problem(value)
        if problem:
            raise InvalidParameters(f"bad {what} '{name.strip()}': {problem}: {short_repr(value)}")
        out[name.strip()] = value
    return out
