"""Data-parallel training: two CPU processes (gloo) launched by torchrun / accelerate launch train ONE model.

Each test launches real processes on the tiny backbone (a few seconds each on an idle machine).
Tolerance of "equal to one process": the two ranks' gradients are summed from two halves of each
batch instead of one, which changes float rounding only; with no dropout the final adapters agree
to 1e-5 (measured: 1.2e-7 after 12 steps). A killed-and-resumed two-process run must equal the
uninterrupted two-process run bit for bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from promptlearning.errors import ConfigError, TrainingError
from promptlearning.launcher import check_launch, launched_rank
from promptlearning.training import TrainConfig, Trainer

from .conftest import toy_csv
from .meta_toys import toy_tasks  # noqa: F401  (a fixture)
from .resume_helper import SRC, assert_same_files

LAUNCH_TIMEOUT = 300  # seconds per launch: a bound on a loaded machine, not a speed expectation
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    root = str(SRC.parent)  # the repository: launched wrappers import tests.meta_toys
    env.update(PYTHONPATH=os.pathsep.join(p for p in (str(SRC), root, os.environ.get("PYTHONPATH")) if p),
               OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    return env


def _port(offset: int, flag: str = "--master_port") -> list[str]:
    """A rendezvous port per launch (tests of other workers may run at once); accelerate calls it --main_process_port."""
    return [f"{flag}={29_600 + (os.getpid() % 500) * 8 + offset}"]


def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    # no dropout: each rank draws its own masks, so only a dropout-free run can equal one process
    return ["train", "--train-file", str(data), "--backbone", "tiny-bert", "--shots", "8", "--max-steps", "12",
            "--eval-every", "4", "--checkpoint-every", "4", "--batch-size", "8", "--head-dropout", "0",
            "--no-baseline", "--train-past-perfect-dev", "--quiet", "--output", str(out), *extra]


def _launch(launcher: list[str], argv: list[str], module: str = "promptlearning") -> subprocess.CompletedProcess[str]:
    target = ["-m", module] if module else []
    return subprocess.run([*launcher, *target, *argv], capture_output=True, text=True, env=_env(),
                          timeout=LAUNCH_TIMEOUT, cwd=Path(__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One task file, a one-process run and an uninterrupted two-process run (torchrun)."""
    from promptlearning.cli.main import main

    root = tmp_path_factory.mktemp("dp")
    data = toy_csv(root / "train.csv", 30)
    assert main(_train_args(data, root / "one")) == 0
    two = _launch([*TORCHRUN, *_port(0)], _train_args(data, root / "two"))
    assert two.returncode == 0, two.stderr[-3000:]
    (root / "two.stdout").write_text(two.stdout)
    return root


def test_two_processes_train_the_model_of_one_process(runs: Path) -> None:
    one = load_file(str(runs / "one" / "best" / "adapter_model.safetensors"))
    two = load_file(str(runs / "two" / "best" / "adapter_model.safetensors"))
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-5, msg=name)
    # the same run: the same dev curve and best step, from one decision shared by both ranks
    one_results = json.loads((runs / "one" / "results.json").read_text())["results"]
    two_results = json.loads((runs / "two" / "results.json").read_text())["results"]
    assert two_results["dev_curve"] == one_results["dev_curve"] and two_results["best_step"] == one_results["best_step"]


def test_only_rank_zero_writes_and_prints(runs: Path) -> None:
    two = runs / "two"
    assert sorted(p.name for p in two.iterdir()) == ["best", "checkpoint", "metrics.jsonl", "results.json"]
    lines = (two / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines)) == len((runs / "one" / "metrics.jsonl").read_text().splitlines())
    assert (runs / "two.stdout").read_text().count("adapter (best on dev) saved") == 1
    meta = json.loads((two / "checkpoint" / "trainer_state.json").read_text())
    assert meta["world_size"] == 2
    rng = load_file(str(two / "checkpoint" / "training_state.safetensors"))
    assert {"rng.rank0.torch", "rng.rank1.torch"} <= rng.keys()
    assert not torch.equal(rng["rng.rank0.torch"], rng["rng.rank1.torch"])  # each rank draws its own stream


KILLER = """
    import os, signal, sys
    from promptlearning.training import trainer as trainer_module
    original = trainer_module.Trainer.training_step

    def training_step(self, batch, step):
        if step == {step} and self.parallel.rank == 1:  # mid-way between the checkpoints of steps 8 and 12
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, batch, step)

    trainer_module.Trainer.training_step = training_step
    from promptlearning.cli.main import main
    sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_run_resumes_exactly(runs: Path, tmp_path: Path) -> None:
    script = tmp_path / "killed_at_step_10.py"
    script.write_text(textwrap.dedent(KILLER.format(step=10)))
    cut = tmp_path / "cut"
    killed = _launch([*TORCHRUN, *_port(1), str(script)], _train_args(runs / "train.csv", cut), module="")
    assert killed.returncode != 0
    state = json.loads((cut / "checkpoint" / "trainer_state.json").read_text())["state"]
    assert state["step"] == 8  # killed after the step-8 checkpoint, before the end
    # resumed through the other launcher: the same environment, the same run
    resumed = _launch([*ACCELERATE, *_port(2, "--main_process_port")], _train_args(runs / "train.csv", cut, "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_files(runs / "two", cut, ["metrics.jsonl", "best/adapter_model.safetensors",
                                          "checkpoint/training_state.safetensors"])


def test_resume_with_another_number_of_processes_is_refused(runs: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from promptlearning.cli.main import main

    copy = tmp_path / "two"
    shutil.copytree(runs / "two", copy)
    capsys.readouterr()
    assert main(_train_args(runs / "train.csv", copy, "--resume")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "written by 2 processes and this run has 1 process" in err
    assert "--nproc_per_node 2" in err


def test_a_strategy_that_cannot_run_data_parallel_refuses_in_one_line(runs: Path, tmp_path: Path) -> None:
    """SPT's second-order search, launched as two processes: one error line (rank 0's), no traceback of ours."""
    proc = _launch([*TORCHRUN, *_port(3)],
                   ["train", "--train-file", str(runs / "train.csv"), "--backbone", "tiny-bert", "--shots", "8",
                    "--method", "spt", "--layer-budget", "1", "--second-order", "--max-steps", "2", "--quiet", "--no-baseline"])
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: the second-order gate search (--second-order) does not run data-parallel; launch "
                      "one process (without torchrun/accelerate launch)"], proc.stderr[-2000:]
    assert "promptlearning/" not in proc.stderr  # no traceback through the library's files


def test_meta_learning_refuses_data_parallel(tmp_path: Path) -> None:
    """Every strategy either trains data-parallel or refuses before its first step (here with a stand-in world)."""
    from promptlearning.training.distributed import DataParallel
    from promptlearning.training.meta_learning import MetaTrainer

    assert MetaTrainer.data_parallel_refusal is not Trainer.data_parallel_refusal
    trainer = Trainer.__new__(MetaTrainer)  # the refusal comes first: nothing else of the trainer is needed
    trainer.config, trainer.parallel = TrainConfig(), DataParallel(0, 2)
    with pytest.raises(TrainingError, match="meta-learning .* does not run data-parallel"):
        Trainer.fit(trainer)


# ---------------------------------------------------------------------------- launches refused before any work
def test_the_launch_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert launched_rank() == (0, 1)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launched_rank() == (1, 2)


def test_other_commands_refuse_several_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    check_launch("train")
    with pytest.raises(ConfigError, match="`promptlearning bench` runs in one process, but 2 were launched"):
        check_launch("bench")


def test_accelerate_cpu_launch_of_one_process_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """`accelerate launch --cpu --num_processes 2` starts one process (no MPI): it must not train alone silently."""
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_PORT", "29500")
    with pytest.raises(ConfigError, match="--multi_gpu --num_processes N"):
        check_launch("train")


@pytest.mark.parametrize("engine", ["ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"])
def test_sharding_engines_are_refused(monkeypatch: pytest.MonkeyPatch, engine: str) -> None:
    monkeypatch.setenv(engine, "true")
    with pytest.raises(ConfigError, match="is not supported: promptlearning trains data-parallel only"):
        check_launch("train")


def test_a_batch_smaller_than_the_world_still_counts_each_row_once() -> None:
    from promptlearning.training.distributed import DataParallel

    rows = [5, 6, 7]
    shares = [DataParallel(rank, 4).share(rows) for rank in range(4)]
    weights = [DataParallel(rank, 4).weight(rows, len(s), len(rows)) for rank, s in enumerate(shares)]
    assert shares == [[5], [6], [7], [5]] and weights == [1 / 3, 1 / 3, 1 / 3, 0.0]
    assert [DataParallel(r, 2).share(list(range(5))) for r in range(2)] == [[0, 1, 2], [3, 4]]
    with pytest.raises(TrainingError, match="written by 2 processes and this run has 1 process"):
        DataParallel(0, 1).check_resume(2, "runs/x")


# ---------------------------------------------------------------------------- the other strategies, data-parallel
TOY_TASKS_MAIN = """
    import sys
    from tests.meta_toys import WORDS, toy_data
    from promptlearning.data import tasks as task_registry
    from promptlearning.data.tasks import TaskSpec

    for name in WORDS:  # the toy tasks of tests/meta_toys.py, registered in each launched process
        task_registry._REGISTRY[name] = TaskSpec(name, ("negative", "positive"), f"toy task {name}", "tests",
                                                 lambda n=name: toy_data(n))
    from promptlearning.cli.main import main
    sys.exit(main(sys.argv[1:]))
"""


def _same_adapter(one: Path, two: Path) -> None:
    a = load_file(str(one / "best" / "adapter_model.safetensors"))
    b = load_file(str(two / "best" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-5, msg=name)


def test_spt_search_and_retraining_run_data_parallel(runs: Path, tmp_path: Path) -> None:
    """SPT's first-order bi-level search (gate gradients all-reduced too), then the plain retraining."""
    from promptlearning.cli.main import main

    argv = ["train", "--train-file", str(runs / "train.csv"), "--backbone", "tiny-bert", "--shots", "8",
            "--method", "spt", "--layer-budget", "1", "--max-steps", "8", "--eval-every", "4", "--batch-size", "8",
            "--head-dropout", "0", "--no-baseline", "--train-past-perfect-dev", "--quiet"]
    assert main([*argv, "--output", str(tmp_path / "one")]) == 0
    two = _launch([*TORCHRUN, *_port(4)], [*argv, "--output", str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr[-3000:]
    one_results = json.loads((tmp_path / "one" / "results.json").read_text())["results"]
    two_results = json.loads((tmp_path / "two" / "results.json").read_text())["results"]
    assert two_results["chosen_layers"] == one_results["chosen_layers"]
    assert two_results["final_gates"] == pytest.approx(one_results["final_gates"], abs=1e-5)
    _same_adapter(tmp_path / "one", tmp_path / "two")


def test_multi_task_distillation_runs_data_parallel(toy_tasks: list[str], tmp_path: Path) -> None:  # noqa: F811
    """Distillation is the multi-task trainer plus the teachers' term: both, with rows of two tasks split
    across the processes (a task's rows may all fall to one of them)."""
    from promptlearning.cli.main import main

    teacher = tmp_path / "teacher"
    assert main(["train", "--task", "toy_movies", "--backbone", "tiny-bert", "--method", "prompt_tuning",
                 "--option", "num_tokens=2", "--shots", "4", "--max-steps", "3", "--quiet", "--no-baseline",
                 "--output", str(teacher)]) == 0
    argv = ["train", "--tasks", "toy_movies,toy_films", "--backbone", "tiny-bert", "--method", "multitask_prompt",
            "--option", "num_tokens=3", "--shots", "4", "--max-steps", "6", "--eval-every", "3", "--batch-size", "6",
            "--distill-from", f"toy_movies={teacher / 'best'}", "--train-past-perfect-dev", "--quiet"]
    assert main([*argv, "--output", str(tmp_path / "one")]) == 0
    script = tmp_path / "toy_tasks_main.py"
    script.write_text(textwrap.dedent(TOY_TASKS_MAIN))
    two = _launch([*TORCHRUN, *_port(5), str(script)], [*argv, "--output", str(tmp_path / "two")], module="")
    assert two.returncode == 0, two.stderr[-3000:]
    _same_adapter(tmp_path / "one", tmp_path / "two")
    # the logged term is the whole batch's, as in one process, not rank 0's part of it
    logged = [[json.loads(line)["distill_loss"] for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()
               if "distill_loss" in json.loads(line)] for run in ("one", "two")]
    assert logged[0] and len(logged[0]) == len(logged[1])
    assert logged[0] == pytest.approx(logged[1], rel=1e-4, abs=1e-6)


def test_train_continual_refuses_several_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    from promptlearning.cli.train import continual_config_from

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="train --continual runs in one process"):
        continual_config_from({}, resume=False)


def test_a_tagger_runs_data_parallel(tmp_path: Path) -> None:
    """The tagger's loss is a mean over scored words, so each process's gradient counts by its share of the
    batch's scored words, not of its sentences."""
    from promptlearning.cli.main import main

    from .token_toy import toy_sentences, write_word_tag

    corpus = write_word_tag(tmp_path / "pos.txt", toy_sentences(60))
    argv = ["train", "--train-file", str(corpus), "--head", "token_classification", "--method", "prompt_tuning",
            "--option", "num_tokens=2", "--backbone", "tiny-bert", "--shots", "8", "--max-steps", "6",
            "--eval-every", "3", "--batch-size", "5", "--no-baseline", "--train-past-perfect-dev", "--quiet"]
    assert main([*argv, "--output", str(tmp_path / "one")]) == 0
    two = _launch([*TORCHRUN, *_port(6)], [*argv, "--output", str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr[-3000:]
    _same_adapter(tmp_path / "one", tmp_path / "two")
