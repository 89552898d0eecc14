"""Analysis in worker processes, for the HTTP service (``conflictbrief serve --workers processes``).

In a worker thread a runaway analysis cannot be stopped, and one that sits in a C call keeping the GIL (a
regular expression) stops the whole service until it returns (README, HTTP, "Time limit and worker processes": 506 s measured).
Here each analysis runs in the main thread of a worker process of its own, where the batch job's SIGALRM
limit (``deadline``) stops it, regular expressions included: one article gets a TimeLimitError, an article of
a list an error result. Should a worker still not answer (a torch call that never returns) within twice its
budget plus 30 s, or die, it is killed and a new one started in the background; that request gets an error.

Each worker loads the models itself (``Pipeline.load``; spawned, not forked, so that torch starts clean), so
memory and start-up time are those of one pipeline per worker.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading

from conflictbrief.inference.clean import text_chars
from conflictbrief.inference.deadline import budget
from conflictbrief.inference.pipeline import InputError, TimeLimitError, _item

log = logging.getLogger("conflictbrief.workers")

GRACE = 30.0  # seconds past twice the budget before a worker that does not answer is killed (default)


class WorkerError(RuntimeError):
    """A worker died or had to be killed; the request it had is lost (a 500 from the service)."""


def _serve(conn, load_kwargs: dict, time_limit: float | None, loader) -> None:
    """A worker's main thread: load the pipeline, then answer requests until the pipe closes."""
    try:
        if loader is None:
            from conflictbrief.inference.pipeline import Pipeline
            loader = Pipeline.load
        pipeline = loader(**load_kwargs)
        pipeline.time_limit = time_limit
    except BaseException as e:  # noqa: BLE001 -- said to the parent, which stops
        conn.send(("failed", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", pipeline.models))
    while True:
        try:
            kind, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if kind == "one":
                reply = ("ok", pipeline.analyze(*args).to_dict())
            else:
                items, brief = args
                reply = ("ok", [r.to_dict() for r in pipeline.analyze_batch(items, brief=brief)])
        except TimeLimitError as e:
            reply = ("overran", str(e))
        except InputError as e:
            reply = ("input", str(e))
        except Exception as e:  # noqa: BLE001 -- the parent raises it as a WorkerError
            reply = ("error", f"{type(e).__name__}: {str(e)[:300]}")
        conn.send(reply)


def _chars(item) -> int:
    """Characters of an ``analyze_batch`` item's text; 0 for a bad item (its worker makes it an error result)."""
    try:
        text = _item(item)[1]
    except InputError:
        return 0
    return text_chars(text)


class _Worker:
    def __init__(self, context, load_kwargs, time_limit, loader, start_timeout: float):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, load_kwargs, time_limit, loader), daemon=True,
                                       name="conflictbrief-worker")
        self.process.start()
        child.close()
        if not self.conn.poll(start_timeout):
            self.kill()
            raise WorkerError(f"a worker process did not load its models in {start_timeout:g} s")
        try:
            status, payload = self.conn.recv()
        except EOFError:
            self.kill()
            raise WorkerError(f"a worker process died while loading its models (exit code "
                              f"{self.process.exitcode})") from None
        if status != "ready":
            self.kill()
            raise WorkerError(f"a worker process could not load its models: {payload}")
        self.models = payload

    def kill(self) -> None:
        self.process.kill()
        self.process.join(10)
        self.conn.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Close the pipe, so that the worker leaves its loop and exits as a process should (its semaphores
        released: a killed worker leaves Python's resource tracker warning of "leaked semaphore objects" at
        shutdown); kill it if it has not gone within ``timeout`` seconds."""
        self.conn.close()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(10)


class ProcessPipeline:
    """The part of Pipeline's API that the service uses (``analyze``, ``analyze_batch``, ``models``), each
    call run by one of ``size`` worker processes. Results are dicts (``AnalysisResult.to_dict()``).
    ``load_kwargs`` go to ``Pipeline.load`` (or ``loader``, a function importable by name, for tests);
    ``time_limit`` is the batch job's (seconds per 10,000 characters; None: none)."""

    isolated = True  # the service leaves time limits to us

    def __init__(self, load_kwargs: dict, size: int = 2, time_limit: float | None = 10.0, loader=None,
                 start_timeout: float = 600.0, grace: float = GRACE):
        load_kwargs = dict(load_kwargs)
        if not load_kwargs.get("threads"):  # the cores shared out, not each worker using them all
            load_kwargs["threads"] = max(1, (os.cpu_count() or 1) // size)
        self.load_kwargs, self.size, self.time_limit, self.loader = load_kwargs, size, time_limit, loader
        self.start_timeout, self.grace = start_timeout, grace
        self.context = multiprocessing.get_context("spawn")
        self.idle: queue.Queue[_Worker] = queue.Queue()
        self.restarts = 0
        self.alive = 0
        self.errors: list[str] = []
        self.starting = size
        self._lock = threading.Lock()
        starters = [threading.Thread(target=self._add) for _ in range(size)]
        for t in starters:
            t.start()
        for t in starters:
            t.join()
        if self.alive < size:
            self.close()
            raise WorkerError(f"only {self.alive} of {size} worker processes started: {self.errors[0]}")

    def _add(self) -> None:
        try:
            worker = _Worker(self.context, self.load_kwargs, self.time_limit, self.loader, self.start_timeout)
        except WorkerError as e:
            log.error("%s", e)
            with self._lock:
                self.errors.append(str(e))
                self.starting -= 1
            return
        with self._lock:
            self.alive += 1
            self.starting -= 1
            self.models = worker.models
        self.idle.put(worker)

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self.alive -= 1
            self.restarts += 1
            self.starting += 1
        threading.Thread(target=self._add, daemon=True).start()

    def _call(self, kind: str, args, chars: int, n: int):
        limit = budget(self.time_limit, chars, n)
        wait = None if limit is None else 2 * limit + self.grace
        while True:
            try:
                worker = self.idle.get(timeout=1.0)
                break
            except queue.Empty:
                if self.alive == 0 and self.starting == 0:  # a replacement could not load
                    raise WorkerError(f"no worker process is running ({self.errors[-1] if self.errors else '?'}); "
                                      "restart the service") from None
        try:
            worker.conn.send((kind, args))
            if not worker.conn.poll(wait):
                self._replace(worker)
                raise TimeLimitError(f"analysis did not stop at its time limit of {limit:g} s and its worker "
                                     f"process was killed after {wait:g} s: please report it with the article")
            status, payload = worker.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            code = worker.process.exitcode
            self._replace(worker)
            raise WorkerError(f"the worker process died during the analysis (exit code {code}); a new one is "
                              "starting: please report it with the article") from None
        self.idle.put(worker)
        if status == "ok":
            return payload
        if status == "overran":
            raise TimeLimitError(payload)
        if status == "input":
            raise InputError(payload)
        raise WorkerError(f"analysis failed ({payload}); please report it with the article")

    def analyze(self, text: str | list[str], id: str | None = None, brief: bool = True) -> dict:
        return self._call("one", (text, id, brief), text_chars(text), 1)

    def analyze_batch(self, items, brief: bool = True) -> list[dict]:
        items = list(items)
        return self._call("many", (items, brief), sum(_chars(item) for item in items), len(items))

    def health(self) -> dict:
        """workers: running; starting: being replaced; restarts: replaced since the start."""
        return {"workers": self.alive, "of": self.size, "starting": self.starting, "restarts": self.restarts}

    def close(self, timeout: float = 10.0) -> None:
        """Stop the idle workers (each exits when its pipe closes; killed after ``timeout`` s)."""
        workers = []
        while True:
            try:
                workers.append(self.idle.get_nowait())
            except queue.Empty:
                break
        for worker in workers:
            worker.conn.close()
        for worker in workers:
            worker.stop(timeout)
