"""Built-in readers and writers, grouped by medium, plus the item protocols."""

from baton.items.database import SqlReader, SqlWriter
from baton.items.files import CsvReader, CsvWriter, JsonLinesReader, JsonLinesWriter
from baton.items.protocols import (
    ItemProcessor,
    ItemReader,
    ItemStream,
    ItemWriter,
    KnowsTotal,
    TransactionalWriter,
)
from baton.items.support import IterableReader, ListWriter

__all__ = [
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
    "SqlReader",
    "SqlWriter",
    "TransactionalWriter",
]
