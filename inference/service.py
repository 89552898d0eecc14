"""The HTTP service: POST /v1/analyze, GET /healthz, GET /v1/models (FastAPI; OpenAPI at /docs).

Load degrades into queueing, then 503: at most ``max_concurrency`` requests run the models at once, at most
``max_queue`` wait, and any more are refused at once. Bodies above ``max_body_bytes`` get 413.
"""
from __future__ import annotations

import asyncio

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool


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
        items = [(body.id, body.text)] if body.text is not None else [(a.id, a.text) for a in body.articles]
        if running.locked() and state["waiting"] >= max_queue:  # every slot busy and the queue full
            raise HTTPException(503, "busy: too many requests waiting; retry later",
                                headers={"Retry-After": "5"})
        state["waiting"] += 1
        try:
            await running.acquire()
        finally:
            state["waiting"] -= 1
        try:
            results = await run_in_threadpool(lambda: list(pipeline.analyze_batch(items)))
        finally:
            running.release()
        out = [r.to_dict() for r in results]
        return out[0] if body.text is not None else {"results": out}

    return app
