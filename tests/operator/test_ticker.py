"""The operator's own ticker (instead of a Kopf timer, which would put a finalizer on
every BatchExecution) and its peering gate."""

from __future__ import annotations

import datetime as dt
import threading

from baton_operator import handlers
from baton_operator.ticker import PeeringGate, Ticker, peering_active

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def peer(priority: int, seen: dt.datetime = NOW, lifetime: int = 60) -> dict[str, object]:
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


def test_only_running_executions_are_ticked_until_they_end_or_go() -> None:
    phases = {("a", "x"): "Running", ("a", "y"): "Pending", ("b", "z"): "Running"}
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def reconcile(namespace: str, name: str) -> str | None:
        with lock:
            seen.append((namespace, name))
        return phases.get((namespace, name))

    t = Ticker(reconcile, terminal={"Completed", "Stopped"})
    t.track("a", "x", "Running")
    t.track("a", "y", "")  # no phase yet: ticked too
    t.track("a", "done", "Completed")
    t.track("b", "z", "Running")
    assert t.tick() == 3 and sorted(seen) == [("a", "x"), ("a", "y"), ("b", "z")]
    phases[("a", "x")] = "Stopped"  # ended: reconciled once more, then no longer ticked
    del phases[("b", "z")]  # deleted: reconcile says None
    t.tick()
    assert t.running() == [("a", "y")]
    t.forget("a", "y")
    seen.clear()
    assert t.tick() == 0 and seen == []


def test_one_failing_reconcile_does_not_stop_the_others() -> None:
    done: list[str] = []

    def reconcile(namespace: str, name: str) -> str | None:
        if name == "bad":
            raise RuntimeError("database down")
        done.append(name)
        return "Running"

    t = Ticker(reconcile, terminal=())
    for name in ("bad", "good"):
        t.track("ns", name, "Running")
    t.tick()
    assert done == ["good"] and t.running() == [("ns", "bad"), ("ns", "good")]


def test_a_paused_replica_does_not_tick() -> None:
    calls: list[str] = []
    active = False
    t = Ticker(lambda ns, n: calls.append(n) or "Running", terminal=(), active=lambda: active)
    t.track("ns", "x", "Running")
    assert t.tick() == 0 and calls == []
    active = True
    assert t.tick() == 1 and calls == ["x"]


def test_the_thread_ticks_and_stops() -> None:
    ticked = threading.Event()
    t = Ticker(lambda ns, n: ticked.set() or "Running", terminal=(), interval=0.05)
    t.track("ns", "x", "Running")
    t.start()
    try:
        assert ticked.wait(5)
    finally:
        t.stop()


def test_peering_active_follows_kopf_rules() -> None:
    now = NOW.timestamp()
    assert peering_active(None, 5, now)  # no peers recorded yet
    assert peering_active({"me": peer(5)}, 5, now)
    assert peering_active({"me": peer(5), "other": peer(3)}, 5, now)
    assert not peering_active({"me": peer(5), "other": peer(9)}, 5, now)
    assert not peering_active({"me": peer(5), "twin": peer(5)}, 5, now)  # Kopf freezes both
    stale = NOW - dt.timedelta(seconds=120)
    assert peering_active({"me": peer(5), "gone": peer(9, seen=stale)}, 5, now)


def test_the_gate_caches_and_is_always_open_standalone() -> None:
    reads: list[int] = []
    clock = [NOW.timestamp()]
    body = {"status": {"me": peer(5), "other": peer(9)}}

    def read() -> dict[str, object]:
        reads.append(1)
        return body

    gate = PeeringGate(read, 5, ttl=5, clock=lambda: clock[0])
    assert not gate() and not gate() and len(reads) == 1
    body = {"status": {"me": peer(5)}}
    clock[0] += 6
    assert gate() and len(reads) == 2
    assert PeeringGate(None, 0)()

    def broken() -> dict[str, object]:
        raise OSError("apiserver down")

    assert not PeeringGate(broken, 5)()


def test_no_handler_needs_a_finalizer() -> None:
    """A Kopf timer (or daemon, or a mandatory on.delete) makes Kopf put its finalizer
    on every BatchExecution; the operator registers none of them, so a namespace can be
    deleted whether the operator runs or not."""
    import kopf

    registry = kopf.get_default_registry()
    spawning = list(registry._spawning.get_all_handlers())
    changing = list(registry._changing.get_all_handlers())
    assert handlers.FINALIZER == "baton.dev/operator"
    assert spawning == [] and not any(h.requires_finalizer for h in changing)
