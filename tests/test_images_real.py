"""The packaged image assets, fetched into the cache: EfficientNet-Lite0 names scikit-image's cat and coffee
photos as ImageNet does, and the packaged image tasks have the sizes their packages state."""

from __future__ import annotations

import io

import pytest
import torch

pytestmark = pytest.mark.real

EGYPTIAN_CAT, ESPRESSO = 285, 967


def test_efficientnet_lite0_recognises_chelsea_the_cat_and_a_coffee() -> None:
    from PIL import Image

    from promptlearning.artifacts import read_member
    from promptlearning.backbones import load_backbone
    from promptlearning.image_backbones import ImageBackbone

    backbone = load_backbone("efficientnet-lite0")
    assert isinstance(backbone, ImageBackbone) and backbone.info.source_classes == 1000
    photos = [Image.open(io.BytesIO(read_member("scikit_image", f"skimage/data/{name}.png"))) for name in
              ("chelsea", "coffee")]
    pixels = backbone.normalize(backbone.preprocess(photos).float() / 255)
    with torch.no_grad():
        probs = backbone.source_logits(backbone.pooled(pixels), 0).softmax(-1)  # (2, 1000)
    assert probs.argmax(-1).tolist() == [EGYPTIAN_CAT, ESPRESSO]
    assert probs[0, EGYPTIAN_CAT] > 0.5 and probs[1, ESPRESSO] > 0.5


def test_the_packaged_image_tasks() -> None:
    from promptlearning.data.images import open_image
    from promptlearning.data.tasks import load_task

    mnist = load_task("mnist5k")
    assert len(mnist.pool) + len(mnist.test) == 5000 and len(mnist.labels) == 10
    assert open_image(mnist.test[0].text_a).size == (28, 28)
    faces = load_task("faces")
    assert faces.labels == ["face", "not a face"] and len(faces.pool) + len(faces.test) == 200
    assert open_image(faces.pool[0].text_a).size == (25, 25)


def test_a_cnn_trained_at_another_size_is_reloaded_at_that_size(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """``NAME@SIZE``: the adapter records the sized name, evaluate loads the backbone at that size by itself,
    and the backbone at another size is refused in one line naming the right one."""
    import json

    from promptlearning.cli.main import main

    out = tmp_path / "run"
    assert main(["train", "--task", "digits", "--backbone", "efficientnet-lite0@32", "--method", "linear_probe",
                 "--shots", "4", "--max-steps", "3", "--quiet", "--no-baseline", "--output", str(out)]) == 0
    config = json.loads((out / "best" / "adapter_config.json").read_text())
    assert config["backbone"]["name"] == "efficientnet-lite0@32" and config["backbone"]["image_size"] == 32
    trained = json.loads((out / "results.json").read_text())["results"]["test_accuracy"]
    capsys.readouterr()
    assert main(["evaluate", "--adapter", str(out / "best"), "--task", "digits"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["accuracy"] == pytest.approx(trained)
    assert main(["evaluate", "--adapter", str(out / "best"), "--task", "digits", "--backbone", "efficientnet-lite0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differs in image_size" in err[0] and "--backbone efficientnet-lite0@32" in err[0]


@pytest.mark.parametrize(("backbone", "says"), [("tiny-bert@32", "applies to image backbones only"),
                                                ("tiny-vit@24", "position embeddings fix its input"),
                                                ("efficientnet-lite0@big", "must be an image size in pixels")])
def test_a_size_that_cannot_apply_is_a_one_line_error(backbone: str, says: str, capsys) -> None:  # type: ignore[no-untyped-def]
    from promptlearning.cli.main import main

    assert main(["train", "--task", "digits", "--backbone", backbone, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]
