"""A chunk processor that converts a chunk of amounts to EUR in one call: with pyarrow's
compute kernels when pyarrow is installed, in plain Python otherwise (the same rows,
rounded to cents). The reader and writer are the built-in CSV and JSON-lines ones."""

from __future__ import annotations

import csv
import random
import tempfile
from pathlib import Path
from typing import Any

from baton import CsvReader, JsonLinesWriter, StepContext

RATES = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17}
BAD_EVERY = 4_999  # a few rows carry an amount that is no number (skipped)


def folder() -> Path:
    return Path(tempfile.gettempdir()) / "baton-amounts"


def input_path(params: Any) -> Path:
    return folder() / f"amounts-{params['rows']}.csv"


def generate(ctx: StepContext) -> dict[str, Any]:
    """Write the input once (deterministic; stands in for a real feed)."""
    path = input_path(ctx.params)
    if not path.exists():
        rng = random.Random(ctx.params["rows"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "amount", "currency", "status"])
            for i in range(1, ctx.params["rows"] + 1):
                amount = "n/a" if i % BAD_EVERY == 0 else f"{rng.uniform(1, 500):.2f}"
                status = "cancelled" if rng.random() < 0.02 else "paid"
                w.writerow([i, amount, rng.choice(sorted(RATES)), status])
        tmp.replace(path)
    return {"input": str(path)}


class AmountsReader(CsvReader):
    def __init__(self, params: Any):
        super().__init__(input_path(params), name="amounts")


class EurWriter(JsonLinesWriter):
    def __init__(self, params: Any):
        out = params["output"] or folder() / f"eur-{params['rows']}.jsonl"
        super().__init__(out, name="eur")


class ToEur:
    """Cancelled rows are filtered out (the output is shorter); an amount that is no
    number raises ValueError (pyarrow's ArrowInvalid is one) for the whole call."""

    def __init__(self) -> None:
        try:
            import pyarrow.compute  # noqa: F401
        except ImportError:
            self.vectorised = False
        else:
            self.vectorised = True

    def process_chunk(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        paid = [r for r in rows if r["status"] != "cancelled"]
        rates = [RATES[r["currency"]] for r in paid]
        amounts = [r["amount"] for r in paid]
        if self.vectorised:
            eur = _with_pyarrow(amounts, rates)
        else:
            eur = [round(float(a) * rate, 2) for a, rate in zip(amounts, rates, strict=True)]
        return [
            {"id": int(r["id"]), "currency": r["currency"], "amount_eur": e}
            for r, e in zip(paid, eur, strict=True)
        ]


def _with_pyarrow(amounts: list[str], rates: list[float]) -> list[float]:
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pc.cast(pa.array(amounts, pa.string()), pa.float64())  # ArrowInvalid: ValueError
    eur = pc.round(pc.multiply(values, pa.array(rates, pa.float64())), 2)
    return [float(x) for x in eur.to_pylist()]
