"""Every flow feature through the local executor, on SQLite and PostgreSQL
(in-process units for speed; the example jobs through the real CLI)."""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

import pytest
from baton import BatchStatus, JobOperator, JobRepository
from baton.spec.model import BatchJob
from conftest import ROOT, baton
from sqlalchemy import text

EXAMPLES = ROOT / "examples"


def job(spec: dict[str, Any], name: str = "flow") -> BatchJob:
    return BatchJob.model_validate({"metadata": {"name": name}, "spec": spec})


@pytest.fixture
def op(repo: JobRepository) -> JobOperator:
    return JobOperator(repo, in_process=True)


def units(repo: JobRepository, execution_id: int, kind: str = "step") -> dict[Any, Any]:
    return {
        (s.step_name, s.partition): s for s in repo.step_executions(execution_id) if s.kind == kind
    }


def max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def test_fan_out_by_count_respects_parallelism(
    op: JobOperator, repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW_SLEEP", "0.4")
    e = op.start(
        job(
            {
                "steps": [
                    {
                        "name": "fan",
                        "tasklet": "flowjobs:stamp",
                        "partitions": {"count": 5},
                        "parallelism": 2,
                    },
                ]
            }
        )
    )
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    results = [s.result for s in units(repo, e.id).values()]
    assert sorted(r["index"] for r in results) == [0, 1, 2, 3, 4]
    assert all(r["partition"] == {"index": r["index"], "count": 5} for r in results)
    overlap = max_overlap([(r["start"], r["end"]) for r in results])
    assert overlap == 2  # ran side by side, never more than parallelism


def test_items_from_step_results_and_reduce(op: JobOperator, repo: JobRepository) -> None:
    e = op.start(
        job(
            {
                "steps": [
                    {"name": "seed", "tasklet": "flowjobs:seed"},
                    {
                        "name": "square",
                        "tasklet": "flowjobs:square",
                        "partitions": {"fromStep": "seed"},
                    },
                    {"name": "total", "tasklet": "flowjobs:total"},
                ]
            }
        )
    )
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    assert repo.results(e.instance_id, "square") == [100, 400, 900]
    assert repo.get_execution(e.id).context == {"seeded": "yes", "total": 1400}
    e2 = op.start(
        job(
            {
                "steps": [
                    {
                        "name": "square",
                        "tasklet": "flowjobs:square",
                        "partitions": {"items": [{"n": 1}, {"n": 2}]},
                    },
                    {"name": "total", "tasklet": "flowjobs:total"},
                ]
            },
            name="items",
        )
    )
    assert units(repo, e2.id)[("total", None)].result == 5


def test_partitions_see_context_read_only(op: JobOperator, repo: JobRepository) -> None:
    e = op.start(
        job(
            {
                "steps": [
                    {"name": "w", "tasklet": "flowjobs:write_shared", "partitions": {"count": 1}},
                ]
            }
        )
    )
    assert e.status is BatchStatus.FAILED
    assert "does not support item assignment" in units(repo, e.id)[("w", 0)].exit_description


def test_parallel_group_runs_members_together(
    op: JobOperator, repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW_SLEEP", "0.5")
    e = op.start(
        job(
            {
                "steps": [
                    {
                        "parallel": [
                            {"name": "a", "tasklet": "flowjobs:member_a"},
                            {"name": "b", "tasklet": "flowjobs:member_b"},
                        ]
                    },
                    {"name": "after", "tasklet": "flowjobs:after_group"},
                ]
            }
        )
    )
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    u = units(repo, e.id)
    a, b, after = u[("a", None)], u[("b", None)], u[("after", None)]
    assert a.start_time < b.end_time and b.start_time < a.end_time  # overlapped
    assert after.start_time >= max(a.end_time, b.end_time)
    assert after.result == {"a": "from a", "b": "from b"}  # both context changes kept


def test_dynamic_partitions(op: JobOperator, repo: JobRepository) -> None:
    e = op.start(
        job(
            {
                "steps": [
                    {"name": "scan", "tasklet": "flowjobs:discover"},
                    {"name": "work", "tasklet": "flowjobs:square", "partitions": {"count": 0}},
                    {"name": "total", "tasklet": "flowjobs:total"},
                ]
            }
        )
    )
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    # total reads "square": it has none here; the dynamic step is "work"
    assert sorted(k[1] for k in units(repo, e.id) if k[0] == "work") == [0, 1, 2]
    assert repo.results(e.instance_id, "work") == [1, 4, 9]


def test_failed_partition_restart_reruns_only_it(
    op: JobOperator, repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW_SLEEP", "0")
    monkeypatch.setenv("FLOW_FAIL", "fan:2")
    spec = {
        "steps": [
            {"name": "fan", "tasklet": "flowjobs:stamp", "partitions": {"count": 4}},
            {"name": "end", "tasklet": "flowjobs:total"},
        ]
    }
    first = op.start(job(spec))
    assert first.status is BatchStatus.FAILED
    assert "partition 2 of step 'fan' failed" in first.exit_description
    monkeypatch.delenv("FLOW_FAIL")
    second = op.restart(first.id)
    assert second.status is BatchStatus.COMPLETED
    assert set(units(repo, second.id)) == {("fan", 2), ("end", None)}


def test_saga_compensates_completed_steps_in_reverse(op: JobOperator, repo: JobRepository) -> None:
    e = op.start(
        job(
            {
                "steps": [
                    {"name": "one", "tasklet": "flowjobs:seed", "compensate": "flowjobs:undo"},
                    {
                        "name": "two",
                        "tasklet": "flowjobs:square",
                        "partitions": {"count": 0},
                        "compensate": "flowjobs:undo",
                    },
                    {"name": "three", "tasklet": "flowjobs:seed", "compensate": "flowjobs:undo"},
                    {"name": "boom", "tasklet": "flowjobs:fail"},
                ],
                "onFailure": {"name": "report", "tasklet": "flowjobs:callback"},
            }
        )
    )
    assert e.status is BatchStatus.COMPENSATED, e.exit_description
    comps = sorted(units(repo, e.id, "compensation").values(), key=lambda s: s.id)
    assert [s.step_name for s in comps] == ["three", "one"]
    assert comps[0].result["error"] == "RuntimeError: this step always fails"
    assert comps[0].result["context"] == {"seeded": "yes"}
    assert comps[0].result["step"] == "three" and comps[0].result["partition"] is None
    [report] = units(repo, e.id, "callback").values()
    assert report.result["status"] == "COMPENSATED"
    assert "this step always fails" in report.result["error"]
    with pytest.raises(Exception, match="compensation"):
        op.restart(e.id)


def test_failed_partitions_are_compensated(
    op: JobOperator, repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW_SLEEP", "0")
    monkeypatch.setenv("FLOW_FAIL", "fan:1")
    e = op.start(
        job(
            {
                "steps": [
                    {
                        "name": "fan",
                        "tasklet": "flowjobs:stamp",
                        "partitions": {"count": 3},
                        "compensate": "flowjobs:undo",
                    },
                ]
            }
        )
    )
    assert e.status is BatchStatus.COMPENSATED
    comps = units(repo, e.id, "compensation")
    assert next(iter(comps)) == ("fan", 1)
    assert comps[("fan", 1)].result["error"].startswith("RuntimeError: injected failure")
    # then the completed partitions, latest first
    assert sorted(comps) == [("fan", 0), ("fan", 1), ("fan", 2)]


def test_compensation_on_abandon(
    op: JobOperator, repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW_SLEEP", "1")
    definition = job(
        {
            "compensateOnAbandon": True,
            "steps": [
                {"name": "one", "tasklet": "flowjobs:seed", "compensate": "flowjobs:undo"},
                {"name": "two", "tasklet": "flowjobs:stamp"},
                {"name": "three", "tasklet": "flowjobs:stamp"},
            ],
        }
    )
    launched: list[Any] = []
    result: list[Any] = []
    t = threading.Thread(
        target=lambda: result.append(op.start(definition, on_launched=launched.append))
    )
    t.start()
    while not (launched and ("two", None) in units(repo, launched[0].id)):
        threading.Event().wait(0.02)
    op.stop(launched[0].id)
    t.join(30)
    assert result[0].status is BatchStatus.STOPPED  # a stop never compensates
    abandoned = op.abandon(result[0].id)
    assert abandoned.status is BatchStatus.COMPENSATED
    comps = units(repo, abandoned.id, "compensation")
    assert list(comps) == [("one", None)]
    assert comps[("one", None)].result["step"] == "one"


def test_callbacks_see_the_outcome(op: JobOperator, repo: JobRepository) -> None:
    ok = op.start(
        job(
            {
                "steps": [{"name": "s", "tasklet": "flowjobs:seed"}],
                "onComplete": {"name": "cb", "tasklet": "flowjobs:callback"},
                "onFailure": {"name": "cbf", "tasklet": "flowjobs:callback"},
            }
        )
    )
    assert ok.status is BatchStatus.COMPLETED
    assert units(repo, ok.id, "callback")[("cb", None)].result == {
        "id": ok.id,
        "status": "COMPLETED",
        "error": "",
    }
    bad = op.start(
        job(
            {
                "steps": [{"name": "s", "tasklet": "flowjobs:fail"}],
                "onFailure": {"name": "cbf", "tasklet": "flowjobs:callback"},
            },
            name="bad",
        )
    )
    assert bad.status is BatchStatus.FAILED
    result = units(repo, bad.id, "callback")[("cbf", None)].result
    assert result["status"] == "FAILED" and "always fails" in result["error"]


def test_time_budget_continues_in_new_incarnations(
    op: JobOperator, repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW_ITEM_SLEEP", "0.02")
    e = op.start(
        job(
            {
                "parameters": [{"name": "count", "type": "int"}],
                "steps": [
                    {
                        "name": "load",
                        "maxDurationSeconds": 1,
                        "chunk": {
                            "reader": "flowjobs:SlowNumbers",
                            "writer": "testjobs:OutWriter",
                            "size": 10,
                        },
                    },
                ],
            }
        ),
        {"count": 150},
    )
    assert e.status is BatchStatus.COMPLETED, e.exit_description
    load = units(repo, e.id)[("load", None)]
    assert load.incarnations >= 2
    assert load.read_count == 150 and load.write_count == 150
    with repo.engine.connect() as c:
        n, distinct = c.execute(text("SELECT count(*), count(DISTINCT n) FROM out")).one()
    assert n == distinct == 150


def test_concurrency_queues_executions(repo: JobRepository, db_url: str) -> None:
    spec = {
        "parameters": [{"name": "k", "type": "int"}],
        "concurrency": {"maxRunning": 1, "cooldownSeconds": 0.3},
        "steps": [{"name": "s", "tasklet": "flowjobs:stamp"}],
    }
    definition = job(spec, name="serial")
    done: list[Any] = []

    def run(k: int) -> None:
        r = JobRepository(db_url)
        done.append(JobOperator(r, in_process=True).start(definition, {"k": k}))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(e.status.value for e in done) == ["COMPLETED"] * 3
    spans = sorted((e.start_time, e.end_time) for e in (repo.get_execution(d.id) for d in done))
    for (start1, end1), (start2, _) in itertools.pairwise(spans):
        assert start2 >= end1  # one at a time
        assert (start2 - start1).total_seconds() >= 0.3  # cooled down between launches


@pytest.mark.slow
def test_examples_through_the_cli(sqlite_url: str) -> None:
    db = sqlite_url
    r = baton(
        "run",
        str(EXAMPLES / "mapreduce" / "job.yaml"),
        "-p",
        "parts=3",
        "--no-progress",
        "--json",
        db=db,
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert [s["name"] for s in summary["steps"]].count("count") == 3
    res = json.loads(baton("results", str(summary["id"]), "--json", db=db).stdout)
    reduce = next(x for x in res if x["step"] == "reduce")["result"]
    assert reduce["words"] == 3400 and reduce["top"][0] == ["the", 440]

    r = baton("run", str(EXAMPLES / "discovery" / "job.yaml"), "--no-progress", "--json", db=db)
    assert r.returncode == 0, r.stderr
    res = json.loads(baton("results", str(json.loads(r.stdout)["id"]), "--json", db=db).stdout)
    assert next(x for x in res if x["step"] == "summarize")["result"] == {"files": 5, "lines": 150}

    ok = baton("run", str(EXAMPLES / "saga" / "job.yaml"), "-p", "user=ada", db=db)
    assert ok.returncode == 0, ok.stderr
    bad = baton(
        "run",
        str(EXAMPLES / "saga" / "job.yaml"),
        "-p",
        "user=bob",
        "-p",
        "failAt=init-settings",
        "--json",
        "--no-progress",
        db=db,
    )
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["status"] == "COMPENSATED"
    repo = JobRepository(db)
    with repo.engine.connect() as c:
        users = [r[0] for r in c.execute(text("SELECT user FROM saga_accounts"))]
        outbox = c.execute(text("SELECT message FROM saga_outbox WHERE user='bob'")).all()
    assert users == ["ada"]
    assert [m[0] for m in outbox] == ["welcome!", "sorry, your sign-up was rolled back"]
    hist = json.loads(baton("history", "onboard-user", "--json", db=db).stdout)
    kinds = {(h["step"], h["kind"]) for h in hist}
    assert ("create-account", "compensation") in kinds and ("welcome-done", "callback") in kinds
    assert all(h["worker"] for h in hist)


def test_initial_context_seeds_the_instance_and_a_restart_keeps_what_steps_added(
    op: JobOperator, repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW_SLEEP", "0")
    monkeypatch.setenv("FLOW_FAIL", "b:None")
    spec = job(
        {
            "steps": [
                {"name": "a", "tasklet": "flowjobs:member_a"},
                {"name": "b", "tasklet": "flowjobs:stamp"},
            ]
        }
    )
    first = op.start(spec, context={"region": "eu", "a": "seed"})
    assert first.status is BatchStatus.FAILED
    assert repo.get_execution(first.id).context == {"region": "eu", "a": "from a"}
    monkeypatch.delenv("FLOW_FAIL")
    second = op.restart(first.id)
    assert second.status is BatchStatus.COMPLETED, second.exit_description
    seen = units(repo, second.id)[("b", None)].result["seen"]
    assert seen == {"region": "eu", "a": "from a"}


def test_cli_ctx_values_are_json_when_they_parse(db_url: str, tmp_path: Any) -> None:
    manifest = tmp_path / "ctx.yaml"
    manifest.write_text(
        "apiVersion: baton.dev/v1alpha1\nkind: BatchJob\nmetadata: {name: ctx}\n"
        "spec:\n  steps:\n    - {name: show, tasklet: 'flowjobs:after_group'}\n"
    )
    r = baton(
        "run", str(manifest), "--ctx", "a=7", "--ctx", "b=plain text", "--json", db=db_url,
        env={"PYTHONPATH": str(ROOT / "tests" / "jobs")},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    shown = json.loads(baton("results", "1", "--json", db=db_url).stdout)
    assert shown[0]["result"] == {"a": 7, "b": "plain text"}, shown
    bad = baton("run", str(manifest), "--ctx", "novalue", db=db_url)
    assert bad.returncode == 5 and "bad context value 'novalue'" in bad.stderr


def test_nightly_example_context_group_and_incarnations(sqlite_url: str) -> None:
    """examples/nightly: the context flows down the chain and through a parallel group;
    `load` runs past its 2 s budget and continues in further incarnations."""
    r = baton(
        "start-next", str(EXAMPLES / "nightly" / "job.yaml"), "-p", "rows=500", "-p", "delayMs=8",
        "--json", "--no-progress", db=sqlite_url,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    load = next(s for s in summary["steps"] if s["name"] == "load")
    assert load["readCount"] == 500 and load["writeCount"] == 500
    steps = json.loads(baton("steps", str(summary["id"]), db=sqlite_url).stdout)
    assert next(s for s in steps if s["name"] == "load")["incarnations"] >= 2
    res = json.loads(baton("results", str(summary["id"]), "--json", db=sqlite_url).stdout)
    assert next(x for x in res if x["step"] == "report")["result"] == {
        "batch": "run-1",
        "rows": 500,
    }


def test_start_next_takes_one_past_the_largest_run_id(op: JobOperator, repo: JobRepository) -> None:
    spec = job(
        {
            "incrementer": "run.id",
            "parameters": [{"name": "n", "type": "int", "default": 3}],
            "steps": [{"name": "a", "tasklet": "flowjobs:total"}],
        }
    )
    ids = [op.start_next_instance(spec).parameters.as_json()["run.id"] for _ in range(2)]
    op.start(spec, {"run.id": 10})
    ids.append(op.start_next_instance(spec).parameters.as_json()["run.id"])
    assert ids == [1, 2, 11]
    assert repo.next_run_id("flow") == 12
