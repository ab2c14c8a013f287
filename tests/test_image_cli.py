"""The command line on image tasks: train on a folder of images per label, predict on image paths, and
one-line errors for a bad folder or an unreadable image (tiny random ViT and CLIP, milliseconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_cli import fails, ok

FAST = ("--shots", "2", "--max-steps", "4", "--eval-every", "2", "--quiet")


def _folder(root: Path, labels: tuple[str, ...] = ("dark", "bright"), per_label: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for i, label in enumerate(labels):
        (root / label).mkdir(parents=True)
        for j in range(per_label):
            pixels = np.clip(40 + 160 * i + rng.integers(-30, 30, size=(10, 10, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{j}.png")
    return root


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _folder(tmp_path_factory.mktemp("images") / "train")


@pytest.mark.parametrize(("backbone", "method", "head"), [("tiny-vit", "vpt", "classification"),
                                                         ("tiny-vit", "visual_prompt", "label_mapping"),
                                                         ("tiny-clip", "coop", "clip")])
def test_train_on_an_image_folder_then_predict_image_paths(backbone: str, method: str, head: str, images: Path,
                                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = ("--option", "pad=4") if method == "visual_prompt" else ()
    ok(capsys, "train", "--backbone", backbone, "--train-file", str(images), "--method", method, "--head", head,
       *options, *FAST, "--output", str(tmp_path / "run"))
    assert (tmp_path / "run" / "best" / "adapter_config.json").is_file()
    paths = [str(images / "dark" / "0.png"), str(images / "bright" / "1.png")]
    out = ok(capsys, "predict", "--adapter", str(tmp_path / "run" / "best"), *paths)
    rows = out.strip().splitlines()
    assert rows[0].split("\t")[0] == "label" and len(rows) == 3
    assert all(r.split("\t")[0] in ("dark", "bright") and r.endswith(p) for r, p in zip(rows[1:], paths, strict=True))


def test_a_folder_with_one_label_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _folder(tmp_path / "one", labels=("only",))
    line = fails(capsys, "train", "--backbone", "tiny-vit", "--train-file", str(root), "--method", "vpt", *FAST)
    assert "1 label sub-folder(s); an image task needs at least 2" in line


def test_an_empty_label_folder_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _folder(tmp_path / "data")
    (root / "empty").mkdir()
    line = fails(capsys, "train", "--backbone", "tiny-vit", "--train-file", str(root), "--method", "vpt", *FAST)
    assert "holds no images" in line and "empty" in line


def test_an_unreadable_image_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  images: Path) -> None:
    root = _folder(tmp_path / "data")
    (root / "dark" / "broken.png").write_text("not an image")
    line = fails(capsys, "train", "--backbone", "tiny-vit", "--train-file", str(root), "--method", "vpt", *FAST,
                 "--output", str(tmp_path / "run"))
    assert "cannot read image" in line and "broken.png" in line
    ok(capsys, "train", "--backbone", "tiny-vit", "--train-file", str(images), "--method", "linear_probe", *FAST,
       "--output", str(tmp_path / "good"))
    assert "a folder with one sub-folder of images per label" in fails(capsys, "evaluate", "--adapter",
                                                                      str(tmp_path / "good" / "best"))
    scores = json.loads(ok(capsys, "evaluate", "--adapter", str(tmp_path / "good" / "best"), "--test-file", str(images)))
    assert scores["n"] == sum(1 for p in images.rglob("*.png"))  # every image of the folder, scored
    for path, what in [(root / "dark" / "broken.png", "cannot read image"), (tmp_path / "missing.png", "does not exist")]:
        line = fails(capsys, "predict", "--adapter", str(tmp_path / "good" / "best"), str(path))
        assert what in line


def test_a_text_method_on_an_image_backbone_names_the_image_methods(images: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    line = fails(capsys, "train", "--backbone", "tiny-vit", "--train-file", str(images), "--method", "prompt_tuning",
                 *FAST)
    assert "prompts text backbones and tiny-vit reads images" in line and "vpt" in line
    assert "coop" not in line  # CoOp and CoCoOp prompt a CLIP text tower, which tiny-vit has not


@pytest.mark.parametrize("backbone, task, method, said", [
    ("tiny-bert", "digits", "prompt_tuning", "digits is an image task and tiny-bert is a text backbone"),
    ("tiny-vit", "mr", "vpt", "mr is a text task and tiny-vit is an image backbone"),
])
def test_a_registered_task_on_a_backbone_of_the_other_modality_is_refused(backbone: str, task: str, method: str,
                                                                          said: str, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A text backbone used to tokenise the digits' data URIs as words and train on them without a word."""
    line = fails(capsys, "train", "--backbone", backbone, "--task", task, "--method", method, *FAST,
                 "--output", str(tmp_path / "run"))
    assert said in line
    assert not (tmp_path / "run").exists()


def test_bench_and_report_run_image_jobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: vision\nbackbone: tiny-vit\ntasks: [digits]\nshots: 1\nseeds: [13]\nmax_test: 20\n"
                     "train: {max_steps: 2, eval_every: 1}\nmethods:\n  - {method: vpt, method_options: {num_tokens: 2}}\n"
                     "  - {method: zero_shot, head: {kind: label_mapping}}\n", encoding="utf-8")
    ok(capsys, "bench", str(suite), "--store", str(tmp_path / "store"), "--threads", "1", "--quiet")
    report = (tmp_path / "store" / "report.md").read_text(encoding="utf-8")
    assert "| vpt |" in report and "| zero_shot |" in report
