"""ExperimentConfig.to_dict() names a run in results.json and in stored rows: settings added after
the first tables were measured must be absent at their defaults, nested sections included."""

from __future__ import annotations

from promptlearning.runs.single_task import ExperimentConfig
from promptlearning.training import TrainConfig

# the train section's keys before train_past_perfect_dev and report_to existed
FIRST_TRAIN_KEYS = {"lr", "head_lr", "weight_decay", "batch_size", "eval_batch_size", "max_steps", "warmup_ratio",
                    "max_grad_norm", "eval_every", "eval_at_start", "patience", "checkpoint_every", "log_every",
                    "seed", "device", "quiet"}


def test_train_section_at_defaults_has_only_the_first_keys() -> None:
    assert set(ExperimentConfig().to_dict()["train"]) == FIRST_TRAIN_KEYS


def test_train_section_follows_train_configs_own_rule() -> None:
    cfg = ExperimentConfig(train=TrainConfig(report_to="tensorboard", train_past_perfect_dev=True))
    train = cfg.to_dict()["train"]
    assert train == cfg.train.to_dict()
    assert train["report_to"] == "tensorboard" and train["train_past_perfect_dev"] is True
