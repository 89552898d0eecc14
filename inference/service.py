"""The HTTP service: POST /v1/analyze, GET /healthz, GET /v1/models (FastAPI; OpenAPI at /docs), and a Label
Studio ML backend under /labelstudio (health, setup, predict; labelstudio.py).

Load degrades into queueing, then 503: at most ``max_concurrency`` requests run the models at once, at most
``max_queue`` wait, and any more are refused at once. Bodies above ``max_body_bytes`` get 413 (a chunked
body without a length too, once that many bytes have come). One ``text`` that cannot be analysed (empty after
cleaning, too long) gets 422 naming the problem; in an ``articles`` list each such article gets a result with
``error`` set, and the others are analysed. A request whose analysis runs past ``time_limit``
(``deadline.budget``: 10 s per 10,000 characters by default) gets 504 naming the record and the limit. With
a ``workers.ProcessPipeline`` (``serve``'s default) the worker stops it and goes on. With an in-process
``Pipeline`` the thread cannot be stopped, so it goes on until it ends and keeps its slot until then, logged
as a warning; /healthz says how many there are, with 503 once they hold every slot, so that a supervisor
restarts the service; and a runaway inside one C call that keeps the GIL (a regular expression) stops the
event loop too, until that call returns (README, HTTP, "Time limit and worker processes").

Bodies: JSON (UTF-8, or UTF-16/32 as JSON allows, or the charset that Content-Type names), also when the
client sent no JSON content type (``curl -d``); or ``text/plain``, the article itself (``?id=`` gives its id);
or ``text/html``, a saved page (in the charset Content-Type or its ``<meta>`` names, else UTF-8), of which
only the story is read (page.py). A body that is not in its charset gets 400 naming the byte.
"""
from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, model_validator
from starlette.concurrency import run_in_threadpool

from conflictbrief.inference import labelstudio as ls
from conflictbrief.inference.clean import text_chars
from conflictbrief.inference.deadline import CHARS, PER_ARTICLE, budget
from conflictbrief.inference.page import page_charset
from conflictbrief.inference.pipeline import InputError, TimeLimitError
from conflictbrief.inference.workers import WorkerError

log = logging.getLogger("conflictbrief.service")


def _charset(content_type: str) -> tuple[str, str | None]:
    """(media type, charset or None) of a Content-Type header value."""
    media, _, params = content_type.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    return media.strip().lower(), charset


class _BodyError(Exception):
    def __init__(self, status: int, detail: str):
        self.status, self.detail = status, detail


def normalise_body(body: bytes, content_type: str, query_id: str | None = None) -> bytes:
    """The request body as UTF-8 JSON for /v1/analyze; _BodyError (400) when it is not text in its charset."""
    import codecs

    media, charset = _charset(content_type)
    if charset is not None:
        try:
            codecs.lookup(charset)
        except LookupError:
            raise _BodyError(400, f"Content-Type names charset {charset!r}, which this service does not know") \
                from None
    plain = media in ("text/plain", "text/html")
    if media == "text/html" and charset is None:  # a page not in UTF-8 may declare its charset in a <meta>
        charset = page_charset(body)
    # JSON may be UTF-16 or UTF-32 (RFC 8259 allows reading them); plain text is UTF-8 unless named
    name = charset or ("utf-8" if plain else json.detect_encoding(body))
    try:
        text = body.decode(name).removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        advice = (f"name its charset in Content-Type ({media}; charset=windows-1252)" if plain else
                  "send JSON as UTF-8, or name the charset in Content-Type (application/json; charset=windows-1252)")
        raise _BodyError(400, f"request body is not {charset or 'UTF-8'} (byte {e.start}: "
                              f"{body[e.start:e.start + 1]!r}); {advice}") from None
    return json.dumps({"text": text, "id": query_id}).encode("utf-8") if plain else text.encode("utf-8")


def decode_content(body: bytes, encoding: str, limit: int) -> bytes:
    """The body without its Content-Encoding: none, or gzip (a client that compresses a list of 64 articles).
    _BodyError: 413 when it passes ``limit`` bytes once decompressed (read no further: a small body may
    unpack to gigabytes), 400 when it is not gzip data, 415 for another encoding."""
    import zlib

    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise _BodyError(415, f"Content-Encoding {encoding!r} is not supported: send the body as it is, or gzip")
    out = b""
    while True:  # one gzip member after another (a concatenation of gzip files is one gzip file)
        inflate = zlib.decompressobj(wbits=31)
        try:
            out += inflate.decompress(body, limit + 1 - len(out))  # (never 0, which would mean no limit)
        except zlib.error as e:
            raise _BodyError(400, f"request body is not gzip data, as its Content-Encoding says ({e})") from None
        if len(out) > limit:
            raise _BodyError(413, f"request body above the limit of {limit} bytes once decompressed")
        if not inflate.eof:
            raise _BodyError(400, "request body is gzip data that breaks off before its end")
        body = inflate.unused_data
        if not body:
            return out


class BodyNormaliser:
    """ASGI middleware for POST /v1/analyze and /labelstudio/: reads the body (413 once it passes
    ``max_body_bytes``, with or without a Content-Length, compressed or not), decompresses it
    (``decode_content``), for /v1/analyze turns it into UTF-8 JSON (``normalise_body``), and hands that on."""

    def __init__(self, app, max_body_bytes: int):
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:  # refused before a byte of it is read
            return await JSONResponse({"detail": f"request body of {length} bytes is above the limit of "
                                                 f"{self.max_body_bytes}"}, status_code=413)(scope, receive, send)
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):  # behind a proxy (serve --root-path): the server puts the prefix back
            path = path[len(root):]
        if scope["method"] != "POST" or not (path == "/v1/analyze" or path.startswith("/labelstudio/")):
            return await self.app(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:  # a chunked body, sent without a Content-Length
                return await JSONResponse({"detail": f"request body above the limit of {self.max_body_bytes} "
                                                     "bytes"}, status_code=413)(scope, receive, send)
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        from urllib.parse import parse_qs

        query_id = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("id") or [None])[0]
        try:
            body = decode_content(b"".join(chunks), headers.get("content-encoding", ""), self.max_body_bytes)
            if path == "/v1/analyze":  # (Label Studio sends UTF-8 JSON)
                body = normalise_body(body, headers.get("content-type", ""), query_id)
        except _BodyError as e:
            return await JSONResponse({"detail": e.detail}, status_code=e.status)(scope, receive, send)
        scope = dict(scope)
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() not in (b"content-type",
                                                                                     b"content-length",
                                                                                     b"content-encoding")]
        scope["headers"] += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()  # after the body: the client's disconnect, when it comes
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


# An id may be a string or a whole number (a database key); it comes back as a string, as the batch job
# writes ids taken from the data. A number was a 422 until 2026-12-06.
RecordId = Annotated[str | StrictInt | None, AfterValidator(lambda v: v if v is None else str(v))]


# The reports of one event (several outlets' stories of it), briefed together: "reports" in place of "text".
# Blank ones are left out, as in the batch job; reports that are all blank are a 422 ("empty after cleaning").
Reports = Annotated[list[str], Field(min_length=1, max_length=64)]


def _content(item) -> str | list[str] | None:
    """What an ``Article`` or an ``AnalyzeRequest`` gives to analyse: its text, or its reports."""
    return item.text if item.reports is None else item.reports


class Article(BaseModel):
    text: str | None = Field(None, min_length=1, description="The article, as scraped (cleaning is done here).")
    reports: Reports | None = Field(None, description="Or the texts of several reports of one event.")
    id: RecordId = Field(None, description="Your id (a string or a whole number), echoed back as a string.")

    @model_validator(mode="after")
    def _text_or_reports(self):
        if (self.text is None) == (self.reports is None):
            raise ValueError("give exactly one of 'text' (an article) or 'reports' (the texts of reports of one "
                             "event)")
        return self


class AnalyzeRequest(BaseModel):
    text: str | None = Field(None, min_length=1, description="One article (or use 'reports' or 'articles').")
    reports: Reports | None = Field(None, description="The texts of several reports of one event, briefed "
                                                      "together.")
    id: RecordId = Field(None, description="Your id (a string or a whole number), echoed back as a string.")
    articles: list[Article] | None = Field(None, max_length=64, description="Up to 64 articles.")
    brief: bool = Field(True, description="false: entities only, no brief (faster with a seq2seq briefer); "
                                          "or ?brief=false, which a text/plain or text/html body needs.")


class LabelStudioSetup(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_: str = Field(..., alias="schema", min_length=1, description="the project's labeling config (XML)")


class LabelStudioPredict(BaseModel):
    model_config = ConfigDict(extra="allow")
    tasks: list[dict] = Field(..., description="Label Studio tasks: {'id', 'data': {FIELD: text, ...}}")
    label_config: str = Field(..., min_length=1, description="the project's labeling config (XML)")


class SurrogateSafeJSON(JSONResponse):
    """JSON as UTF-8, or, when the content holds a lone surrogate (half an emoji that a client sent as a JSON
    "\\ud83d" escape, in an id or in a Label Studio task's text that a region slices), ASCII-escaped JSON that
    carries it back as it came: UTF-8 cannot encode it, and the answer was a bare 500 until 2026-12-06."""

    def render(self, content) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


def _as_dict(result) -> dict:
    """A result as a dict: a worker process (workers.ProcessPipeline) sends dicts already."""
    return result if isinstance(result, dict) else result.to_dict()


@functools.cache
def _mappings() -> dict:
    """The packaged label mappings (configs/labels.yaml), by which a project's PER/ORG/LOC are the tagger's."""
    from conflictbrief.model.labels import LabelSchema

    return LabelSchema.from_yaml().mappings


def _key_check(api_key: str | None):
    """A dependency that lets a request through only with ``Authorization: Bearer KEY``, ``X-API-Key: KEY`` or
    HTTP Basic authentication whose password is the key (any user name: Label Studio's ML-backend connection
    sends that), compared in constant time; no key: every request."""
    expected = api_key.encode("utf-8") if api_key else None

    def check(request: Request):
        if expected is None:
            return
        given = request.headers.get("x-api-key")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if given is None and scheme.lower() == "bearer":
            given = token.strip()
        elif given is None and scheme.lower() == "basic":
            import base64
            import binascii

            try:
                given = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                given = ""
        if given is None or not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected):
            raise HTTPException(401, "an API key is needed: send 'Authorization: Bearer KEY', 'X-API-Key: KEY' or "
                                     "HTTP Basic authentication with the key as the password"
                                if given is None else "wrong API key",
                                headers={"WWW-Authenticate": 'Bearer, Basic realm="conflictbrief"'})

    return check


def create_app(pipeline, max_concurrency: int = 2, max_queue: int = 32, max_body_bytes: int = 2_000_000,
               time_limit: float | None = 10.0, api_key: str | None = None) -> FastAPI:
    """The app. ``time_limit``: seconds per 10,000 characters (``deadline.budget``) before a request gets 504;
    None or 0: none. ``api_key``: /v1/ requests need it (``Authorization: Bearer KEY`` or ``X-API-Key``);
    /healthz stays open for liveness probes."""
    keyed = [Depends(_key_check(api_key))]
    app = FastAPI(title="conflictbrief", version=pipeline.models.get("conflictbrief", "0"),
                  description="Conflict-entity tagging and faithful, neutral briefs of news articles.",
                  default_response_class=SurrogateSafeJSON)
    app.add_middleware(BodyNormaliser, max_body_bytes=max_body_bytes)
    # a result holds the article's cleaned text: a client that accepts gzip (curl --compressed, requests,
    # httpx) gets it compressed
    app.add_middleware(GZipMiddleware, minimum_size=1000)
    running = asyncio.Semaphore(max_concurrency)
    state = {"waiting": 0, "overrunning": 0}  # overrunning: analyses past their limit that still hold a slot

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        # FastAPI's own handler echoes the input, and a lone surrogate in it (a JSON "\ud800" escape, half an
        # emoji, which the validation refuses) cannot be encoded as UTF-8: the client got a bare 500.
        return SurrogateSafeJSON({"detail": jsonable_encoder(exc.errors())}, status_code=422)

    @app.get("/healthz")
    def healthz():
        stuck = state["overrunning"]
        if stuck >= max_concurrency:  # nothing can be analysed until they end: a supervisor should restart us
            return JSONResponse({"status": "stuck", "past_time_limit": stuck,
                                 "detail": f"all {max_concurrency} analysis slots are held by analyses that ran "
                                           "past their time limit; restart the service"}, status_code=503)
        workers = pipeline.health() if hasattr(pipeline, "health") else None
        if workers is not None and workers["workers"] == 0 and workers["starting"] == 0:
            return JSONResponse({"status": "stuck", "workers": workers, "detail": "no worker process is running; "
                                 "restart the service"}, status_code=503)
        return {"status": "ok", "past_time_limit": stuck} | ({"workers": workers} if workers else {})

    @app.get("/v1/models", dependencies=keyed)
    def models():
        return pipeline.models

    @app.post("/v1/analyze", dependencies=keyed, openapi_extra={
        "requestBody": {"content": {"text/plain": {"schema": {"type": "string", "description": "one article"}},
                                    "text/html": {"schema": {"type": "string", "description": "one saved page"}}}},
        "parameters": [{"name": "id", "in": "query", "required": False, "schema": {"type": "string"},
                        "description": "the id of a text/plain or text/html article (JSON bodies carry theirs)"}]})
    async def analyze(body: AnalyzeRequest, brief: Annotated[bool | None, Query(
            description="false: entities only, no brief; as 'brief' in a JSON body")] = None):
        if sum(x is not None for x in (body.text, body.reports, body.articles)) != 1:
            raise HTTPException(422, "give exactly one of 'text' (one article), 'reports' (the texts of reports of "
                                     "one event) or 'articles' (a list)")
        if brief is not None:
            if "brief" in body.model_fields_set and body.brief != brief:
                raise HTTPException(422, f"'brief' is {str(body.brief).lower()} in the body and "
                                         f"{str(brief).lower()} in the query: give one")
            body.brief = brief

        def run():
            if body.articles is not None:
                return {"results": [_as_dict(r) for r in pipeline.analyze_batch(
                    ((a.id, _content(a)) for a in body.articles), brief=body.brief)]}
            return _as_dict(pipeline.analyze(_content(body), body.id, brief=body.brief))

        if body.articles is not None:
            chars, n = sum(text_chars(_content(a)) for a in body.articles), len(body.articles)
            what = f"a list of {n} article{'s' * (n != 1)}"
        else:
            chars, n = text_chars(_content(body)), 1
            what = f"record {body.id!r}" if body.id is not None else f"an article of {chars:,} characters"
        return await limited(run, chars, n, what)

    # Label Studio's ML-backend protocol (labelstudio.py): Label Studio, given http://HOST:PORT/labelstudio as
    # the backend's URL, calls /health, then /setup with the project's labeling config, then /predict with
    # tasks, and wants one prediction per task back, in their order.
    version = ls.model_version(pipeline.models)
    tagger_labels = list((pipeline.models.get("tagger") or {}).get("labels") or [])
    configs: dict[str, ls.ProjectConfig] = {}

    def project_config(xml: str) -> ls.ProjectConfig:
        if xml not in configs:
            try:
                config = ls.read_config(xml, tagger_labels, _mappings())
            except ls.LabelConfigError as e:
                raise HTTPException(422, str(e)) from None
            if config.unmatched:
                log.warning("Label Studio project labels that the tagger does not give: %s (it gives %s)",
                            ", ".join(config.unmatched), ", ".join(tagger_labels))
            if len(configs) >= 64:
                configs.clear()
            configs[xml] = config
        return configs[xml]

    @app.get("/labelstudio/health", include_in_schema=False)
    def labelstudio_health():
        return {"status": "UP", "model_class": "conflictbrief", "model_version": version}

    @app.post("/labelstudio/setup", dependencies=keyed, summary="Label Studio ML backend: connect a project")
    def labelstudio_setup(body: LabelStudioSetup):
        project_config(body.schema_)  # 422 naming the problem, which Label Studio shows
        return {"model_version": version}

    @app.get("/labelstudio/versions", dependencies=keyed, include_in_schema=False)
    def labelstudio_versions():
        return {"versions": [version]}

    @app.post("/labelstudio/predict", dependencies=keyed, summary="Label Studio ML backend: pre-annotate tasks")
    async def labelstudio_predict(body: LabelStudioPredict):
        config = project_config(body.label_config)
        texts = []
        for n, task in enumerate(body.tasks):
            data = task.get("data") if isinstance(task.get("data"), dict) else {}
            text = data.get(config.text_key)
            texts.append((str(task.get("id", n)), text if isinstance(text, str) and text.strip() else None))

        def run():
            items = [(i, t) for i, t in texts if t is not None]
            results = iter(pipeline.analyze_batch(items, brief=config.wants_brief) if items else [])
            predictions = []
            for task_id, text in texts:
                if text is None:
                    problem = f"no text in its data field {config.text_key!r}"
                else:
                    result = _as_dict(next(results))
                    problem = result.get("error")
                if problem:  # Label Studio wants a prediction for each task: an empty one, and the log says why
                    log.warning("Label Studio task %s: %s; its prediction is empty", task_id, problem)
                    predictions.append({"result": [], "score": 0.0, "model_version": version})
                else:
                    predictions.append(config.prediction(result, text, version))
            return {"results": predictions, "model_version": version}

        present = [t for _, t in texts if t is not None]
        n = len(body.tasks)
        return await limited(run, sum(map(len, present)), max(1, len(present)),
                             f"Label Studio tasks ({n} in the request)")

    @app.post("/labelstudio/train", include_in_schema=False)
    @app.post("/labelstudio/webhook", include_in_schema=False)
    def labelstudio_train(request: Request):
        # training from Label Studio's events is not done here: an annotation event is acknowledged (Label
        # Studio sends one per submitted annotation when training on submission is on); a training request
        # is told how
        detail = ("conflictbrief does not train from Label Studio: export the project as JSON and run "
                  "'conflictbrief train tagger --train export.json' (and 'train briefer'), then serve the model")
        if request.url.path.endswith("/train"):
            raise HTTPException(501, detail)
        return {"status": "ignored", "detail": detail}

    async def limited(job, chars: int, n: int, what: str):
        """``job()`` in a thread, once one of the ``max_concurrency`` slots is free (503 when ``max_queue``
        wait already), within the time limit of ``n`` articles of ``chars`` characters in all (504 naming
        ``what`` past it); a pipeline's InputError is 422 (504 for its time limit), a dead worker 500."""
        if running.locked() and state["waiting"] >= max_queue:  # every slot busy and the queue full
            raise HTTPException(503, "busy: too many requests waiting; retry later",
                                headers={"Retry-After": "5"})
        state["waiting"] += 1
        try:
            await running.acquire()
        finally:
            state["waiting"] -= 1

        def run():
            try:
                return job()
            except TimeLimitError as e:
                raise HTTPException(504, str(e)) from None
            except InputError as e:  # a failure of ours is not the request's fault: that stays a 500
                raise HTTPException(422, str(e)) from None
            except WorkerError as e:  # a worker process died: a 500 that says so
                raise HTTPException(500, str(e)) from None

        # worker processes stop a runaway themselves (SIGALRM in their main thread; workers.py)
        limit = None if getattr(pipeline, "isolated", False) else budget(time_limit, chars, n)
        work, overran = asyncio.ensure_future(run_in_threadpool(run)), False
        try:
            # shielded: a timeout or a client that goes away stops the waiting, not the work
            return await asyncio.wait_for(asyncio.shield(work), limit)
        except asyncio.TimeoutError:
            state["overrunning"] += 1
            overran = True
            log.warning("%s ran past its time limit of %g s and goes on in the background, holding one of the %d "
                        "analysis slots until it ends", what, limit, max_concurrency)
            per = f"{time_limit:g} s per {CHARS:,} characters, that at least"
            raise HTTPException(504, f"{what}: analysis ran past its time limit of {limit:g} s ({per}"
                                     + (f", plus {PER_ARTICLE * time_limit:g} s per article" if n > 1 else "")
                                     + "); please report it with the article"
                                     + ("s, or send them one at a time to find the one" if n > 1 else "")) from None
        finally:
            if work.done():
                running.release()
            else:  # the thread runs on: its slot is free when it ends, not before
                def ended(future, overran=overran):
                    if overran:
                        state["overrunning"] -= 1
                    running.release()
                    if not future.cancelled():
                        future.exception()  # retrieved, so asyncio does not log it as lost

                work.add_done_callback(ended)

    return app
