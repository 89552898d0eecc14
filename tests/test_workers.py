"""The service's worker processes: a runaway analysis is stopped in its worker, regular expressions included,
and a worker that does not stop is killed and replaced (spawned processes; tiny models)."""
import re
import signal
import time

import pytest

from conflictbrief.inference.pipeline import InputError, TimeLimitError
from conflictbrief.inference.workers import ProcessPipeline, WorkerError

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="SIGALRM (Linux, macOS)")

GOOD = "Syrian forces shelled Idlib on Monday. About 120,000 people fled toward Turkey."
RUNAWAY = "RUNAWAY " + "a" * 40 + "b"


def runaway_loader(**kwargs):
    """The tiny pipeline, with a tagger that backtracks exponentially (in C, keeping the GIL) on RUNAWAY,
    and that cannot be interrupted at all on 'STUCK'."""
    from conflictbrief.inference.pipeline import Pipeline

    pipeline = Pipeline.load(**kwargs)
    tag = pipeline.tagger.tag

    def slow_tag(texts, *args, **kw):
        for text in texts:
            if "RUNAWAY" in str(text):
                re.search(r"(a+)+$", "a" * 40 + "b")
            if "STUCK" in str(text):
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
                time.sleep(60)
        return tag(texts, *args, **kw)

    pipeline.tagger.tag = slow_tag
    return pipeline


@pytest.fixture
def pool(tiny_tagger_dir, tiny_briefer_dir):
    # one torch thread: two threads on two cores that other processes keep busy made a 0.05 s analysis take up
    # to 5 s now and then (the threads wait on each other), past the 1 s limit
    p = ProcessPipeline({"tagger": str(tiny_tagger_dir), "briefer": str(tiny_briefer_dir), "device": "cpu",
                         "threads": 1}, size=1,
                        time_limit=1.0, loader=runaway_loader, grace=1.0)
    yield p
    p.close()


def test_a_runaway_regex_is_stopped_in_its_worker_and_the_worker_goes_on(pool):
    assert pool.models["tagger"]["labels"] and pool.health() == {"workers": 1, "of": 1, "starting": 0, "restarts": 0}
    start = time.monotonic()
    with pytest.raises(TimeLimitError, match=r"record 'r1': analysis ran past its time limit of 1 s"):
        pool.analyze(RUNAWAY, "r1")
    assert time.monotonic() - start < 10
    assert pool.analyze(GOOD, "g")["brief"]  # the same worker, not a new one
    results = pool.analyze_batch([("r2", RUNAWAY), ("g2", GOOD)])
    assert "time limit" in results[0]["error"] and results[1]["error"] is None and results[1]["brief"]
    with pytest.raises(InputError, match="empty"):
        pool.analyze("   ", "e")
    assert pool.health()["restarts"] == 0


def test_a_worker_that_will_not_stop_is_killed_and_replaced(pool):
    start = time.monotonic()
    with pytest.raises(TimeLimitError, match="worker process was killed after 3 s"):
        pool.analyze("STUCK here. " + GOOD, "s")
    assert time.monotonic() - start < 10
    assert pool.health() == {"workers": 0, "of": 1, "starting": 1, "restarts": 1}
    assert pool.analyze(GOOD, "g")["brief"]  # waits for the new worker
    assert pool.health() == {"workers": 1, "of": 1, "starting": 0, "restarts": 1}


def test_a_worker_that_cannot_load_stops_the_start_with_the_reason(tiny_tagger_dir):
    with pytest.raises(WorkerError, match="only 0 of 1 worker processes started: a worker process could not load its models: .*nonexistent"):
        ProcessPipeline({"tagger": str(tiny_tagger_dir), "briefer": "/nonexistent/briefer", "device": "cpu"}, size=1)


def test_the_service_answers_504_from_a_worker_and_health_counts_the_workers(pool):
    from fastapi.testclient import TestClient

    from conflictbrief.inference.service import create_app

    client = TestClient(create_app(pool, max_concurrency=1))
    assert client.get("/healthz").json() == {"status": "ok", "past_time_limit": 0,
                                             "workers": {"workers": 1, "of": 1, "starting": 0,
                                                                         "restarts": 0}}
    r = client.post("/v1/analyze", json={"text": RUNAWAY, "id": "r"})
    assert r.status_code == 504 and "record 'r': analysis ran past its time limit of 1 s" in r.json()["detail"]
    r = client.post("/v1/analyze", json={"articles": [{"text": RUNAWAY, "id": "a"}, {"text": GOOD, "id": "b"}]})
    assert r.status_code == 200 and [bool(x["error"]) for x in r.json()["results"]] == [True, False]
    assert client.post("/v1/analyze", json={"text": "   "}).status_code == 422
    assert client.post("/v1/analyze", json={"text": GOOD}).json()["brief"]
    # entities only, through the worker (one article and a list)
    one = client.post("/v1/analyze", json={"text": GOOD, "brief": False}).json()
    assert one["brief"] == [] and one["entities"]
    many = client.post("/v1/analyze?brief=false", json={"articles": [{"text": GOOD}]}).json()["results"]
    assert many[0]["brief"] == [] and many[0]["entities"] == one["entities"]


def test_when_no_worker_can_be_started_again_a_request_says_so(pool, monkeypatch):
    with pytest.raises(TimeLimitError):
        pool.analyze("STUCK here. " + GOOD, "s")
    for _ in range(600):  # the replacement loads (and this one is made to fail below only afterwards)
        if pool.health()["starting"] == 0:
            break
        time.sleep(0.1)
    worker = pool.idle.get()  # the worker dies, and no new one can load
    pool.load_kwargs = dict(pool.load_kwargs, briefer="/nonexistent/briefer")
    worker.process.kill()
    worker.process.join()
    pool.idle.put(worker)
    with pytest.raises(WorkerError, match="worker process died"):
        pool.analyze(GOOD, "g")
    with pytest.raises(WorkerError, match="no worker process is running .*nonexistent.*restart the service"):
        pool.analyze(GOOD, "g")
    assert pool.health() == {"workers": 0, "of": 1, "starting": 0, "restarts": 2}
    from fastapi.testclient import TestClient

    from conflictbrief.inference.service import create_app

    r = TestClient(create_app(pool)).get("/healthz")
    assert r.status_code == 503 and r.json()["status"] == "stuck"


def test_close_lets_each_worker_exit_by_itself(tiny_tagger_dir, tiny_briefer_dir):
    """A worker that is killed never releases its semaphores, and Python's resource tracker then warns of
    "leaked semaphore objects" when the service stops; closed, it leaves its loop and exits with 0."""
    p = ProcessPipeline({"tagger": str(tiny_tagger_dir), "briefer": str(tiny_briefer_dir), "device": "cpu"}, size=1)
    assert p.analyze(GOOD, "g")["brief"]
    workers = list(p.idle.queue)
    p.close()
    assert [w.process.exitcode for w in workers] == [0]


def test_the_time_budget_of_a_worker_counts_the_characters_of_every_report():
    from conflictbrief.inference.workers import _chars

    reports = ["a" * 20_000, "b" * 30_000]
    assert _chars(("e1", reports)) == _chars({"id": "e1", "reports": reports}) == 50_002  # and the blank line
    assert _chars("c" * 7) == 7 and _chars(("e2", 5)) == 0 and _chars(("x", "y", "z")) == 0
