"""``--report-to``: a run's loss and dev scores in TensorBoard, MLflow or W&B, through Accelerate's trackers.

A :class:`~promptlearning.training.callbacks.TrainerCallback` like any other: it owns an
``Accelerator(log_with=...)``, starts the tracker with the run's settings when training begins
(``init_trackers``), logs the loss and learning rate after every step and the dev scores after
every evaluation (``log``), and closes the tracker at the end (``end_training``). Each tracker is
an optional extra (``pip install 'promptlearning[tensorboard]'``); a missing one is a one-line
error before training starts. In a data-parallel run only rank 0 logs (callbacks run there).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlearning.errors import ConfigError
from promptlearning.training.callbacks import TrainerCallback
from promptlearning.training.config import TrainConfig

if TYPE_CHECKING:
    from promptlearning.training.trainer import Trainer, TrainResult

#: the project name the trackers file runs under
PROJECT = "promptlearning"
#: where TensorBoard's event files go, inside the run's --output
TRACKER_DIR = "trackers"


def _available(tracker: str) -> Callable[[], bool]:
    from accelerate.utils import is_mlflow_available, is_tensorboard_available, is_wandb_available

    return {"tensorboard": is_tensorboard_available, "mlflow": is_mlflow_available,
            "wandb": is_wandb_available}[tracker]


def _scalar_settings(values: dict[str, Any], prefix: str = "") -> dict[str, int | float | str | bool]:
    """Flattened settings as the scalars every tracker takes (``train/lr``; None and lists as text)."""
    out: dict[str, int | float | str | bool] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_scalar_settings(value, f"{name}/"))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = json.dumps(value)
    return out


class AccelerateTrackers(TrainerCallback):
    """Log a run to an Accelerate tracker (see the module docstring)."""

    def __init__(self, tracker: str, output_dir: Path | None, settings: dict[str, Any]) -> None:
        self.tracker = tracker
        self.output_dir = output_dir
        self.settings = settings
        self.accelerator: Any = None

    def on_train_begin(self, trainer: Trainer) -> None:
        from accelerate import Accelerator

        project_dir = str(self.output_dir / TRACKER_DIR) if self.output_dir is not None else None
        # the process-wide Accelerate state is the trainer's; this Accelerator only adds the tracker
        self.accelerator = Accelerator(cpu=trainer.device.type == "cpu", log_with=self.tracker,
                                       project_dir=project_dir)
        self.accelerator.init_trackers(PROJECT, config=_scalar_settings(
            {**self.settings, "method": type(trainer.model.method).name, **trainer.run_info}))

    def on_step(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.accelerator.log({"train/loss": record["loss"], "train/lr": record["lr"]}, step=record["step"])

    def on_evaluate(self, trainer: Trainer, record: dict[str, Any]) -> None:
        scores = {f"dev/{key.removeprefix('dev_')}": value for key, value in record.items()
                  if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool)}
        self.accelerator.log(scores, step=record["step"])

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        self.accelerator.log({"best/dev_accuracy": result.best_dev, "best/step": result.best_step}, step=result.steps)
        self.accelerator.end_training()


def tracker_callback(tracker: str, output_dir: Path | None, config: TrainConfig) -> AccelerateTrackers:
    """The callback of ``--report-to tracker``; refuses a missing package or a TensorBoard run without --output."""
    if not _available(tracker)():
        raise ConfigError(f"--report-to {tracker} needs the {tracker} package; "
                          f"install it with: pip install 'promptlearning[{tracker}]'")
    if tracker == "tensorboard" and output_dir is None:
        raise ConfigError("--report-to tensorboard writes its logs under --output; give --output DIR")
    return AccelerateTrackers(tracker, output_dir, {"train": config.to_dict()})
