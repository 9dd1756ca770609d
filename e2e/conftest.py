"""Fixtures for the end-to-end scenarios (marker ``e2e``).

The cluster is made by ``e2e/cluster up``, which writes an env file
(``/var/lib/baton-e2e/e2e.env`` for the local provider) naming the
kubeconfig, kubectl, helm, the project image tag and the PostgreSQL the pods
use. Scenarios drive the cluster with kubectl only, as a user would.

Reusable pieces (for the operator's scenarios too):
  e2e_env      the env file as a dict
  kubectl      a Kubectl helper bound to the cluster's kubeconfig
  namespace    a fresh namespace per test, deleted afterwards (diagnostics
               printed when the test failed)
  image        the project image tag (imagePullPolicy: IfNotPresent)
  helm         a function running the pinned helm with the kubeconfig
  database     a fresh PostgreSQL database for this test run (session)
  new_database a factory for more databases (dropped at the end)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
ENV_CANDIDATES = [
    os.environ.get("E2E_ENV_FILE", ""),
    os.path.join(os.environ.get("E2E_STATE", "/var/lib/baton-e2e"), "e2e.env"),
    os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
        "baton-e2e-kind",
        "e2e.env",
    ),
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs the real cluster made by e2e/cluster up")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Lets fixtures see whether the test itself failed (for diagnostics).
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


_MEASURES: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Scenarios print "MEASURE ..." lines; collect them whatever the capture mode.
    if report.when == "call":
        _MEASURES.extend(
            line.strip() for line in report.capstdout.splitlines() if "MEASURE " in line
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The measurements of the run, together at the end (also when output is captured)."""
    if _MEASURES:
        terminalreporter.section("measurements")
        for line in _MEASURES:
            terminalreporter.write_line(line)


def read_env_file() -> dict[str, str]:
    for candidate in ENV_CANDIDATES:
        if candidate and os.path.isfile(candidate):
            env: dict[str, str] = {}
            for line in Path(candidate).read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    key, value = line.split("=", 1)
                    env[key] = value
            env["E2E_ENV_FILE"] = candidate
            return env
    pytest.fail(
        "no e2e cluster: none of "
        + ", ".join(c for c in ENV_CANDIDATES if c)
        + " exists. Run `make cluster-up` (or `sudo e2e/cluster up`) first.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def e2e_env() -> dict[str, str]:
    return read_env_file()


class KubectlError(AssertionError):
    pass


@dataclass
class Kubectl:
    """kubectl bound to the e2e cluster. Every call has a bounded timeout."""

    binary: str
    kubeconfig: str

    def run(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "--kubeconfig", self.kubeconfig, *args]
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise KubectlError(
                f"{shlex.join(cmd)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    __call__ = run

    def json(self, *args: str, timeout: float = 60) -> Any:
        return json.loads(self.run(*args, "-o", "json", timeout=timeout).stdout)

    def apply(self, manifest: str | dict[str, Any], namespace: str | None = None) -> str:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        ns = ["-n", namespace] if namespace else []
        return self.run("apply", *ns, "-f", "-", input=text).stdout

    def get(self, kind: str, name: str, namespace: str) -> Any:
        return self.json("-n", namespace, "get", kind, name)

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return list(self.json("-n", namespace, "get", "pods", "-l", selector)["items"])

    def logs(self, namespace: str, pod: str, *extra: str) -> str:
        return self.run("-n", namespace, "logs", pod, *extra, check=False).stdout

    def job_logs(self, namespace: str, job: str) -> str:
        out = []
        for pod in self.pods(namespace, f"job-name={job}"):
            name = pod["metadata"]["name"]
            out.append(
                f"--- pod {name} ({pod['status'].get('phase')})\n{self.logs(namespace, name)}"
            )
        return "\n".join(out)

    def wait_for_job(self, namespace: str, job: str, timeout: float = 300) -> dict[str, Any]:
        """Waits until the Job is Complete; fails fast (with logs) if it Failed."""
        deadline = time.monotonic() + timeout
        while True:
            obj = self.get("job", job, namespace)
            conditions = {
                c["type"]: c
                for c in obj.get("status", {}).get("conditions", [])
                if c["status"] == "True"
            }
            if "Complete" in conditions:
                return dict(obj)
            if "Failed" in conditions:
                raise AssertionError(
                    f"job {namespace}/{job} failed: {conditions['Failed'].get('message')}\n"
                    + self.job_logs(namespace, job)
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"job {namespace}/{job} not complete after {timeout}s; status "
                    f"{json.dumps(obj.get('status'))}\n" + self.job_logs(namespace, job)
                )
            time.sleep(1)

    def wait_until(
        self, what: str, predicate: Callable[[], Any], timeout: float = 120, interval: float = 1
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(interval)

    def can_i(self, verb: str, resource: str, namespace: str, as_user: str | None = None) -> bool:
        args = ["auth", "can-i", verb, resource, "-n", namespace]
        if as_user:
            args.append(f"--as={as_user}")
        proc = self.run(*args, check=False)
        answer = proc.stdout.strip()
        if answer not in ("yes", "no"):
            raise KubectlError(
                f"kubectl {' '.join(args)}: unexpected answer {proc.stdout!r} {proc.stderr!r}"
            )
        return answer == "yes"


@pytest.fixture(scope="session")
def kubectl(e2e_env: dict[str, str]) -> Kubectl:
    k = Kubectl(e2e_env["E2E_KUBECTL"], e2e_env["E2E_KUBECONFIG"])
    k.run("get", "--raw", "/readyz", timeout=30)
    return k


@pytest.fixture(scope="session")
def image(e2e_env: dict[str, str]) -> str:
    return e2e_env["E2E_IMAGE"]


@pytest.fixture(scope="session")
def project_image(e2e_env: dict[str, str]) -> str:
    """The project image; skips only while the Python package does not exist."""
    if not (REPO / "pyproject.toml").exists():
        pytest.skip("no pyproject.toml yet: the baton package (and so its image) does not exist")
    if e2e_env.get("E2E_PROJECT_IMAGE") != "1":
        pytest.fail(
            "the cluster was brought up before pyproject.toml existed; run `make cluster-up` again "
            "to build and import the project image",
            pytrace=False,
        )
    return e2e_env["E2E_IMAGE"]


@pytest.fixture(scope="session")
def helm(e2e_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """helm(*args) runs the pinned Helm against the e2e cluster."""

    def run(
        *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        cmd = [e2e_env["E2E_HELM"], "--kubeconfig", e2e_env["E2E_KUBECONFIG"], *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{shlex.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    return run


_MADE_NAMESPACES: list[str] = []
NAMESPACES_GONE_WITHIN = float(os.environ.get("E2E_NAMESPACES_GONE_WITHIN", "240"))


def namespace_leftovers(kubectl: Kubectl, name: str) -> str:
    """What keeps a Terminating namespace: its conditions and every object left in it
    (with finalizers), for the failure message."""
    ns = kubectl("get", "namespace", name, "-o", "json", check=False)
    if ns.returncode != 0:
        return ""
    conditions = [
        f"{c['type']}: {c.get('message', '')}"
        for c in json.loads(ns.stdout).get("status", {}).get("conditions", [])
        if c.get("status") == "True"
    ]
    kinds = kubectl(
        "api-resources", "--verbs=list", "--namespaced", "-o", "name", check=False
    ).stdout.split()
    left = kubectl(
        "-n", name, "get", ",".join(k for k in kinds if not k.startswith("events")),
        "-o", "custom-columns=KIND:.kind,NAME:.metadata.name,FINALIZERS:.metadata.finalizers",
        "--ignore-not-found", check=False,
    ).stdout  # fmt: skip
    return "\n".join([f"namespace {name}:", *conditions, left.strip()])


@pytest.fixture(scope="session", autouse=True)
def no_namespace_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """The suite ends by checking that every namespace its tests made is gone (after the
    operator's release is uninstalled): a finalizer nobody removes would leave one
    Terminating for ever. Waits E2E_NAMESPACES_GONE_WITHIN seconds at most."""
    yield
    if os.environ.get("E2E_KEEP_NAMESPACES") == "1" or not _MADE_NAMESPACES:
        return
    kubectl = Kubectl(**_kubectl_args())
    deadline = time.monotonic() + NAMESPACES_GONE_WITHIN
    while True:
        out = kubectl("get", "namespaces", "-o", "name", check=False).stdout.split()
        left = [n for n in _MADE_NAMESPACES if f"namespace/{n}" in out]
        if not left:
            return
        if time.monotonic() > deadline:
            details = "\n".join(namespace_leftovers(kubectl, n) for n in left)
            pytest.fail(
                f"{len(left)} test namespace(s) still there {NAMESPACES_GONE_WITHIN:.0f}s "
                f"after the suite: {', '.join(left)}\n{details}",
                pytrace=False,
            )
        for n in left:  # a test that died before its own teardown
            kubectl("delete", "namespace", n, "--wait=false", check=False)
        time.sleep(2)


def _kubectl_args() -> dict[str, str]:
    env = read_env_file()
    return {"binary": env["E2E_KUBECTL"], "kubeconfig": env["E2E_KUBECONFIG"]}


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace for one test; on failure its objects, events and logs
    are printed before it is deleted (E2E_KEEP_NAMESPACES=1 keeps it)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"e2e-{slug}-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", name)
    _MADE_NAMESPACES.append(name)
    kubectl.wait_until(
        f"the default ServiceAccount in {name}",
        lambda: (
            kubectl("-n", name, "get", "serviceaccount", "default", check=False).returncode == 0
        ),
        timeout=60,
    )
    yield name
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"\n===== diagnostics for namespace {name}")
        print(kubectl("-n", name, "get", "all,events", "-o", "wide", check=False).stdout)
        for pod in kubectl.json("-n", name, "get", "pods")["items"]:
            pod_name = pod["metadata"]["name"]
            print(f"--- logs of {pod_name}\n{kubectl.logs(name, pod_name, '--all-containers')}")
    if os.environ.get("E2E_KEEP_NAMESPACES") != "1":
        kubectl("delete", "namespace", name, "--wait=false", check=False)


@dataclass
class Database:
    name: str
    host: str
    port: str
    user: str
    password: str

    @property
    def url(self) -> str:
        """The URL pods use (SQLAlchemy form, psycopg 3 driver)."""
        return (
            f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/{self.name}"
        )


class Postgres:
    """Runs SQL as the e2e role: host psql (local provider) or psql in the
    PostgreSQL pod (kind provider)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def sql(self, statement: str, dbname: str = "postgres") -> str:
        e = self.env
        if e.get("E2E_PROVIDER") == "kind":
            cmd = [*shlex.split(e["E2E_PSQL"]), "-U", e["E2E_DB_USER"], "-d", dbname]
        else:
            cmd = [e.get("E2E_PSQL", "psql"), "-h", e["E2E_DB_HOST"], "-p", e["E2E_DB_PORT"]]
            cmd += ["-U", e["E2E_DB_USER"], "-d", dbname]
        cmd += ["-v", "ON_ERROR_STOP=1", "-qtAX", "-c", statement]
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "PGPASSWORD": e["E2E_DB_PASSWORD"], "PGCONNECT_TIMEOUT": "10"},
        )
        if proc.returncode != 0:
            raise AssertionError(f"{shlex.join(cmd)} failed: {proc.stderr}")
        return proc.stdout.strip()

    def create_database(self) -> Database:
        e = self.env
        name = f"e2e_{time.strftime('%Y%m%d_%H%M%S')}_{uuid.uuid4().hex[:6]}"
        self.sql(f'CREATE DATABASE "{name}"')
        return Database(
            name, e["E2E_DB_HOST"], e["E2E_DB_PORT"], e["E2E_DB_USER"], e["E2E_DB_PASSWORD"]
        )

    def drop_database(self, db: Database) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres(e2e_env: dict[str, str]) -> Postgres:
    return Postgres(e2e_env)


@pytest.fixture(scope="session")
def new_database(postgres: Postgres) -> Iterator[Callable[[], Database]]:
    made: list[Database] = []

    def make() -> Database:
        db = postgres.create_database()
        made.append(db)
        return db

    yield make
    if os.environ.get("E2E_KEEP_DATABASES") != "1":
        for db in made:
            postgres.drop_database(db)


@pytest.fixture(scope="session")
def database(new_database: Callable[[], Database]) -> Database:
    """One fresh database for this test run; its URL is what pods connect to."""
    return new_database()
