"""Prometheus metrics in prometheus-client's multiprocess mode: every uvicorn worker writes its figures to files in
one directory (MX_METRICS_DIR), and whichever worker answers a scrape reads them all, so the service reports one
view however many workers it runs.

The directory is set here, before prometheus_client is imported (the library picks its storage at import time).
The first process of a start empties it; later ones (a second worker, a worker uvicorn restarts) keep what is
there and retire the live gauges of workers that have exited (`mark_process_dead`, as the library documents for
a server's "child exited" hook: uvicorn has none, so survivors do it for the dead).
"""

import fcntl
import os
from pathlib import Path

from app.infra.config import settings

METRICS_DIR: Path = settings.metrics_path
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)

from prometheus_client import Counter, Gauge, Histogram, values  # noqa: E402
from prometheus_client.multiprocess import mark_process_dead  # noqa: E402

if not getattr(values.ValueClass, "_multiprocess", False):  # imported before the directory was set: switch now
    values.ValueClass = values.get_value_class()

_MARKER = "worker_"


def _pid_of(name: str) -> int | None:
    """The process id in a file name written by prometheus_client (`counter_123.db`) or by us (`worker_123`)."""
    stem = name[:-3] if name.endswith(".db") else name
    tail = stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_dead_workers(directory: Path = METRICS_DIR) -> list[int]:
    """Retire the live gauges of processes that have exited; their counters and histograms stay counted."""
    dead = []
    for marker in directory.glob(_MARKER + "*"):
        pid = _pid_of(marker.name)
        if pid is not None and pid != os.getpid() and not _alive(pid):
            mark_process_dead(pid, str(directory))
            marker.unlink(missing_ok=True)
            dead.append(pid)
    return dead


def _prepare(directory: Path) -> None:
    """Under a file lock: empty the directory if no process that wrote to it is alive, then register this one."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / f".{directory.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            pids = {_pid_of(p.name) for p in directory.iterdir()} - {None, os.getpid()}
            if not any(_alive(pid) for pid in pids):
                for leftover in directory.iterdir():
                    if leftover.is_file():
                        leftover.unlink(missing_ok=True)
            else:
                reap_dead_workers(directory)
            (directory / f"{_MARKER}{os.getpid()}").touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def retire_this_process() -> None:
    """At a clean shutdown: this worker's live gauges leave the sums."""
    mark_process_dead(os.getpid(), str(METRICS_DIR))
    (METRICS_DIR / f"{_MARKER}{os.getpid()}").unlink(missing_ok=True)


_prepare(METRICS_DIR)

# ---- what each process records ------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "mx_http_requests", "HTTP requests answered, by route template, method and status", ["route", "method", "status"]
)
HTTP_DURATION = Histogram(
    "mx_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by route template and method",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
HTTP_IN_PROGRESS = Gauge(
    "mx_http_requests_in_progress", "Requests being handled now, all workers", multiprocess_mode="livesum"
)
WORKERS = Gauge("mx_workers", "Service processes (uvicorn workers) running", multiprocess_mode="livesum")
DB_POOL_SIZE = Gauge(
    "mx_db_pool_size", "Database connections the workers' pools may hold (all workers)", multiprocess_mode="livesum"
)
DB_POOL_IN_USE = Gauge(
    "mx_db_pool_connections_in_use",
    "Database connections checked out right now (all workers)",
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "mx_db_pool_waiting", "Requests waiting for a free database connection (all workers)", multiprocess_mode="livesum"
)

ACCOUNT_CACHE_LOOKUPS = Counter(
    "mx_account_cache_lookups",
    "Callers looked up in the account cache: hit, miss (read from the database), off (no listener: database)",
    ["result"],
)
ACCOUNT_CACHE_LISTENING = Gauge(
    "mx_account_cache_listening",
    "Workers whose account-change listener is connected (their account cache is on)",
    multiprocess_mode="livesum",
)

HOUSEKEEPING_REMOVED = Counter("mx_housekeeping_removed_rows", "Rows housekeeping removed, by table", ["table"])
HOUSEKEEPING_RUNS = Counter(
    "mx_housekeeping_runs",
    "Housekeeping runs by outcome (completed, skipped: another process ran it, failed)",
    ["outcome"],
)
HOUSEKEEPING_LAST_SUCCESS = Gauge(
    "mx_housekeeping_last_success_timestamp_seconds",
    "Unix time of the last housekeeping run that completed",
    multiprocess_mode="max",
)
HOUSEKEEPING_DURATION = Histogram(
    "mx_housekeeping_duration_seconds",
    "How long a housekeeping run took",
    buckets=(0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0),
)

WORKERS.set(1)
