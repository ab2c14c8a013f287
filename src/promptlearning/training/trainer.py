"""The plain trainer: AdamW, warm-up and linear decay, clipping, dev evaluation, checkpoints.

Trainers are strategies over the same PromptModel: subclasses (bi-level SPT search, meta
episodes) override :meth:`Trainer.training_step` and keep everything else, including exact
resume. Exact resume rests on three things: the data order of every epoch comes from a
generator seeded by (seed, epoch) alone, the global RNG state is saved with the optimizer,
and the learning-rate schedule is a pure function of the step.

Launched as N processes (torchrun, accelerate launch) the same trainer trains one model
data-parallel (:mod:`.distributed`): each process takes its slice of every global batch, one
all-reduce per step sums the weighted gradients, rank 0 evaluates and shares each decision,
and only rank 0 writes files, prints and runs the callbacks; the checkpoint holds every
rank's RNG state.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from promptlearning.data.batching import Batch, Encoded, batches
from promptlearning.devices import accelerator_for
from promptlearning.errors import TrainingError
from promptlearning.model import PromptModel
from promptlearning.seeding import seed_everything
from promptlearning.training.callbacks import TrainerCallback, TrainingProgress
from promptlearning.training.checkpoint import (
    damaged,
    load_checkpoint,
    restore_optimizer,
    restore_rng,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from promptlearning.training.config import TrainConfig
from promptlearning.training.distributed import DataParallel, rank_seed
from promptlearning.training.fingerprint import (  # noqa: F401  (changed_settings: its old home)
    RUN_IDENTITY,
    changed_settings,
    describe_changes,
    digest_rows,
    train_section,
)
from promptlearning.training.metrics import evaluate, stderr_is_terminal
from promptlearning.training.optimization import (  # noqa: F401  (parameter_groups: its old home, benchmarks import it)
    describe_groups,
    linear_schedule,
    parameter_groups,
)

BEST_DIR = "best"
CHECKPOINT_DIR = "checkpoint"
METRICS_FILE = "metrics.jsonl"


@dataclass
class TrainResult:
    best_dev: float
    best_step: int
    steps: int
    train_seconds: float
    seconds_per_step: float
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    stop_reason: str | None = None  # why a run stopped before max_steps (patience, dev 1.0, a callback)


#: steps averaged at the start and at the end of the window the divergence check compares
DIVERGENCE_WINDOW = 10


class Trainer:
    """Train a PromptModel's method and head on tokenised few-shot data."""

    def __init__(self, model: PromptModel, config: TrainConfig, train: list[Encoded], dev: list[Encoded],
                 output_dir: str | Path | None = None, run_info: dict[str, Any] | None = None,
                 callbacks: Sequence[TrainerCallback] = ()) -> None:
        if not train:
            raise TrainingError("the training set is empty; give a task or file with examples")
        self.model = model
        self.config = config
        self.train_items = train
        self.dev_items = dev
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.run_info = run_info or {}
        self.accelerator = accelerator_for(config.device)
        self.device = self.accelerator.device
        self.parallel = DataParallel.of(self.accelerator)
        self.callbacks = list(callbacks)
        if config.report_to:
            from promptlearning.training.trackers import tracker_callback

            self.callbacks.append(tracker_callback(config.report_to, self.output_dir, config))
        self._state: dict[str, Any] = {}
        self._stop_requested: str | None = None

    # ------------------------------------------------------------------ the callback API
    @property
    def progress(self) -> TrainingProgress:
        """Where the run stands (what a callback may read)."""
        state = self._state
        return TrainingProgress(step=state.get("step", 0), max_steps=self.config.max_steps,
                                best_dev=state.get("best_dev", -1.0), best_step=state.get("best_step", -1),
                                stopped_early=state.get("stopped_early", False))

    def request_stop(self, reason: str) -> None:
        """Ask the run to stop after the step under way (a callback's way to prune or stop a run)."""
        self._stop_requested = reason

    def _callback(self, hook: str, *args: Any) -> None:
        if not self.parallel.is_main:  # rank 0 alone sees the run: the others would report it again
            return
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    # ------------------------------------------------------------------ data-parallel hooks for strategies
    def data_parallel_refusal(self) -> str | None:
        """Why this trainer cannot train data-parallel (None: it can); refused in one line at the start."""
        return None

    def batch_weight(self, rows: list[int]) -> float:
        """What the loss averages over in these training rows: rows (a token tagger counts scored words).
        A process's gradient counts by its share of the global batch's weight."""
        return float(len(rows))

    # ------------------------------------------------------------------ hooks for strategies
    def training_step(self, batch: Batch, step: int) -> torch.Tensor:
        """One forward and backward; returns the (detached) loss. Strategies override this."""
        out = self.model(batch)
        assert out.loss is not None
        loss = out.loss
        extra = self.model.method.regularization()  # e.g. a pull toward a shared prompt
        if extra is not None:
            loss = loss + extra
        guided = self.extra_loss(batch, out.logits, step)  # e.g. distillation from teachers
        if guided is not None:
            loss = loss + guided
        self.accelerator.backward(loss)
        return loss.detach()

    def extra_loss(self, batch: Batch, logits: torch.Tensor, step: int) -> torch.Tensor | None:
        """A further loss term on this step's batch, given the model's logits (B, C); None adds nothing."""
        return None

    def strategy_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Extra tensors and JSON a strategy needs to resume exactly (e.g. a second optimizer)."""
        return {}, {}

    def load_strategy_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore what :meth:`strategy_state` saved."""

    def extra_record(self) -> dict[str, Any]:
        """Extra values logged with every dev evaluation (e.g. gate probabilities); rank 0 alone calls it."""
        return {}

    def sync_extra_record(self) -> None:
        """Called on every rank just before a dev evaluation: a strategy whose logged value is each rank's
        share of the batch sums the shares here, since :meth:`extra_record` runs on rank 0 alone and cannot
        hold a collective."""

    def dev_scores(self) -> dict[str, Any]:
        """The dev set's scores; ``accuracy`` picks the best step (a tagger scores words, not rows; a generator
        target tokens), ``macro_f1`` is logged beside it where there is one."""
        return evaluate(self.model, self.dev_items, self.config.eval_batch_size)

    # ------------------------------------------------------------------ the loop
    def rows_at(self, step: int) -> list[int]:
        """Indices into the training items of the given global step's batch rows (every process's), in
        order, computed from (seed, epoch) alone. A strategy that draws batches otherwise overrides it."""
        n, size = len(self.train_items), self.config.batch_size
        per_epoch = math.ceil(n / size)
        epoch, pos = divmod(step, per_epoch)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.config.seed * 100_003 + epoch))
        return [int(i) for i in order[pos * size:(pos + 1) * size].tolist()]

    def local_rows(self, step: int) -> list[int]:
        """This process's rows of the step's batch (all of them in one process)."""
        return self.parallel.share(self.rows_at(step))

    def batch_share(self, step: int) -> float:
        """This process's share of the step's loss (1 in one process; see :meth:`batch_weight`)."""
        if not self.parallel.active:
            return 1.0
        rows = self.rows_at(step)
        return self.parallel.weight(rows, self.batch_weight(self.parallel.share(rows)), self.batch_weight(rows))

    def batch_at(self, step: int) -> Batch:
        """This process's batch of a given global step: its rows of :meth:`rows_at`."""
        rows = self.local_rows(step)
        return batches([self.train_items[i] for i in rows], len(rows), self.model.pad_id, self.model.left_pad)[0]

    def fit(self, resume: bool = False) -> TrainResult:
        cfg = self.config
        main = self.parallel.is_main
        if self.parallel.active:
            refusal = self.data_parallel_refusal()
            if refusal:
                raise TrainingError(f"{refusal}; launch one process (without torchrun/accelerate launch)")
        seed_everything(cfg.seed)
        if self.parallel.rank:  # rank 0's stream is a one-process run's; the others draw their own
            torch.manual_seed(rank_seed(cfg.seed, self.parallel.rank))
        self.model.to(self.device)
        groups = parameter_groups(self.model, cfg)
        if not groups:
            raise TrainingError("nothing to train: the method and head have no trainable parameters")
        optimizer = torch.optim.AdamW(groups, lr=groups[0]["lr"])
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(cfg.max_steps, cfg.warmup_ratio))
        state: dict[str, Any] = {"step": 0, "best_dev": -1.0, "best_step": -1, "bad_evals": 0, "history": [],
                                 "train_seconds": 0.0, "stopped_early": False}
        if not cfg.quiet and main:
            tqdm.write(f"optimizer groups: {describe_groups(groups)}")
        if resume:
            state = self._resume(optimizer, state)
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(cfg.max_steps, cfg.warmup_ratio),
                                                         last_epoch=state["step"] - 1)
        elif self.output_dir is not None and main:
            self._metrics_path().parent.mkdir(parents=True, exist_ok=True)
            self._metrics_path().write_text("")
        self._state = state
        self._callback("on_train_begin")
        self.model.train()
        params = [p for g in groups for p in g["params"]]
        # a bar on a terminal; in a log file one line per evaluation instead of hundreds of redraws
        self._log_lines = not cfg.quiet and not stderr_is_terminal() and main
        self._started, self._start_step = time.perf_counter(), state["step"]
        bar = tqdm(total=cfg.max_steps, initial=state["step"], disable=cfg.quiet or self._log_lines or not main,
                   desc="train", unit="step", dynamic_ncols=True)
        try:
            if cfg.eval_at_start and state["step"] == 0:
                self._evaluate(state)
                self.model.train()
            while state["step"] < cfg.max_steps and not state["stopped_early"]:
                step = state["step"]
                started = time.perf_counter()
                loss = self.training_step(self.batch_at(step).to(self.device), step)
                # data-parallel: every process now holds the whole batch's gradient and loss
                loss = self.parallel.reduce_gradients(params, loss, self.batch_share(step))
                if not torch.isfinite(loss):
                    raise TrainingError(f"the loss became {loss.item()} at step {step}; lower --lr or check the data"
                                        + self._kept_note())
                self._watch_divergence(state, float(loss), step)
                if cfg.max_grad_norm > 0:
                    self.accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                state["train_seconds"] += time.perf_counter() - started
                state["step"] = step + 1
                bar.update(1)
                self._last_loss = loss.item()
                self._callback("on_step", {"step": state["step"], "loss": self._last_loss,
                                           "lr": schedule.get_last_lr()[0]})
                if state["step"] % cfg.log_every == 0 or state["step"] == cfg.max_steps:
                    self._log({"step": state["step"], "loss": round(loss.item(), 6), "lr": schedule.get_last_lr()[0]})
                    best = f"{state['best_dev']:.3f}" if state["best_step"] >= 0 else "-"
                    bar.set_postfix(loss=f"{loss.item():.4f}", best_dev=best)
                if state["step"] % cfg.eval_every == 0 or state["step"] == cfg.max_steps:
                    self._evaluate(state)
                self._honour_stop_request(state)
                if self.output_dir is not None and (
                    (cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0)
                    or state["step"] == cfg.max_steps or state["stopped_early"]
                ):
                    self._checkpoint(optimizer, state)
        finally:
            bar.close()
        if self.parallel.active:  # what runs after training (SPT's rebuilt model) draws the same numbers everywhere
            set_rng_state(self.parallel.broadcast(rng_state()))
        self._restore_best()
        seconds = state["train_seconds"]
        result = TrainResult(best_dev=state["best_dev"], best_step=state["best_step"], steps=state["step"],
                             train_seconds=seconds, seconds_per_step=seconds / max(1, state["step"]),
                             history=state["history"], stopped_early=state["stopped_early"],
                             stop_reason=state.get("stop_reason"))
        self._callback("on_train_end", result)
        return result

    # ------------------------------------------------------------------ pieces
    def _honour_stop_request(self, state: dict[str, Any]) -> None:
        """End the run after this step when a callback asked for it (logged with its reason)."""
        reason, self._stop_requested = self._stop_requested, None
        if self.callbacks and self.parallel.active:  # rank 0's callbacks decide for every rank
            reason = self.parallel.broadcast(reason)
        if reason is not None and not state["stopped_early"]:
            self._stop_early(state, reason)

    def _stop_early(self, state: dict[str, Any], reason: str) -> None:
        state["stopped_early"], state["stop_reason"] = True, reason
        self._log({"step": state["step"], "event": "early_stop", "reason": reason})

    def _print_progress(self, state: dict[str, Any], dev: float) -> None:
        """The log-file form of the progress bar: step, loss, dev, best so far and time left."""
        done = state["step"] - self._start_step
        elapsed = time.perf_counter() - self._started
        left = elapsed / done * (self.config.max_steps - state["step"]) if done else 0.0
        best = max(state["best_dev"], dev)
        loss = getattr(self, "_last_loss", float("nan"))
        tqdm.write(f"step {state['step']}/{self.config.max_steps}  loss {loss:.4f}  dev {dev:.4f}  "
                   f"best {best:.4f}  elapsed {elapsed:.0f} s  left ~{left:.0f} s")

    def _kept_note(self) -> str:
        if self.output_dir is not None and (self.output_dir / BEST_DIR).is_dir():
            return f" (the last good adapter is kept in {self.output_dir / BEST_DIR})"
        return ""

    def _watch_divergence(self, state: dict[str, Any], loss: float, step: int) -> None:
        """Stop a run whose loss explodes: the mean of the last 10 steps above 5x the first 10 steps' mean
        (and 2 nats above it). Such a run only gets worse, and its adapter must not look trained."""
        recent = state.setdefault("recent_losses", [])
        first = state.setdefault("first_losses", [])
        if len(first) < DIVERGENCE_WINDOW:
            first.append(loss)
            return
        recent.append(loss)
        del recent[:-DIVERGENCE_WINDOW]
        if len(recent) < DIVERGENCE_WINDOW:
            return
        start, now = sum(first) / len(first), sum(recent) / len(recent)
        if now > 5 * start and now > start + 2.0:
            raise TrainingError(f"the training loss exploded (mean {now:.2f} over the last {DIVERGENCE_WINDOW} steps, "
                                f"{start:.2f} at the start) by step {step + 1}; lower --lr" + self._kept_note())

    def _evaluate(self, state: dict[str, Any]) -> None:
        bad = [n for n, p in self.model.named_parameters() if p.requires_grad and not torch.isfinite(p).all()]
        if bad:
            raise TrainingError(f"parameter {bad[0]} became non-finite at step {state['step']}; lower --lr"
                                + self._kept_note())
        if not self.dev_items:
            # no dev set: the last model is the best one
            state["best_step"], state["best_dev"] = state["step"], 0.0
            self._keep_best(state)
            return
        record: dict[str, Any] | None = None
        self.sync_extra_record()
        if self.parallel.is_main:  # rank 0 evaluates; every rank takes the same decisions from its scores
            scores = self.dev_scores()
            record = {"step": state["step"], "dev_accuracy": scores["accuracy"],
                      **({"dev_macro_f1": scores["macro_f1"]} if "macro_f1" in scores else {}),  # a generator has none
                      **self.extra_record()}
        record = self.parallel.broadcast(record)
        assert record is not None
        state["history"].append(record)
        self._log(record)
        accuracy = record["dev_accuracy"]
        if getattr(self, "_log_lines", False):
            self._print_progress(state, accuracy)
        if accuracy > state["best_dev"]:
            state["best_dev"], state["best_step"], state["bad_evals"] = accuracy, state["step"], 0
            self._keep_best(state)
            if not self.config.train_past_perfect_dev and accuracy >= 1.0:
                # only a strictly better score replaces the kept model, and none is better than 1.0
                self._stop_early(state, "dev accuracy 1.0")
        else:
            state["bad_evals"] += 1
            if self.config.patience and state["bad_evals"] >= self.config.patience:
                self._stop_early(state, f"no dev improvement in {self.config.patience} evaluations (patience)")
        self._callback("on_evaluate", record)

    def _keep_best(self, state: dict[str, Any]) -> None:
        if self.output_dir is not None:
            if not self.parallel.is_main:
                return
            self.model.save_pretrained(self.output_dir / BEST_DIR,
                                       extra={"step": state["step"], "dev_accuracy": state["best_dev"], **self.run_info})
            self._callback("on_save", self.output_dir / BEST_DIR, "best")
        else:
            self._best_state = {k: v.clone() for k, v in self.model.trainable_state().items()}

    def _restore_best(self) -> None:
        from promptlearning.adapters import WEIGHTS_FILE, load_state_into, load_tensors

        self.parallel.barrier()  # rank 0 has written best/
        if self.output_dir is not None and (self.output_dir / BEST_DIR / WEIGHTS_FILE).is_file():
            best = load_tensors(self.output_dir / BEST_DIR / WEIGHTS_FILE)
        else:
            best = getattr(self, "_best_state", {})
        if best:
            load_state_into(self.model, best, set(self.model.trainable_state()), self.output_dir or Path("."))

    def _metrics_path(self) -> Path:
        assert self.output_dir is not None
        return self.output_dir / METRICS_FILE

    def _log(self, record: dict[str, Any]) -> None:
        if self.output_dir is not None and self.parallel.is_main:
            with self._metrics_path().open("a") as fh:
                fh.write(json.dumps(record) + "\n")

    def _fingerprint(self) -> dict[str, Any]:
        """Everything that changes what a run computes: a resume refuses any difference, naming it.

        The model's whole adapter config (method and its options, head, labels, task(s), template,
        max length, the backbone's identity and weights fingerprint), the training settings, the
        run's data identity (task, shots, seeds) and a digest of the tokenised training and dev rows,
        so another task, data seed, file content or tokenisation is caught even where no flag names it.
        """
        from promptlearning.adapters import adapter_config

        model = adapter_config(self.model)
        model.pop("version", None)  # a library upgrade alone does not change the run
        return {"train": train_section(self.config.to_dict()),
                "method": type(self.model.method).name, "method_config": self.model.method.config.to_dict(),
                "n_train": len(self.train_items), "n_dev": len(self.dev_items),
                "model": model, "run": {k: v for k, v in self.run_info.items() if k in RUN_IDENTITY},
                "data_digest": {"train": digest_rows(self.train_items), "dev": digest_rows(self.dev_items)}}

    def _checkpoint(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        assert self.output_dir is not None
        rngs = self.parallel.gather(rng_state()) if self.parallel.active else None  # every rank's RNG
        if not self.parallel.is_main:
            return
        extra_tensors, extra_meta = self.strategy_state()
        save_checkpoint(self.output_dir / CHECKPOINT_DIR, self.model.trainable_state(), optimizer,
                        {"state": state, "run": self._fingerprint(), "strategy": extra_meta},
                        {f"strategy.{k}": v for k, v in extra_tensors.items()}, rngs)
        self._callback("on_save", self.output_dir / CHECKPOINT_DIR, "checkpoint")

    def _resume(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> dict[str, Any]:
        from promptlearning.adapters import load_state_into

        if self.output_dir is None:
            raise TrainingError("--resume needs --output, the directory of the run to continue")
        tensors, meta = load_checkpoint(self.output_dir / CHECKPOINT_DIR)
        self.parallel.check_resume(int(meta.get("world_size", 1)), str(self.output_dir))
        now = json.loads(json.dumps(self._fingerprint()))
        saved = meta.get("run") or {}
        if saved.keys() < now.keys():  # made by a version that fingerprinted less: compare what it kept
            now = {k: v for k, v in now.items() if k in saved}
        if saved != now:
            raise TrainingError(f"the checkpoint in {self.output_dir} was made with other settings "
                                f"({describe_changes(saved, now) or 'unknown'}); "
                                "resume with the same options, choose a new --output, or add --overwrite "
                                "(without --resume) to start afresh there")
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        load_state_into(self.model, model_state, set(self.model.trainable_state()), self.output_dir / CHECKPOINT_DIR)
        try:  # the file was checked for what every checkpoint holds; these parts follow the optimizer and strategy
            restore_optimizer(optimizer, tensors, meta["optimizer"], meta["state"]["step"])
            restore_rng(tensors, self.parallel.rank, self.parallel.world_size)
            self.load_strategy_state({k[len("strategy."):]: v for k, v in tensors.items()
                                      if k.startswith("strategy.")}, meta.get("strategy", {}))
        except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:
            raise damaged(self.output_dir / CHECKPOINT_DIR, f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc
        state = meta["state"]
        # drop log lines written after the checkpoint by the run that was killed
        path = self._metrics_path()
        if path.is_file() and self.parallel.is_main:
            kept = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln).get("step", 0) <= state["step"]]
            path.write_text("".join(ln + "\n" for ln in kept))
        return state
