"""The verbaliser head: classify by the LM head's next-token scores of label words.

After the template, a causal LM's next-token distribution is read at the last position; a
label scores the log-sum-exp of its words' log-probabilities. It adds no trainable
parameters, so it also scores a fixed hand-written prompt with no training at all. A word
is scored by its first token: words of one label may share tokens, but two labels whose
words begin with the same token cannot be told apart, and that is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .backbones import Backbone
from .data.prompts import handwritten_template
from .errors import ConfigError
from .heads import Head, HeadConfig, pool, register_head
from .methods.base import PromptContext


def label_word_ids(tokenizer: Any, label_words: dict[str, list[str]], labels: Sequence[str],
                   leading_space: bool) -> list[list[int]]:
    """First-token id of each label's words; refuses missing labels, empty words and collisions."""
    missing = [lab for lab in labels if lab not in label_words]
    if missing:
        raise ConfigError(f"label(s) {missing} not in the verbaliser; give words for every label, e.g. "
                          f"--label-words '{{{labels[0]}: [word]}}'")
    extra = sorted(set(label_words) - set(labels))
    if extra:
        raise ConfigError(f"verbaliser names unknown label(s) {extra}; the task's labels are {list(labels)}")
    owner: dict[int, str] = {}
    out: list[list[int]] = []
    for lab in labels:
        words = label_words[lab]
        if not words:
            raise ConfigError(f"label {lab!r} has no verbaliser words; give at least one")
        ids = []
        for word in words:
            pieces = tokenizer((" " if leading_space else "") + word.strip(), add_special_tokens=False)["input_ids"]
            if not word.strip() or not pieces:
                raise ConfigError(f"label word {word!r} cannot be scored: the tokenizer gives it no tokens")
            if not tokenizer.decode(pieces[:1]).strip():
                raise ConfigError(f"label word {word!r} splits oddly: its first token is bare whitespace; "
                                  "choose a more common word")
            first = int(pieces[0])
            if owner.get(first, lab) != lab:
                raise ConfigError(f"label words collide: {word!r} of {lab!r} and a word of {owner[first]!r} start "
                                  f"with the same token {tokenizer.decode([first])!r}; choose distinct words")
            owner[first] = lab
            ids.append(first)
        out.append(ids)
    return out


@register_head
class VerbalizerHead(Head):
    kind = "verbalizer"

    def __init__(self, config: HeadConfig, backbone: Backbone, labels: Sequence[str]) -> None:
        super().__init__(config, backbone, labels)
        if backbone.lm_head is None:
            raise ConfigError(f"the verbalizer head needs a backbone with an LM head (e.g. smollm2-135m); "
                              f"{backbone.info.name} has none: use --head classification")
        self.labels = list(labels)
        words = config.label_words or {lab: [lab] for lab in labels}
        self.word_ids = label_word_ids(backbone.tokenizer, words, labels, backbone.info.is_decoder)
        self._flat = torch.tensor([i for ids in self.word_ids for i in ids])  # (W,)
        self._owner = torch.tensor([c for c, ids in enumerate(self.word_ids) for _ in ids])  # (W,)
        object.__setattr__(self, "_lm_head", backbone.lm_head)  # frozen, owned by the backbone: not saved here

    def default_template(self, task: str | None) -> str | None:
        return handwritten_template(task, self.labels)

    def forward(self, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor:
        assert ctx.text_mask is not None
        last = pool(hidden[:, ctx.num_prompt_positions:], ctx.text_mask, "last")  # (B, H)
        lm_head: Any = self._lm_head
        logprobs = lm_head(last).float().log_softmax(-1)  # (B, V)
        flat, owner = self._flat.to(last.device), self._owner.to(last.device)
        scores = logprobs[:, flat]  # (B, W)
        out = scores.new_full((scores.shape[0], len(self.labels)), float("-inf"))
        for c in range(len(self.labels)):
            out[:, c] = torch.logsumexp(scores[:, owner == c], dim=-1)
        return out  # (B, C)
