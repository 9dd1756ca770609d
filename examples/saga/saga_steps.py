"""Steps and compensations of the onboard-user saga. State lives in the repository's
own database (tables created on first use), so `baton` alone shows the effects."""

from __future__ import annotations

import time
from typing import Any

from baton import StepContext
from sqlalchemy import Column, Integer, MetaData, String, Table, delete, insert, select

meta = MetaData()
accounts = Table("saga_accounts", meta, Column("user", String(64), primary_key=True))
outbox = Table(
    "saga_outbox",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user", String(64)),
    Column("message", String(200)),
)
settings = Table(
    "saga_settings", meta, Column("user", String(64), primary_key=True), Column("theme", String(20))
)


def _maybe_fail(ctx: StepContext) -> None:
    if ctx.params["failAt"] == ctx.step_name:
        raise RuntimeError(f"{ctx.step_name} failed for {ctx.params['user']} (failAt)")


def create_account(ctx: StepContext) -> dict[str, Any]:
    meta.create_all(ctx.engine, checkfirst=True)
    _maybe_fail(ctx)
    with ctx.engine.begin() as c:
        c.execute(insert(accounts).values(user=ctx.params["user"]))
    ctx.context["account"] = ctx.params["user"]
    return {"account": ctx.params["user"]}


def send_email(ctx: StepContext) -> str:
    time.sleep(int(ctx.params["pauseSeconds"]))  # time to stop it, to try an abandon
    _maybe_fail(ctx)
    with ctx.engine.begin() as c:
        c.execute(insert(outbox).values(user=ctx.params["user"], message="welcome!"))
    ctx.context["emailed"] = True
    return "sent"


def init_settings(ctx: StepContext) -> str:
    _maybe_fail(ctx)
    with ctx.engine.begin() as c:
        c.execute(insert(settings).values(user=ctx.params["user"], theme="dark"))
    return "initialised"


def delete_account(ctx: StepContext) -> str:
    with ctx.engine.begin() as c:
        c.execute(delete(accounts).where(accounts.c.user == ctx.params["user"]))
    return f"deleted account ({ctx.compensation['error'] if ctx.compensation else ''})"


def send_apology(ctx: StepContext) -> str:
    with ctx.engine.begin() as c:
        c.execute(
            insert(outbox).values(
                user=ctx.params["user"], message="sorry, your sign-up was rolled back"
            )
        )
    return "apologised"


def reset_settings(ctx: StepContext) -> str:
    with ctx.engine.begin() as c:
        c.execute(delete(settings).where(settings.c.user == ctx.params["user"]))
    return "reset"


def report(ctx: StepContext) -> dict[str, Any]:
    """onComplete / onFailure: sees the execution's outcome."""
    assert ctx.execution is not None
    with ctx.engine.connect() as c:
        exists = (
            c.execute(select(accounts.c.user).where(accounts.c.user == ctx.params["user"])).first()
            is not None
        )
    return {
        "status": ctx.execution["status"],
        "error": ctx.execution["error"],
        "accountExists": exists,
    }
