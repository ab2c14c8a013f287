"""The verbaliser head: classify by the LM head's scores of label words after a template.

A label scores the log-sum-exp of its words' log-probabilities; a word's log-probability is
the sum over its tokens, each predicted from the text and the word's earlier tokens. When
every word is one token, one forward pass reads them all from the last position; otherwise
each row is run once per word with the word's leading tokens appended (the extra passes
are the price of multi-token words). The head adds no trainable parameters, so it also
scores a fixed hand-written prompt with no training at all.

Having no parameters, it serves any number of tasks: each task keeps its own label words,
computed from its label names when the task is added, and each row is scored against its
own task's words (picked by the row's task id). A new task therefore runs at K=0 as soon as
its label names are known. Label words are derived, never learned, so they are recomputed
from the tokenizer on load rather than saved: old single-task adapters load unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from promptlearning.backbones import Backbone
from promptlearning.configs import option
from promptlearning.context import PromptContext
from promptlearning.data.batching import Batch
from promptlearning.data.prompts import handwritten_template
from promptlearning.errors import ConfigError
from promptlearning.heads.base import Head, LabelWordsConfig, OutputKind, Runner, legacy_key, register_head
from promptlearning.heads.label_description import MASKED
from promptlearning.heads.pooling import pool

if TYPE_CHECKING:
    from promptlearning.data.task_info import TaskInfo

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


def take_rows(batch: Batch, rows: torch.Tensor) -> Batch:
    """The batch restricted to ``rows`` (B',), every per-row field alike; the width is kept."""
    values = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}
    return dataclasses.replace(batch, **{k: v[rows] for k, v in values.items() if isinstance(v, torch.Tensor)})


@dataclass(frozen=True)
class TaskWords:
    """One task's verbaliser: its labels, every label word's token ids, and which label owns each word."""

    labels: tuple[str, ...]
    words: tuple[tuple[int, ...], ...]  # (W,) token tuples
    owner: tuple[int, ...]  # (W,) label index of each word

    @classmethod
    def build(cls, tokenizer: Any, label_words: dict[str, list[str]], labels: Sequence[str]) -> TaskWords:
        ids = label_word_ids(tokenizer, label_words, labels, leading_space=True)
        return cls(tuple(labels), tuple(w for group in ids for w in group),
                   tuple(c for c, group in enumerate(ids) for _ in group))

    @property
    def word_ids(self) -> list[list[tuple[int, ...]]]:
        return [[w for w, c in zip(self.words, self.owner, strict=True) if c == label]
                for label in range(len(self.labels))]

    @property
    def single_token(self) -> bool:
        return all(len(w) == 1 for w in self.words)

    def to_labels(self, word_scores: torch.Tensor) -> torch.Tensor:
        """(B, W) word log-probabilities -> (B, C) label scores by log-sum-exp."""
        owner = torch.tensor(self.owner, device=word_scores.device)
        out = word_scores.new_full((word_scores.shape[0], len(self.labels)), float("-inf"))
        for c in range(len(self.labels)):
            out[:, c] = torch.logsumexp(word_scores[:, owner == c], dim=-1)
        return out


@dataclass
class VerbalizerConfig(LabelWordsConfig):
    """Options of the verbaliser (``label_words``: the words scored for each label; default the label names)."""

    kind: str = option("verbalizer", "the verbaliser head")
    pooling: str = legacy_key("auto")
    dropout: float = legacy_key(0.1)


@register_head
class VerbalizerHead(Head):
    kind = "verbalizer"
    config_class = VerbalizerConfig
    summary = "LM-head scores of label words after a template, on causal LMs (no parameters, any number of tasks)"
    output = OutputKind.LABEL
    needs_training = False
    serves_many_tasks = True
    needs_lm_head = True

    config: VerbalizerConfig

    @classmethod
    def check_backbone(cls, backbone: Backbone) -> None:
        super().check_backbone(backbone)
        if not backbone.info.is_decoder:
            raise ConfigError(f"the verbalizer head scores next tokens of a causal LM; {backbone.info.name} is "
                              "an encoder: use --head classification")

    def __init__(self, config: VerbalizerConfig, backbone: Backbone, labels: Sequence[str]) -> None:
        super().__init__(config, backbone, labels)
        words = config.label_words or {lab: [lab] for lab in labels}
        # task index -> its words; the first is ready at once so a head used without a model still scores
        self.task_words: list[TaskWords] = [TaskWords.build(backbone.tokenizer, words, labels)]
        self._added = 0  # tasks added through add_task (the first replaces the entry built here)
        self._pad = int(backbone.tokenizer.pad_token_id or 0)
        object.__setattr__(self, "_lm_head", backbone.lm_head)  # frozen, owned by the backbone: not saved here

    # ------------------------------------------------------------------ tasks
    @property
    def labels(self) -> list[str]:
        """The first task's labels."""
        return list(self.task_words[0].labels)

    @property
    def word_ids(self) -> list[list[tuple[int, ...]]]:
        """The first task's words per label."""
        return self.task_words[0].word_ids

    @property
    def width(self) -> int:
        """Columns of the scores: the most labels any served task has (a row's extra columns are masked)."""
        return max(len(t.labels) for t in self.task_words)

    def add_task(self, task: TaskInfo, backbone: Backbone, index: int) -> None:
        """Words for a task: the head's --label-words for the first task (which must name exactly its
        labels); for later ones, per label, the task's own label texts, else the head's words for a
        label of that name, else the label name itself."""
        if index != self._added:
            raise ConfigError(f"task {task.name!r} must be added as task {self._added}, not {index}")
        given = self.config.label_words or {}
        if index == 0 and given:
            words = dict(given)
        else:
            words = {lab: list(task.label_texts.get(lab) or given.get(lab) or [lab]) for lab in task.labels}
        try:
            entry = TaskWords.build(backbone.tokenizer, words, task.labels)
        except ConfigError as exc:
            raise ConfigError(f"task {task.name!r}: {exc}; rename its labels, give words with --label-words "
                              "(TaskInfo.label_texts in Python), "
                              "or use --head label_description") from exc
        if index == 0:
            self.task_words[0] = entry
        else:
            self.task_words.append(entry)
        self._added += 1

    def default_template(self, task: str | None, labels: Sequence[str] | None = None) -> str | None:
        return handwritten_template(task, list(labels) if labels is not None else self.labels)

    @property
    def single_token(self) -> bool:
        return all(t.single_token for t in self.task_words)

    def _row_tasks(self, task_ids: torch.Tensor | None, rows: int, device: torch.device) -> torch.Tensor:
        """(B,) task index of each row; a head serving one task reads every row as that task."""
        if task_ids is None or len(self.task_words) == 1:
            return torch.zeros(rows, dtype=torch.long, device=device)
        ids = task_ids.to(device)
        if int(ids.min()) < 0 or int(ids.max()) >= len(self.task_words):
            raise ConfigError(f"a row has task id {int(ids.max())} but this verbaliser serves "
                              f"{len(self.task_words)} task(s); add the task to the model first")
        return ids

    def _scatter(self, parts: list[tuple[torch.Tensor, torch.Tensor]], rows: int,
                 device: torch.device) -> torch.Tensor:
        """Per-task (row indices, (b, C_t) scores) -> (B, C_max); a row's classes past its task's are masked
        (a large negative, not -inf, so softmax, cross-entropy and KL stay finite)."""
        out = torch.full((rows, self.width), MASKED, dtype=torch.float32, device=device)
        for index, scores in parts:
            out[index, :scores.shape[1]] = scores
        return out

    # ------------------------------------------------------------------ scoring
    def _first_token_scores(self, last: torch.Tensor, words: TaskWords) -> torch.Tensor:
        """(B, H) last hidden states -> (B, C) scores of single-token words."""
        lm_head: Any = self._lm_head
        logprobs = lm_head(last).float().log_softmax(-1)  # (B, V)
        first = torch.tensor([w[0] for w in words.words], device=last.device)
        return words.to_labels(logprobs[:, first])  # (B, C)

    @staticmethod
    def _last(hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor:
        """(B, P + L, H) -> (B, H): each row's last input position."""
        assert ctx.text_mask is not None
        return pool(hidden[:, ctx.num_prompt_positions:], ctx.text_mask, "last")

    def forward(self, hidden: torch.Tensor, ctx: PromptContext) -> torch.Tensor:
        """Single-token words: one pass, every word read at the last position."""
        last = self._last(hidden, ctx)  # (B, H)
        if len(self.task_words) == 1:
            return self._first_token_scores(last, self.task_words[0])  # (B, C)
        ids = self._row_tasks(ctx.task_ids, last.shape[0], last.device)
        parts = []
        for t in ids.unique().tolist():
            rows = (ids == t).nonzero().squeeze(1)  # (b,)
            parts.append((rows, self._first_token_scores(last[rows], self.task_words[t])))
        return self._scatter(parts, last.shape[0], last.device)  # (B, C_max)

    def _multi_token_scores(self, batch: Batch, run: Runner, words: TaskWords) -> torch.Tensor:
        """(B, C) scores, the backbone run once per word with the word's leading tokens appended."""
        lm_head: Any = self._lm_head
        rows, longest = len(batch), max(len(w) for w in words.words)
        hidden, _ = run(append_tokens(batch, words.words, self._pad))  # (B * W, S, H)
        logprobs = lm_head(hidden[:, -longest:]).float().log_softmax(-1)  # (B * W, n, V)
        scores = []
        for j, word in enumerate(words.words):
            block = logprobs[j * rows:(j + 1) * rows, longest - len(word):]  # (B, len(word), V)
            target = torch.tensor(word, device=block.device).expand(rows, -1).unsqueeze(-1)
            scores.append(block.gather(-1, target).squeeze(-1).sum(-1))  # (B,)
        return words.to_labels(torch.stack(scores, dim=1))  # (B, C)

    def score(self, batch: Batch, run: Runner) -> torch.Tensor:
        """Label scores (B, C_max), running the backbone once per word when words span several tokens.

        Rows of tasks whose words are all single tokens share one pass; a task with longer words
        runs only its own rows, with its own words."""
        if len(self.task_words) == 1:
            words = self.task_words[0]
            if words.single_token:
                hidden, ctx = run(batch)
                return self(hidden, ctx)
            return self._multi_token_scores(batch, run, words)  # (B, C)
        ids = self._row_tasks(batch.task_ids, len(batch), batch.input_ids.device)
        present = ids.unique().tolist()
        if all(self.task_words[t].single_token for t in present):
            hidden, ctx = run(batch)
            return self(hidden, ctx)
        parts = []
        single = [t for t in present if self.task_words[t].single_token]
        if single:  # one pass for the rows of every single-token task; forward reads each row's own words
            rows = torch.isin(ids, torch.tensor(single, device=ids.device)).nonzero().squeeze(1)  # (b,)
            hidden, ctx = run(take_rows(batch, rows))
            parts.append((rows, self(hidden, ctx)))
        for t in present:
            if t not in single:
                rows = (ids == t).nonzero().squeeze(1)  # (b,)
                sub = batch if len(present) == 1 else take_rows(batch, rows)
                parts.append((rows, self._multi_token_scores(sub, run, self.task_words[t])))
        return self._scatter(parts, len(batch), batch.input_ids.device)  # (B, C_max)
