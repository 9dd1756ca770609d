"""The operator's client-side rate limit for the Kubernetes API (controller-runtime's
QPS/burst), in one place: every request any API object of the official client makes
(the executions', retention's, schedules', the peering gate's) goes through
:class:`LimitedApiClient`, installed as the client's default at start-up. Each request
waits for a token of a :class:`TokenBucket` and is counted by verb and resource.

Kopf's own watches and peering heartbeats use their own (async) client and are not
limited here: a watch is one long request, not a rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client

# (verb, resource) of every request, e.g. ("list", "jobs"), ("patch", "batchexecutions/status")
RequestCounter = Callable[[str, str], None]


class TokenBucket:
    """``qps`` tokens a second, at most ``burst`` saved up; ``acquire`` blocks until a
    token is there and says how long it waited. ``qps <= 0``: no limit."""

    def __init__(
        self,
        qps: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.qps = qps
        self.burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.burst)
        self._last = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a token now (possibly one not there yet); how long to wait before using
        it. Reservations queue up in order: the n-th caller past the burst waits n/qps."""
        if self.qps <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def acquire(self) -> float:
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


# The verbs of an HTTP method, by whether the path names one object or a collection.
_ONE = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "POST": "create"}
_MANY = {"GET": "list", "POST": "create", "DELETE": "deletecollection"}


def request_kind(method: str, url: str) -> tuple[str, str]:
    """(verb, resource) of a request, as the API server's ``apiserver_request_total``
    names them: ``/apis/batch/v1/namespaces/ns/jobs`` GET → ("list", "jobs");
    ``.../batchexecutions/x/status`` PATCH → ("patch", "batchexecutions/status");
    ``?watch=true`` → "watch"."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if segments[:1] == ["api"]:
        rest = segments[2:]  # /api/v1/...
    elif segments[:1] == ["apis"]:
        rest = segments[3:]  # /apis/group/version/...
    else:
        return method.lower(), "/".join(segments) or "-"
    if rest[:1] == ["namespaces"] and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        rest = rest[2:]  # namespaced: drop namespaces/<ns> (not a namespace's own paths)
    if not rest:
        return method.lower(), "-"
    resource = rest[0]
    if len(rest) >= 3:
        resource = f"{resource}/{rest[2]}"
    many = len(rest) == 1
    if method.upper() == "GET" and "watch=true" in parts.query:
        return "watch", resource
    verbs = _MANY if many else _ONE
    return verbs.get(method.upper(), method.lower()), resource


class LimitedApiClient(client.ApiClient):
    """The official client's ApiClient, each request rate-limited and counted."""

    def __init__(
        self,
        bucket: TokenBucket,
        count: RequestCounter,
        waited: Callable[[float], None] = lambda seconds: None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.bucket = bucket
        self.count = count
        self.waited = waited  # told the seconds each request waited for its token

    def call_api(self, method: str, url: str, *args: Any, **kw: Any) -> Any:
        wait = self.bucket.acquire()
        if wait:
            self.waited(wait)
        verb, resource = request_kind(method, url)
        self.count(verb, resource)
        return super().call_api(method, url, *args, **kw)


def install(
    qps: float,
    burst: int,
    count: RequestCounter,
    waited: Callable[[float], None] = lambda seconds: None,
    pool: int = 32,
) -> LimitedApiClient:
    """Make a rate-limited client the default of every API object created from now on
    (after the kube config is loaded: the client copies the default configuration)."""
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = max(pool, configuration.connection_pool_maxsize)
    bucket = TokenBucket(qps, burst)
    limited = LimitedApiClient(bucket, count, waited, configuration=configuration)
    client.ApiClient.set_default(limited)  # type: ignore[no-untyped-call]
    return limited
