"""The Baton side of bench/peer: the processor of the job that ``peer.py`` writes as a
manifest (its writer is the built-in SQL writer, ``writerArgs.mode`` per run).

The processor does what the Spring Batch job's ItemProcessor does: types each CSV field
and converts the amount to EUR. ``BENCH_FAIL_AT`` (a row id) makes it fail at that row,
for the fail-at-90 %-then-restart measurement; the restart runs without it.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

RATES = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17}  # the Java job's rates
FAIL_AT = int(os.environ.get("BENCH_FAIL_AT") or -1)


def convert(row: dict[str, Any]) -> dict[str, Any]:
    """A CSV row typed: id, customer, amount (2 decimals), currency, amount_eur, day."""
    id_ = int(row["id"])
    if id_ == FAIL_AT:
        raise RuntimeError(f"bench: failing at row {id_} as asked")
    amount = float(row["amount"])
    return {
        "id": id_,
        "customer": row["customer"],
        "amount": round(amount, 2),
        "currency": row["currency"],
        "amount_eur": round(amount * RATES[row["currency"]], 2),
        "order_date": dt.date.fromisoformat(row["day"]),
    }
