"""The time limit that turns a runaway article into one error record (inference/deadline.py)."""
import re
import signal
import threading
import time

import pytest

from conflictbrief.inference.deadline import TimeLimitExceeded, available, budget, time_limit

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs SIGALRM (POSIX)")

RUNAWAY = re.compile(r"(a+)+$")  # exponential backtracking on "aaa...b", as briefer's headline rule had


def test_a_runaway_regex_is_stopped_and_the_previous_handler_is_back():
    def mine(signum, frame):
        pass

    old = signal.signal(signal.SIGALRM, mine)
    try:
        started = time.perf_counter()
        with pytest.raises(TimeLimitExceeded, match="took longer than 0.2 s"):
            with time_limit(0.2) as limited:
                assert limited
                RUNAWAY.match("a" * 60 + "b")
        assert time.perf_counter() - started < 5
        assert signal.getsignal(signal.SIGALRM) is mine
        assert signal.getitimer(signal.ITIMER_REAL)[0] == 0  # no timer left running
    finally:
        signal.signal(signal.SIGALRM, old)


def test_a_block_within_its_limit_runs_to_the_end_and_leaves_no_timer():
    with time_limit(5) as limited:
        value = sum(range(1000))
    assert limited and value == 499500
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
    time.sleep(0.05)  # nothing fires later


def test_a_broad_except_in_the_block_does_not_swallow_the_limit():
    with pytest.raises(TimeLimitExceeded):
        with time_limit(0.1):
            try:
                RUNAWAY.match("a" * 60 + "b")
            except Exception:  # noqa: BLE001 - what library code does
                pass


def test_no_limit_outside_the_main_thread_or_while_someone_else_runs_the_timer():
    seen = []

    def worker():
        with time_limit(0.1) as limited:
            seen.append((limited, available()))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [(False, False)]

    fired = []
    old = signal.signal(signal.SIGALRM, lambda s, f: fired.append(s))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with time_limit(0.05) as limited:
            assert not limited
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0  # theirs, untouched
        time.sleep(0.5)
        assert fired == [signal.SIGALRM]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_budget_grows_with_length_and_a_batch_gets_its_text_plus_a_tenth_per_article():
    assert budget(None, 10**6) is None and budget(0, 5) is None
    assert budget(10, 0) == 10 and budget(10, 3_000) == 10 and budget(10, 10_000) == 10
    assert budget(10, 25_000) == 25 and budget(2, 199_000) == 39.8
    assert budget(10, 3_000, articles=1) == 10
    assert budget(10, 3_000, articles=64) == 10 + 64  # short articles: at least the limit, and 1 s each
    assert budget(10, 103_007, articles=64) == 103.007 + 64
