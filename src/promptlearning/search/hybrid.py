"""The hybrid: a discrete prompt initialises a soft prompt that is then tuned by gradient.

Every fixed word of the template becomes a P-tuning pseudo token in the same place, whose
vector starts as that word's token embedding (``p_tuning`` with ``encoder=none`` and
``init=ids``)::

    "Movie review: {text_a}\\nIs it positive? Answer:"  ->  "[P3] {text_a}[P7]"

Each literal part is tokenised exactly as the template renders it, so the tokens, positions
and embeddings are those of the discrete prompt and the hybrid's first forward *is* the
discrete prompt's forward; training then moves the vectors off the vocabulary. The same
soft template with ``init=vocab`` or ``init=random`` is the comparison on equal terms.

:func:`hybrid_experiment` is the whole recipe, used by ``promptlearning search hybrid`` and by
the bench's prompt-search jobs alike.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from promptlearning.data.templates import Template, tokenize
from promptlearning.errors import ConfigError

if TYPE_CHECKING:  # the run layer sits beside search: only its type is named here
    from promptlearning.runs.single_task import ExperimentConfig

HYBRID_INITS = ("ids", "vocab", "random")


def soft_template(template: str, tokenizer: Any) -> tuple[str, list[int]]:
    """The template with each fixed-text part replaced by ``[Pn]`` slots, and those parts' token ids."""
    parsed = Template.parse(template)
    pieces: list[str] = []
    ids: list[int] = []
    for part in parsed.parts:
        if part.kind == "pseudo":
            raise ConfigError(f"template {template!r} already has [P] slots; give a discrete (readable) prompt")
        if part.kind == "literal":
            tokens = tokenize(tokenizer, part.value)
            if tokens:
                pieces.append(f"[P{len(tokens)}]")
                ids += tokens
        elif part.kind == "space":
            pieces.append(part.value)
        else:
            pieces.append("{" + part.kind + "}")
    if not ids:
        raise ConfigError(f"template {template!r} has no fixed words to turn into a soft prompt; "
                          "give a prompt with words around {text_a}")
    return "".join(pieces), ids


def hybrid_method_options(template: str, tokenizer: Any, init: str = "ids", seed: int = 0,
                          init_std: float = 0.02) -> tuple[str, dict[str, Any]]:
    """The soft template and the ``p_tuning`` options of the hybrid (or of its vocab/random-init control)."""
    if init not in HYBRID_INITS:
        raise ConfigError(f"unknown hybrid init {init!r}; choose one of: {', '.join(HYBRID_INITS)}")
    soft, ids = soft_template(template, tokenizer)
    options: dict[str, Any] = {"template": soft, "encoder": "none", "init": init, "init_seed": seed,
                               "init_std": init_std}
    if init == "ids":
        options["init_ids"] = ids
    return soft, options


def hybrid_experiment(cfg: ExperimentConfig, prompt: str, tokenizer: Any, init: str = "ids") -> ExperimentConfig:
    """``cfg`` turned into the hybrid (``init=ids``) or one of its controls (``vocab``, ``random``).

    The method becomes ``p_tuning`` over the soft template made from ``prompt`` (its init seeded
    by the training seed), and dev is scored before the first step too, so best-on-dev keeps the
    starting prompt (the discrete one, for the hybrid) when tuning does not beat it. Data,
    backbone, head and every other training setting stay the caller's."""
    soft, options = hybrid_method_options(prompt, tokenizer, init, seed=cfg.train.seed)
    return dataclasses.replace(cfg, method="p_tuning", method_options=options, template=soft,
                               train=dataclasses.replace(cfg.train, eval_at_start=True))
