"""A real uvicorn server on a loopback port, started and stopped by each test: answers equal each adapter
alone, every bad request gets its 4xx, auth is enforced, load/unload under traffic loses nothing,
shutdown drains. Every request is bounded by a client timeout."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi")
import httpx  # noqa: E402
import uvicorn  # noqa: E402

from promptlearning.backbones import Backbone  # noqa: E402
from promptlearning.cli.main import main  # noqa: E402
from promptlearning.serving import PromptServer, ServingLimits  # noqa: E402
from promptlearning.serving.app import create_app  # noqa: E402

from .test_serving_engine import SPECS, TEXTS, expected, write_adapters  # noqa: E402

KEY = "s3cret-key"


@contextmanager
def serving(server: PromptServer, api_key: str | None = None) -> Iterator[tuple[httpx.Client, uvicorn.Server]]:
    """The app on 127.0.0.1 at a free port (port 0), in a thread; stopped (and drained) on exit."""
    config = uvicorn.Config(create_app(server, api_key=api_key), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="on")
    web = uvicorn.Server(config)
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (web.started and web.servers):
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    port = web.servers[0].sockets[0].getsockname()[1]
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers=headers) as client:
        try:
            yield client, web
        finally:
            web.should_exit = True
            thread.join(30)
            server.close(timeout=30)
    assert not thread.is_alive()


def _probs(row: dict[str, object]) -> torch.Tensor:
    return torch.tensor(list(row["probabilities"].values()))  # type: ignore[attr-defined]


def test_mixed_traffic_equals_each_adapter_alone(bert: Backbone, tmp_path: Path) -> None:
    models = write_adapters(bert, tmp_path)
    names = list(SPECS)
    server = PromptServer(bert, {n: n for n in names}, adapters_dir=tmp_path, limits=ServingLimits(max_wait_ms=20))
    with serving(server) as (client, _):
        def one(i: int) -> tuple[str, str, dict[str, object]]:
            adapter, text = names[i % len(names)], TEXTS[i % len(TEXTS)]
            response = client.post("/v1/classify", json={"adapter": adapter, "texts": [text]})
            assert response.status_code == 200, response.text
            return adapter, text, response.json()["results"][0]

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(one, range(20)))
        mixed = client.post("/v1/classify", json={"adapters": names, "texts": TEXTS[:5]}).json()["results"]
        listed = client.get("/v1/adapters").json()
        metrics = client.get("/metrics").text
    answers += [(a, t, r) for a, t, r in zip(names, TEXTS[:5], mixed, strict=True)]
    for adapter, text, row in answers:
        assert row["adapter"] == adapter and row["label"] in models[adapter].labels
        assert (_probs(row) - expected(models, adapter, text)).abs().max() < 1e-5
    assert sorted(a["name"] for a in listed["adapters"]) == sorted(names)
    assert 'promptlearning_requests_total{endpoint="/v1/classify",status="200"} 21.0' in metrics
    assert "promptlearning_batch_rows_bucket" in metrics and "promptlearning_queue_wait_seconds" in metrics


def test_every_bad_request_gets_its_4xx(bert: Backbone, tmp_path: Path) -> None:
    write_adapters(bert, tmp_path, {"pt": SPECS["pt"]})
    limits = ServingLimits(max_texts=3, max_chars=50, max_new_tokens=5)
    server = PromptServer(bert, {"pt": "pt"}, adapters_dir=tmp_path, limits=limits)
    cases: list[tuple[str, str, object, int, str]] = [
        ("post", "/v1/classify", {"adapter": "nope", "texts": ["x"]}, 404, "not loaded"),
        ("post", "/v1/classify", {"adapter": "pt", "texts": ["x"] * 4}, 413, "max_texts"),
        ("post", "/v1/classify", {"adapter": "pt", "texts": ["x" * 51]}, 413, "max_chars"),
        ("post", "/v1/classify", {"adapter": "pt", "texts": []}, 422, "at least one text"),
        ("post", "/v1/classify", {"adapter": "pt"}, 422, "texts"),
        ("post", "/v1/classify", {"adapter": "pt", "texts": [3]}, 422, "texts"),
        ("post", "/v1/classify", {"adapter": "pt", "adapters": ["pt"], "texts": ["x"]}, 422, "either"),
        ("post", "/v1/classify", b"{not json", 422, "invalid request"),
        ("post", "/v1/generate", {"adapter": "pt", "texts": ["x"], "max_new_tokens": 2}, 400, "cannot generate"),
        ("post", "/v1/generate", {"adapter": "pt", "texts": ["x"], "max_new_tokens": 6}, 413, "max_new_tokens"),
        ("post", "/v1/generate", {"adapter": "pt", "texts": ["x"], "temperature": 0}, 422, "temperature"),
        ("post", "/v1/adapters/pt2", {"path": "pt"}, 403, "--api-key"),
        ("delete", "/v1/adapters/pt", None, 403, "--api-key"),
        ("get", "/v1/nothing", None, 404, ""),
    ]
    with serving(server) as (client, _):
        for method, path, body, status, words in cases:
            if isinstance(body, bytes):
                response = client.request(method, path, content=body, headers={"content-type": "application/json"})
            else:
                response = client.request(method, path, json=body)
            assert response.status_code == status, (path, body, response.text)
            assert words in response.text, (path, body, response.text)
        huge = client.post("/v1/classify", content=b" " * (limits.max_body_bytes() + 1),
                           headers={"content-type": "application/json"})
        assert huge.status_code == 413 and huge.json()["error"]["limit"] == "max_body"
        form = client.post("/v1/classify", content=b'{"adapter": "pt", "texts": ["x"]}',  # what `curl -d` sends
                           headers={"content-type": "application/x-www-form-urlencoded"})
        assert form.status_code == 422 and "Content-Type: application/json" in form.json()["error"]["message"]
        assert client.get("/health").json()["status"] == "ok"  # still up after all of them
        ok = client.post("/v1/classify", json={"adapter": "pt", "texts": ["fine"]})
        assert ok.status_code == 200


def test_api_key_guards_every_endpoint_and_admin(bert: Backbone, tmp_path: Path) -> None:
    models = write_adapters(bert, tmp_path, {"pt": SPECS["pt"], "deep": SPECS["deep"]})
    server = PromptServer(bert, {"pt": "pt"}, adapters_dir=tmp_path)
    with serving(server, api_key=KEY) as (client, _):
        for path in ("/health", "/metrics", "/v1/adapters"):
            assert client.get(path, headers={"Authorization": ""}).status_code == 401
            assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert client.get(path).status_code == 200
        anonymous = client.post("/v1/classify", json={"adapter": "pt", "texts": ["x"]}, headers={"Authorization": ""})
        assert anonymous.status_code == 401 and "API key" in anonymous.json()["error"]["message"]
        assert client.post("/v1/adapters/deep", json={"path": "deep"}, headers={"Authorization": ""}).status_code == 401
        loaded = client.post("/v1/adapters/deep", json={"path": "deep"}, headers={"X-API-Key": KEY})
        assert loaded.status_code == 200 and loaded.json()["method"] == "p_tuning_v2"
        assert loaded.json()["replaced"] is None
        swapped = client.post("/v1/adapters/deep", json={"path": "deep"}, headers={"X-API-Key": KEY})
        assert swapped.status_code == 200 and swapped.json()["replaced"] == loaded.json()["path"]  # a hot swap, said
        escape = client.post("/v1/adapters/x", json={"path": "../"})
        assert escape.status_code == 403 and escape.json()["error"]["limit"] == "adapters_dir"
        row = client.post("/v1/classify", json={"adapter": "deep", "texts": ["fun"]}).json()["results"][0]
        assert (_probs(row) - expected(models, "deep", "fun")).abs().max() < 1e-5
        assert client.delete("/v1/adapters/deep").status_code == 200
        assert client.delete("/v1/adapters/deep").status_code == 404
        assert client.post("/v1/classify", json={"adapter": "deep", "texts": ["x"]}).status_code == 404


def test_load_unload_under_traffic_loses_nothing(bert: Backbone, tmp_path: Path) -> None:
    models = write_adapters(bert, tmp_path, {"pt": SPECS["pt"], "deep": SPECS["deep"], "pt2": SPECS["pt2"]})
    server = PromptServer(bert, {"pt": "pt", "pt2": "pt2"}, adapters_dir=tmp_path,
                          limits=ServingLimits(max_batch_size=4, max_wait_ms=2))
    with serving(server, api_key=KEY) as (client, _):
        def traffic(k: int) -> list[tuple[str, str, int, dict[str, object]]]:
            out = []
            for j in range(8):
                adapter, text = ("pt", "pt2")[(k + j) % 2], TEXTS[(k + j) % len(TEXTS)]
                response = client.post("/v1/classify", json={"adapter": adapter, "texts": [text]})
                out.append((adapter, text, response.status_code, response.json()))
            return out

        def admin() -> None:
            for _ in range(4):
                assert client.post("/v1/adapters/deep", json={"path": "deep"}).status_code == 200
                assert client.post("/v1/adapters/pt2", json={"path": "pt2"}).status_code == 200  # replaced live
                assert client.delete("/v1/adapters/deep").status_code == 200

        with ThreadPoolExecutor(5) as pool:
            futures = [pool.submit(traffic, k) for k in range(4)]
            pool.submit(admin).result()
            results = [r for f in futures for r in f.result()]
    assert len(results) == 32 and all(status == 200 for _, _, status, _ in results)
    for adapter, text, _, body in results:
        assert (_probs(body["results"][0]) - expected(models, adapter, text)).abs().max() < 1e-5


def test_shutdown_drains_queued_requests(bert: Backbone, tmp_path: Path) -> None:
    write_adapters(bert, tmp_path, {"pt": SPECS["pt"]})
    server = PromptServer(bert, {"pt": tmp_path / "pt"}, limits=ServingLimits(max_batch_size=64, max_wait_ms=1500))
    with serving(server) as (client, web), ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(client.post, "/v1/classify", json={"adapter": "pt", "texts": [t]})
                   for t in TEXTS[:6]]
        deadline = time.monotonic() + 10
        while server.queued_rows < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.queued_rows == 6  # all waiting for max_wait_ms when the shutdown starts
        web.should_exit = True
        codes = [f.result().status_code for f in futures]
    assert codes == [200] * 6


def test_generate_on_a_causal_lm(llama: Backbone, tmp_path: Path) -> None:
    models = write_adapters(llama, tmp_path, {"gen": SPECS["pt"]})
    server = PromptServer(llama, {"gen": "gen"}, adapters_dir=tmp_path)
    with serving(server) as (client, _):
        greedy = client.post("/v1/generate", json={"adapter": "gen", "texts": ["great movie"], "max_new_tokens": 4})
        body = {"adapter": "gen", "texts": ["fun"], "max_new_tokens": 4, "do_sample": True, "seed": 7}
        first, again = client.post("/v1/generate", json=body), client.post("/v1/generate", json=body)
    assert greedy.status_code == 200, greedy.text
    assert greedy.json()["completions"] == models["gen"].generate(["great movie"], max_new_tokens=4)
    assert first.json() == again.json() == {"completions": models["gen"].generate(
        ["fun"], max_new_tokens=4, do_sample=True, seed=7)}


def test_classify_refuses_generators_and_taggers(llama: Backbone, tmp_path: Path) -> None:
    """/v1/classify answers one label per text: a generator is sent to /v1/generate, a tagger to /v1/tag, each
    with a 400 naming it, and no forward runs for the request. /v1/tag tags each word as `predict` does, and
    sends a classifier or generator back to its endpoint."""
    from promptlearning.ensemble import load_predictor
    from promptlearning.heads.base import HeadConfig
    from promptlearning.model import PromptModel
    from promptlearning.training.token_metrics import tag_texts

    write_adapters(llama, tmp_path, {"pt": SPECS["pt"]})
    PromptModel.build(llama, "prompt_tuning", [], method_options={"num_tokens": 2},
                      head=HeadConfig(kind="language_modeling")).save_pretrained(tmp_path / "gen")
    PromptModel.build(llama, "prompt_tuning", ["DT", "NN", "VB"], method_options={"num_tokens": 2},
                      head=HeadConfig(kind="token_classification")).save_pretrained(tmp_path / "tag")
    server = PromptServer(llama, {"pt": "pt", "gen": "gen", "tag": "tag"}, adapters_dir=tmp_path)
    cases = [({"adapter": "gen", "texts": ["x"]}, "send its texts to /v1/generate"),
             ({"adapter": "tag", "texts": ["x"]}, "send its texts to /v1/tag"),
             ({"adapters": ["pt", "gen"], "texts": ["x", "y"]}, "'gen' is a generator")]
    with serving(server) as (client, _):
        for body, words in cases:
            response = client.post("/v1/classify", json=body)
            assert response.status_code == 400 and words in response.json()["error"]["message"], response.text
            assert "\n" not in response.json()["error"]["message"]
        assert client.post("/v1/classify", json={"adapter": "pt", "texts": ["fine"]}).status_code == 200
        generated = client.post("/v1/generate", json={"adapter": "gen", "texts": ["x"], "max_new_tokens": 2})
        assert generated.status_code == 200, generated.text
        texts = ["the dog runs", "a cat"]
        tagged = client.post("/v1/tag", json={"adapter": "tag", "texts": texts})
        assert tagged.status_code == 200, tagged.text
        expect = tag_texts(load_predictor(tmp_path / "tag", backbone=llama).eval(), texts)  # as `predict` tags
        assert [[(w["word"], w["tag"]) for w in row] for row in tagged.json()["results"]] == expect
        assert [len(row) for row in expect] == [3, 2] and all(t in ("DT", "NN", "VB") for row in expect for _, t in row)
        for name, where in (("pt", "/v1/classify"), ("gen", "/v1/generate")):
            refused = client.post("/v1/tag", json={"adapter": name, "texts": ["x"]})
            assert refused.status_code == 400 and f"send its texts to {where}" in refused.json()["error"]["message"]
        assert client.post("/v1/tag", json={"adapter": "nope", "texts": ["x"]}).status_code == 404


def test_cli_refusals_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--backbone", "tiny-bert"]) == 2
    assert "nothing to serve" in capsys.readouterr().err
    assert main(["serve", "--backbone", "tiny-bert", "--adapter", "oops"]) == 2
    assert "NAME=PATH" in capsys.readouterr().err
    assert main(["serve", "--backbone", "tiny-bert", "--adapters-dir", str(tmp_path / "none")]) == 2
    assert "not a folder" in capsys.readouterr().err
    config = tmp_path / "serve.yaml"
    config.write_text(f"backbone: tiny-bert\nadapters_dir: {tmp_path / 'gone'}\nmax_batch_size: 8\n")
    assert main(["serve", "--config", str(config)]) == 2  # the file is read: its adapters_dir is checked
    assert "gone is not a folder" in capsys.readouterr().err
    config.write_text("backbone: tiny-bert\nmax_batch_size: many\n")
    assert main(["serve", "--config", str(config)]) == 2
    assert "max_batch_size" in capsys.readouterr().err
    assert main(["serve", "--backbone", "tiny-bert", "--adapters-dir", str(tmp_path), "--port", "99999"]) == 2
    assert "--port must be from 1 to 65535" in capsys.readouterr().err
    with socket.socket() as held:  # a port in use: one line and status 2, not uvicorn's status 3
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert main(["serve", "--backbone", "tiny-bert", "--adapters-dir", str(tmp_path), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"cannot listen on 127.0.0.1:{port}" in err and "\n" not in err
