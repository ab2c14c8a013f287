"""How a soft prompt starts: pure functions returning a (P, H) tensor.

Kept apart from *what* the prompt is and *where* it goes, so each axis is tested alone.
Initialising from real token embeddings puts the prompt where the backbone expects its
inputs to live, which matters a great deal in few-shot training.
"""

from __future__ import annotations

from typing import Any

import torch

from promptlearning.errors import ConfigError

INITS = ("random", "vocab", "text")


def random_prompt(length: int, hidden: int, std: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian vectors, (P, H)."""
    return torch.randn(length, hidden, generator=generator) * std


def vocab_prompt(embeddings: torch.Tensor, length: int, generator: torch.Generator,
                 top: int = 5000) -> torch.Tensor:
    """Embeddings of P tokens sampled from the first ``top`` vocabulary entries, (P, H).

    Low ids are the frequent tokens in most vocabularies, so this avoids rare sub-words.
    """
    return embeddings.detach()[vocab_token_ids(length, embeddings.shape[0], generator, top)].to(torch.float32).clone()


def vocab_token_ids(length: int, vocab_size: int, generator: torch.Generator, top: int = 5000) -> torch.Tensor:
    """P token ids sampled from the first ``top`` vocabulary entries, (P,)."""
    return torch.randint(0, min(top, vocab_size), (length,), generator=generator)


def text_prompt(embeddings: torch.Tensor, tokenizer: Any, text: str, length: int) -> torch.Tensor:
    """Embeddings of a text's tokens, repeated or cut to P positions, (P, H)."""
    return embeddings.detach()[text_token_ids(tokenizer, text, length)].to(torch.float32).clone()


def text_token_ids(tokenizer: Any, text: str, length: int) -> torch.Tensor:
    """A text's token ids, repeated or cut to P, (P,)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ConfigError(f"init_text {text!r} has no tokens; give a non-empty text such as 'classify the sentiment'")
    reps = -(-length // len(ids))
    return torch.tensor((ids * reps)[:length])


def token_ids_for_init(init: str, length: int, vocab_size: int, tokenizer: Any, *, seed: int,
                       text: str | None) -> torch.Tensor:
    """The P token ids that ``init`` vocab (sampled, like :func:`vocab_prompt`) or text starts from, (P,)."""
    if init == "vocab":
        return vocab_token_ids(length, vocab_size, torch.Generator().manual_seed(seed))
    if init == "text" and text:
        return text_token_ids(tokenizer, text, length)
    raise ConfigError(f"init {init!r} has no tokens to start from; choose vocab or text (with init_text)")


def initial_prompt(init: str, length: int, embeddings: torch.Tensor, tokenizer: Any, *, seed: int,
                   std: float, text: str | None) -> torch.Tensor:
    """Dispatch on the init name; the seed makes it reproducible independent of global RNG."""
    generator = torch.Generator().manual_seed(seed)
    if init == "random":
        return random_prompt(length, embeddings.shape[1], std, generator)
    if init == "vocab":
        return vocab_prompt(embeddings, length, generator)
    if init == "text":
        if not text:
            raise ConfigError("init='text' needs init_text; pass --option init_text=\"a phrase\" or choose init random/vocab")
        return text_prompt(embeddings, tokenizer, text, length)
    raise ConfigError(f"unknown init {init!r}; choose one of: {', '.join(INITS)}")
