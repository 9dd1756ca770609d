"""``baton logs`` against the cluster (issue 12), through the baton CLI and kubectl
only: ``-f`` streams the partitions of a running fan-out as they print, each line
prefixed ``step[i]`` (and the callback pod's ``notify/callback``), and ends by itself
when the execution completed; ``--step``/``--partition``/``--attempt`` afterwards pick
pods; an unknown execution is one line and exit 5; ``status.logs`` has the link the
chart's ``logs.urlTemplate`` makes for each step."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from conftest import Kubectl

from .support import LOGS_URL, REPO, apply_job, execution, status, wait_phase

pytestmark = pytest.mark.e2e

WD = "/opt/baton/examples/chatty"
TICKS = 40


def baton(kubectl: Kubectl, ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "baton", "logs", *args, "-n", ns,
         "--kubeconfig", kubectl.kubeconfig],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip


class Follow:
    """``baton logs NAME -f`` in the background, its lines read as they come, each
    with the phase the execution had when it arrived."""

    def __init__(self, kubectl: Kubectl, ns: str, name: str):
        self.kubectl, self.ns, self.name = kubectl, ns, name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "baton", "logs", name, "-f", "-n", ns,
             "--kubeconfig", kubectl.kubeconfig],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not any(line.startswith(prefix) for line in self.lines):
            assert self.proc.poll() is None, (self.lines, self.proc.stderr)
            assert time.monotonic() < deadline, f"no line {prefix!r} in {timeout}s: {self.lines}"
            time.sleep(0.5)


@pytest.fixture
def follower() -> Iterator[list[Follow]]:
    made: list[Follow] = []
    yield made
    for f in made:
        if f.proc.poll() is None:
            f.proc.kill()
            f.proc.wait()


def test_follow_streams_a_running_fan_out_and_ends_with_it(
    kubectl: Kubectl, ns: str, follower: list[Follow]
) -> None:
    apply_job(kubectl, ns, "chatty")
    execution(kubectl, ns, "talk", "chatty", {"ticks": TICKS, "delayMs": 750}, workingDir=WD)
    wait_phase(kubectl, ns, "talk", "Running")
    follow = Follow(kubectl, ns, "talk")
    follower.append(follow)
    follow.wait_for("say[1] tick ")
    # a line of a partition arrived while the fan-out still ran: streamed, not replayed
    assert status(kubectl, ns, "talk")["phase"] == "Running", follow.lines
    assert follow.proc.wait(timeout=300) == 0, follow.proc.stderr
    follow.reader.join(timeout=30)
    assert status(kubectl, ns, "talk")["phase"] == "Completed"
    for p in (0, 1, 2):
        ticks = [line for line in follow.lines if line.startswith(f"say[{p}] tick ")]
        assert ticks == [f"say[{p}] tick {i} of {TICKS}" for i in range(1, TICKS + 1)]
        assert f"say[{p}] WARNING chatty: partition {p} said {TICKS} ticks" in follow.lines
    assert any(line.startswith("notify/callback execution ") for line in follow.lines)

    one = baton(kubectl, ns, "talk", "--step", "say", "--partition", "2")
    assert one.returncode == 0, one.stderr
    assert one.stdout.splitlines() == [
        *(f"say[2] tick {i} of {TICKS}" for i in range(1, TICKS + 1)),
        f"say[2] WARNING chatty: partition 2 said {TICKS} ticks",
    ]
    everything = baton(kubectl, ns, "talk")
    assert everything.returncode == 0, everything.stderr
    assert sorted(everything.stdout.splitlines()) == sorted(follow.lines)  # nothing twice
    assert baton(kubectl, ns, "talk", "--step", "say", "--attempt", "2").stdout == ""

    links = status(kubectl, ns, "talk")["logs"]
    assert set(links) == {"say", "notify"}
    assert links["say"] == (
        LOGS_URL.replace("{namespace}", quote(ns, safe=""))
        .replace("{execution}", "talk")
        .replace("{step}", "say")
    )


def test_an_unknown_execution_is_one_line_and_exit_5(kubectl: Kubectl, ns: str) -> None:
    r = baton(kubectl, ns, "nope")
    assert r.returncode == 5, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nope" in lines[0], lines
