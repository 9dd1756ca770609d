"""Resolving ``module:attr`` references and building components from them.

A class is instantiated with the keyword arguments it declares, chosen from what the
step offers (``params``, ``context``, ``step``, ...) plus the manifest's ``*Args``;
a function is used as is.
"""

from __future__ import annotations

import builtins
import difflib
import importlib
import inspect
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from baton.core.errors import ImportFailed, InvalidDefinition


def add_import_paths(paths: Iterable[str | Path | None]) -> None:
    """Make the manifest's folder and the working directory importable (first wins)."""
    for p in reversed([str(Path(p).resolve()) for p in paths if p]):
        if p not in sys.path:
            sys.path.insert(0, p)


def resolve(ref: str) -> Any:
    """``package.module:attr.sub`` → the object, with an error naming what failed."""
    module_name, sep, attr_path = ref.partition(":")
    if not sep or not module_name or not attr_path:
        raise ImportFailed(f"bad reference {ref!r}: expected module:attr")
    obj: Any = import_module(module_name, what=repr(ref))
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportFailed(
                f"cannot import {ref!r}: {module_name} has no '{attr_path}'"
            ) from None
    return obj


def import_module(name: str, *, what: str) -> Any:
    """Import user code; whatever it raises while importing — ``sys.exit()`` included,
    which would otherwise end the launching process with its code — is an ImportFailed."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ImportFailed(f"cannot import {what}: {e}") from None
    except SystemExit as e:
        raise ImportFailed(
            f"cannot import {what}: it called sys.exit({e.code!r}) while being imported"
        ) from None
    except Exception as e:  # the module itself raised while importing
        raise ImportFailed(f"cannot import {what}: {type(e).__name__}: {e}") from None


ROLES = {  # what a component must have, by role: (method, a callable also does)
    # (a processor may be a chunk processor instead: see ALSO)
    "tasklet": ("execute", True),
    "reader": ("read", False),
    "processor": ("process", True),
    "writer": ("write", False),
}
ALSO = {"processor": "process_chunk"}  # a role's alternative method


def check_component(ref: str, role: str, args: Mapping[str, Any] | None = None) -> None:
    """Import ``ref`` and check it can play ``role`` before anything is recorded.

    A class is checked on the class (its instances are built only in the step, with
    the step's arguments): it must define the role's method, or ``__call__`` where a
    callable does, or ``__getattr__`` (then it is trusted). A function is the component
    itself (never a factory), so it passes only where a callable does; any other
    object must have the method, or be callable where that does. A reader may also be
    an iterable object or class (its items are read by count)."""
    method, callable_ok = ROLES[role]
    methods = (method, ALSO[role]) if role in ALSO else (method,)
    obj = resolve(ref)
    if inspect.isclass(obj):
        ok = _defines(obj, *methods, "__getattr__") or (callable_ok and _defines(obj, "__call__"))
        ok = ok or (role == "reader" and _defines(obj, "__iter__"))
    else:
        ok = any(hasattr(obj, m) for m in methods) or (callable_ok and callable(obj))
        ok = ok or (role == "reader" and hasattr(obj, "__iter__") and not callable(obj))
    if not ok:
        kind = "class" if inspect.isclass(obj) else type(obj).__name__
        also = " and is not callable" if callable_ok else ""
        raise InvalidDefinition(f"{role} {ref}: this {kind} has no {method}() method{also}")
    check_args(obj, args or {}, what=f"{role} {ref}", field=f"{role}Args")


OFFERED = ("params", "context", "step", "step_context", "engine", "source_dir", "partition")
"""What a running step offers a component's constructor besides the manifest's args
(:meth:`baton.step.context.StepContext.offered`)."""


def check_args(obj: Any, args: Mapping[str, Any], *, what: str, field: str) -> None:
    """The manifest's ``field`` (``writerArgs``...) must fit how the step builds ``obj``
    (:func:`build`): a class gets them as keyword arguments of its constructor, so each
    must be one of its parameters (unless it takes ``**kwargs``) and each required
    parameter must be given or offered; anything else is used as it is, so it takes
    none. Generic: read from the signature, whatever the component."""
    if not inspect.isclass(obj):
        if args:
            raise InvalidDefinition(
                f"{what}: {field} given ({', '.join(sorted(args))}), but a "
                f"{type(obj).__name__} is used as it is and takes no args; make it a class"
            )
        return
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return
    var = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    named = [n for n, p in params.items() if p.kind not in var]
    accepted = ", ".join(n for n in named if n not in OFFERED) or "none"
    unknown = sorted(set(args) - set(named))
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        close = difflib.get_close_matches(unknown[0], named, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise InvalidDefinition(
            f"{what}: unknown {field} {', '.join(repr(u) for u in unknown)}{hint}; "
            f"accepted: {accepted}"
        )
    missing = [
        n
        for n, p in params.items()
        if p.kind not in var and p.default is p.empty and n not in args and n not in OFFERED
    ]
    if missing:
        raise InvalidDefinition(
            f"{what}: missing required {field} {', '.join(repr(m) for m in missing)}; "
            f"accepted: {accepted}"
        )


def _defines(cls: type, *names: str) -> bool:
    """Whether instances of ``cls`` get one of ``names`` from the class (not ``object``)."""
    return any(name in vars(k) for k in cls.__mro__ if k is not object for name in names)


def resolve_exception(name: str) -> type[BaseException]:
    """``ValueError`` (a builtin), ``pkg.mod:Error`` or ``pkg.mod.Error``."""
    if ":" in name:
        obj = resolve(name)
    elif "." in name:
        mod, _, attr = name.rpartition(".")
        obj = resolve(f"{mod}:{attr}")
    else:
        obj = getattr(builtins, name, None)
        if obj is None:
            raise ImportFailed(f"unknown exception type {name!r}: not a builtin; use module:Class")
    if not (isinstance(obj, type) and issubclass(obj, BaseException)):
        raise InvalidDefinition(f"{name!r} is not an exception type")
    return obj


def build(ref: str, offered: Mapping[str, Any], args: Mapping[str, Any] | None = None) -> Any:
    """Instantiate a class with what its constructor asks for; return other objects as is."""
    obj = resolve(ref)
    if not inspect.isclass(obj):
        return obj
    return call_with(obj, offered, args or {}, what=ref)


def call_with(fn: Any, offered: Mapping[str, Any], args: Mapping[str, Any], *, what: str) -> Any:
    """Call ``fn`` with the keyword arguments it declares, from ``args`` then ``offered``."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return fn(**args)
    params = sig.parameters
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kwargs: dict[str, Any] = {}
    for name, p in params.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name in args:
            kwargs[name] = args[name]
        elif name in offered:
            kwargs[name] = offered[name]
        elif p.default is p.empty:
            raise InvalidDefinition(
                f"{what} needs argument '{name}', which is neither offered "
                f"({', '.join(sorted(offered))}) nor given in the manifest's args"
            )
    unknown = set(args) - set(params)
    if unknown and not takes_kwargs:
        raise InvalidDefinition(f"{what} does not accept argument(s) {', '.join(sorted(unknown))}")
    if takes_kwargs:
        kwargs.update({k: v for k, v in args.items() if k not in kwargs})
    return fn(**kwargs)


def ref_of(obj: Any) -> str:
    """The ``module:qualname`` reference of a function or class (for @baton.job)."""
    if isinstance(obj, str):
        return obj
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or "<locals>" in qualname or "<lambda>" in qualname:
        raise InvalidDefinition(f"{obj!r} is not a module-level function or class")
    return f"{module}:{qualname}"
