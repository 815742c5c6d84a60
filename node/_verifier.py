"""Worker processes for the node's signature checks.

Theory of operation
-------------------
A message's entries are parsed on the event loop and their keys and
signatures (shinyo.md 6.4 step 7, ~56 µs each, nine tenths of a node's
ingest) checked off it (``_peer.py``).  A worker *thread* does not make that
parallel in CPython: between two libsodium calls it needs the GIL back, which
the event loop holds while it parses and stores, so the thread checks only
while the loop waits (measured: a sync between two nodes went from 0.55 to
0.6 of the raw verify rate with threads, and to 0.87 with processes,
docs/BENCHMARKS.md).  So a node checks big batches in worker processes:

* the pool starts in the background when the node opens (spawning takes a
  few hundred ms of CPU; each worker holds ~45 MB); until it is up, and for
  batches under :data:`PROCESS_MIN_ENTRIES`, checks run in a thread;
* only bytes cross: each check is (author key, payload, signature), and the
  answer the indexes that failed (``shinyo._entry``'s step 7 chunk function),
  so a hostile entry cannot reach a worker as anything but bytes;
* a pool that breaks (a worker killed, a failed start) is dropped and the
  batch checked in process: a check is never lost or taken for a failure;
* workers are started with multiprocessing's "spawn", so, as for any process
  pool, they import the program's main module: a script that opens a node
  must guard its entry point (``if __name__ == "__main__":``, README);
* the pool is shut down with the node; a worker whose node was killed
  (``kill -9``) notices that its parent changed and exits within a second
  (a pool's pipes are shared with its workers, so no EOF would tell them).

Nothing here touches the network or the ledger: :meth:`SignatureWorkers.check`
only fills in a :class:`~._replica.Batch`'s step-7 results.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Final, TypeVar

import trio

from ._replica import Batch, Replica

__all__ = ["PROCESS_MIN_ENTRIES", "SignatureWorkers"]

logger = logging.getLogger("shinyo.node")

PROCESS_MIN_ENTRIES: Final = 32
"""Signatures worth a trip to a worker process (pickling both ways, ~0.3 ms):
smaller batches are checked in a thread."""

_T = TypeVar("_T")
_R = TypeVar("_R")


class SignatureWorkers:
    """A node's signature-checking processes (see the module header)."""

    def __init__(self, *, processes: int, nursery: trio.Nursery,
                 threads: int | None = None) -> None:
        if type(processes) is not int or processes < 0:
            raise ValueError(f"processes must be an int >= 0, not {processes!r}")
        self.processes = processes
        self._nursery = nursery  # the node's: the pool outlives the session that starts it
        # Threads checking, or waiting on a worker, at once, node-wide: one per
        # core, more would only queue on the cores.
        self._limiter = trio.CapacityLimiter(threads or os.cpu_count() or 1)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._starting = False
        self._started = trio.Event()  # set once the start is over, up or not
        self._closed = False
        self.stats = {"batches_in_processes": 0, "batches_in_threads": 0, "pool_failures": 0}

    @property
    def running(self) -> bool:
        return self._pool is not None

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (none while the pool is not up)."""
        pool = self._pool
        return [] if pool is None else list(pool._processes or {})

    @property
    def limiter(self) -> trio.CapacityLimiter:
        return self._limiter

    async def check(self, batch: Batch) -> None:
        """Check ``batch`` off the event loop: in the pool if it is up and the
        batch worth it, else in a thread (starting the pool for next time)."""
        pool = self._pool
        if pool is None and batch.unchecked >= PROCESS_MIN_ENTRIES:
            self.start()
        if pool is not None and batch.unchecked >= PROCESS_MIN_ENTRIES:
            try:
                await trio.to_thread.run_sync(_check_in, pool, batch, limiter=self._limiter)
                self.stats["batches_in_processes"] += 1
                return
            except (BrokenProcessPool, OSError, RuntimeError) as exc:
                # RuntimeError: submitted while shutting down.  The batch is
                # checked below; the pool is not used again.
                self._drop(pool, f"signature workers failed ({exc!r}); checking in threads")
        await trio.to_thread.run_sync(Replica.check, batch, limiter=self._limiter)
        self.stats["batches_in_threads"] += 1

    def start(self) -> None:
        """Start the workers in the background (once; nothing if ``processes`` is 0)."""
        if self._starting or self._closed or not self.processes:
            return
        self._starting = True
        self._nursery.start_soon(self._start_pool)

    async def wait_started(self) -> None:
        """Until a :meth:`start` is over (the pool up, or given up); at once if
        there is nothing to start."""
        if self._starting and not self._closed:
            await self._started.wait()

    async def _start_pool(self) -> None:
        try:
            pool = await trio.to_thread.run_sync(self._spawn)
        except (BrokenProcessPool, OSError, RuntimeError) as exc:
            # RuntimeError: multiprocessing refuses to start processes from a
            # process still importing its main module -- a worker running an
            # unguarded script that opens a node (README: guard the entry point).
            self.stats["pool_failures"] += 1
            logger.warning("could not start %d signature worker(s) (%s); checking in threads",
                           self.processes, exc)
            return
        finally:
            self._started.set()
        if self._closed:
            await trio.to_thread.run_sync(_shutdown, pool)
            return
        self._pool = pool
        logger.info("%d signature worker process(es) up", self.processes)

    def _spawn(self) -> concurrent.futures.ProcessPoolExecutor:
        # "spawn": a fresh interpreter, not a fork of one running trio and threads.
        pool = concurrent.futures.ProcessPoolExecutor(
            self.processes, mp_context=multiprocessing.get_context("spawn"),
            initializer=_watch_parent, initargs=(os.getpid(),))
        try:
            # Every worker up (imports done) before the first batch waits on one.
            list(pool.map(_ready, range(self.processes)))
        except BaseException:
            _shutdown(pool)
            raise
        return pool

    def _drop(self, pool: concurrent.futures.ProcessPoolExecutor, why: str) -> None:
        if self._pool is pool:
            self._pool = None
            self.stats["pool_failures"] += 1
            logger.warning("%s", why)
            pool.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """Stop the workers (waits for a check in flight, a few ms)."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(_shutdown, pool)


def _ready(_: int) -> bool:
    return True


PARENT_POLL: Final = 0.5
"""Seconds between a worker's looks at whether its node is still its parent."""


def _watch_parent(parent: int) -> None:
    """In a worker: exit once ``parent`` is gone (killed without shutting the
    pool down), instead of waiting forever on a queue nobody writes to."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL)
        os._exit(0)

    threading.Thread(target=watch, name="shinyo-parent-watch", daemon=True).start()


def _shutdown(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    pool.shutdown(wait=True, cancel_futures=True)


def _check_in(pool: concurrent.futures.ProcessPoolExecutor, batch: Batch) -> None:
    """Replica.check with its chunks mapped onto ``pool`` (runs in a thread)."""

    def on_pool(fn: Callable[[_T], _R], chunks: Iterable[_T]) -> Iterator[_R]:
        return pool.map(fn, chunks)

    Replica.check(batch, map=on_pool)
