"""Scoring a prompt: evaluate a PromptModel whose head has no trained parameters.

Any head with nothing to train can score a prompt without training: the verbaliser over a
causal LM's head, or a label-description head on an encoder. A candidate's *fitness* is its
accuracy plus ``margin_weight`` times its mean label margin, where an example's margin is the
softmax probability of the gold label minus the largest other label's probability (in
[-1, 1]): among prompts with equal accuracy, the one that separates the labels more wins.

Forward passes are counted as rows through the backbone (one example is one row; a
verbaliser with multi-token label words runs a row per word), measured by a hook on the
backbone, so the count is what ran, not an estimate. A search builds a model per candidate;
the scorer builds them all on encodings it made once (the label-description head's label
names), so building a model after the scorer's first costs no forward pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch

from promptlearning.backbones import Backbone
from promptlearning.data.batching import Encoded, batches
from promptlearning.data.examples import Example
from promptlearning.data.task_info import reusing_encodings
from promptlearning.errors import ConfigError
from promptlearning.heads.base import HeadConfig
from promptlearning.model import PromptModel


@dataclass(frozen=True)
class Score:
    fitness: float
    accuracy: float
    margin: float
    forwards: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fixed_tokens(tokenizer: Any, template: str) -> int:
    """Tokens a template takes besides its inputs (its fixed words and the special tokens)."""
    from promptlearning.data.templates import Template, special_tokens, tokenize

    prefix, suffix = special_tokens(tokenizer)
    parsed = Template.parse(template)
    return len(prefix) + len(suffix) + sum(len(tokenize(tokenizer, p.value)) for p in parsed.parts
                                           if p.kind == "literal")


@contextmanager
def count_rows(backbone: Backbone) -> Iterator[list[int]]:
    """Count the rows every forward of the backbone's transformer processes."""
    seen = [0]

    def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        x = kwargs.get("inputs_embeds")
        if x is None:
            x = kwargs.get("input_ids", args[0] if args else None)
        seen[0] += int(x.shape[0]) if x is not None else 0

    handle = backbone.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


def check_scoring_head(backbone: Backbone, head: HeadConfig, labels: Sequence[str]) -> None:
    """Refuse heads that need an LM head the backbone lacks, and label words the tokenizer cannot score."""
    if head.head_class().needs_lm_head and backbone.lm_head is None:
        raise ConfigError(f"prompt search scores prompts with the {head.kind} head, which needs an LM head; "
                          f"{backbone.info.name} has none: use --backbone smollm2-135m, or a head with no trained "
                          "parameters that works on encoders (--head label_description)")
    words = head.words_per_label(labels)
    tok = backbone.tokenizer
    unk = getattr(tok, "unk_token_id", None)
    for label, items in words.items():
        for word in items:
            ids = tok(" " + str(word).strip(), add_special_tokens=False)["input_ids"]
            if not str(word).strip() or not ids:
                raise ConfigError(f"label word {word!r} of {label!r} cannot be scored: the tokenizer gives it no "
                                  "tokens; choose a non-empty word")
            if unk is not None and unk in ids:
                raise ConfigError(f"label word {word!r} of {label!r} cannot be scored: the tokenizer knows it only "
                                  "as the unknown token; choose a word in its vocabulary")


class PromptScorer:
    """Scores templates (or whole models) on a fixed list of examples, counting forward passes."""

    def __init__(self, backbone: Backbone, labels: Sequence[str], examples: Sequence[Example], *,
                 head: HeadConfig, task: str | None = None, max_length: int = 96, batch_size: int = 32,
                 margin_weight: float = 0.5) -> None:
        if not examples:
            raise ConfigError("nothing to score prompts on: the search split is empty; use more --shots")
        check_scoring_head(backbone, head, labels)
        self.backbone = backbone
        self.labels = list(labels)
        self.examples = list(examples)
        self.head = head
        self.task = task
        self.max_length = max_length
        self.batch_size = batch_size
        self.margin_weight = margin_weight
        # the backbone's encodings the models' heads need (label names), made by the first build and
        # reused by every later one: the backbone is frozen for the scorer's whole life
        self._encodings: dict[tuple[object, ...], torch.Tensor] = {}
        probe = self.model_for(None)
        trained = [n for n, p in probe.head.named_parameters() if p.requires_grad]
        if trained:
            raise ConfigError(f"head {head.kind!r} has trained parameters ({trained[0]}), so it cannot score a prompt "
                              "without training; use --head verbalizer (causal LMs) or label_description")

    @property
    def n_examples(self) -> int:
        return len(self.examples)

    def model_for(self, template: str | None, method: str = "fixed_prompt",
                  options: dict[str, Any] | None = None) -> PromptModel:
        """A model scoring ``template`` (None: the head's default) with ``method``'s prompt added.

        Only the scorer's first build runs the backbone (to encode what its head needs); later ones reuse that."""
        with reusing_encodings(self._encodings):
            return PromptModel.build(self.backbone, method, self.labels, method_options=options, head=self.head,
                                     task=self.task, max_length=self.max_length, template=template)

    def fitness(self, accuracy: float, margin: float) -> float:
        return accuracy + self.margin_weight * margin

    def score_template(self, template: str) -> Score:
        return self.score_model(self.model_for(template))

    @torch.no_grad()
    def score_model(self, model: PromptModel, items: Sequence[Encoded] | None = None) -> Score:
        """Accuracy, margin and fitness of a model on the scoring examples (or given items)."""
        items = list(items) if items is not None else model.encode(self.examples)
        was_training = model.training
        model.eval()
        probs, gold = [], []
        with count_rows(self.backbone) as rows:
            for batch in batches(items, self.batch_size, model.pad_id, model.left_pad):
                gold.append(batch.labels)
                batch.labels = None
                probs.append(model(batch.to(model.device)).logits.float().softmax(-1).cpu())
        model.train(was_training)
        p = torch.cat(probs)  # (N, C)
        y = torch.cat([g for g in gold if g is not None])  # (N,)
        accuracy = float((p.argmax(-1) == y).float().mean())
        gold_p = p.gather(1, y.unsqueeze(1)).squeeze(1)  # (N,)
        others = p.scatter(1, y.unsqueeze(1), float("-inf")).max(-1).values  # (N,)
        margin = float((gold_p - others).mean())
        return Score(self.fitness(accuracy, margin), accuracy, margin, rows[0])
