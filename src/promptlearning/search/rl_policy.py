"""Reinforcement learning of a discrete prompt (in the spirit of RLPrompt).

A small policy writes ``num_words`` words, one at a time, that are placed into a base
prompt (the first seed prompt) before or after the input. The policy is an MLP over a frozen
backbone's hidden state: the mean last hidden state of the base prompt with an empty input
(one forward pass, counted), concatenated with the embedding of the word just written and a
learned position vector; its output, dotted with the candidates' input embeddings, gives the
logits over a restricted candidate list: the ``candidates`` readable words most frequent in the
search split's texts and the seed prompts (topped up with low-id vocabulary words if few).

Training is REINFORCE: each step samples ``samples`` prompts, scores them on the search split
(reward = fitness: accuracy plus weighted label margin), and ascends
``(r - b) / s * grad log pi(prompt)`` plus an entropy bonus, where the baseline ``b`` is an
exponential moving average of the batches' mean reward and the scale ``s`` the standard
deviation of every reward so far (reward normalisation). Everything is seeded, so a killed run replays to where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from promptlearning.data.examples import Example
from promptlearning.errors import ConfigError
from promptlearning.injection import run_backbone
from promptlearning.methods.base import option
from promptlearning.search.base import (
    SearchContext,
    Searcher,
    SearcherConfig,
    SearchOutcome,
    positive,
    register_searcher,
)
from promptlearning.search.budget import BudgetExhausted
from promptlearning.search.candidates import DiscretePrompt, is_slot
from promptlearning.search.scoring import Score, count_rows
from promptlearning.search.vocabulary import Vocabulary

POSITIONS = ("after_input", "before_input", "start")


@dataclass
class RLConfig(SearcherConfig):
    num_words: int = option(4, "words the policy writes")
    samples: int = option(8, "prompts sampled per REINFORCE step")
    steps: int = option(0, "stop after this many steps (0: when the budget is spent)")
    candidates: int = option(500, "the policy picks among this many words: the task text's most frequent readable ones")
    hidden: int = option(128, "hidden width of the policy MLP")
    lr: float = option(0.003, "Adam learning rate of the policy")
    entropy: float = option(0.01, "weight of the entropy bonus")
    baseline_decay: float = option(0.8, "decay of the moving-average baseline (mean reward)")
    position: str = option("after_input", "where the words go in the base prompt: after_input, before_input, start")

    def check(self) -> None:
        positive(self, "num_words", "samples", "candidates", "hidden")
        if self.position not in POSITIONS:
            raise ConfigError(f"unknown position {self.position!r}; choose one of: {', '.join(POSITIONS)}")
        if self.lr <= 0 or not 0.0 <= self.baseline_decay < 1.0 or self.entropy < 0 or self.steps < 0:
            raise ConfigError("lr must be > 0, baseline_decay in [0, 1), entropy and steps >= 0")


class TokenPolicy(nn.Module):
    """pi(word_t | context, word_{t-1}, t): an MLP whose output scores the candidate embeddings."""

    def __init__(self, context: torch.Tensor, candidates: torch.Tensor, num_words: int, hidden: int) -> None:
        super().__init__()
        size = candidates.shape[1]
        self.register_buffer("context", F.layer_norm(context.float(), (size,)))  # (H,)
        self.register_buffer("candidates", F.layer_norm(candidates.float(), (size,)))  # (K, H)
        self.inp = nn.Linear(2 * size, hidden)
        self.position = nn.Embedding(num_words, hidden)
        self.out = nn.Linear(hidden, size)
        self.bias = nn.Parameter(torch.zeros(candidates.shape[0]))  # (K,)
        nn.init.normal_(self.position.weight, std=0.02)
        self.num_words = num_words

    def logits(self, previous: torch.Tensor, step: int) -> torch.Tensor:
        """(S,) previous choices (-1 at the start) -> (S, K) logits."""
        cands: torch.Tensor = self.candidates  # type: ignore[assignment]
        ctx: torch.Tensor = self.context  # type: ignore[assignment]
        prev = torch.where(previous.unsqueeze(-1) >= 0, cands[previous.clamp(min=0)], torch.zeros_like(cands[:1]))
        x = torch.cat([ctx.expand(len(previous), -1), prev], dim=-1)  # (S, 2H)
        h = torch.tanh(self.inp(x) + self.position.weight[step])  # (S, hidden)
        return self.out(h) @ cands.T / cands.shape[1] ** 0.5 + self.bias  # (S, K)

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n sequences (n, T), their log-probabilities (n,) and entropies (n,)."""
        previous = torch.full((n,), -1, dtype=torch.long)
        chosen, logp, entropy = [], torch.zeros(n), torch.zeros(n)
        for t in range(self.num_words):
            log_probs = self.logits(previous, t).log_softmax(-1)  # (n, K)
            pick = torch.multinomial(log_probs.detach().exp(), 1, generator=generator).squeeze(1)  # (n,)
            logp = logp + log_probs.gather(1, pick.unsqueeze(1)).squeeze(1)
            entropy = entropy - (log_probs.exp() * log_probs).sum(-1)
            chosen.append(pick)
            previous = pick
        return torch.stack(chosen, dim=1), logp, entropy


def place_words(base: DiscretePrompt, text: str, position: str) -> DiscretePrompt:
    """The base prompt with a new phrase ``text`` at ``position``."""
    phrases = list(base.phrases)
    slot = next(i for i, p in enumerate(phrases) if is_slot(p) and p.strip() == "{text_a}")
    index = {"start": 0, "before_input": slot, "after_input": slot + 1}[position]
    phrases.insert(index, (" " if index else "") + text)
    if index == 0 and len(phrases) > 1:
        phrases[1] = (phrases[1][:1] if phrases[1][:1].isspace() else " ") + phrases[1].lstrip()
    return DiscretePrompt(tuple(phrases))


@register_searcher
class ReinforceSearch(Searcher):
    name = "rl"
    config_class = RLConfig
    rounds_option = "steps"
    summary = "REINFORCE-trained MLP policy over a frozen hidden state writes prompt words from a candidate list"

    def __init__(self, config: RLConfig, ctx: SearchContext) -> None:
        super().__init__(config, ctx)
        self.config: RLConfig = config
        self.vocabulary = Vocabulary(ctx.scorer.backbone)
        self.base = ctx.seeds[0]
        texts = [e.text_a for e in ctx.scorer.examples] + [s.template for s in ctx.seeds]
        rows = self.vocabulary.rows_in(texts, config.candidates)
        self.words = [self.vocabulary.words[r] for r in rows]
        ids = torch.tensor([self.vocabulary.ids[r] for r in rows])
        embeddings = ctx.scorer.backbone.input_embeddings().weight.detach()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)
            self.policy = TokenPolicy(self.context_state(), embeddings[ids].cpu(), config.num_words, config.hidden)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.lr)
        self.generator = torch.Generator().manual_seed(ctx.seed)
        self.history: list[dict[str, float]] = []

    @classmethod
    def evaluations_per_round(cls, config: SearcherConfig) -> int:
        return config.samples  # type: ignore[attr-defined]

    @torch.no_grad()
    def context_state(self) -> torch.Tensor:
        """Mean last hidden state of the base prompt with an empty input, (H,); its forward is counted."""
        scorer = self.ctx.scorer
        model = scorer.model_for(self.base.template)
        batch = model.encode([Example("", 0)])
        from promptlearning.data.batching import collate

        with count_rows(scorer.backbone) as rows:
            hidden, mask, _ = run_backbone(scorer.backbone, model.method, collate(batch, model.pad_id, True).to(model.device))
        self.ctx.budget.charge(rows[0])
        weights = mask.unsqueeze(-1).float()
        return ((hidden.float() * weights).sum(1) / weights.sum(1)).squeeze(0).cpu()  # (H,)

    def prompt_of(self, choice: list[int]) -> DiscretePrompt:
        return place_words(self.base, " ".join(self.words[i] for i in choice), self.config.position)

    def score(self, prompt: DiscretePrompt) -> Score:
        return self.ctx.budget.evaluate(prompt.template, lambda: self.ctx.scorer.score_template(prompt.template))

    def step(self, state: dict[str, float]) -> None:
        """One REINFORCE step: sample, score, update (raises BudgetExhausted before updating)."""
        cfg = self.config
        tokens, logp, entropy = self.policy.sample(cfg.samples, self.generator)
        prompts = [self.prompt_of(row) for row in tokens.tolist()]
        rewards = torch.tensor([self.score(p).fitness for p in prompts])
        mean = float(rewards.mean())
        # reward normalisation: the spread of every reward seen so far (Welford), steadier than one batch's
        for r in rewards.tolist():
            state["n"] = state.get("n", 0.0) + 1
            delta = r - state.get("mu", 0.0)
            state["mu"] = state.get("mu", 0.0) + delta / state["n"]
            state["m2"] = state.get("m2", 0.0) + delta * (r - state["mu"])
        spread = (state["m2"] / max(state["n"] - 1, 1)) ** 0.5
        state.setdefault("baseline", mean)
        advantage = (rewards - state["baseline"]) / (spread + 1e-3)  # (S,)
        loss = -(advantage * logp).mean() - cfg.entropy * entropy.mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        state["baseline"] = cfg.baseline_decay * state["baseline"] + (1 - cfg.baseline_decay) * mean
        self.history.append({"step": len(self.history) + 1, "mean_reward": mean, "forwards": self.ctx.budget.used})

    def run(self) -> SearchOutcome:
        state: dict[str, float] = {}
        try:
            while not self.config.steps or len(self.history) < self.config.steps:
                self.step(state)
                last = self.history[-1]
                if len(self.history) % 5 == 0:
                    self.ctx.log(f"step {last['step']}: mean reward {last['mean_reward']:.4f}, "
                                 f"{self.ctx.budget.used} forward passes")
        except BudgetExhausted:
            pass
        top = self.ctx.budget.top(10)
        return SearchOutcome(self.ctx.scorer.model_for(top[0][0]), top[0][0], top,
                             {"steps": len(self.history), "reward_history": self.history})
