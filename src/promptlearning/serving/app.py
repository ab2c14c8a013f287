"""The HTTP face of :class:`~promptlearning.serving.engine.PromptServer`: a FastAPI app (OpenAPI at /docs).

Every refusal is a JSON body ``{"error": {"message", "limit"}}`` with a 4xx status; the message names the
fix. Nothing a client sends can stop the server: engine errors become 4xx, anything unexpected a 500,
and the worker thread outlives both. With an API key set, every endpoint wants it (``Authorization:
Bearer KEY`` or ``X-API-Key: KEY``); the admin endpoints want one always, so without a key they are off.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from promptlearning.errors import PromptLearningError, UnknownNameError
from promptlearning.serving.engine import PromptServer
from promptlearning.serving.limits import RequestError
from promptlearning.serving.metrics import Metrics


class ClassifyRequest(BaseModel):
    texts: list[str] = Field(description="texts to classify")
    adapter: str | None = Field(None, description="the adapter for every text")
    adapters: list[str] | None = Field(None, description="or one adapter per text")


class Row(BaseModel):
    adapter: str
    label: str
    probabilities: dict[str, float]


class ClassifyResponse(BaseModel):
    results: list[Row]


class GenerateRequest(BaseModel):
    adapter: str = Field(description="a causal-LM adapter")
    texts: list[str] = Field(description="texts to continue")
    max_new_tokens: int = Field(20, ge=1, description="tokens to add (at most the server's --max-new-tokens)")
    do_sample: bool = Field(False, description="sample instead of greedy decoding")
    temperature: float = Field(1.0, gt=0)
    top_k: int = Field(0, ge=0, description="sample from the k likeliest tokens (0: all)")
    seed: int | None = Field(None, description="makes sampling reproducible")


class GenerateResponse(BaseModel):
    completions: list[str]


class TagRequest(BaseModel):
    adapter: str = Field(description="a tagger adapter (token_classification head)")
    texts: list[str] = Field(description="texts to tag; words are split on whitespace")


class TaggedWord(BaseModel):
    word: str
    tag: str | None = Field(description="null: the word lies past the adapter's max length")


class TagResponse(BaseModel):
    results: list[list[TaggedWord]]


class LoadRequest(BaseModel):
    path: str = Field(description="adapter folder, relative to --adapters-dir")


def _error(status: int, message: str, limit: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "limit": limit}}, status_code=status)


def _status_of(exc: PromptLearningError) -> int:
    if isinstance(exc, RequestError):
        return exc.status
    return 404 if isinstance(exc, UnknownNameError) else 400


def create_app(server: PromptServer, api_key: str | None = None, metrics: Metrics | None = None) -> FastAPI:
    """The app serving ``server``; its shutdown drains the engine's queue."""
    metrics = metrics or server.metrics or Metrics()
    server.metrics = metrics

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await server.aclose()

    app = FastAPI(title="promptlearning", summary="many prompt adapters on one frozen backbone", lifespan=lifespan)

    def allowed(request: Request) -> bool:
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        return api_key is not None and hmac.compare_digest(given.encode(), api_key.encode())

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.monotonic()
        path = request.url.path
        admin = path.startswith("/v1/adapters/") and request.method in ("POST", "DELETE")
        response: Response
        if admin and api_key is None:
            response = _error(403, "admin endpoints need an API key; start the server with --api-key "
                                   "(or PROMPTLEARNING_API_KEY)", "api_key")
        elif api_key is not None and not allowed(request):
            response = _error(401, "missing or wrong API key; send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                              "api_key")
        elif int(request.headers.get("content-length") or 0) > server.limits.max_body_bytes():
            response = _error(413, f"the request body exceeds {server.limits.max_body_bytes()} bytes "
                                   "(max_texts x max_chars); send fewer or shorter texts", "max_body")
        else:
            try:
                response = await call_next(request)
            except Exception as exc:  # noqa: BLE001  (a bug must cost one request, not the server)
                response = _error(500, f"internal error: {type(exc).__name__}; the server keeps running")
        endpoint = path if path in ("/v1/classify", "/v1/generate", "/v1/tag", "/v1/adapters", "/health",
                                    "/metrics") else (
            "/v1/adapters/{name}" if path.startswith("/v1/adapters/") else "other")
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.monotonic() - started)
        return response

    @app.exception_handler(PromptLearningError)
    async def refused(_: Request, exc: PromptLearningError) -> JSONResponse:
        return _error(_status_of(exc), str(exc), getattr(exc, "limit", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        kind = request.headers.get("content-type", "")
        hint = "" if "json" in kind.lower() else (  # curl -d sends form encoding unless told otherwise
            f"; the body was sent as {kind or 'no content type'}: add the header 'Content-Type: application/json'")
        return _error(422, f"invalid request: {where or 'body'}: {first.get('msg', 'malformed')}{hint}; see /docs")

    @app.post("/v1/classify", response_model=ClassifyResponse)
    async def classify(body: ClassifyRequest) -> dict[str, Any]:
        """Labels and probabilities for each text, under one adapter or one adapter per text."""
        predictions = await server.submit(body.texts, adapter=body.adapter, adapters=body.adapters)
        return {"results": [p.__dict__ for p in predictions]}

    @app.post("/v1/generate", response_model=GenerateResponse)
    async def generate(body: GenerateRequest) -> dict[str, Any]:
        """Continuations of each text by a causal-LM adapter (greedy, or seeded sampling)."""
        outs = await server.generate(body.texts, body.adapter, max_new_tokens=body.max_new_tokens,
                                     do_sample=body.do_sample, temperature=body.temperature, top_k=body.top_k,
                                     seed=body.seed)
        return {"completions": outs}

    @app.post("/v1/tag", response_model=TagResponse)
    async def tag(body: TagRequest) -> dict[str, Any]:
        """One tag per whitespace-separated word of each text, by a tagger adapter."""
        tagged = await server.tag(body.texts, body.adapter)
        return {"results": [[{"word": w, "tag": t} for w, t in words] for words in tagged]}

    @app.get("/v1/adapters")
    async def adapters() -> dict[str, Any]:
        """The loaded adapters: method, labels, head, and whether each can generate."""
        return {"backbone": server.backbone.info.name, "adapters": server.adapters()}

    @app.post("/v1/adapters/{name}")
    async def load(name: str, body: LoadRequest) -> dict[str, Any]:
        """Load (or replace) an adapter from a folder inside --adapters-dir (admin)."""
        if server.adapters_dir is None:
            raise RequestError("loading at run time needs a folder to load from; start the server with "
                               "--adapters-dir DIR", 403, "adapters_dir")
        import asyncio

        return await asyncio.to_thread(server.load, name, body.path)

    @app.delete("/v1/adapters/{name}")
    async def unload(name: str) -> dict[str, Any]:
        """Stop serving an adapter; requests already queued for it are still answered (admin)."""
        server.unload(name)
        return {"unloaded": name}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "adapters": len(server.adapters()), "queued_rows": server.queued_rows}

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus text format: requests, rows and adapters per forward, queue wait, latency."""
        body, kind = metrics.render()
        return Response(body, media_type=kind)

    return app
