import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from fastapi.testclient import TestClient

from conflictbrief.inference.service import create_app

GOOD = "Syrian forces shelled Idlib on Monday. About 120,000 people fled toward Turkey."


@pytest.fixture
def client(tiny_pipeline):
    return TestClient(create_app(tiny_pipeline, max_body_bytes=50_000))


def test_analyze_one_and_many(client):
    r = client.post("/v1/analyze", json={"text": GOOD, "id": "x1"})
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == "x1" and {"entities", "brief", "guards", "models", "timings"} <= body.keys()
    r = client.post("/v1/analyze", json={"articles": [{"text": GOOD}, {"text": GOOD, "id": "b"}]})
    assert [x["id"] for x in r.json()["results"]] == [None, "b"]


def test_errors_413_422_and_health(client):
    assert client.get("/healthz").json() == {"status": "ok", "past_time_limit": 0}
    assert "labels" in client.get("/v1/models").json()["tagger"]
    assert client.post("/v1/analyze", json={"text": "x" * 60_000}).status_code == 413
    r = client.post("/v1/analyze", json={"text": 5})
    assert r.status_code == 422
    assert client.post("/v1/analyze", json={}).status_code == 422
    assert "openapi" in client.get("/openapi.json").json()


def test_an_article_that_cannot_be_analysed_is_a_422_alone_and_an_error_result_in_a_list(client):
    r = client.post("/v1/analyze", json={"text": "<p></p>", "id": "e1"})
    assert r.status_code == 422 and r.json()["detail"] == "record 'e1': text is empty after cleaning"
    r = client.post("/v1/analyze", json={"articles": [{"text": "<p></p>", "id": "e1"}, {"text": GOOD, "id": "g"}]})
    assert r.status_code == 200
    assert [(x["id"], bool(x.get("error"))) for x in r.json()["results"]] == [("e1", True), ("g", False)]


def test_a_lone_surrogate_in_the_body_is_a_422_not_a_bare_500(client):
    # Half an emoji as a JSON escape: the validation refuses it, and FastAPI's own error handler could not
    # encode the input it echoes.
    r = client.post("/v1/analyze", content=b'{"text": "\\ud83d Shelling hit Idlib.", "id": "s1"}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "text"]


def test_a_lone_surrogate_in_an_id_or_a_label_studio_text_comes_back_escaped_not_as_a_bare_500(client):
    # Validation refuses one in a text, but an id (a string or a number) took it, and so does a Label Studio
    # task's data; the answer echoes them, and UTF-8 cannot encode half an emoji: every such request was a 500.
    for body in (b'{"text": "' + GOOD.encode() + b'", "id": "a\\ud83d"}',
                 b'{"articles": [{"text": "' + GOOD.encode() + b'", "id": "a\\ud83d"}]}'):
        r = client.post("/v1/analyze", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        got = r.json()
        assert (got.get("id") or got["results"][0]["id"]) == "a\ud83d" and b"\\ud83d" in r.content
    task = {"id": 1, "data": {"text": "Syrian forces shelled Idlib on Monday with barrel\ud83d bombs."}}
    r = client.post("/labelstudio/predict", content=json.dumps({"tasks": [task], "label_config": NER_TEMPLATE.replace(
        "</Labels>", '<Label value="Weapon"/><Label value="Nationality"/></Labels>')}).encode(),
        headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    regions = r.json()["results"][0]["result"]
    assert regions and all(task["data"]["text"][g["value"]["start"]:g["value"]["end"]] == g["value"]["text"]
                           for g in regions)


def test_bodies_in_other_charsets_plain_text_and_no_content_type(client):
    latin = '{"id": "c1", "text": "Caf\u00e9 bombed in Kabul. 5 people died."}'.encode("cp1252")
    r = client.post("/v1/analyze", content=latin, headers={"content-type": "application/json"})
    assert r.status_code == 400  # was "There was an error parsing the body"
    assert r.json()["detail"].startswith("request body is not UTF-8 (byte 25: b'\\xe9'); send JSON as UTF-8")
    r = client.post("/v1/analyze", content=latin, headers={"content-type": "application/json; charset=windows-1252"})
    assert r.status_code == 200 and r.json()["text"].startswith("Caf\u00e9 bombed")
    r = client.post("/v1/analyze", content=json.dumps({"text": GOOD}).encode("utf-16"),
                    headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["text"] == GOOD
    r = client.post("/v1/analyze", content=json.dumps({"text": GOOD}),  # curl -d: form content type, or none
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.json()["text"] == GOOD
    r = client.post("/v1/analyze?id=p1", content=GOOD.encode(), headers={"content-type": "text/plain"})
    assert r.status_code == 200 and (r.json()["id"], r.json()["text"]) == ("p1", GOOD)
    r = client.post("/v1/analyze", content="Caf\u00e9 bombed.".encode("cp1252"), headers={"content-type": "text/plain"})
    assert r.status_code == 400 and "text/plain; charset=windows-1252" in r.json()["detail"]
    r = client.post("/v1/analyze", content=b"", headers={"content-type": "text/plain"})
    assert r.status_code == 422
    r = client.post("/v1/analyze", content=b"{}", headers={"content-type": "application/json; charset=klingon"})
    assert r.status_code == 400 and "klingon" in r.json()["detail"]
    page = ('<html><head><meta charset="windows-1251"><title>Site</title></head><body><nav>Home | World</nav>'
            "<article><p>" + GOOD + " Киев.</p></article><footer>(c) Site</footer></body></html>")
    r = client.post("/v1/analyze?id=h1", content=page.encode("cp1251"), headers={"content-type": "text/html"})
    assert r.status_code == 200 and (r.json()["id"], r.json()["text"]) == ("h1", GOOD + " Киев.")
    r = client.post("/v1/analyze", content=page.replace("windows-1251", "utf-8").encode("cp1251"),
                    headers={"content-type": "text/html"})
    assert r.status_code == 400 and "text/html; charset=windows-1252" in r.json()["detail"]
    assert {"application/json", "text/plain", "text/html"} <= client.get("/openapi.json").json()[
        "paths"]["/v1/analyze"]["post"]["requestBody"]["content"].keys()


def test_a_chunked_body_without_a_length_is_stopped_at_the_limit(client):
    # The 413 used to look at Content-Length only: a chunked body was read whole, however large.
    def chunks():
        yield b'{"text": "'
        for _ in range(10):
            yield b"a" * 10_000
        yield b'"}'

    r = client.post("/v1/analyze", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit of 50000 bytes" in r.json()["detail"]


class SlowPipeline:
    models = {"conflictbrief": "test"}

    def analyze_batch(self, items, brief=True):
        time.sleep(1.0)
        return []


def serve(app):
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    return server, thread, port


def post(port, body, timeout=60):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/analyze", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    try:
        return urllib.request.urlopen(req, timeout=timeout).status
    except urllib.error.HTTPError as e:
        return e.code


def test_overload_queues_then_503_and_the_server_stays_up():
    server, thread, port = serve(create_app(SlowPipeline(), max_concurrency=1, max_queue=1))
    try:
        codes = []
        workers = [threading.Thread(target=lambda: codes.append(post(port, {"articles": []}))) for _ in range(4)]
        for w in workers:
            w.start()
            time.sleep(0.1)
        for w in workers:
            w.join()
        assert sorted(codes) == [200, 200, 503, 503]  # one runs, one queues, the rest are refused
        assert post(port, {"articles": []}) == 200  # and it still serves afterwards
    finally:
        server.should_exit = True
        thread.join(10)


class StuckPipeline:
    """Python code that runs until the test lets it go (holding the GIL but for Python's switches)."""
    models = {"conflictbrief": "test"}

    def __init__(self):
        self.go = threading.Event()

    def spin(self):
        end = time.monotonic() + 30
        while not self.go.is_set() and time.monotonic() < end:
            sum(range(1000))

    def analyze(self, text, id=None, brief=True):
        self.spin()
        return type("R", (), {"to_dict": lambda self: {"id": id}})()

    def analyze_batch(self, items, brief=True):
        self.spin()
        return []


def get(port, path):
    try:
        r = urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
        return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_a_request_that_runs_away_gets_504_and_health_says_so_until_it_ends():
    # A runaway analysis held its worker and its slot for good, and the client waited with it.
    pipeline = StuckPipeline()
    server, thread, port = serve(create_app(pipeline, max_concurrency=1, max_queue=0, time_limit=0.5))
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/analyze", data=json.dumps(
            {"text": "BREAKING NEWS", "id": "w7"}).encode(), headers={"content-type": "application/json"})
        start = time.monotonic()
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=20)
        assert e.value.code == 504 and time.monotonic() - start < 5
        detail = json.loads(e.value.read())["detail"]
        assert "record 'w7'" in detail and "time limit of 0.5 s" in detail
        # its thread runs on and keeps the only slot: health says so, and new work is refused, not queued
        assert get(port, "/healthz") == (503, {"status": "stuck", "past_time_limit": 1, "detail":
                                               "all 1 analysis slots are held by analyses that ran past their "
                                               "time limit; restart the service"})
        assert post(port, {"text": "more"}) == 503
        pipeline.go.set()  # it ends: the slot is free again
        for _ in range(100):
            if get(port, "/healthz")[0] == 200:
                break
            time.sleep(0.05)
        assert get(port, "/healthz") == (200, {"status": "ok", "past_time_limit": 0})
        assert post(port, {"text": "more"}) == 200
        # a list gets its limit from all its text, plus a tenth of the limit per article
        pipeline.go.clear()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/analyze", data=json.dumps(
            {"articles": [{"text": "a"}, {"text": "b"}]}).encode(), headers={"content-type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=20)
        assert e.value.code == 504 and "a list of 2 articles" in json.loads(e.value.read())["detail"]
        pipeline.go.set()
    finally:
        pipeline.go.set()
        server.should_exit = True
        thread.join(10)


def test_real_server_on_loopback(tiny_pipeline):
    server, thread, port = serve(create_app(tiny_pipeline))
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/analyze", data=json.dumps({"text": GOOD}).encode(),
                                     headers={"content-type": "application/json"})
        body = json.loads(urllib.request.urlopen(req, timeout=60).read())
        assert body["text"].startswith("Syrian forces")
    finally:
        server.should_exit = True
        thread.join(10)


def test_serve_takes_the_lexicon_threads_and_length_limit_the_batch_job_takes(monkeypatch):
    # An operator could not give the service a lexicon of their own, nor its thread count or text limit.
    import uvicorn

    from conflictbrief.cli import main
    from conflictbrief.inference.pipeline import Pipeline

    seen = {}
    monkeypatch.setattr(Pipeline, "load", classmethod(lambda cls, **kwargs: seen.update(kwargs) or SlowPipeline()))
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: seen.update(host=host, port=port, **kw))
    assert main(["serve", "--neutrality", "mine.yaml", "--threads", "3", "--max-chars", "5000", "--port", "8001",
                 "--workers", "threads"]) == 0
    assert (seen["neutrality"], seen["threads"], seen["max_chars"], seen["port"]) == ("mine.yaml", 3, 5000, 8001)
    assert seen["consistent_names"] is True
    assert main(["serve", "--model-labels", "--workers", "threads"]) == 0
    assert seen["consistent_names"] is False  # the model's own labels, as `brief --model-labels` gives them


def test_serve_passes_its_time_limit_to_the_app(monkeypatch):
    import uvicorn

    from conflictbrief.cli import main
    from conflictbrief.inference import service
    from conflictbrief.inference.pipeline import Pipeline

    seen = {}
    monkeypatch.setattr(Pipeline, "load", classmethod(lambda cls, **kwargs: SlowPipeline()))
    monkeypatch.setattr(service, "create_app", lambda pipeline, *args, **kwargs: seen.update(kwargs))
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: None)
    assert main(["serve", "--time-limit", "2.5", "--workers", "threads"]) == 0 and seen["time_limit"] == 2.5
    assert main(["serve", "--workers", "threads"]) == 0 and seen["time_limit"] == 10.0


def test_serve_runs_worker_processes_by_default(monkeypatch):
    import uvicorn

    from conflictbrief.cli import main
    from conflictbrief.inference import workers

    seen = {}

    class Fake:
        models = {"conflictbrief": "test"}

        def __init__(self, load, size, time_limit):
            seen.update(load=load, size=size, time_limit=time_limit)

        def close(self):
            seen["closed"] = True

    monkeypatch.setattr(workers, "ProcessPipeline", Fake)
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: None)
    assert main(["serve", "--max-concurrency", "3", "--neutrality", "mine.yaml", "--time-limit", "0"]) == 0
    assert (seen["size"], seen["time_limit"], seen["load"]["neutrality"], seen["closed"]) == (3, None, "mine.yaml", True)


def test_an_id_may_be_a_whole_number_and_comes_back_as_a_string(client):
    """Database keys are numbers: {"id": 5} was a 422 ("Input should be a valid string"); the batch job takes
    such ids from the data and writes them as strings, and so does the service now. Other types stay 422."""
    r = client.post("/v1/analyze", json={"text": GOOD, "id": 5})
    assert r.status_code == 200 and r.json()["id"] == "5"
    r = client.post("/v1/analyze", json={"articles": [{"text": GOOD, "id": 7}, {"text": GOOD, "id": "b"}]})
    assert [x["id"] for x in r.json()["results"]] == ["7", "b"]
    for bad in (True, 1.5, [1], {"a": 1}):
        assert client.post("/v1/analyze", json={"text": GOOD, "id": bad}).status_code == 422, bad


def test_an_api_key_guards_the_v1_routes_and_leaves_health_open(tiny_pipeline):
    client = TestClient(create_app(tiny_pipeline, api_key="s3cret-key"))
    for headers, code in (({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"X-API-Key": "s3cret-ke"}, 401),
                          ({"Authorization": "Bearer s3cret-key"}, 200), ({"authorization": "bearer s3cret-key"}, 200),
                          ({"X-API-Key": "s3cret-key"}, 200)):
        r = client.post("/v1/analyze", json={"text": GOOD}, headers=headers)
        assert r.status_code == code, (headers, r.text)
        assert client.get("/v1/models", headers=headers).status_code == code
        if code == 401:
            assert r.headers["www-authenticate"] == 'Bearer, Basic realm="conflictbrief"'
            assert r.json()["detail"] == ("wrong API key" if headers else
                                          "an API key is needed: send 'Authorization: Bearer KEY', 'X-API-Key: KEY' "
                                          "or HTTP Basic authentication with the key as the password")
    # checked before the body is validated: a request without the key learns nothing about its body
    assert client.post("/v1/analyze", json={"nothing": 1}).status_code == 401
    assert client.get("/healthz").status_code == 200
    assert TestClient(create_app(tiny_pipeline)).post("/v1/analyze", json={"text": GOOD}).status_code == 200


def test_serve_reads_its_api_key_from_a_file_or_the_environment_never_the_command_line(tmp_path, monkeypatch,
                                                                                        capsys):
    from conflictbrief.cli import main, serve_api_key
    from conflictbrief.training.config import ConfigError

    monkeypatch.delenv("CONFLICTBRIEF_API_KEY", raising=False)
    assert serve_api_key(None) is None
    monkeypatch.setenv("CONFLICTBRIEF_API_KEY", " from-env \n")
    assert serve_api_key(None) == "from-env"
    (tmp_path / "key").write_text("from-file\nignored\n")
    assert serve_api_key(str(tmp_path / "key")) == "from-file"
    (tmp_path / "empty").write_text("\n")
    for path, said in ((tmp_path / "empty", "its first line is empty"), (tmp_path / "absent", "cannot read it")):
        with pytest.raises(ConfigError, match=said):
            serve_api_key(str(path))
    # the command stops before any model loads
    import uvicorn

    from conflictbrief.inference import pipeline, workers

    def no_load(*args, **kwargs):
        raise AssertionError("models were loaded")

    monkeypatch.setattr(pipeline.Pipeline, "load", no_load)
    monkeypatch.setattr(workers, "ProcessPipeline", no_load)
    monkeypatch.setattr(uvicorn, "run", no_load)
    assert main(["serve", "--api-key-file", str(tmp_path / "empty")]) == 2
    assert "--api-key-file" in capsys.readouterr().err
    # beyond this machine without a key: a warning, before the models load
    monkeypatch.delenv("CONFLICTBRIEF_API_KEY")
    for host, warned in (("0.0.0.0", True), ("127.0.0.1", False)):
        with pytest.raises(AssertionError, match="models were loaded"):
            main(["serve", "--host", host, "--workers", "threads"])
        assert ("serving on 0.0.0.0 without an API key" in capsys.readouterr().err) is warned


def test_brief_false_gives_entities_only_without_running_the_briefer(tiny_pipeline, monkeypatch):
    client = TestClient(create_app(tiny_pipeline))
    full = client.post("/v1/analyze", json={"text": GOOD, "id": "f"}).json()
    assert full["brief"]

    def no(*args, **kwargs):
        raise AssertionError("the briefer ran")

    monkeypatch.setattr(tiny_pipeline.briefer, "brief", no)
    for r in (client.post("/v1/analyze", json={"text": GOOD, "id": "f", "brief": False}),
              client.post("/v1/analyze?id=f&brief=false", content=GOOD.encode(),
                          headers={"content-type": "text/plain"}),
              client.post("/v1/analyze?brief=0", json={"text": GOOD, "id": "f"})):
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["brief"] == [] and body["headline"] is None and body["guards"] == {}
        assert body["entities"] == full["entities"] and body["sentences"] == full["sentences"]
    r = client.post("/v1/analyze?brief=false", json={"articles": [{"text": GOOD}, {"text": " "}]})
    assert [x["brief"] for x in r.json()["results"]] == [[], []] and r.json()["results"][1]["error"]
    r = client.post("/v1/analyze?brief=true", json={"text": GOOD, "brief": False})
    assert r.status_code == 422 and "'brief' is false in the body and true in the query" in r.text
    assert client.post("/v1/analyze?brief=maybe", json={"text": GOOD}).status_code == 422
    assert "brief" in json.dumps(client.get("/openapi.json").json()["paths"]["/v1/analyze"]["post"]["parameters"])


def test_python_entities_only(tiny_pipeline, monkeypatch):
    monkeypatch.setattr(tiny_pipeline.briefer, "brief", lambda *a, **k: (_ for _ in ()).throw(AssertionError()))
    r = tiny_pipeline.analyze(GOOD, "a", brief=False)
    assert r.brief == [] and r.entities and r.warnings == []
    assert [x.brief for x in tiny_pipeline.analyze_batch([GOOD, GOOD], brief=False)] == [[], []]


def test_behind_a_proxy_under_a_path_prefix(tiny_pipeline, monkeypatch, capsys):
    """`serve --root-path /cb`: the server puts the prefix back into the request's path, and the body
    normaliser, which looked for "/v1/analyze" alone, let a text/plain article through unread (a 422)."""
    import uvicorn

    from conflictbrief.cli import main
    from conflictbrief.inference.pipeline import Pipeline

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(tiny_pipeline), host="127.0.0.1", port=port,
                                           log_level="error", root_path="/cb"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/analyze?id=p", data=GOOD.encode(),
                                         headers={"content-type": "text/plain"})
        with urllib.request.urlopen(request, timeout=30) as r:
            assert r.status == 200 and json.loads(r.read())["id"] == "p"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=30) as r:
            assert "'/cb/openapi.json'" in r.read().decode()
    finally:
        server.should_exit = True
        thread.join(10)
    # the command line passes it on, and refuses what is no path prefix before the models load
    seen = {}
    monkeypatch.setattr(Pipeline, "load", classmethod(lambda cls, **kwargs: SlowPipeline()))
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: seen.update(kw))
    assert main(["serve", "--workers", "threads", "--root-path", "/cb"]) == 0 and seen["root_path"] == "/cb"
    for bad in ("cb", "/cb/"):
        assert main(["serve", "--workers", "threads", "--root-path", bad]) == 2
        assert "--root-path" in capsys.readouterr().err


def test_gzip_request_bodies(client):
    import gzip

    one = json.dumps({"text": GOOD, "id": "z"}).encode()
    r = client.post("/v1/analyze", content=gzip.compress(one),
                    headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert r.status_code == 200 and r.json()["id"] == "z"
    # two gzip members make one gzip body; a text/plain article may come compressed too
    half = len(GOOD) // 2
    r = client.post("/v1/analyze?id=t", content=gzip.compress(GOOD[:half].encode()) + gzip.compress(GOOD[half:].encode()),
                    headers={"content-type": "text/plain", "content-encoding": "gzip"})
    assert r.status_code == 200 and r.json()["text"] == client.post("/v1/analyze", json={"text": GOOD}).json()["text"]
    # the limit (50,000 bytes for this client) holds for what the body unpacks to: 200 bytes here unpack to 60 kB
    bomb = gzip.compress(json.dumps({"text": "a " * 30_000}).encode())
    assert len(bomb) < 1000
    r = client.post("/v1/analyze", content=bomb, headers={"content-encoding": "gzip"})
    assert r.status_code == 413 and "once decompressed" in r.json()["detail"]
    r = client.post("/v1/analyze", content=gzip.compress(one)[:-10], headers={"content-encoding": "gzip"})
    assert r.status_code == 400 and "breaks off" in r.json()["detail"]
    r = client.post("/v1/analyze", content=one, headers={"content-encoding": "gzip"})
    assert r.status_code == 400 and "not gzip data" in r.json()["detail"]
    r = client.post("/v1/analyze", content=one, headers={"content-encoding": "br"})
    assert r.status_code == 415 and "'br' is not supported" in r.json()["detail"]
    # and an answer is compressed for a client that accepts it
    r = client.post("/v1/analyze", json={"articles": [{"text": GOOD}] * 20}, headers={"accept-encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip" and len(r.json()["results"]) == 20
    r = client.post("/v1/analyze", json={"articles": [{"text": GOOD}] * 20}, headers={"accept-encoding": "identity"})
    assert "content-encoding" not in r.headers and len(r.json()["results"]) == 20


NER_TEMPLATE = """<View>
  <Labels name="label" toName="text">
    <Label value="PER" background="red"/><Label value="ORG" background="darkorange"/>
    <Label value="LOC" background="orange"/><Label value="MISC" background="green"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>"""


def _basic(user: str, password: str) -> dict:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_label_studio_ml_backend_health_setup_and_predict(tiny_pipeline, caplog):
    """Label Studio connects to http://HOST:PORT/labelstudio: /health, /setup with the project's labeling config,
    /predict with its tasks; it authenticates with HTTP Basic (the key as the password) and wants a prediction
    per task, in order, whose label regions slice the task's own text."""
    from conflictbrief.inference.labelstudio import model_version

    client = TestClient(create_app(tiny_pipeline, api_key="s3cret-key"))
    version = model_version(tiny_pipeline.models)
    assert client.get("/labelstudio/health").json()["status"] == "UP"  # open, as /healthz
    setup = {"project": "3.1700000000", "schema": NER_TEMPLATE, "hostname": "http://localhost:8080"}
    assert client.post("/labelstudio/setup", json=setup).status_code == 401
    assert client.post("/labelstudio/setup", json=setup, headers=_basic("ls", "wrong")).status_code == 401
    key = _basic("anyone", "s3cret-key")
    assert client.post("/labelstudio/setup", json=setup, headers=key).json() == {"model_version": version}
    assert client.get("/labelstudio/versions", headers=key).json() == {"versions": [version]}

    raw = "Raed Saleh of the White Helmets said 120,000 people fled to Turkey &amp; Greece."
    tasks = [{"id": 11, "data": {"text": "&lt;b&gt;" + SPANS_TEXT}, "project": 3},
             {"id": 12, "data": {"image": "x.png"}},  # no text: an empty prediction in its place
             {"id": 13, "data": {"text": raw}}]
    with caplog.at_level("WARNING", logger="conflictbrief.service"):
        r = client.post("/labelstudio/predict", headers=key,
                        json={"tasks": tasks, "label_config": NER_TEMPLATE, "project": "3.1700000000",
                              "params": {"login": None, "password": None, "context": None}})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 3 and all(p["model_version"] == version for p in results)
    assert results[1] == {"result": [], "score": 0.0, "model_version": version}
    assert "Label Studio task 12: no text in its data field 'text'" in caplog.text
    regions = [g for p in (results[0], results[2]) for g in p["result"]]
    assert regions, "the tiny tagger finds entities in the texts it was trained on"
    for task, prediction in ((tasks[0], results[0]), (tasks[2], results[2])):
        for g in prediction["result"]:
            assert g["from_name"] == "label" and g["to_name"] == "text" and g["type"] == "labels"
            assert g["value"]["labels"][0] in ("PER", "ORG", "LOC")  # the project's names, not the tagger's
            assert task["data"]["text"][g["value"]["start"]:g["value"]["end"]] == g["value"]["text"]
        assert prediction["score"] == min((g["score"] for g in prediction["result"]), default=1.0)
    assert not any(g["type"] == "textarea" for g in regions)  # no TextArea in the config: no brief

    # a config with a TextArea gets the brief in it, a sentence a line
    config = NER_TEMPLATE.replace("</View>", '<TextArea name="summary" toName="text" rows="4"/></View>')
    r = client.post("/labelstudio/predict", headers=key, json={"tasks": tasks[2:], "label_config": config})
    [brief] = [g for g in r.json()["results"][0]["result"] if g["type"] == "textarea"]
    assert brief["from_name"] == "summary" and brief["value"]["text"] and all(
        isinstance(line, str) and line for line in brief["value"]["text"])

    # a config there is nothing in to predict is refused at setup, with the reason Label Studio shows
    r = client.post("/labelstudio/setup", headers=key, json={
        "schema": '<View><Image name="i" value="$image"/><Choices name="c" toName="i"><Choice value="a"/>'
                  "</Choices></View>"})
    assert r.status_code == 422 and "no <Text" in r.json()["detail"]
    assert client.post("/labelstudio/predict", headers=key, json={"tasks": tasks}).status_code == 422
    # training is not done from Label Studio: said so; annotation events are acknowledged
    assert "conflictbrief train tagger" in client.post("/labelstudio/train", json={}).json()["detail"]
    assert client.post("/labelstudio/webhook", json={"action": "ANNOTATION_CREATED"}).status_code == 200


SPANS_TEXT = "Syrian forces shelled Idlib on Monday with barrel bombs."


def test_label_studio_requests_keep_the_body_limit(client):
    big = {"tasks": [{"id": 1, "data": {"text": "x" * 60_000}}], "label_config": NER_TEMPLATE}
    assert client.post("/labelstudio/predict", json=big).status_code == 413

    def chunks():  # no Content-Length
        yield json.dumps(big).encode()

    assert client.post("/labelstudio/predict", content=chunks(),
                       headers={"content-type": "application/json"}).status_code == 413


def test_label_studio_labeling_configs():
    from conflictbrief.inference.labelstudio import LabelConfigError, read_config

    ours = ["Organisation", "Location", "Person", "Temporal"]
    mappings = {"conll": {"PER": "Person", "ORG": "Organisation", "LOC": "Location", "MISC": None}}
    c = read_config(NER_TEMPLATE, ours, mappings)
    assert (c.text_name, c.text_key, c.brief, c.headline) == ("text", "text", None, None)
    assert c.labels == {"Person": ("label", "PER"), "Organisation": ("label", "ORG"), "Location": ("label", "LOC")}
    assert c.unmatched == ["MISC"] and not c.wants_brief
    c = read_config("""<View><Header value="Read"/><Text name="article" value="$body"/>
        <Labels name="who" toName="article"><Label value="person"/><Label value="Organization"/></Labels>
        <Labels name="when" toName="article"><Label value="Temporal"/></Labels>
        <TextArea name="note" toName="article" perRegion="true"/>
        <TextArea name="headline" toName="article"/><TextArea name="comment" toName="article"/>
        <TextArea name="abstract" toName="article"/></View>""", ours)
    # the names the brief reader knows in an export, so that it trains as it is
    assert (c.text_name, c.text_key, c.headline, c.brief) == ("article", "body", "headline", "abstract")
    assert c.labels == {"Person": ("who", "person"), "Organisation": ("who", "Organization"),
                        "Temporal": ("when", "Temporal")}
    assert read_config('<View><Text name="t" value="$t"/><TextArea name="a" toName="t"/></View>', ours).brief == "a"
    two = '<View><Text name="t" value="$t"/><TextArea name="a" toName="t"/><TextArea name="b" toName="t"/></View>'
    with pytest.raises(LabelConfigError, match="no TextArea for the brief"):  # which one? the reader would not know
        read_config(two, ours)
    assert read_config(two.replace("</View>", '<Labels name="l" toName="t"><Label value="Person"/></Labels></View>'),
                       ours).brief is None
    laughs = ('<?xml version="1.0"?><!DOCTYPE v [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
              '<View><Text name="t" value="$t"/><TextArea name="x" toName="t" placeholder="&b;"/></View>')
    for xml, problem in (("<View><Text", "not XML"), (laughs, "<!DOCTYPE> or <!ENTITY> declaration"),
                         ('<View><HyperText name="h" value="$html"/></View>',
                          "<HyperText>: conflictbrief pre-annotates"),
                         ('<View><Text name="t" value="$url" valueType="url"/><TextArea name="a" toName="t"/></View>',
                          'valueType="url"'),
                         ('<View><Text name="t" value="$t"/><Labels name="l" toName="t"><Label value="Cat"/></Labels>'
                          "</View>", "no Labels control with a label the tagger gives (Organisation, Location, Person, "
                          "Temporal) and no TextArea for the brief (one TextArea, or one named brief or abstract or "
                          "summary)")):
        with pytest.raises(LabelConfigError, match=re.escape(problem)):
            read_config(xml, ours)


def test_doccano_auto_labeling_templates_turn_an_answer_into_its_labels(client):
    """configs/doccano/*.jinja2 are the mapping templates of doccano's auto labeling (Custom REST Request to
    /v1/analyze). doccano renders them with Jinja2 over the JSON answer (as ``input``) and reads JSON: entity
    labels with offsets into the text it sent, and the brief as one text, a sentence a line."""
    from importlib import resources

    import jinja2

    folder = resources.files("conflictbrief.configs") / "doccano"
    entities, brief = ((folder / name).read_text(encoding="utf-8") for name in ("entities.jinja2", "brief.jinja2"))
    text = 'Raed Saleh of the White Helmets said "120,000 people fled" to Turkey &amp; Greece.\n\n' + SPANS_TEXT
    answer = client.post("/v1/analyze", json={"text": text}).json()
    labels = json.loads(jinja2.Template(entities).render(input=answer))
    assert labels and len(labels) == len(answer["entities"])
    for label, e in zip(labels, answer["entities"]):
        assert set(label) == {"label", "start_offset", "end_offset"} and label["label"] == e["label"]
        assert text[label["start_offset"]:label["end_offset"]] == text[e["raw_start"]:e["raw_end"]]
    assert json.loads(jinja2.Template(entities).render(input={**answer, "entities": []})) == []
    [written] = json.loads(jinja2.Template(brief).render(input=answer))
    assert written == {"text": "\n".join(s["text"] for s in answer["brief"])} and written["text"]
    # quotes and backslashes in a brief stay JSON (doccano's own speech template breaks on a quote)
    quoted = {**answer, "brief": [{"text": 'He said "go" \\ now.'}, {"text": "Then <left>."}]}
    assert json.loads(jinja2.Template(brief).render(input=quoted)) == [{"text": 'He said "go" \\ now.\nThen <left>.'}]
    assert json.loads(jinja2.Template(brief).render(input={**answer, "brief": []})) == []


def test_the_reports_of_one_event_are_a_list_of_texts(client):
    r = client.post("/v1/analyze", json={"reports": [GOOD, "Rebels said they pushed back the assault near Idlib."]})
    assert r.status_code == 200 and r.json()["reports"] == [0, r.json()["text"].index("Rebels")]
    assert {b["report"] for b in r.json()["brief"]} <= {0, 1} and r.json()["brief"][0]["report"] == 0
    r = client.post("/v1/analyze", json={"articles": [{"reports": [GOOD]}, {"text": GOOD, "id": "b"}]})
    assert [x["reports"] for x in r.json()["results"]] == [[], []]
    assert client.post("/v1/analyze", json={"reports": []}).status_code == 422
    assert client.post("/v1/analyze", json={"reports": ["", GOOD]}).json()["reports"] == []  # a blank one left out
    r = client.post("/v1/analyze", json={"reports": ["", " "], "id": "e2"})
    assert r.status_code == 422 and "record 'e2': text is empty after cleaning" in r.text
    r = client.post("/v1/analyze", json={"reports": [GOOD, 5]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "reports", 1]
    r = client.post("/v1/analyze", json={"text": GOOD, "reports": [GOOD]})
    assert r.status_code == 422 and "exactly one of 'text'" in r.json()["detail"]
    r = client.post("/v1/analyze", json={"articles": [{"text": GOOD, "reports": [GOOD]}]})
    assert r.status_code == 422 and "exactly one of 'text'" in r.json()["detail"][0]["msg"]
    assert client.post("/v1/analyze", json={"text": [GOOD, GOOD]}).status_code == 422  # a list: 'reports'
    assert client.post("/v1/analyze", json={"reports": ["x" * 30_000, "y" * 30_000]}).status_code == 413
