"""Reader, processor and writer of the import-orders job."""

from __future__ import annotations

import datetime as dt
from typing import Any

from baton import CsvReader, SqlWriter
from sqlalchemy import Column, Date, Integer, MetaData, Numeric, String, Table

from orders.jobs import ensure_input

RATES = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17}

orders_table = Table(
    "orders",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("order_date", Date, nullable=False),
    Column("customer", String(20), nullable=False),
    Column("amount", Numeric(12, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_eur", Numeric(12, 2), nullable=False),
)


class TransientError(Exception):
    """A failure worth retrying (say, a rate service timing out)."""


class OrdersCsvReader(CsvReader):
    """The day's orders. Its args are bound from the job's parameters in the manifest
    (``readerArgs: {path: "${params.input}", day: "${params.date}", ...}``): ``day``
    arrives as a date, ``rows`` as an int."""

    def __init__(self, path: str, day: dt.date, rows: int):
        # steps may run in different pods (no shared /tmp): generate the file if missing
        super().__init__(ensure_input(path, day, rows), name="orders")
        self.day = day

    def read(self) -> Any:
        row = super().read()
        if row is not None:
            row["order_date"] = self.day
        return row


def enrich(row: dict[str, Any]) -> dict[str, Any] | None:
    """Type the row and convert to EUR; cancelled orders are filtered out."""
    if row["status"] == "cancelled":
        return None
    amount = float(row["amount"])  # ValueError on a bad amount: skipped (skipLimit 10)
    return {
        "id": int(row["id"]),
        "order_date": row["order_date"],
        "customer": row["customer"],
        "amount": round(amount, 2),
        "currency": row["currency"],
        "amount_eur": round(amount * RATES[row["currency"]], 2),
    }


class OrdersWriter(SqlWriter):
    """Rows go into the checkpoint transaction: exactly once, even across kill -9."""

    table = orders_table
    create = True
