"""A time limit on a block of code, so that one article that makes a step run away (the exponential regex of
2026-12-05 took minutes on one-line articles in capitals) becomes one error record instead of a stopped job.

The limit is a SIGALRM timer: it interrupts pure-Python work and regular-expression matching (CPython checks
for signals while matching) and a torch or tokenizer call as soon as that call returns. It only works where
the timer does: in the main thread, on a system with SIGALRM (Linux, macOS), when nothing else has the timer
running. Elsewhere (a thread other than the main one, Windows) ``time_limit`` does nothing and says so by
yielding False. The HTTP service runs each analysis in the main thread of a worker process (workers.py), or,
with worker threads, holds a request to the same budget from its event loop (service.py).
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

CHARS = 10_000  # an article may take the limit per CHARS characters of it (the limit at least)
PER_ARTICLE = 0.1  # a batch may take the limit per CHARS characters of all its text, plus this much of it per article


class TimeLimitExceeded(BaseException):
    """The block ran past its limit. A BaseException, like KeyboardInterrupt, so that the broad ``except
    Exception`` of the code it interrupts does not swallow it."""

    def __init__(self, seconds: float):
        super().__init__(f"took longer than {seconds:g} s")
        self.seconds = seconds


def budget(limit: float | None, chars: int, articles: int = 1) -> float | None:
    """Seconds allowed under a limit of ``limit`` (None or 0: no limit). One article of ``chars`` characters:
    ``limit`` per ``CHARS`` characters, ``limit`` at least. A batch of ``articles`` with ``chars`` characters in
    all: the same for its text together, plus ``PER_ARTICLE`` x ``limit`` per article (generation costs about
    the same for a short article as for a long one). Time is about proportional to length: on 2 CPU cores in
    float32 one article takes 1.5 s for 3,000 characters and 26 s for 199,000, and 0.1-0.4 s in batches
    (README, "Time limit"). Overrunning a batch's time costs only time: its articles are analysed again one
    at a time, each under its own limit."""
    if not limit:
        return None
    whole = limit * max(1.0, chars / CHARS)
    return whole if articles <= 1 else round(whole + PER_ARTICLE * limit * articles, 3)


def available() -> bool:
    """Whether ``time_limit`` can limit anything here and now."""
    return (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
            and signal.getitimer(signal.ITIMER_REAL)[0] == 0)


@contextmanager
def time_limit(seconds: float | None):
    """Raise TimeLimitExceeded in the block once it has run ``seconds``; yields whether a limit is set. The
    previous SIGALRM handler is put back afterwards; a timer that someone else runs is left alone (no limit)."""
    if not seconds or not available():
        yield False
        return

    def expired(signum, frame):
        raise TimeLimitExceeded(seconds)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
