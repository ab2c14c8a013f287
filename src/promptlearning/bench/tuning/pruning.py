"""Prune a losing trial on its dev curve, through the trainer's public callback API.

A trial may train several runs (tasks x seeds) one after another; each run's evaluations are
reported at ``offset + step``, the offset being the steps of the runs before it, so every
trial reports the same steps in the same order and the pruner compares like with like.

Every evaluation is reported, but the pruner is asked only from the middle of each run on
(``warmup``): a run's first dev scores say little of where it ends, and this holds for the
second task of a trial as much as for the first. (Optuna's ``n_warmup_steps`` counts from the
trial's start, so alone it protected only the first run: the tenth session's studies pruned
prompt tuning trials at the first evaluation of their third run, one at dev 0.94 on subj.)

The trial may be Optuna's own (trials run in this process) or a Ray task's relay to the driver
(:class:`promptlearning.bench.tuning.on_ray.RelayedTrial`): the callback only needs its
``report`` and ``should_prune``.
"""

from __future__ import annotations

from typing import Any

from promptlearning.training.callbacks import TrainerCallback


class DevCurvePruning(TrainerCallback):
    """Report each dev evaluation to the trial; raise ``optuna.TrialPruned`` when it loses."""

    def __init__(self, trial: Any, offset: int, warmup: int = 0) -> None:
        self.trial = trial
        self.offset = offset
        self.warmup = warmup  # steps of this run before the pruner is asked

    def on_evaluate(self, trainer: Any, record: dict[str, Any]) -> None:
        import optuna

        self.trial.report(float(record["dev_accuracy"]), self.offset + int(record["step"]))
        if int(record["step"]) >= self.warmup and self.trial.should_prune():
            raise optuna.TrialPruned(f"dev accuracy {record['dev_accuracy']:.4f} at step {record['step']} "
                                     "is below the median of earlier trials")
