"""Running independent jobs (tiles, files) serially, on a local process pool, or on Dask.

Every job is a picklable dataclass handed to a module-level function, so the same job runs
unchanged in this process, in a pool worker or on a cluster node; results come back in job
order.  A job's bytes do not depend on where it ran: each job fixes its own thread count
(:func:`fixed_threads`), because a multi-threaded float reduction sums in an order that
depends on the number of threads.

Dask is the distributed backend: it is pure Python (``pip install hsz[dask]``), starts a
local cluster in-process for a laptop or a test, and reaches existing clusters (SSH, SLURM
or PBS through dask-jobqueue, Kubernetes) through a scheduler address; GPU nodes are used
one job at a time by declaring a ``GPU`` worker resource.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from hsz.errors import UsageError

J = TypeVar("J")
R = TypeVar("R")

BACKENDS = ("local", "dask")


@dataclass(frozen=True)
class Runner:
    """Where jobs run: ``workers`` local processes, or a Dask cluster.

    ``address`` names a running Dask scheduler (``tcp://host:8786``); without one the
    Dask backend starts a local cluster of ``workers`` single-threaded processes.
    ``gpu`` asks Dask for one unit of the ``GPU`` worker resource per job.
    """

    workers: int = 1
    backend: str = "local"
    address: str | None = None
    gpu: bool = False

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise UsageError("the number of workers must be at least 1", option="workers")
        if self.backend not in BACKENDS:
            raise UsageError(f"unknown backend {self.backend!r}; use one of "
                             f"{', '.join(BACKENDS)}", option="backend")
        if self.address is not None and self.backend != "dask":
            raise UsageError("a scheduler address needs the dask backend", option="scheduler")

    @property
    def serial(self) -> bool:
        return self.backend == "local" and self.workers == 1

    def map(self, fn: Callable[[J], R], jobs: Sequence[J],
            done: Callable[[int, R], None] | None = None) -> list[R]:
        """``[fn(j) for j in jobs]``, run where this runner says; ``done(i, result)`` is
        called in this process as each job finishes."""
        if not jobs:
            return []
        if self.backend == "dask":
            return _dask_map(self, fn, jobs, done)
        if self.workers == 1 or len(jobs) == 1:
            out = []
            for i, job in enumerate(jobs):
                out.append(fn(job))
                if done is not None:
                    done(i, out[-1])
            return out
        return _pool_map(min(self.workers, len(jobs)), fn, jobs, done)


#: Whether the job running now was given its thread count (:func:`fixed_threads`): a fit
#: then keeps it rather than choosing by frame size (:func:`hsz.model.training.cpu_threads`).
THREADS_FIXED: ContextVar[bool] = ContextVar("hsz_threads_fixed", default=False)


@contextmanager
def fixed_threads(threads: int | None) -> Iterator[None]:
    """Run a job on ``threads`` torch intra-op threads (None: leave the choice to the fit),
    and give the caller's setting back afterwards: a library call must not leave its
    process single-threaded."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    if before != threads:
        torch.set_num_threads(int(threads))
    token = THREADS_FIXED.set(True)
    try:
        yield
    finally:
        THREADS_FIXED.reset(token)
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _pool_map(workers: int, fn: Callable[[J], R], jobs: Sequence[J],
              done: Callable[[int, R], None] | None) -> list[R]:
    # Spawned workers start clean: a forked copy of a process that has run torch's thread
    # pools can deadlock in them.
    ctx = multiprocessing.get_context("spawn")
    results: dict[int, R] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: dict[Future[R], int] = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    i = pending.pop(fut)
                    results[i] = fut.result()
                    if done is not None:
                        done(i, results[i])
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
    return [results[i] for i in range(len(jobs))]


def dask_available() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def _dask_map(runner: Runner, fn: Callable[[J], R], jobs: Sequence[J],
              done: Callable[[int, R], None] | None) -> list[R]:
    if not dask_available():
        raise UsageError("the dask backend needs Dask's distributed scheduler: "
                         "pip install 'hsz[dask]'", option="backend")
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if runner.address is None:
        import dask

        # Dask's default worker environment sets MALLOC_TRIM_THRESHOLD_, which turns off
        # glibc's adaptive mmap threshold: every large tensor of a fit is then mapped and
        # zeroed afresh, and a tile took 2.5x as long as in-process (85 s against 35 s).
        # Workers of a cluster you start yourself want the same: see the README.
        environ = {k: v for k, v in dask.config.get(
            "distributed.nanny.pre-spawn-environ", {}).items() if k != "MALLOC_TRIM_THRESHOLD_"}
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            cluster = LocalCluster(n_workers=runner.workers, threads_per_worker=1,
                                   processes=True, dashboard_address=None,
                                   silence_logs=40, env=_worker_env())
        client = Client(cluster)
    else:
        client = Client(runner.address)
    try:
        extra: dict[str, Any] = {"resources": {"GPU": 1}} if runner.gpu else {}
        futures = client.map(fn, list(jobs), pure=False, **extra)
        where = {f.key: i for i, f in enumerate(futures)}
        results: dict[int, R] = {}
        for fut in as_completed(futures):
            i = where[fut.key]
            results[i] = fut.result()
            if done is not None:
                done(i, results[i])
        return [results[i] for i in range(len(jobs))]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _worker_env() -> dict[str, str]:
    """Environment for local Dask workers: the parent's OpenMP spin setting travels along."""
    return {k: v for k, v in os.environ.items() if k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
