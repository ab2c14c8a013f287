"""The verbaliser head: classify by the LM head's scores of label words after a template.

A label scores the log-sum-exp of its words' log-probabilities; a word's log-probability is
the sum over its tokens, each predicted from the text and the word's earlier tokens. When
every word is one token, one forward pass reads them all from the last position; otherwise
each row is run once per word with the word's leading tokens appended (the extra passes
are the price of multi-token words). The head adds no trainable parameters, so it also
scores a fixed hand-written prompt with no training at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .backbones import Backbone
from .data.batching import Batch
from .data.prompts import handwritten_template
from .errors import ConfigError
from .heads import Head, HeadConfig, pool, register_head
from .methods.base import PromptContext

Runner = Callable[[Batch], tuple[torch.Tensor, PromptContext]]


def label_word_ids(tokenizer: Any, label_words: dict[str, list[str]], labels: Sequence[str],
                   leading_space: bool) -> list[list[tuple[int, ...]]]:
    """Token ids of each label's words; refuses missing labels, empty or odd words and collisions."""
    missing = [lab for lab in labels if lab not in label_words]
    if missing:
        raise ConfigError(f"label(s) {missing} not in the verbaliser; give words for every label, e.g. "
                          f"--label-words '{{{labels[0]}: [word]}}'")
    extra = sorted(set(label_words) - set(labels))
    if extra:
        raise ConfigError(f"verbaliser names unknown label(s) {extra}; the task's labels are {list(labels)}")
    owner: dict[tuple[int, ...], str] = {}
    out: list[list[tuple[int, ...]]] = []
    for lab in labels:
        if not label_words[lab]:
            raise ConfigError(f"label {lab!r} has no verbaliser words; give at least one")
        ids = []
        for word in label_words[lab]:
            pieces = tuple(int(i) for i in tokenizer((" " if leading_space else "") + word.strip(),
                                                     add_special_tokens=False)["input_ids"])
            if not word.strip() or not pieces:
                raise ConfigError(f"label word {word!r} cannot be scored: the tokenizer gives it no tokens")
            if not tokenizer.decode(pieces[:1]).strip():
                raise ConfigError(f"label word {word!r} splits oddly: its first token is bare whitespace; "
                                  "choose a more common word")
            if owner.get(pieces, lab) != lab:
                raise ConfigError(f"label words collide: {word!r} of {lab!r} and a word of {owner[pieces]!r} "
                                  f"tokenise the same; choose distinct words")
            owner[pieces] = lab
            ids.append(pieces)
        out.append(ids)
    return out


def append_tokens(batch: Batch, words: Sequence[tuple[int, ...]], pad_id: int) -> Batch:
    """Rows x words: each row followed by a word's leading tokens, left-padded to one width."""
    rows, width = batch.input_ids.shape
    extra = max(len(w) for w in words) - 1
    ids = torch.full((rows * len(words), width + extra), pad_id, dtype=torch.long, device=batch.input_ids.device)
    mask = torch.zeros_like(ids)
    slots = None if batch.prompt_slots is None else torch.full_like(ids, -1)
    for j, word in enumerate(words):
        lead = torch.tensor(word[:-1], dtype=torch.long, device=ids.device)
        shift = extra - len(lead)  # right-align every sequence: the last position is always the last token
        r = slice(j * rows, (j + 1) * rows)
        ids[r, shift:shift + width] = batch.input_ids
        mask[r, shift:shift + width] = batch.attention_mask
        ids[r, shift + width:] = lead
        mask[r, shift + width:] = 1
        if slots is not None and batch.prompt_slots is not None:
            slots[r, shift:shift + width] = batch.prompt_slots
    return Batch(input_ids=ids, attention_mask=mask, task_ids=batch.task_ids.repeat(len(words)),
                 task_repr=None if batch.task_repr is None else batch.task_repr.repeat(len(words), 1),
                 prompt_slots=slots)


@register_head
class VerbalizerHead(Head):
    kind = "verbalizer"

    def __init__(self, config: HeadConfig, backbone: Backbone, labels: Sequence[str]) -> None:
        super().__init__(config, backbone, labels)
        if backbone.lm_head is None:
            raise ConfigError(f"the verbalizer head needs a backbone with an LM head (e.g. smollm2-135m); "
                              f"{backbone.info.name} has none: use --head classification")
        if not backbone.info.is_decoder:
            raise ConfigError(f"the verbalizer head scores next tokens of a causal LM; {backbone.info.name} is "
                              "an encoder: use --head classification")
        self.labels = list(labels)
        words = config.label_words or {lab: [lab] for lab in labels}
        self.word_ids = label_word_ids(backbone.tokenizer, words, labels, leading_space=True)
        self._words = [w for ids in self.word_ids for w in ids]  # (W,) token tuples
        self._owner = [c for c, ids in enumerate(self.word_ids) for _ in ids]  # (W,)
        self._pad = int(backbone.tokenizer.pad_token_id or 0)
        object.__setattr__(self, "_lm_head", backbone.lm_head)  # frozen, owned by the backbone: not saved here

    @property
    def single_token(self) -> bool:
        return all(len(w) == 1 for w in self._words)

    def default_template(self, task: str | None) -> str | None:
        return handwritten_template(task, self.labels)

    def _to_labels(self, word_scores: torch.Tensor) -> torch.Tensor:
        """(B, W) word log-probabilities -> (B, C) label scores by log-sum-exp."""
        owner = torch.tensor(self._owner, device=word_scores.device)
        out = word_scores.new_full((word_scores.shape[0], len(self.labels)), float("-inf"))
        for c in range(len(self.labels)):
            out[:, c] = torch.logsumexp(word_scores[:, owner == c], dim=-1)
        return out

    def forward(self, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor:
        """Single-token words: one pass, every word read at the last position."""
        assert ctx.text_mask is not None
        lm_head: Any = self._lm_head
        last = pool(hidden[:, ctx.num_prompt_positions:], ctx.text_mask, "last")  # (B, H)
        logprobs = lm_head(last).float().log_softmax(-1)  # (B, V)
        first = torch.tensor([w[0] for w in self._words], device=last.device)
        return self._to_labels(logprobs[:, first])  # (B, C)

    def score(self, batch: Batch, run: Runner) -> torch.Tensor:
        """Label scores (B, C), running the backbone once per word when words span several tokens."""
        if self.single_token:
            hidden, ctx = run(batch)
            return self(hidden, ctx)
        lm_head: Any = self._lm_head
        rows, longest = len(batch), max(len(w) for w in self._words)
        hidden, _ = run(append_tokens(batch, self._words, self._pad))  # (B * W, S, H)
        logprobs = lm_head(hidden[:, -longest:]).float().log_softmax(-1)  # (B * W, n, V)
        scores = []
        for j, word in enumerate(self._words):
            block = logprobs[j * rows:(j + 1) * rows, longest - len(word):]  # (B, len(word), V)
            target = torch.tensor(word, device=block.device).expand(rows, -1).unsqueeze(-1)
            scores.append(block.gather(-1, target).squeeze(-1).sum(-1))  # (B,)
        return self._to_labels(torch.stack(scores, dim=1))  # (B, C)
