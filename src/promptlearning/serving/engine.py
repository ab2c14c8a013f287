"""The batching engine: requests for many adapters queue, and one worker thread answers them in mixed batches.

A forward runs when the queued rows reach ``max_batch_size`` or the oldest has waited ``max_wait_ms``;
rows of different adapters share it (:class:`~promptlearning.mixture.AdapterFamilies`: one forward per
prompt geometry present). Every forward runs on that one thread, because the injector hooks the shared
backbone's layers for the duration of a forward; loading an adapter takes the same lock.

Loading and unloading swap an immutable snapshot of the adapters. A request holds the adapter objects it
named when it arrived, so an unload while it waits or runs loses nothing: the batch is answered by the
adapters it was queued for. :meth:`PromptServer.close` refuses new requests and drains the queue first.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from promptlearning.backbones import Backbone
from promptlearning.ensemble import EnsembleModel, load_predictor
from promptlearning.errors import AdapterError, UnknownNameError
from promptlearning.heads.base import OutputKind
from promptlearning.image_backbones import is_image_backbone
from promptlearning.mixture import AdapterFamilies
from promptlearning.model import PromptModel
from promptlearning.serving.limits import RequestError, ServingLimits
from promptlearning.serving.metrics import Metrics
from promptlearning.serving.paths import adapter_path, check_name
from promptlearning.training.token_metrics import tag_texts


@dataclass(frozen=True)
class Prediction:
    """One row's answer: its adapter, the label and the probability of every label."""

    adapter: str
    label: str
    probabilities: dict[str, float]


@dataclass(frozen=True)
class Loaded:
    """One loaded adapter; ``key`` is unique per load, so a reload under the same name is another adapter."""

    name: str
    key: str
    model: PromptModel | EnsembleModel
    path: str

    def describe(self) -> dict[str, Any]:
        one = self.model.first if isinstance(self.model, EnsembleModel) else self.model
        out = {"name": self.name, "method": type(one.method).name, "labels": list(self.model.labels),
               "head": self.model.head.kind, "path": self.path, "can_generate": can_generate(self.model)}
        if isinstance(self.model, EnsembleModel):
            out["ensemble"] = len(self.model.members)
        return out


def can_generate(model: PromptModel | EnsembleModel) -> bool:
    """An ensemble only classifies; one prompt on a causal LM with its LM head can continue texts."""
    return bool(isinstance(model, PromptModel) and model.backbone.info.is_decoder
                and model.backbone.lm_head is not None)


def _check_classifies(entry: Loaded) -> None:
    """Refuse (400) an adapter whose head does not answer with one label per text: a generator's answers are
    texts (/v1/generate serves them), a tagger's one tag per word (/v1/tag serves them)."""
    output = entry.model.head.output
    if output is OutputKind.TEXT:
        raise RequestError(f"adapter {entry.name!r} is a generator (its {entry.model.head.kind} head answers with "
                           "text, not a label); send its texts to /v1/generate", 400)
    if output is not OutputKind.LABEL:
        raise RequestError(f"adapter {entry.name!r} is a tagger (its {entry.model.head.kind} head tags every word); "
                           "send its texts to /v1/tag", 400)


@dataclass
class _Request:
    rows: list[tuple[Loaded, str]]
    future: Future[Any]
    arrived: float = field(default_factory=time.monotonic)
    # a request that runs alone, not in a mixed batch (generation, tagging): its rows' texts -> its answer
    solo: Callable[[list[str]], Any] | None = None
    cancelled: bool = False


class PromptServer:
    """Many adapters on one frozen backbone, answered in mixed batches; ``submit`` from asyncio code.

    ``cross_adapter=False`` batches only rows of one adapter together (the baseline the benchmark compares).
    """

    def __init__(self, backbone: Backbone, adapters: Mapping[str, str | Path] | None = None, *,
                 adapters_dir: str | Path | None = None, limits: ServingLimits | None = None,
                 cross_adapter: bool = True, metrics: Metrics | None = None) -> None:
        self.backbone = backbone
        self.adapters_dir = Path(adapters_dir) if adapters_dir is not None else None
        self.limits = limits or ServingLimits()
        self.cross_adapter = cross_adapter
        self.metrics = metrics
        self._serial = itertools.count()
        self._lock = threading.Lock()  # guards the adapter table and its snapshot
        self._forward = threading.Lock()  # one forward (or load) at a time on the shared backbone
        self._cond = threading.Condition()  # guards the queue
        self._queue: deque[_Request] = deque()
        self._queued_rows = 0
        self._closing = False
        self._loaded: dict[str, Loaded] = {}
        self._families = AdapterFamilies({})
        for name, path in (adapters or {}).items():
            self.load(name, path)
        self._worker = threading.Thread(target=self._run, name="promptlearning-serve", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------ adapters
    def load(self, name: str, path: str | Path) -> dict[str, Any]:
        """Load (or replace) adapter ``name`` from ``path`` (inside ``adapters_dir`` when one is set)."""
        check_name(name)
        directory = adapter_path(path, self.adapters_dir)
        from promptlearning.adapters import check_backbone, read_adapter_config
        from promptlearning.methods.base import get_method

        config = read_adapter_config(directory)
        if get_method(str(config["method"])).trains_backbone:  # before loading: it would overwrite the backbone
            raise AdapterError(f"adapter {directory} fine-tunes the backbone itself and cannot share it; serve it "
                               "with `promptlearning predict` on its own")
        check_backbone(config, self.backbone, directory)
        with self._forward:
            model = load_predictor(directory, backbone=self.backbone).eval()  # one prompt or an ensemble
        entry = Loaded(name, f"{name}#{next(self._serial)}", model, str(directory))
        with self._lock:
            replaced = self._loaded.get(name)
            table = {**self._loaded, name: entry}
            self._families = AdapterFamilies({e.key: e.model for e in table.values()})
            self._loaded = table
            self._gauge()
        # a hot swap is allowed, but the caller is told what it replaced (it used to look like a first load)
        return {**entry.describe(), "replaced": replaced.path if replaced is not None else None}

    def unload(self, name: str) -> None:
        """Stop serving ``name``; requests already queued for it are still answered by it."""
        with self._lock:
            if name not in self._loaded:
                raise UnknownNameError(f"adapter {name!r} is not loaded; loaded: {sorted(self._loaded)}")
            table = {k: v for k, v in self._loaded.items() if k != name}
            self._families = AdapterFamilies({e.key: e.model for e in table.values()})
            self._loaded = table
            self._gauge()

    def adapters(self) -> list[dict[str, Any]]:
        with self._lock:
            return [e.describe() for e in self._loaded.values()]

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.adapters.set(len(self._loaded))

    def _resolve(self, names: Sequence[str]) -> list[Loaded]:
        with self._lock:
            table = self._loaded
        missing = [n for n in names if n not in table]
        if missing:
            raise RequestError(f"adapter {missing[0]!r} is not loaded; GET /v1/adapters lists the loaded ones", 404)
        return [table[n] for n in names]

    # ------------------------------------------------------------------ requests
    async def submit(self, texts: Sequence[str], adapter: str | None = None,
                     adapters: Sequence[str] | None = None) -> list[Prediction]:
        """Classify ``texts`` with one ``adapter``, or with ``adapters[i]`` for text i."""
        self.limits.check_texts(texts)
        if (adapter is None) == (adapters is None):
            raise RequestError("give either `adapter` (one for every text) or `adapters` (one per text)", 422)
        names = [adapter] * len(texts) if adapter is not None else list(adapters or [])
        if len(names) != len(texts):
            raise RequestError(f"`adapters` has {len(names)} names for {len(texts)} texts; give one per text", 422)
        entries = self._resolve([str(n) for n in names])
        for entry in {e.key: e for e in entries}.values():
            _check_classifies(entry)
        if is_image_backbone(self.backbone):
            self._check_inline_images(texts)
        return await self._await(_Request(list(zip(entries, texts, strict=True)), Future()))

    @staticmethod
    def _check_inline_images(texts: Sequence[str]) -> None:
        """An image backbone's rows are image references, and a path would have the server open its own
        files for a client (and tell which exist): over HTTP only the pixels themselves, as data URIs."""
        for i, ref in enumerate(texts):
            if not ref.startswith("data:image/"):
                raise RequestError(f"text {i} is not an inline image; send each image as a data URI "
                                   "('data:image/png;base64,...'): the server does not open files by path", 400)

    async def generate(self, texts: Sequence[str], adapter: str, *, max_new_tokens: int = 20, do_sample: bool = False,
                       temperature: float = 1.0, top_k: int = 0, seed: int | None = None) -> list[str]:
        """Continue ``texts`` with a causal-LM adapter (greedy, or sampling reproducible with ``seed``)."""
        self.limits.check_texts(texts)
        if max_new_tokens > self.limits.max_new_tokens:
            raise RequestError(f"max_new_tokens={max_new_tokens} exceeds the server's {self.limits.max_new_tokens}; "
                               "ask for fewer (or start it with a larger --max-new-tokens)", 413, "max_new_tokens")
        (entry,) = self._resolve([adapter])
        if not can_generate(entry.model):
            raise RequestError(f"adapter {adapter!r} is on {self.backbone.info.name}, which cannot generate; "
                               "use /v1/classify (generation needs a causal LM such as smollm2-135m)", 400)
        model = entry.model
        assert isinstance(model, PromptModel)  # can_generate: one prompt, not an ensemble

        def continue_texts(given: list[str]) -> list[str]:
            return model.generate(given, max_new_tokens=max_new_tokens, do_sample=do_sample,
                                  temperature=temperature, top_k=top_k, seed=seed)

        return await self._await(_Request([(entry, t) for t in texts], Future(), solo=continue_texts))

    async def tag(self, texts: Sequence[str], adapter: str) -> list[list[tuple[str, str | None]]]:
        """(word, tag) per whitespace-separated word of each text, by a tagger adapter (tag None: the word
        lies past the adapter's max length). Tagging runs alone, one request per forward pass."""
        self.limits.check_texts(texts)
        (entry,) = self._resolve([adapter])
        model = entry.model
        if not isinstance(model, PromptModel) or model.head.output is not OutputKind.TOKEN_LABELS:
            where = "/v1/generate" if model.head.output is OutputKind.TEXT else "/v1/classify"
            raise RequestError(f"adapter {adapter!r} is not a tagger (its {model.head.kind} head does not tag words); "
                               f"send its texts to {where}", 400)

        def tag_words(given: list[str]) -> list[list[tuple[str, str | None]]]:
            with torch.inference_mode():
                return tag_texts(model, given, self.limits.max_batch_size)

        return await self._await(_Request([(entry, t) for t in texts], Future(), solo=tag_words))

    async def _await(self, request: _Request) -> Any:
        with self._cond:
            if self._closing:
                raise RequestError("the server is shutting down; retry on another instance", 503)
            if self._queued_rows + len(request.rows) > self.limits.max_queue:
                raise RequestError(f"the queue is full (max_queue={self.limits.max_queue} rows); retry later (or "
                                   "start the server with a larger --max-queue)", 503, "max_queue")
            self._queue.append(request)
            self._queued_rows += len(request.rows)
            self._cond.notify()
        try:
            remaining = self.limits.timeout_s - (time.monotonic() - request.arrived)
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(request.future)), max(remaining, 0.0))
        except TimeoutError as exc:
            request.cancelled = True
            raise RequestError(f"no answer within timeout_s={self.limits.timeout_s}; send fewer texts (or start the "
                               "server with a larger --timeout-s)", 504, "timeout_s") from exc

    # ------------------------------------------------------------------ the worker
    def _take(self) -> list[_Request]:
        """Requests for one forward, oldest first, up to max_batch_size rows (a larger request goes alone)."""
        taken: list[_Request] = []
        rows = 0
        kept: deque[_Request] = deque()
        first_key: str | None = None
        while self._queue:
            request = self._queue.popleft()
            if request.cancelled:
                self._queued_rows -= len(request.rows)
                continue
            one_adapter = len({e.key for e, _ in request.rows}) == 1
            key = request.rows[0][0].key if one_adapter else None
            fits = (not taken) or (request.solo is None and taken[0].solo is None
                                   and rows + len(request.rows) <= self.limits.max_batch_size
                                   and (self.cross_adapter or (key is not None and key == first_key)))
            if fits:
                if not taken:
                    first_key = key
                taken.append(request)
                rows += len(request.rows)
                self._queued_rows -= len(request.rows)
                if request.solo is not None or rows >= self.limits.max_batch_size:
                    break
            else:
                kept.append(request)
                if self.cross_adapter:
                    break
        self._queue.extendleft(reversed(kept))
        return taken

    def _ready_rows(self) -> int:
        if self.cross_adapter:
            return self._queued_rows
        key = self._queue[0].rows[0][0].key
        return sum(len(r.rows) for r in self._queue if all(e.key == key for e, _ in r.rows))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return  # closing and drained
                deadline = self._queue[0].arrived + self.limits.max_wait_ms / 1000
                while (not self._closing and self._ready_rows() < self.limits.max_batch_size
                       and self._queue[0].solo is None and (left := deadline - time.monotonic()) > 0):
                    self._cond.wait(left)
                batch = self._take()
                if self.metrics is not None:
                    self.metrics.queued_rows.set(self._queued_rows)
            if batch:
                self._answer(batch)

    def _answer(self, batch: list[_Request]) -> None:
        """Answer a batch; if it fails, answer each request alone so one bad request fails only itself."""
        started = time.monotonic()
        try:
            results = self._forward_batch(batch)
        except Exception as exc:  # noqa: BLE001  (the worker must outlive any request)
            if len(batch) > 1:
                for request in batch:
                    self._answer([request])
                return
            _settle(batch[0].future, exc=exc)
            return
        if self.metrics is not None:
            self.metrics.observe_batch(sum(len(r.rows) for r in batch),
                                       len({e.key for r in batch for e, _ in r.rows}),
                                       [started - r.arrived for r in batch])
        for request, result in zip(batch, results, strict=True):
            _settle(request.future, result=result)

    def _forward_batch(self, batch: list[_Request]) -> list[Any]:
        solo = batch[0].solo
        if solo is not None:
            (request,) = batch
            with self._forward:
                return [solo([t for _, t in request.rows])]
        rows = [(e.key, t) for r in batch for e, t in r.rows]
        entries = {e.key: e for r in batch for e, _ in r.rows}
        with self._lock:
            families = self._families
        if any(k not in families.models for k in entries):  # an adapter unloaded (or replaced) since it was queued
            families = AdapterFamilies({k: e.model for k, e in entries.items()})
        with self._forward, torch.inference_mode():
            probs = families.predict_proba(rows, batch_size=self.limits.max_batch_size)
        out: list[Any] = []
        start = 0
        for request in batch:
            mine = []
            for (entry, _), p in zip(request.rows, probs[start:start + len(request.rows)], strict=True):
                labels = entry.model.labels
                values = p.tolist()
                mine.append(Prediction(entry.name, labels[int(p.argmax())],
                                       {label: float(v) for label, v in zip(labels, values, strict=True)}))
            out.append(mine)
            start += len(request.rows)
        return out

    # ------------------------------------------------------------------ shutdown
    def close(self, timeout: float | None = None) -> None:
        """Refuse new requests, answer every queued one, then stop the worker."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._worker.join(timeout)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    @property
    def queued_rows(self) -> int:
        return self._queued_rows


def _settle(future: Future[Any], result: Any = None, exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)  # a PromptLearningError is the client's (4xx); anything else the server's (500)
    else:
        future.set_result(result)
