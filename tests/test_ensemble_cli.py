"""`train --ensemble N` end to end on tiny-bert: one adapter that evaluate and predict take unchanged,
per-member scores next to the ensemble's, resume that retrains no finished member, one-line refusals."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from promptlearning.cli.main import main
from promptlearning.ensemble import EnsembleModel, load_predictor

from .test_cli import FAST, _rows, fails, ok, write_delimited

ENSEMBLE = ["--method", "prompt_tuning", "--option", "num_tokens=3", "--ensemble", "3"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_delimited(tmp_path_factory.mktemp("data") / "train.csv", _rows())


@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ens"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["train", "--train-file", str(data), *FAST, *ENSEMBLE, "--output", str(out)])
    assert code == 0, f"the shared ensemble run failed: {err.getvalue().strip()}"
    return out


def test_train_writes_one_ensemble_adapter_and_every_members_scores(trained: Path) -> None:
    assert sorted(p.name for p in (trained / "best").iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    results = json.loads((trained / "results.json").read_text())["results"]
    assert results["ensemble"] == 3 and [m["seed"] for m in results["members"]] == [42, 43, 44]
    assert all(0.0 <= m["test_accuracy"] <= 1.0 for m in results["members"])
    lines = [json.loads(ln) for ln in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [ln.get("member") for ln in lines[:3]] == [0, 1, 2] and lines[3]["ensemble"] == 3
    assert lines[3]["test_accuracy"] == results["test_accuracy"]
    config = json.loads((trained / "best/adapter_config.json").read_text())
    inits = [m["method_config"]["init_seed"] for m in config["ensemble"]["members"]]
    assert inits == [0, 1, 2]  # each member starts from its own prompt


def test_predict_and_evaluate_take_the_ensemble(capsys: pytest.CaptureFixture[str], trained: Path,
                                                data: Path) -> None:
    out = ok(capsys, "predict", "--adapter", str(trained / "best"), "--json", "great movie", "so boring")
    rows = [json.loads(ln) for ln in out.splitlines()]
    model = load_predictor(trained / "best")
    assert isinstance(model, EnsembleModel)
    want = model.predict_proba(["great movie", "so boring"])
    for row, probs in zip(rows, want, strict=True):
        assert torch.allclose(torch.tensor([row["probabilities"][k] for k in model.labels]), probs, atol=1e-5)
    scores = json.loads(ok(capsys, "evaluate", "--adapter", str(trained / "best"), "--train-file", str(data),
                           "--shots", "4"))
    assert scores["accuracy"] == json.loads((trained / "results.json").read_text())["results"]["test_accuracy"]


def test_resume_retrains_no_finished_member(capsys: pytest.CaptureFixture[str], trained: Path, data: Path,
                                            tmp_path: Path) -> None:
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    before = json.loads((run / "results.json").read_text())["results"]
    shutil.rmtree(run / "members/2")  # member 2 never ran: the others are finished
    (run / "members/1/results.json").unlink()  # member 1 was stopped after its last checkpoint
    done = (run / "members/0/best/adapter_model.safetensors").stat().st_mtime_ns
    out = ok(capsys, "train", "--train-file", str(data), *FAST, *ENSEMBLE, "--output", str(run), "--resume")
    assert "member seed 42: finished before, not retrained" in out
    assert (run / "members/0/best/adapter_model.safetensors").stat().st_mtime_ns == done
    after = json.loads((run / "results.json").read_text())["results"]
    assert [m["test_accuracy"] for m in after["members"]] == [m["test_accuracy"] for m in before["members"]]
    assert after["test_accuracy"] == before["test_accuracy"]


def test_bad_ensembles_are_one_line_errors(capsys: pytest.CaptureFixture[str], data: Path, tmp_path: Path) -> None:
    train = ["train", "--train-file", str(data), *FAST]
    assert "N >= 2" in fails(capsys, *train, "--ensemble", "1")
    assert "N >= 2" in fails(capsys, *train, "--ensemble", "0")
    msg = fails(capsys, *train, "--method", "finetune", "--ensemble", "2")
    assert "cannot combine finetune" in msg and "prompt_tuning" in msg and "p_tuning_v2" in msg
    assert "cannot combine fixed_prompt" in fails(capsys, *train, "--method", "fixed_prompt", "--head",
                                                  "label_description", "--ensemble", "2")
    assert "drop --resume" in fails(capsys, *train, *ENSEMBLE, "--output", str(tmp_path / "new"), "--resume")


def test_commands_of_one_prompt_refuse_an_ensemble(capsys: pytest.CaptureFixture[str], trained: Path,
                                                   tmp_path: Path) -> None:
    msg = fails(capsys, "inspect", str(trained / "best"))
    assert "ensemble" in msg and "members/<i>/best" in msg
    msg = fails(capsys, "export", "--adapter", str(trained / "best"), "--to", "peft", "--output",
                str(tmp_path / "peft"))
    assert "ensemble" in msg and "members/<i>/best" in msg and not (tmp_path / "peft").exists()


def test_an_interrupted_member_continues_and_the_finished_ones_are_not_retrained(
        monkeypatch: pytest.MonkeyPatch, data: Path, tmp_path: Path) -> None:
    """Ctrl-C in member 1's third step (after its step-2 checkpoint): the resume trains only what was left
    (member 1's last 2 steps, member 2's 4), and ends at the uninterrupted run's ensemble, tensor for tensor."""
    from safetensors.torch import load_file

    from promptlearning.runs.ensemble import run_ensemble
    from promptlearning.runs.single_task import DataConfig, ExperimentConfig
    from promptlearning.training import TrainConfig
    from promptlearning.training.trainer import Trainer

    from .resume_helper import Cut, assert_same_tensors, run_interrupted_then_resumed

    def run(directory: Path, resume: bool) -> dict[str, object]:
        cfg = ExperimentConfig(data=DataConfig(task=None, train_file=str(data), shots=4), backbone="tiny-bert",
                               method="prompt_tuning", method_options={"num_tokens": 3}, ensemble=3,
                               train=TrainConfig(max_steps=4, eval_every=2, checkpoint_every=2, quiet=True),
                               output_dir=str(directory))
        result = run_ensemble(cfg, resume=resume, baseline=False, log=lambda _: None)
        result.pop("_model")
        return result

    done = run_interrupted_then_resumed(monkeypatch, run, tmp_path, Cut.at_call(Trainer, "training_step", 7))
    assert done.calls == {"whole": 12, "cut": 7, "resumed": 6}
    assert done.resumed["test_accuracy"] == done.whole["test_accuracy"]
    assert_same_tensors(load_file(str(done.whole_dir / "best/adapter_model.safetensors")),
                        load_file(str(done.cut_dir / "best/adapter_model.safetensors")), "ensemble adapter")
