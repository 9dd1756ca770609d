"""The flat public names users write: ``from baton import X`` and, in manifests,
``baton.items:CsvReader``. Both packages are lazy facades (PEP 562): importing them
loads only the helper that makes them lazy, and each name loads its defining module
on first use."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import baton
import baton.items
import pytest
from baton.spec.refs import resolve

FACADES = [baton, baton.items]


@pytest.mark.parametrize("facade", FACADES, ids=lambda m: m.__name__)
def test_every_public_name_resolves_to_its_defining_module(facade: ModuleType) -> None:
    table = {name: module for module, names in facade._HOMES.items() for name in names}
    assert sorted(facade.__all__) == sorted(table)
    for name in facade.__all__:
        value = getattr(facade, name)
        assert value is getattr(sys.modules[table[name]], name)
        assert name in dir(facade)
    with pytest.raises(AttributeError):
        facade.NoSuchName  # noqa: B018


def test_manifest_references_to_builtin_items_resolve() -> None:
    for name in baton.items.__all__:
        assert resolve(f"baton.items:{name}") is getattr(baton.items, name)


def test_importing_the_facades_loads_nothing_else() -> None:
    code = (
        "import sys, baton, baton.items\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'baton'))\n"
        "print(baton.__version__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == [
        "['baton', 'baton.core', 'baton.core.exports', 'baton.items']",
        baton.__version__,
    ]
