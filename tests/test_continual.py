"""Continual learning with a prompt library, on the tiny backbone and toy tasks (4 shots, 4 steps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from promptlearning.backbones import Backbone
from promptlearning.cli.main import main
from promptlearning.data.task_info import TaskInfo
from promptlearning.errors import ConfigError, UnknownNameError
from promptlearning.model import PromptModel
from promptlearning.runs.continual import ContinualConfig, check_tasks, run_continual, start_prompt
from promptlearning.runs.prompt_library import PromptLibrary

from .meta_toys import toy_tasks  # noqa: F401  (fixture)

FAST = {"backbone": "tiny-bert", "shots": 4, "steps": 4, "eval_every": 2, "num_tokens": 3, "device": "cpu"}


def _config(tmp_path: Path, **changes: object) -> ContinualConfig:
    return ContinualConfig(**{**FAST, "output_dir": str(tmp_path / "out"), **changes})  # type: ignore[arg-type]


def test_each_task_is_stored_and_earlier_tasks_are_rescored(tmp_path: Path, bert: Backbone,
                                                           toy_tasks: list[str]) -> None:  # noqa: F811
    result = run_continual(toy_tasks, _config(tmp_path), backbone=bert, log=lambda _: None)
    assert result.tasks == toy_tasks
    assert [len(row) for row in result.accuracy] == [1, 2, 3]
    # stored prompts and a frozen backbone: the library cannot forget
    for j in range(3):
        assert {result.accuracy[i][j] for i in range(j, 3)} == {result.rows[j].library_accuracy}
    assert result.rows[0].init_from == [] and result.rows[0].scratch_accuracy == result.rows[0].library_accuracy
    assert all(len(r.init_from) == 1 and r.scratch_accuracy is not None for r in result.rows[1:])
    library = PromptLibrary.open(result.library)
    assert [e.name for e in library.entries] == toy_tasks
    saved = json.loads((tmp_path / "out" / "continual.json").read_text())
    assert saved["result"]["accuracy"] == result.accuracy
    table = (tmp_path / "out" / "continual.md").read_text()
    assert "| toy_phones |" in table and "forgetting: toy_movies +0.0000" in table


def test_the_new_task_starts_from_the_nearest_stored_prompt(tmp_path: Path, bert: Backbone,
                                                            toy_tasks: list[str]) -> None:  # noqa: F811
    cfg = _config(tmp_path, scratch=False)
    result = run_continual(toy_tasks[:2], cfg, backbone=bert, log=lambda _: None)
    assert result.rows[1].init_from[0][0] == "toy_movies"
    library = PromptLibrary.open(result.library)
    stored = library.prompt_state("toy_movies")["prompt"]
    # start_prompt hands exactly that tensor to the new task
    query = library.get("toy_films").representation
    prompt, used = start_prompt(library, query, cfg, "toy_films", stored.shape)
    assert used[0][0] == "toy_movies" and prompt is not None and torch.equal(prompt, stored.float())


def test_mix_start_is_the_similarity_weighted_mean(tmp_path: Path, bert: Backbone) -> None:
    lib = PromptLibrary.open(tmp_path / "lib")
    prompts = []
    for i, rep in enumerate([torch.tensor([1.0, 0.0]), torch.tensor([0.6, 0.8]), torch.tensor([-1.0, 0.0])]):
        model = PromptModel.build(bert, "prompt_tuning", ["a", "b"], method_options={"num_tokens": 2, "init_seed": i})
        prompts.append(model.method.prompt.detach().clone())
        lib.add(TaskInfo(f"t{i}", ["a", "b"]), rep, model, "support")
    cfg = ContinualConfig(init="mix", top_k=3)
    prompt, used = start_prompt(lib, torch.tensor([1.0, 0.0]), cfg, "new", prompts[0].shape)
    assert [n for n, _ in used] == ["t0", "t1", "t2"]
    expected = (1.0 * prompts[0] + 0.6 * prompts[1]) / 1.6  # the negatively similar task gets weight 0
    assert prompt is not None and torch.allclose(prompt, expected, atol=1e-6)


def test_sequential_baseline_carries_one_prompt_and_can_forget(tmp_path: Path, bert: Backbone,
                                                               toy_tasks: list[str]) -> None:  # noqa: F811
    result = run_continual(toy_tasks, _config(tmp_path, sequential=True, scratch=False), backbone=bert,
                           log=lambda _: None)
    assert result.sequential_accuracy is not None and [len(r) for r in result.sequential_accuracy] == [1, 2, 3]
    assert result.sequential_accuracy[0][0] == result.accuracy[0][0]  # the first task: the very same run
    assert "Sequential baseline" in (tmp_path / "out" / "continual.md").read_text()


def test_a_second_run_reuses_the_library(tmp_path: Path, bert: Backbone, toy_tasks: list[str]) -> None:  # noqa: F811
    lib_dir = tmp_path / "shared-lib"
    run_continual(toy_tasks[:2], _config(tmp_path, library=str(lib_dir), scratch=False), backbone=bert,
                  log=lambda _: None)
    result = run_continual([toy_tasks[2], toy_tasks[0]], _config(tmp_path, library=str(lib_dir), scratch=False),
                           backbone=bert, log=lambda _: None)
    assert result.rows[0].init_from  # toy_phones starts from a prompt stored by the first run
    assert toy_tasks[0] not in [n for n, _ in result.rows[1].init_from]  # never from its own old prompt
    assert len(PromptLibrary.open(lib_dir)) == 3


def test_task_list_errors(toy_tasks: list[str]) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match="at least two tasks"):
        check_tasks(["toy_movies"])
    with pytest.raises(ConfigError, match="more than once"):
        check_tasks(["toy_movies", "toy_movies"])
    with pytest.raises(UnknownNameError, match="unknown task 'nope'"):
        check_tasks(["toy_movies", "nope"])
    with pytest.raises(ConfigError, match="unknown library start"):
        ContinualConfig(init="best")


def test_a_library_for_another_backbone_is_refused(tmp_path: Path, bert: Backbone, llama: Backbone,
                                                   toy_tasks: list[str]) -> None:  # noqa: F811
    run_continual(toy_tasks[:2], _config(tmp_path, scratch=False), backbone=bert, log=lambda _: None)
    from promptlearning.errors import AdapterError

    with pytest.raises(AdapterError, match="--backbone tiny-bert"):
        run_continual(toy_tasks[:2], _config(tmp_path, scratch=False), backbone=llama, log=lambda _: None)


# ---------------------------------------------------------------------------- the command
def test_continual_command(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                           toy_tasks: list[str]) -> None:  # noqa: F811
    argv = ["continual", ",".join(toy_tasks[:2]), "--backbone", "tiny-bert", "--shots", "4", "--steps", "2",
            "--eval-every", "2", "--num-tokens", "2", "--output", str(tmp_path / "run"), "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "New task accuracy" in out and "continual.md" in out
    assert (tmp_path / "run" / "library" / "library.json").is_file()


@pytest.mark.parametrize("tasks,message", [("toy_movies", "at least two tasks"), ("toy_movies,nope", "unknown task"),
                                           ("toy_movies,toy_films", "is missing but the library holds entries")])
def test_continual_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], toy_tasks: list[str],  # noqa: F811
                                  tasks: str, message: str) -> None:
    lib = tmp_path / "lib"
    (lib / "entries" / "000-x").mkdir(parents=True)  # entries without an index: a damaged library
    assert main(["continual", tasks, "--backbone", "tiny-bert", "--library", str(lib), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert message in err[0]


def test_progress_says_the_time_so_far_and_left(tmp_path: Path, bert: Backbone,
                                                toy_tasks: list[str]) -> None:  # noqa: F811
    lines: list[str] = []
    run_continual(toy_tasks, _config(tmp_path, scratch=False), backbone=bert, log=lines.append)
    timing = [line.strip() for line in lines if "s so far" in line]
    assert len(timing) == len(toy_tasks)
    assert all("left for" in line for line in timing[:-1]) and "left" not in timing[-1]
    assert "2 more task(s)" in timing[0]
