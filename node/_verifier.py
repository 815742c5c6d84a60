"""Worker processes for the node's signature checks.

Theory of operation
-------------------
A message's entries are parsed on the event loop and their keys and
signatures (shinyo.md 6.4 step 7, ~56 µs each, nine tenths of a node's
ingest) checked off it (``_peer.py``).  A worker *thread* does not make that
parallel in CPython: between two libsodium calls it needs the GIL back, which
the event loop holds while it parses and stores, so the thread checks only
while the loop waits (measured: a sync between two nodes went from 0.55 to
0.6 of the raw verify rate with threads, and to 0.85 with processes,
docs/BENCHMARKS.md).  So a node checks big batches in worker processes:

* the workers start in the background when the node opens (``python -m
  shinyo.node._sigworker``: an interpreter that imports the protocol core and
  nothing of the program that started it; ~0.4 s of CPU and ~45 MB each);
  until they are up, and for batches under :data:`PROCESS_MIN_ENTRIES`,
  checks run in a thread;
* only bytes cross the pipes: each check is (author key, payload, signature)
  and the answer the indexes that failed (``_sigworker.py`` has the format),
  so the errors are built in the node from its own entries;
* the exchange with a worker is shielded from cancellation (a batch takes
  milliseconds), so a pipe is never left in the middle of a request;
* a worker that fails (killed, an I/O error, a wrong answer) takes the pool
  down with it and the batch is checked in a thread: a check is never lost or
  taken for a failure;
* workers stop when the node closes their stdin; a worker whose node died
  (even ``kill -9``) reads the end of its stdin and exits.

Nothing here touches the network or the ledger: :meth:`SignatureWorkers.check`
only fills in a :class:`~._replica.Batch`'s step-7 results.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from contextlib import suppress
from typing import Final

import trio

from shinyo._entry import StepSeven

from ._replica import Batch, Replica
from ._sigworker import decode_answer, encode_request

__all__ = ["PROCESS_MIN_ENTRIES", "SignatureWorkers"]

logger = logging.getLogger("shinyo.node")

PROCESS_MIN_ENTRIES: Final = 32
"""Signatures worth a trip to a worker process (both pipes, ~0.2 ms):
smaller batches are checked in a thread."""
START_TIMEOUT: Final = 60.0
"""Seconds a worker may take to import and say it is ready."""
STOP_GRACE: Final = 2.0
"""Seconds a worker has to exit after its stdin is closed, before it is killed."""


class _WorkerFailed(Exception):
    """A worker's pipe broke or it answered nonsense: the pool is given up."""


class _Worker:
    def __init__(self, process: trio.Process) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self.stdin: trio.abc.SendStream = process.stdin
        self.stdout: trio.abc.ReceiveStream = process.stdout
        self._buffer = bytearray()

    async def read_exactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            data = await self.stdout.receive_some(max(65536, n - len(self._buffer)))
            if not data:
                raise _WorkerFailed(f"worker {self.process.pid} ended its output")
            self._buffer += data
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    async def check(self, request: bytes) -> list[tuple[int, int]]:
        try:
            await self.stdin.send_all(request)
            length = int.from_bytes(await self.read_exactly(4), "big")
            return decode_answer(await self.read_exactly(length))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError,
                ValueError) as exc:
            raise _WorkerFailed(f"worker {self.process.pid}: {exc!r}") from exc


class SignatureWorkers:
    """A node's signature-checking processes (see the module header)."""

    def __init__(self, *, processes: int, nursery: trio.Nursery,
                 threads: int | None = None) -> None:
        if type(processes) is not int or processes < 0:
            raise ValueError(f"processes must be an int >= 0, not {processes!r}")
        self.processes = processes
        self._nursery = nursery  # the node's: the workers outlive the session that uses them
        # Threads checking at once, node-wide: one per core, more would only
        # queue on the cores.
        self._limiter = trio.CapacityLimiter(threads or os.cpu_count() or 1)
        self._workers: list[_Worker] = []
        self._idle_send, self._idle = trio.open_memory_channel[_Worker](max(processes, 1))
        self._up = False
        self._starting = False
        self._started = trio.Event()  # set once the start is over, up or not
        self._closed = False
        self.stats = {"batches_in_processes": 0, "batches_in_threads": 0, "pool_failures": 0}

    @property
    def running(self) -> bool:
        return self._up

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (none while they are not up)."""
        return [w.process.pid for w in self._workers] if self._up else []

    @property
    def limiter(self) -> trio.CapacityLimiter:
        return self._limiter

    async def check(self, batch: Batch) -> None:
        """Check ``batch`` off the event loop: in a worker if they are up and the
        batch worth it, else in a thread."""
        if self._up and batch.unchecked >= PROCESS_MIN_ENTRIES:
            step = StepSeven(batch.items)
            try:
                failures = await self._in_worker(encode_request(step.checks))
            except _WorkerFailed as exc:
                await self._give_up(f"signature workers failed ({exc}); checking in threads")
            else:
                batch.items = step.results(failures)
                batch.checked = True
                self.stats["batches_in_processes"] += 1
                return
        await trio.to_thread.run_sync(Replica.check, batch, limiter=self._limiter)
        self.stats["batches_in_threads"] += 1

    async def _in_worker(self, request: bytes) -> list[tuple[int, int]]:
        try:
            worker = await self._idle.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise _WorkerFailed("the workers were given up meanwhile") from None
        # Shielded: a pipe left mid-request would answer the next batch with
        # this one's failures.  One batch is milliseconds of work.
        with trio.CancelScope(shield=True):
            failures = await worker.check(request)
        self._idle_send.send_nowait(worker)
        return failures

    def start(self) -> None:
        """Start the workers in the background (once; nothing if ``processes`` is 0)."""
        if self._starting or self._closed or not self.processes:
            return
        self._starting = True
        self._nursery.start_soon(self._start_workers)

    async def wait_started(self) -> None:
        """Until a :meth:`start` is over (the workers up, or given up); at once
        if there is nothing to start."""
        if self._starting and not self._closed:
            await self._started.wait()

    async def _start_workers(self) -> None:
        try:
            with trio.fail_after(START_TIMEOUT):
                for _ in range(self.processes):
                    process = await trio.lowlevel.open_process(
                        [sys.executable, "-m", "shinyo.node._sigworker"],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                    self._workers.append(_Worker(process))
                for worker in self._workers:
                    if await worker.read_exactly(1) != b"R":
                        raise _WorkerFailed(f"worker {worker.process.pid} did not say ready")
        except (_WorkerFailed, OSError, trio.TooSlowError) as exc:
            self.stats["pool_failures"] += 1
            logger.warning("could not start %d signature worker(s) (%s); checking in threads",
                           self.processes, exc)
            await self._stop_workers()
            return
        finally:
            self._started.set()
        if self._closed:
            await self._stop_workers()
            return
        for worker in self._workers:
            self._idle_send.send_nowait(worker)
        self._up = True
        logger.info("%d signature worker process(es) up", self.processes)

    async def _give_up(self, why: str) -> None:
        if self._up:
            self._up = False
            self.stats["pool_failures"] += 1
            logger.warning("%s", why)
            self._idle_send.close()  # checks waiting for a worker go to threads
            await self._stop_workers()

    async def _stop_workers(self) -> None:
        workers, self._workers = self._workers, []
        with trio.CancelScope(shield=True):
            for worker in workers:
                with suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    await worker.stdin.aclose()  # end of input: the worker exits
            with trio.move_on_after(STOP_GRACE):
                for worker in workers:
                    await worker.process.wait()
            for worker in workers:
                if worker.process.returncode is None:
                    worker.process.kill()
                    await worker.process.wait()
                await worker.stdout.aclose()

    async def aclose(self) -> None:
        """Stop the workers (a check in flight finishes first: it is shielded)."""
        self._closed = True
        self._up = False
        self._idle_send.close()
        await self._stop_workers()
