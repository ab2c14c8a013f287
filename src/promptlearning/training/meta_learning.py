"""Meta-learned initialisation: episodes across tasks, an inner loop that adapts, an outer loop that learns the start.

Each outer step draws ``tasks_per_step`` episodes. An episode is one training task's support
set (``support_shots`` per class) and query set (up to ``query_size`` other examples of it).
The inner loop adapts the method's weights (the prompt, or the generator) on the support set
by ``inner_steps`` steps of plain gradient descent; the outer loop then moves the shared
initialisation with the plain trainer's optimizer:

* ``fomaml``: the query-loss gradient at the adapted weights (first-order MAML);
* ``maml``: the exact gradient through the inner steps (second order, ``torch.func``);
* ``reptile``: toward the adapted weights (gradient ``theta - phi``);
* ``reinforce``: for inner steps that cannot be differentiated. ``reinforce_samples``
  perturbed starts theta + eps are each adapted and scored by query accuracy minus query loss; the outer
  gradient is REINFORCE's estimate with a per-step mean baseline and normalised rewards.

Episodes are a pure function of (seed, step), so a killed run resumes exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch.func import functional_call

from promptlearning.configs import option
from promptlearning.data.batching import Batch, Encoded, batches
from promptlearning.errors import ConfigError, TrainingError
from promptlearning.training.multitask import by_task
from promptlearning.training.trainer import Trainer

ALGORITHMS = ("fomaml", "maml", "reptile", "reinforce")


@dataclass
class MetaConfig:
    meta_algorithm: str | None = option(None, "meta-learning outer loop: fomaml, maml, reptile or reinforce (None: plain multi-task)")
    inner_steps: int = option(3, "gradient steps of the inner loop on the support set")
    inner_lr: float = option(1.0, "step size of the inner loop (plain gradient descent)")
    support_shots: int = option(4, "support examples per class in an episode")
    query_size: int = option(16, "query examples in an episode (at most)")
    tasks_per_step: int = option(2, "episodes (tasks) per outer step")
    reinforce_samples: int = option(4, "perturbed starts per episode (reinforce)")
    reinforce_sigma: float = option(0.02, "standard deviation of the perturbation (reinforce)")

    def __post_init__(self) -> None:
        if self.meta_algorithm is not None and self.meta_algorithm not in ALGORITHMS:
            raise ConfigError(f"unknown meta algorithm {self.meta_algorithm!r}; choose one of: {', '.join(ALGORITHMS)}")
        for name in ("inner_steps", "support_shots", "query_size", "tasks_per_step", "reinforce_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.inner_lr <= 0 or self.reinforce_sigma <= 0:
            raise ConfigError("inner_lr and reinforce_sigma must be > 0")


def split_episode(items: list[Encoded], indices: list[int], shots: int, query_size: int,
                  gen: torch.Generator) -> tuple[list[Encoded], list[Encoded]]:
    """Support (``shots`` per class) and query (the rest, at most ``query_size``) of one task."""
    order = [indices[i] for i in torch.randperm(len(indices), generator=gen).tolist()]
    per_class: dict[int, int] = {}
    support, rest = [], []
    for i in order:
        label = items[i].label
        if per_class.get(label, 0) < shots:
            per_class[label] = per_class.get(label, 0) + 1
            support.append(items[i])
        else:
            rest.append(items[i])
    return support, rest[:query_size]


def _grads(loss: torch.Tensor, params: dict[str, torch.Tensor], create_graph: bool) -> list[torch.Tensor]:
    """Gradients of ``loss`` for every tensor; a parameter the loss does not use gets zeros."""
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params.values(), grads, strict=True)]


class MetaTrainer(Trainer):
    """Outer loop over episodes; the optimizer, schedule, checkpoints and dev evaluation are the plain trainer's."""

    def __init__(self, *args: Any, meta: MetaConfig, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if meta.meta_algorithm is None:
            raise ConfigError("MetaTrainer needs meta_algorithm (fomaml, maml, reptile or reinforce)")
        self.meta = meta
        self.groups = by_task(self.train_items)
        for task, idx in self.groups.items():
            classes = {self.train_items[i].label for i in idx}
            if len(idx) < meta.support_shots * len(classes) + 1:
                name = self.model.tasks[task].name if task < len(self.model.tasks) else task
                raise TrainingError(f"task {name} has {len(idx)} training examples: too few for {meta.support_shots} "
                                    "support examples per class plus a query; lower --support-shots or raise --shots")
        if len(self.groups) < 2:
            raise ConfigError("meta-learning needs at least two training tasks; give --tasks with two or more")
        self._names = [n for n, p in self.model.named_parameters()
                       if p.requires_grad and n.startswith("method.")]
        if not self._names:
            raise ConfigError("the method has no weights to adapt in the inner loop; choose a trainable prompt method")

    def data_parallel_refusal(self) -> str | None:
        return "meta-learning (--meta-algorithm) does not run data-parallel: each step adapts on whole episodes"

    def _fingerprint(self) -> dict[str, Any]:
        # other inner-loop settings make another run: a resume under them must be refused
        return {**super()._fingerprint(), "meta": dataclasses.asdict(self.meta)}

    # ---------------------------------------------------------------- episodes
    def episodes(self, step: int) -> list[tuple[Batch, Batch]]:
        gen = torch.Generator().manual_seed(self.config.seed * 100_003 + step)
        tasks = list(self.groups)
        out = []
        for _ in range(self.meta.tasks_per_step):
            task = tasks[int(torch.randint(len(tasks), (1,), generator=gen))]
            support, query = split_episode(self.train_items, self.groups[task], self.meta.support_shots,
                                           self.meta.query_size, gen)
            pad, left = self.model.pad_id, self.model.left_pad
            out.append((batches(support, len(support), pad, left)[0].to(self.device),
                        batches(query, len(query), pad, left)[0].to(self.device)))
        return out

    def batch_at(self, step: int) -> Batch:
        # the episodes are drawn in training_step; this batch only satisfies the loop's signature
        return batches(self.train_items[:1], 1, self.model.pad_id, self.model.left_pad)[0]

    # ---------------------------------------------------------------- inner loop
    def _loss(self, params: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        out = functional_call(self.model, params, (batch,), strict=False)
        assert out.loss is not None
        return out.loss

    def adapt(self, start: dict[str, torch.Tensor], support: Batch, create_graph: bool) -> dict[str, torch.Tensor]:
        """``inner_steps`` gradient steps from ``start`` on the support batch."""
        fast = start if create_graph else {k: v.detach().requires_grad_() for k, v in start.items()}
        for _ in range(self.meta.inner_steps):
            grads = _grads(self._loss(fast, support), fast, create_graph)
            fast = {k: v - self.meta.inner_lr * g for (k, v), g in zip(fast.items(), grads, strict=True)}
            if not create_graph:
                fast = {k: v.detach().requires_grad_() for k, v in fast.items()}
        return fast

    def _accumulate(self, grads: dict[str, torch.Tensor], scale: float) -> None:
        params = dict(self.model.named_parameters())
        for name, g in grads.items():
            p = params[name]
            p.grad = g.detach() * scale if p.grad is None else p.grad + g.detach() * scale

    # ---------------------------------------------------------------- outer loop
    def training_step(self, batch: Batch, step: int) -> torch.Tensor:
        algo = self.meta.meta_algorithm
        params = dict(self.model.named_parameters())
        start: dict[str, torch.Tensor] = {n: params[n] for n in self._names}
        episodes = self.episodes(step)
        scale = 1.0 / len(episodes)
        total = torch.zeros((), device=self.device)
        for support, query in episodes:
            if algo == "maml":
                from torch.nn.attention import SDPBackend, sdpa_kernel

                # second derivatives through attention exist only for the math kernel
                with sdpa_kernel(SDPBackend.MATH):
                    fast = self.adapt(start, support, create_graph=True)
                    loss = self._loss(fast, query)
                    self.accelerator.backward(loss * scale)
            elif algo == "fomaml":
                fast = self.adapt(start, support, create_graph=False)
                loss = self._loss(fast, query)
                grads = _grads(loss, fast, False)
                self._accumulate(dict(zip(fast, grads, strict=True)), scale)
            elif algo == "reptile":
                fast = self.adapt(start, support, create_graph=False)
                with torch.no_grad():
                    loss = self._loss(fast, query)
                self._accumulate({n: start[n].detach() - fast[n].detach() for n in start}, scale)
            else:
                loss = self._reinforce(start, support, query, step, scale)
            total = total + loss.detach()
        return total / len(episodes)

    def _reinforce(self, start: dict[str, torch.Tensor], support: Batch, query: Batch, step: int,
                   scale: float) -> torch.Tensor:
        from promptlearning.training.metrics import accuracy

        gen = torch.Generator().manual_seed(self.config.seed * 7_919 + step)
        sigma, n = self.meta.reinforce_sigma, self.meta.reinforce_samples
        noises, rewards, losses = [], [], []
        for _ in range(n):
            noise = {k: torch.randn(v.shape, generator=gen).to(v) * sigma for k, v in start.items()}
            fast = self.adapt({k: start[k].detach() + noise[k] for k in start}, support, create_graph=False)
            with torch.no_grad():
                out = functional_call(self.model, fast, (query,), strict=False)
            assert query.labels is not None and out.loss is not None
            # accuracy alone is flat across nearby starts; the gold log-probability breaks ties
            rewards.append(accuracy(out.logits.argmax(-1).tolist(), query.labels.tolist()) - float(out.loss))
            losses.append(out.loss)
            noises.append(noise)
        reward = torch.tensor(rewards)
        advantage = (reward - reward.mean()) / (reward.std() + 1e-6) if n > 1 else reward - reward.mean()
        # gradient of -E[R] with respect to the start: -E[A * eps] / sigma^2
        grads = {k: -sum(float(a) * eps[k] for a, eps in zip(advantage, noises, strict=True)) / (n * sigma ** 2)
                 for k in start}
        self._accumulate(grads, scale)  # type: ignore[arg-type]
        return torch.stack(losses).mean()
