"""The HTTP service: POST /v1/analyze, GET /healthz, GET /v1/models (FastAPI; OpenAPI at /docs).

Load degrades into queueing, then 503: at most ``max_concurrency`` requests run the models at once, at most
``max_queue`` wait, and any more are refused at once. Bodies above ``max_body_bytes`` get 413. One ``text``
that cannot be analysed (empty after cleaning, too long) gets 422 naming the problem; in an ``articles`` list
each such article gets a result with ``error`` set, and the others are analysed.
"""
from __future__ import annotations

import asyncio
import json

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from conflictbrief.inference.pipeline import InputError


class Article(BaseModel):
    text: str = Field(..., min_length=1, description="The article, as scraped (cleaning is done here).")
    id: str | None = Field(None, description="Your id, echoed back.")


class AnalyzeRequest(BaseModel):
    text: str | None = Field(None, min_length=1, description="One article (or use 'articles').")
    id: str | None = None
    articles: list[Article] | None = Field(None, max_length=64, description="Up to 64 articles.")


def create_app(pipeline, max_concurrency: int = 2, max_queue: int = 32, max_body_bytes: int = 2_000_000) -> FastAPI:
    app = FastAPI(title="conflictbrief", version=pipeline.models.get("conflictbrief", "0"),
                  description="Conflict-entity tagging and faithful, neutral briefs of news articles.")
    running = asyncio.Semaphore(max_concurrency)
    state = {"waiting": 0}

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body_bytes:
            return JSONResponse({"detail": f"request body of {length} bytes is above the limit of "
                                           f"{max_body_bytes}"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        # FastAPI's own handler echoes the input, and a lone surrogate in it (a JSON "\ud800" escape, half an
        # emoji, which the validation refuses) cannot be encoded as UTF-8: the client got a bare 500.
        # ASCII-escaped JSON carries it.
        return Response(json.dumps({"detail": jsonable_encoder(exc.errors())}), status_code=422,
                        media_type="application/json")

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/v1/models")
    def models():
        return pipeline.models

    @app.post("/v1/analyze")
    async def analyze(body: AnalyzeRequest):
        if (body.text is None) == (body.articles is None):
            raise HTTPException(422, "give exactly one of 'text' (one article) or 'articles' (a list)")
        if running.locked() and state["waiting"] >= max_queue:  # every slot busy and the queue full
            raise HTTPException(503, "busy: too many requests waiting; retry later",
                                headers={"Retry-After": "5"})
        state["waiting"] += 1
        try:
            await running.acquire()
        finally:
            state["waiting"] -= 1

        def run():
            if body.text is None:
                return {"results": [r.to_dict() for r in pipeline.analyze_batch((a.id, a.text) for a in body.articles)]}
            try:
                return pipeline.analyze(body.text, body.id).to_dict()
            except InputError as e:  # a failure of ours is not the request's fault: that stays a 500
                raise HTTPException(422, str(e)) from None

        try:
            return await run_in_threadpool(run)
        finally:
            running.release()

    return app
