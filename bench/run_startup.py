#!/usr/bin/env python
"""``baton run`` fixed cost: the whole command for a trivial one-chunk job on SQLite.

A job that reads five JSON lines and writes them costs almost nothing to run, so the
wall time of ``baton run`` on it is the fixed cost every run pays: the interpreter,
the CLI's imports, the schema check, the launch, starting the unit, its work's
transactions, the end. It is measured against two baselines in the same run,
interleaved round by round so machine drift hits all alike:

- ``python -c pass``: the interpreter alone;
- ``python -m baton.step --help``: a bare step process start (the step runtime's
  imports), what starting a unit cost before the executor forked its units;

and against ``baton run`` with ``BATON_UNIT_PROCESS=exec`` (units started as
``python -m baton.step``, as pods are). It prints medians of wall time and of CPU time
(user + system, children included: the steadier figure on a shared machine) and the
ratios, never an absolute claim. Children write bytecode to a private cache, warmed
first, as an installed image has compiled bytecode.

    python bench/run_startup.py              # 10 rounds
    python bench/run_startup.py --runs 3
    python bench/run_startup.py --before /tmp/old   # also `baton run` of another checkout's
                                                    # runtime/ (git archive REV runtime)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

JOB = """\
apiVersion: baton.dev/v1alpha1
kind: BatchJob
metadata: {{name: trivial}}
spec:
  parameters:
    - {{name: n, type: int, identifying: true}}
  steps:
    - name: copy
      chunk:
        reader: baton.items:JsonLinesReader
        readerArgs: {{path: {src}}}
        writer: baton.items:JsonLinesWriter
        writerArgs: {{path: {dst}}}
        size: 100
"""
KINDS = ("python -c pass", "python -m baton.step", "baton run", "baton run (exec units)")
BEFORE = "baton run (before)"


@dataclass
class Result:
    kinds: tuple[str, ...] = KINDS
    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for k in self.kinds:
            self.wall.setdefault(k, [])
            self.cpu.setdefault(k, [])


def _timed(cmd: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (children's user + system) of one command, which must pass."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def commands(
    work: Path, before: Path | None = None
) -> Callable[[str, int], tuple[list[str], dict[str, str]]]:
    """The command (and environment) of each kind for round ``n``."""
    src, dst = work / "in.jsonl", work / "out.jsonl"
    src.write_text("".join(json.dumps({"n": n}) + "\n" for n in range(5)))
    job = work / "job.yaml"
    job.write_text(JOB.format(src=src, dst=dst))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPYCACHEPREFIX=str(work / "pycache"), BATON_LOG_DIR=str(work / "logs"))
    db = f"sqlite:///{work / 'baton.db'}"
    py = sys.executable

    def command(kind: str, n: int) -> tuple[list[str], dict[str, str]]:
        run = [py, "-m", "baton", "run", str(job), "-p", f"n={n}", "--db", db, "--no-progress"]
        if kind == "python -c pass":
            return [py, "-c", "pass"], env
        if kind == "python -m baton.step":
            return [py, "-m", "baton.step", "--help"], env
        if kind == "baton run":
            return run, env
        if kind == BEFORE and before is not None:
            old = str(before / "runtime")
            return run, {**env, "PYTHONPATH": os.pathsep.join([old, env.get("PYTHONPATH", "")])}
        return run, {**env, "BATON_UNIT_PROCESS": "exec"}

    return command


def run_bench(
    runs: int, say: Callable[[str], object] = print, before: Path | None = None
) -> Result:
    kinds = KINDS if before is None else (*KINDS, BEFORE)
    result = Result(kinds)
    with tempfile.TemporaryDirectory(prefix="baton-run-startup-") as tmp:
        command = commands(Path(tmp), before)
        for i, kind in enumerate(kinds):  # warm the bytecode cache and the database file
            _timed(*command(kind, -1 - i))
        for n in range(1, runs + 1):
            order = kinds if n % 2 else tuple(reversed(kinds))  # ABBA
            for kind in order:
                wall, cpu = _timed(*command(kind, n * 10 + kinds.index(kind)))
                result.wall[kind].append(wall)
                result.cpu[kind].append(cpu)
            say(f"round {n}/{runs}: " + ", ".join(f"{k} {result.wall[k][-1]:.3f}s" for k in kinds))
    return result


def report(result: Result, say: Callable[[str], object] = print) -> dict[str, float]:
    """Medians and the ratios of ``baton run`` to the baselines (also returned)."""
    wall = {k: statistics.median(v) for k, v in result.wall.items()}
    cpu = {k: statistics.median(v) for k, v in result.cpu.items()}
    say(f"{'':26}{'wall (median)':>16}{'cpu (median)':>16}")
    for k in result.kinds:
        say(f"{k:26}{wall[k]:>15.3f}s{cpu[k]:>15.3f}s")
    ratios = {
        "baton run / python -c pass": wall["baton run"] / wall["python -c pass"],
        "baton run / python -m baton.step": wall["baton run"] / wall["python -m baton.step"],
        "baton run / baton run (exec units)": wall["baton run"] / wall["baton run (exec units)"],
        "cpu: baton run / baton run (exec units)": cpu["baton run"] / cpu["baton run (exec units)"],
    }
    if BEFORE in wall:
        ratios["baton run / baton run (before)"] = wall["baton run"] / wall[BEFORE]
        ratios["cpu: baton run / baton run (before)"] = cpu["baton run"] / cpu[BEFORE]
    for name, value in ratios.items():
        say(f"{name:42} {value:6.2f}x")
    return ratios


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10, help="Rounds (each runs every kind once).")
    p.add_argument("--before", type=Path, help="A checkout (its runtime/) to compare with.")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    report(run_bench(args.runs, before=args.before))
    return 0


if __name__ == "__main__":
    sys.exit(main())
