"""Built-in readers and writers, grouped by medium, plus the item protocols."""

from baton.items.database import SqlReader, SqlWriter
from baton.items.files import (
    CsvReader,
    CsvWriter,
    JsonLinesReader,
    JsonLinesWriter,
    MalformedRecord,
)
from baton.items.protocols import (
    ItemProcessor,
    ItemReader,
    ItemStream,
    ItemWriter,
    KnowsTotal,
    StagedWriter,
    TransactionalWriter,
)
from baton.items.support import CompositeWriter, IterableReader, ListWriter

__all__ = [
    "CompositeWriter",
    "CsvReader",
    "CsvWriter",
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
]
