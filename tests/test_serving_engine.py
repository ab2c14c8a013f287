"""The batching engine without HTTP: mixed batches equal each adapter alone, load/unload loses nothing,
close drains, limits and the refusals at load (other backbone, path outside --adapters-dir, fine-tuned)."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.errors import AdapterError
from promptlearning.model import PromptModel
from promptlearning.serving import PromptServer, RequestError, ServingLimits

SPECS: dict[str, tuple[str, dict[str, object], list[str]]] = {
    "pt": ("prompt_tuning", {"num_tokens": 3, "init_seed": 1}, ["neg", "pos"]),
    "pt2": ("prompt_tuning", {"num_tokens": 3, "init_seed": 2}, ["bad", "ok", "good"]),
    "deep": ("p_tuning_v2", {"num_tokens": 3, "layers": [1]}, ["a", "b"]),
    "prefix": ("prefix_tuning", {"num_tokens": 2}, ["x", "y"]),
    "probe": ("linear_probe", {}, ["n", "p"]),
}
TEXTS = ["great movie", "awful film", "fun and funny", "bad acting", "i love this film", "so boring", "ok", "meh"]


def write_adapters(backbone: Backbone, root: Path, specs: dict[str, tuple[str, dict[str, object], list[str]]]
                   = SPECS) -> dict[str, PromptModel]:
    """Save one perturbed (so not at its initialisation) adapter per spec under root/name."""
    models = {}
    for i, (name, (method, options, labels)) in enumerate(specs.items()):
        torch.manual_seed(i)
        model = PromptModel.build(backbone, method, labels, method_options=options)
        with torch.no_grad():
            for p in model.trainable_parameters():
                p.add_(torch.randn_like(p) * 0.2)
        model.save_pretrained(root / name)
        models[name] = PromptModel.from_pretrained(root / name, backbone=backbone).eval()
    return models


def expected(models: dict[str, PromptModel], adapter: str, text: str) -> torch.Tensor:
    return models[adapter].predict_proba([text])[0]


def test_mixed_requests_equal_each_adapter_alone(bert: Backbone, tmp_path: Path) -> None:
    models = write_adapters(bert, tmp_path)
    names = list(SPECS)
    server = PromptServer(bert, {n: tmp_path / n for n in names}, limits=ServingLimits(max_wait_ms=50))

    async def traffic() -> list[list[object]]:
        singles = [server.submit([t], adapter=names[i % len(names)]) for i, t in enumerate(TEXTS)]
        per_row = server.submit(TEXTS[:5], adapters=names)
        return await asyncio.gather(*singles, per_row)  # type: ignore[arg-type]

    answers = asyncio.run(traffic())
    server.close()
    pairs = [(names[i % len(names)], t) for i, t in enumerate(TEXTS)] + list(zip(names, TEXTS[:5], strict=True))
    flat = [p for group in answers for p in group]
    assert len(flat) == len(pairs)
    for (adapter, text), got in zip(pairs, flat, strict=True):
        want = expected(models, adapter, text)
        labels = models[adapter].labels
        assert got.adapter == adapter and list(got.probabilities) == labels  # type: ignore[attr-defined]
        diff = (torch.tensor(list(got.probabilities.values())) - want).abs().max()  # type: ignore[attr-defined]
        assert diff < 1e-5, (adapter, text, float(diff))
        assert got.label == labels[int(want.argmax())]  # type: ignore[attr-defined]


def test_rows_of_several_adapters_share_one_forward(bert: Backbone, tmp_path: Path) -> None:
    write_adapters(bert, tmp_path)
    server = PromptServer(bert, {n: tmp_path / n for n in ("pt", "pt2", "deep")},
                          limits=ServingLimits(max_batch_size=64, max_wait_ms=200))
    calls: list[int] = []
    original = server._forward_batch

    def counting(batch: list[object]) -> list[object]:
        calls.append(len(batch))
        return original(batch)  # type: ignore[arg-type]

    server._forward_batch = counting  # type: ignore[method-assign]

    async def traffic() -> None:
        await asyncio.gather(*[server.submit([t], adapter=("pt", "pt2", "deep")[i % 3]) for i, t in enumerate(TEXTS)])

    asyncio.run(traffic())
    server.close()
    assert calls == [len(TEXTS)]  # eight requests of three adapters, one batch


def test_load_unload_during_traffic_loses_nothing(bert: Backbone, tmp_path: Path) -> None:
    models = write_adapters(bert, tmp_path)
    server = PromptServer(bert, {"pt": tmp_path / "pt", "deep": tmp_path / "deep"}, adapters_dir=tmp_path,
                          limits=ServingLimits(max_batch_size=4, max_wait_ms=1))

    async def traffic() -> list[tuple[str, str, object]]:
        done: list[tuple[str, str, object]] = []

        async def client(k: int) -> None:
            for j in range(6):
                adapter = ("pt", "deep")[(k + j) % 2]
                text = TEXTS[(k * 3 + j) % len(TEXTS)]
                try:
                    done.append((adapter, text, (await server.submit([text], adapter=adapter))[0]))
                except RequestError as exc:  # only ever: the adapter was unloaded before the request arrived
                    assert exc.status == 404, exc
                    done.append((adapter, text, exc))

        async def admin() -> None:
            for _ in range(3):
                await asyncio.to_thread(server.unload, "deep")
                await asyncio.to_thread(server.load, "pt2", "pt2")
                await asyncio.to_thread(server.load, "deep", "deep")
                await asyncio.to_thread(server.unload, "pt2")

        await asyncio.gather(*[client(k) for k in range(4)], admin())
        return done

    done = asyncio.run(traffic())
    server.close()
    assert len(done) == 24
    answered = [(a, t, p) for a, t, p in done if not isinstance(p, RequestError)]
    assert answered, "some requests were answered"
    for adapter, text, got in answered:
        want = expected(models, adapter, text)
        assert (torch.tensor(list(got.probabilities.values())) - want).abs().max() < 1e-5  # type: ignore[attr-defined]


def test_close_drains_the_queue(bert: Backbone, tmp_path: Path) -> None:
    write_adapters(bert, tmp_path, {"pt": SPECS["pt"]})
    server = PromptServer(bert, {"pt": tmp_path / "pt"}, limits=ServingLimits(max_batch_size=2, max_wait_ms=1000))

    async def traffic() -> list[object]:
        pending = [asyncio.ensure_future(server.submit([t], adapter="pt")) for t in TEXTS]
        await asyncio.sleep(0.05)  # all queued; the first batch waits for max_wait_ms
        closing = asyncio.ensure_future(server.aclose())
        results = await asyncio.gather(*pending)
        await closing
        return results

    results = asyncio.run(traffic())
    assert len(results) == len(TEXTS) and all(len(r) == 1 for r in results)  # type: ignore[arg-type]
    with pytest.raises(RequestError, match="shutting down"):
        asyncio.run(server.submit(["late"], adapter="pt"))


def test_limits_name_themselves(bert: Backbone, tmp_path: Path) -> None:
    write_adapters(bert, tmp_path, {"pt": SPECS["pt"]})
    limits = ServingLimits(max_texts=2, max_chars=10, max_queue=3, max_wait_ms=0)
    server = PromptServer(bert, {"pt": tmp_path / "pt"}, limits=limits)
    cases = [(["a", "b", "c"], "max_texts", 413), (["x" * 11], "max_chars", 413), ([], None, 422)]
    for texts, limit, status in cases:
        with pytest.raises(RequestError) as info:
            asyncio.run(server.submit(texts, adapter="pt"))
        assert info.value.limit == limit and info.value.status == status
        if limit:
            assert limit in str(info.value)
    with pytest.raises(RequestError, match="not loaded") as info:
        asyncio.run(server.submit(["x"], adapter="nope"))
    assert info.value.status == 404
    with pytest.raises(RequestError, match="one per text"):
        asyncio.run(server.submit(["x", "y"], adapters=["pt"]))
    server.close()


def test_queue_limit_and_timeout(bert: Backbone, tmp_path: Path) -> None:
    write_adapters(bert, tmp_path, {"pt": SPECS["pt"]})
    server = PromptServer(bert, {"pt": tmp_path / "pt"},
                          limits=ServingLimits(max_queue=2, max_batch_size=8, max_wait_ms=60_000, timeout_s=0.2))

    async def traffic() -> tuple[list[object], RequestError]:
        held = [asyncio.ensure_future(server.submit(["a"], adapter="pt")) for _ in range(2)]
        await asyncio.sleep(0.02)
        with pytest.raises(RequestError) as full:
            await server.submit(["b"], adapter="pt")
        return list(await asyncio.gather(*held, return_exceptions=True)), full.value

    held, full = asyncio.run(traffic())
    assert full.status == 503 and full.limit == "max_queue"
    assert all(isinstance(h, RequestError) and h.status == 504 and h.limit == "timeout_s" for h in held)
    server.close(timeout=5)
    assert server.queued_rows == 0


def test_load_refusals(bert: Backbone, llama: Backbone, tmp_path: Path) -> None:
    inside = tmp_path / "adapters"
    write_adapters(bert, inside, {"pt": SPECS["pt"]})
    write_adapters(llama, inside, {"other": SPECS["pt"]})
    outside = tmp_path / "elsewhere"
    write_adapters(bert, outside, {"pt": SPECS["pt"]})
    (inside / "link").symlink_to(outside / "pt")
    server = PromptServer(bert, adapters_dir=inside)
    with pytest.raises(AdapterError, match="made for backbone"):
        server.load("other", "other")
    for path in ("../elsewhere/pt", str(outside / "pt"), "link"):
        with pytest.raises(RequestError, match="outside --adapters-dir") as info:
            server.load("pt", path)
        assert info.value.status == 403
    with pytest.raises(RequestError, match="not allowed"):
        server.load("../x", "pt")
    own = copy.deepcopy(bert)  # a fine-tuned adapter carries backbone weights: never loaded onto the shared one
    PromptModel.build(own, "finetune", ["n", "p"]).save_pretrained(inside / "ft")
    with pytest.raises(AdapterError, match="fine-tunes the backbone"):
        server.load("ft", "ft")
    assert server.load("pt", "pt")["method"] == "prompt_tuning"
    server.close()


def test_image_adapters_are_served_from_inline_images_only(tmp_path: Path) -> None:
    """An image backbone's adapters answer data-URI images as each adapter alone does, adapters of one prompt
    geometry sharing a forward; a file path is refused before anything opens it, whether or not it exists."""
    import numpy as np

    from promptlearning.backbones import load_backbone
    from promptlearning.data.images import image_uri

    vit = load_backbone("tiny-vit")
    torch.manual_seed(0)
    models = {name: PromptModel.build(vit, method, ["dark", "bright"], method_options=options)
              for name, method, options in (("vpt", "vpt", {"num_tokens": 2}), ("deep", "vpt", {"num_tokens": 2,
                                            "deep": True}), ("probe", "linear_probe", {}),
                                            ("pixels", "visual_prompt", {"pad": 4}))}
    for name, model in models.items():
        model.save_pretrained(tmp_path / name)
    rng = np.random.default_rng(0)
    images = [image_uri(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(4)]
    server = PromptServer(vit, {n: tmp_path / n for n in models}, limits=ServingLimits(max_wait_ms=50,
                                                                                        max_chars=100_000))
    names = ["vpt", "deep", "probe", "pixels"]
    assert sorted(len(index) for _, index in server._families.families) == [2, 2] and not server._families.alone
    got = asyncio.run(server.submit(images, adapters=names))
    for name, image, row in zip(names, images, got, strict=True):
        want = models[name].predict_proba([image])[0]
        assert (torch.tensor(list(row.probabilities.values())) - want).abs().max() < 1e-5
    (tmp_path / "real.png").write_bytes(b"not really a png")
    for path in (str(tmp_path / "real.png"), str(tmp_path / "missing.png")):
        with pytest.raises(RequestError, match="send each image as a data URI") as refused:
            asyncio.run(server.submit([images[0], path], adapter="vpt"))
        assert refused.value.status == 400 and "text 1 " in str(refused.value)
    server.close()


def test_serve_gives_image_backbones_room_for_data_uri_images(bert: Backbone, tmp_path: Path) -> None:
    """Without --max-chars, a text backbone's texts may have 2000 characters and an image backbone's (data-URI
    images) a million; a --max-chars given is kept for either."""
    from promptlearning.backbones import load_backbone
    from promptlearning.cli.serve import ServeConfig, build

    PromptModel.build(load_backbone("tiny-vit"), "linear_probe", ["a", "b"]).save_pretrained(tmp_path / "img")
    write_adapters(bert, tmp_path, {"pt": SPECS["pt"]})
    for backbone, adapter, given, want in (("tiny-vit", "img", None, 1_000_000), ("tiny-bert", "pt", None, 2000),
                                           ("tiny-vit", "img", 5000, 5000)):
        server, _ = build(ServeConfig(backbone=backbone, adapter=[f"a={tmp_path / adapter}"], max_chars=given))
        server.close()
        assert server.limits.max_chars == want


def test_clip_adapters_are_served_each_through_its_own_forward(tmp_path: Path) -> None:
    """A CLIP head prompts the text tower with its adapter's class context, so CLIP adapters run alone."""
    import numpy as np

    from promptlearning.backbones import load_backbone
    from promptlearning.data.images import image_uri
    from promptlearning.heads.base import HeadConfig

    clip = load_backbone("tiny-clip")
    torch.manual_seed(0)
    models = {name: PromptModel.build(clip, method, ["cat", "dog"], method_options={"num_context": 2},
                                      head=HeadConfig(kind="clip")) for name, method in (("a", "coop"), ("b", "coop"))}
    for name, model in models.items():
        model.save_pretrained(tmp_path / name)
    rng = np.random.default_rng(1)
    images = [image_uri(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(2)]
    server = PromptServer(clip, {n: tmp_path / n for n in models}, limits=ServingLimits(max_chars=100_000))
    assert sorted(server._families.alone) == ["a#0", "b#1"] and not server._families.families
    got = asyncio.run(server.submit(images, adapters=["a", "b"]))
    server.close()
    for name, image, row in zip(["a", "b"], images, got, strict=True):
        want = models[name].predict_proba([image])[0]
        assert (torch.tensor(list(row.probabilities.values())) - want).abs().max() < 1e-5
