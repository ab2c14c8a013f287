"""Generation continues from cached keys and values exactly where that equals re-running the sequence:
for every method whose prompts do not read the input, cached and re-run greedy tokens are the same."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from promptlearning.backbones import Backbone
from promptlearning.generation import generate
from promptlearning.methods import get_method, list_methods
from promptlearning.model import PromptModel

OPTIONS: dict[str, dict[str, Any]] = {"prompt_tuning": {"num_tokens": 3}, "p_tuning_v2": {"num_tokens": 3},
                                      "prefix_tuning": {"num_tokens": 2}, "hyperprompt": {"task_repr": "learned"}}
CACHED = [cls.name for cls in list_methods() if not cls.reads_input and "text" in cls.input_kinds]
TEXTS = ["great movie", "i really hate this boring film and its plot"]  # different lengths: left padding


@pytest.mark.parametrize("method", CACHED)
def test_cached_generation_equals_rerunning_the_sequence(method: str, llama: Backbone) -> None:
    backbone = copy.deepcopy(llama) if get_method(method).trains_backbone else llama
    model = PromptModel.build(backbone, method, ["a", "b"], method_options=OPTIONS.get(method)).eval()
    cached = generate(model, TEXTS, max_new_tokens=6, stop_at_eos=False)
    model.method.reads_input = True  # type: ignore[misc]  # the same model, re-running every step
    rerun = generate(model, TEXTS, max_new_tokens=6, stop_at_eos=False)
    assert cached == rerun and all(len(row) == 6 for row in cached)


def test_methods_that_read_the_input_say_so() -> None:
    assert {"generator", "spt", "prompt_attention", "hyperprompt"} <= {c.name for c in list_methods() if c.reads_input}
    assert {"prompt_tuning", "prefix_tuning", "p_tuning_v2", "finetune", "fixed_prompt"} <= set(CACHED)
