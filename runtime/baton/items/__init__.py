"""Built-in readers and writers, grouped by medium, plus the item protocols.

Manifests name them here (``baton.items:CsvReader``). The names load lazily (PEP 562):
a step process loads only the medium its reader and writers use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from baton.core.exports import lazy_exports

if TYPE_CHECKING:
    from baton.items.composite import CompositeWriter
    from baton.items.database import SqlReader, SqlWriter
    from baton.items.file_readers import CsvReader, JsonLinesReader, MalformedRecord
    from baton.items.file_writers import CsvWriter, JsonLinesWriter
    from baton.items.memory import IterableReader, ListWriter
    from baton.items.protocols import (
        ChunkProcessor,
        EstimatesTotal,
        ItemProcessor,
        ItemReader,
        ItemStream,
        ItemWriter,
        KnowsTotal,
        StagedWriter,
        TransactionalWriter,
    )
    from baton.items.sql_modes import write_rows

_HOMES: dict[str, tuple[str, ...]] = {
    "baton.items.composite": ("CompositeWriter",),
    "baton.items.database": ("SqlReader", "SqlWriter"),
    "baton.items.file_readers": ("CsvReader", "JsonLinesReader", "MalformedRecord"),
    "baton.items.file_writers": ("CsvWriter", "JsonLinesWriter"),
    "baton.items.memory": ("IterableReader", "ListWriter"),
    "baton.items.protocols": (
        "ChunkProcessor",
        "EstimatesTotal",
        "ItemProcessor",
        "ItemReader",
        "ItemStream",
        "ItemWriter",
        "KnowsTotal",
        "StagedWriter",
        "TransactionalWriter",
    ),
    "baton.items.sql_modes": ("write_rows",),
}
__all__ = [
    "ChunkProcessor",
    "CompositeWriter",
    "CsvReader",
    "CsvWriter",
    "EstimatesTotal",
    "ItemProcessor",
    "ItemReader",
    "ItemStream",
    "ItemWriter",
    "IterableReader",
    "JsonLinesReader",
    "JsonLinesWriter",
    "KnowsTotal",
    "ListWriter",
    "MalformedRecord",
    "SqlReader",
    "SqlWriter",
    "StagedWriter",
    "TransactionalWriter",
    "write_rows",
]


__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
