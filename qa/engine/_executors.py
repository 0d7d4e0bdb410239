"""Where a run's chunks of images are worked on: this process, the local process pool, or a Dask cluster.

A run opens one executor (:func:`open_executor`) and every per-image stage sends its chunks to it with
:meth:`Executor.map_chunks`, which yields the results in chunk order with a bounded number of chunks in
flight. The work is a module-level function of plain data, so the same call serves every executor, and the
results do not depend on which one ran them (tested to the bit).

- :class:`InProcess`: no workers (``workers=1``).
- :class:`LocalPool`: a ``concurrent.futures.ProcessPoolExecutor`` started on the first chunk sent and kept
  for the whole run, its workers forked from a fork server that preloads the kernels. Workers exit when the
  process that started them dies (even by SIGKILL), they never import the caller's ``__main__`` (so a script
  without an ``if __name__ == "__main__"`` guard, or one read from stdin, works), and a pool that loses a
  worker is restarted once and the chunks it lost are sent again.
- :class:`Dask`: a ``distributed.Client`` (``tcp://host:8786`` or a ``LocalCluster`` of ``local:N``) and
  its ``get_executor()``. The scheduler retries the task of a worker that died, up to
  ``distributed.scheduler.allowed-failures``.
- :class:`Wrapped`: any other ``concurrent.futures.Executor`` the caller owns (not shut down here).

When work is lost for good the run stops with :class:`qa.errors.WorkerError`, one line naming what died.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, TypeVar

from qa.errors import ConfigError, WorkerError

R = TypeVar("R")

LOCAL_PREFIX = "local:"
"""``local:N``: a Dask ``LocalCluster`` of N worker processes, one thread each."""

ENV_ADDRESS = "DASK_SCHEDULER_ADDRESS"
"""Dask's own variable for the scheduler a client connects to (read by the CLI when ``--dask`` is absent)."""


def default_workers() -> int:
    """The CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _label(work) -> str:
    return f"{getattr(work, '__module__', '?')}.{getattr(work, '__qualname__', repr(work))}"


class Executor:
    """What a run's stages send their chunks to.

    Attributes
    ----------
    workers : int
        How many chunks run at once (the stages size their chunks from it).
    explicit : bool
        The number of workers was chosen by the caller (otherwise small batches stay in this process).
    inline_small : bool
        A batch that fits in one chunk is worked on in this process instead (True for the local pool,
        where that saves starting workers; False for a cluster, which was asked for).
    """

    workers: int = 1
    explicit: bool = True
    inline_small: bool = True

    def map_chunks(self, work: Callable[..., R], chunks: Iterable, cfg) -> Iterator[R]:
        """``work(chunk, cfg)`` for each chunk, yielded in chunk order; at most ``2 * workers`` chunks
        in flight, so memory does not grow with the batch. ``work`` must be a module-level function."""
        for chunk in chunks:
            yield work(chunk, cfg)

    def warm(self) -> None:
        """Start getting the workers ready, without waiting for them, once work is sure to come (a no-op
        unless the executor starts workers of its own)."""

    def close(self) -> None:
        """Release the workers (a no-op for executors the caller owns)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        return "this process"


class InProcess(Executor):
    """Every chunk in this process, one after the other."""

    in_process = True


def _map_futures(submit, work, chunks, cfg, limit: int, *, on_lost=None) -> Iterator:
    """The ordered, bounded loop shared by every pool: ``submit(work, chunk, cfg)`` returns a
    ``concurrent.futures.Future``; when the oldest chunk fails, ``on_lost(exc, pending, work, cfg)``
    either sends the pending chunks again (replacing their futures in place) or raises."""
    pending: deque = deque()  # [chunk, future, times sent again]
    try:
        for chunk in chunks:
            pending.append([chunk, submit(work, chunk, cfg), 0])
            while len(pending) >= limit:
                yield _first(pending, on_lost, work, cfg)
        while pending:
            yield _first(pending, on_lost, work, cfg)
    finally:
        for _chunk, future, _attempt in pending:
            future.cancel()


def _first(pending: deque, on_lost, work, cfg):
    while True:
        try:
            result = pending[0][1].result()
        except Exception as exc:  # noqa: BLE001 - handed to on_lost, which decides
            if on_lost is None:
                raise
            on_lost(exc, pending, work, cfg)
            continue
        pending.popleft()
        return result


# --- the local process pool ----------------------------------------------------------------------------

_MAIN_LOCK = threading.Lock()


@contextmanager
def _without_main():
    """Start processes that do not import the caller's ``__main__``.

    ``multiprocessing`` re-runs the main script (or ``<stdin>``, which is no file) in every worker it
    spawns or forks from its fork server, which breaks a script without an ``if __name__ ==
    "__main__"`` guard. The pool's work is this package's own functions only, so while a worker may be
    started (inside ``submit``) ``__main__`` is a blank module and it starts from the package alone.
    """
    import types

    with _MAIN_LOCK:
        main = sys.modules.get("__main__")
        blank = types.ModuleType("__main__")
        blank.__spec__ = None
        sys.modules["__main__"] = blank
        try:
            yield
        finally:
            if main is not None:
                sys.modules["__main__"] = main


def _watch_parent(pid: int) -> None:
    """Worker initializer: exit as soon as process ``pid`` (the one that started the pool) is gone.

    Workers are forked from a fork server and hold their task queue's write end, so nothing else tells
    them their parent was killed; without this they (and the fork server, which lives while they do)
    would run on forever after a SIGKILL of the parent.
    """
    threading.Thread(target=_exit_with, args=(pid,), name="qa-watch-parent", daemon=True).start()


def _exit_with(pid: int) -> None:  # pragma: no cover - runs in the workers
    import select
    import time

    try:
        fd = os.pidfd_open(pid)  # Linux 5.3+: readable when the process has exited
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        select.select([fd], [], [])
        os._exit(1)
    while True:  # elsewhere: poll
        time.sleep(0.5)
        try:
            os.kill(pid, 0)
        except OSError:  # gone (or the pid now belongs to another user's process)
            os._exit(1)


def pool_context():
    """A fork server that preloads the package and its kernels once (spawn where there is none)."""
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["qa.engine._preload"])
        return ctx
    return mp.get_context("spawn")


class LocalPool(Executor):
    """Worker processes on this machine, started when the first chunk is sent and kept until
    :meth:`close`.

    Parameters
    ----------
    workers : int, optional
        Worker processes (default: one per CPU, and small batches stay in this process).
    retries : int, default 1
        How many times a chunk lost with a dead worker is sent again (to a restarted pool).
    """

    def __init__(self, workers: int | None = None, *, retries: int = 1):
        self.explicit = workers is not None
        self.workers = default_workers() if workers is None else int(workers)
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        self.retries = int(retries)
        self._pool = None
        self._processes: list = []
        self.restarts = 0

    def describe(self) -> str:
        return f"a local pool of {self.workers} worker processes"

    def _start(self):
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=pool_context(),
                                         initializer=_watch_parent, initargs=(os.getpid(),))
        # every worker started with the first chunk, none later from submit(): CPython 3.11 marks a pool
        # broken without its lock, so a submit() that starts a worker as a dying one breaks the pool can
        # add to the worker table while the pool's own thread walks it (an uncaught thread error)
        if hasattr(self._pool, "_safe_to_dynamically_spawn_children"):
            self._pool._safe_to_dynamically_spawn_children = False
        self._processes = []
        return self._pool

    def warm(self) -> None:
        """Start the fork server now (it imports the package and loads the kernels: most of a pool's
        start, 0.8 s on the benchmark machine) while this process goes on, for example scanning the
        exports for the index; the first chunk sent then forks the workers from a server that is ready."""
        ctx = pool_context()
        if self._pool is None and ctx.get_start_method() == "forkserver":
            from multiprocessing import forkserver

            with _without_main():
                forkserver.ensure_running()

    def _send(self, work, chunk, cfg):
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool

        if self._pool is None:
            self._start()
        try:
            # the pool starts its workers inside the first submit()
            with _without_main():
                future = self._pool.submit(work, chunk, cfg)
        except (BrokenProcessPool, OSError) as exc:  # broken before the chunk was sent: a lost chunk (a
            future = Future()  # pool broken by a dying worker can also fail on its closed wake-up pipe)
            future.set_exception(exc if isinstance(exc, BrokenProcessPool) else BrokenProcessPool(str(exc)))
        self._processes = list(getattr(self._pool, "_processes", {}).values()) or self._processes
        return future

    def _dead(self) -> str:
        import signal
        import time

        # a worker's exit status comes from the fork server a moment after the pool sees it gone: wait for
        # it (up to a second in all; the pool stops the others), so the worker that died is named
        deadline = time.monotonic() + 1.0
        for p in self._processes:
            if p.exitcode is None:
                p.join(max(0.0, deadline - time.monotonic()))
        dead = [p for p in self._processes if p.exitcode not in (None, 0)]
        # the pool stops the others (SIGTERM, or an exit as their pipes close): a signal names the cause
        others = [p for p in dead if p.exitcode != -signal.SIGTERM]
        killed = [p for p in others if p.exitcode < 0] or others or dead
        parts = []
        for p in killed[:3]:
            code = p.exitcode
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() \
                else f"exited with code {code}"
            parts.append(f"worker process {p.pid} {how}")
        return ", ".join(parts) or "a worker process died"

    def _restart(self) -> None:
        old, self._pool = self._pool, None
        if old is not None:
            try:
                old.shutdown(wait=True, cancel_futures=True)
            except OSError:  # its pipes went with the dead worker; nothing left to stop
                pass
        self.restarts += 1
        self._start()

    def _lost(self, exc, pending: deque, work, cfg) -> None:
        from concurrent.futures.process import BrokenProcessPool

        broken = isinstance(exc, BrokenProcessPool) or (
            isinstance(exc, OSError) and getattr(self._pool, "_broken", False))
        if not broken:
            raise exc
        what = self._dead()
        if any(item[2] >= self.retries for item in pending):
            raise WorkerError(f"{what} while running {_label(work)}; its chunk of images was sent again "
                              f"{self.retries} time(s) and lost again; the run was not stored "
                              "(if it ran out of memory: fewer --workers)", where="local pool") from None
        import warnings

        warnings.warn(f"{what}; restarting the pool and sending its {len(pending)} chunk(s) again",
                      RuntimeWarning, stacklevel=2)
        self._restart()
        for item in pending:
            item[2] += 1
            item[1] = self._send(work, item[0], cfg)

    def map_chunks(self, work, chunks, cfg):
        return _map_futures(self._send, work, chunks, cfg, 2 * self.workers, on_lost=self._lost)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                pool.shutdown(wait=True, cancel_futures=True)
            except OSError:  # a pool broken by a dead worker may have closed its pipes already
                pass


# --- any concurrent.futures executor, and Dask ----------------------------------------------------------

class Wrapped(Executor):
    """A ``concurrent.futures.Executor`` the caller owns; :meth:`close` leaves it running.

    ``workers`` defaults to the worker threads of the Dask cluster behind ``Client.get_executor()``, to
    the executor's ``_max_workers`` when it has one (the standard pools do), else to the CPUs of this
    machine.
    """

    inline_small = False

    def __init__(self, executor, workers: int | None = None):
        self.executor = executor
        self.explicit = True
        client = getattr(executor, "_client", None)  # distributed's ClientExecutor
        if workers is None and callable(getattr(client, "nthreads", None)):
            workers = sum(client.nthreads().values())
        self.workers = max(1, int(workers or getattr(executor, "_max_workers", 0) or default_workers()))

    def describe(self) -> str:
        return f"{type(self.executor).__name__} ({self.workers} workers)"

    def _lost(self, exc, pending, work, cfg) -> None:
        raise exc

    def map_chunks(self, work, chunks, cfg):
        return _map_futures(self.executor.submit, work, chunks, cfg, 2 * self.workers, on_lost=self._lost)


class Dask(Wrapped):
    """A Dask cluster: ``Client(address).get_executor()``, or a ``LocalCluster`` for ``local:N``.

    Parameters
    ----------
    address : str
        A scheduler address (``tcp://host:8786``) or ``local:N``.

    Attributes
    ----------
    dashboard : str or None
        The cluster's dashboard address.
    """

    def __init__(self, address: str):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("a Dask cluster needs the distributed package; install annotation-qa[scale] "
                              "(pip install 'annotation-qa[scale]')", where="--dask") from None
        self.address = address
        self.cluster = None
        self.client = None
        if address.startswith(LOCAL_PREFIX):
            n = _count(address[len(LOCAL_PREFIX):], address)
            with _without_main():
                self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                            dashboard_address=":0")
            target = self.cluster
        else:
            target = address
        try:
            self.client = Client(target)  # waits distributed.comm.timeouts.connect (30 s by default)
        except (OSError, TimeoutError) as exc:
            self.close()
            raise WorkerError(f"cannot reach the Dask scheduler: {' '.join(str(exc).split())}; start one with "
                              "`dask scheduler` (see docs/scale.md)", where=address) from None
        self.executor = self.client.get_executor()
        self.explicit = True
        self.workers = max(1, sum(self.client.nthreads().values()))
        self.dashboard = getattr(self.client, "dashboard_link", None)

    def describe(self) -> str:
        return f"the Dask cluster at {self.client.scheduler.address} ({self.workers} worker threads)"

    def _lost(self, exc, pending, work, cfg) -> None:
        from distributed.scheduler import KilledWorker

        if isinstance(exc, KilledWorker):
            last = getattr(getattr(exc, "last_worker", None), "address", "?")
            raise WorkerError(f"{exc.allowed_failures + 1} Dask worker(s) died running one chunk of {_label(work)}, "
                              f"the last {last} (distributed.scheduler.allowed-failures = {exc.allowed_failures}); "
                              "the run was not stored", where=self.address) from None
        if type(exc).__name__ in ("CancelledError", "CommClosedError", "FutureCancelledError"):
            raise WorkerError(f"lost the Dask scheduler while running {_label(work)}: "
                              f"{type(exc).__name__}; the run was not stored", where=self.address) from None
        raise exc

    def close(self) -> None:
        client, self.client = self.client, None
        cluster, self.cluster = self.cluster, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def _count(text: str, spec: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"expected local:N with N a positive number of workers, got {spec!r}", where="--dask")
    return n


def open_executor(executor=None, *, workers: int | None = None,
                  announce: Callable[[str], None] | None = None) -> Executor:
    """The executor of a run.

    Parameters
    ----------
    executor : None, str, Executor or concurrent.futures.Executor
        None: the local process pool (with ``workers``); a Dask scheduler address (``"tcp://host:8786"``)
        or ``"local:N"`` (a ``LocalCluster`` of N processes), opened here and closed by :meth:`close`;
        an executor of this module (returned as it is; the caller closes it); or any
        ``concurrent.futures.Executor`` the caller owns, such as ``Client(...).get_executor()``.
    workers : int, optional
        Worker processes of the local pool (1: this process only). Only with ``executor=None``.
    announce : callable, optional
        Called with one line naming the Dask dashboard when a cluster is opened here.

    Returns
    -------
    Executor
        Use it as a context manager, or call :meth:`Executor.close`.

    Raises
    ------
    ConfigError
        On a bad address or worker count, or both ``executor`` and ``workers``.
    WorkerError
        When the Dask scheduler cannot be reached.
    """
    if executor is None:
        if workers is not None and int(workers) < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        return InProcess() if workers == 1 else LocalPool(workers)
    if workers is not None:
        raise ConfigError("give either workers (the local pool) or an executor, not both")
    if isinstance(executor, Executor):
        return executor
    if isinstance(executor, str):
        if not (executor.startswith(LOCAL_PREFIX) or "://" in executor):
            raise ConfigError(f"expected a Dask scheduler address (tcp://host:8786) or local:N, got {executor!r}",
                              where="--dask")
        opened = Dask(executor)
        if announce is not None:
            announce(f"dask: {opened.describe()}; dashboard {opened.dashboard or '(none)'}")
        return opened
    from concurrent.futures import Executor as FuturesExecutor

    if isinstance(executor, FuturesExecutor) or callable(getattr(executor, "submit", None)):
        return Wrapped(executor)
    raise ConfigError(f"cannot run work on {executor!r}; pass a Dask address, local:N or a "
                      "concurrent.futures.Executor")


@contextmanager
def using(executor=None, *, workers: int | None = None, announce: Callable[[str], None] | None = None):
    """:func:`open_executor` as a context manager that closes only what it opened (a Dask address, the
    local pool), never an executor the caller passed in."""
    opened = open_executor(executor, workers=workers, announce=announce)
    try:
        yield opened
    finally:
        if opened is not executor:
            opened.close()
