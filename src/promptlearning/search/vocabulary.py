"""The backbone's readable words and their neighbours in input-embedding space.

A token is a *readable word* when it decodes to letters only and a space followed by that
word tokenises back to exactly this one token: then the word can sit anywhere in a prompt
and the backbone sees the token the search chose. This test needs no knowledge of the
tokenizer's family (byte-level BPE, WordPiece and SentencePiece all pass through it).
Low token ids are the frequent ones in most vocabularies, so "frequent words" means the
readable words with the lowest ids.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable
from functools import cached_property

import torch

from promptlearning.backbones import Backbone
from promptlearning.errors import ConfigError


class Vocabulary:
    """Readable words of a backbone, with cosine neighbours in its input embeddings."""

    def __init__(self, backbone: Backbone, min_length: int = 2) -> None:
        tokenizer = backbone.tokenizer
        size = backbone.input_embeddings().weight.shape[0]
        texts = tokenizer.batch_decode([[i] for i in range(size)])
        stripped = [t.strip() for t in texts]
        keep = [i for i, t in enumerate(stripped) if len(t) >= min_length and t.isascii() and t.isalpha()]
        encoded = tokenizer([" " + stripped[i] for i in keep], add_special_tokens=False)["input_ids"]
        self.ids: list[int] = [i for i, ids in zip(keep, encoded, strict=True) if list(ids) == [i]]
        if not self.ids:
            raise ConfigError(f"backbone {backbone.info.name} has no readable single-token words; "
                              "discrete search needs a tokenizer with whole-word tokens")
        self.words: list[str] = [stripped[i] for i in self.ids]
        self._row = {token: row for row, token in enumerate(self.ids)}
        self._by_word = {w.lower(): row for row, w in enumerate(self.words)}
        self._embeddings = backbone.input_embeddings().weight
        self._tokenizer = tokenizer

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def _unit(self) -> torch.Tensor:
        table = self._embeddings.detach()[torch.tensor(self.ids)].float()  # (N, H)
        return table / table.norm(dim=-1, keepdim=True).clamp(min=1e-8)

    def frequent(self, top: int) -> list[int]:
        """Rows of the ``top`` readable words with the lowest token ids."""
        return list(range(min(top, len(self.ids))))

    def rows_in(self, texts: Iterable[str], top: int, minimum: int = 20) -> list[int]:
        """Rows of the readable words that occur in ``texts``, most frequent first (at most ``top``).

        In byte-level BPE vocabularies low ids are frequent *fragments* (" dise", " ris"), not
        words, so words seen in the task's own text make a far more readable candidate list.
        When the texts give fewer than ``minimum`` words, the lowest-id readable words fill up."""
        counts: Counter[int] = Counter()
        for text in texts:
            for word in re.findall(r"[A-Za-z]+", text):
                row = self._by_word.get(word.lower())
                if row is not None:
                    counts[row] += 1
        rows = [row for row, _ in counts.most_common(top)]
        want = min(top, max(minimum, len(rows)))
        for row in self.frequent(len(self.ids)):
            if len(rows) >= want:
                break
            if row not in rows:
                rows.append(row)
        return rows

    def random_word(self, rng: random.Random, top: int = 2000, rows: list[int] | None = None) -> str:
        """A word drawn uniformly from ``rows`` or the ``top`` lowest-id readable words (a trigger token)."""
        if rows:
            return self.words[rows[rng.randrange(len(rows))]]
        return self.words[rng.randrange(min(top, len(self.words)))]

    def token_of(self, word: str) -> int | None:
        """The vocabulary row of a word written as one readable token (case-insensitive), else None."""
        row = self._by_word.get(word.strip().lower())
        if row is not None:
            return row
        ids = self._tokenizer(" " + word.strip(), add_special_tokens=False)["input_ids"]
        return self._row.get(int(ids[0])) if ids else None

    def neighbours(self, word: str, k: int) -> list[str]:
        """The k readable words nearest to ``word`` by cosine similarity of input embeddings."""
        row = self.token_of(word)
        if row is None:
            return []
        sims = self._unit @ self._unit[row]  # (N,)
        sims[row] = -2.0
        top = torch.topk(sims, min(k, len(self.ids) - 1)).indices.tolist()
        return [self.words[i] for i in top]
