"""A backbone named inside an adapter's config is never opened as a path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptlearning.backbones import Backbone
from promptlearning.errors import AdapterError
from promptlearning.model import PromptModel


@pytest.mark.parametrize("name", ["../../etc", "/etc", "./models/mine", "C:\\\\models"])
def test_a_path_in_the_config_is_refused_and_the_fix_named(bert: Backbone, tmp_path: Path, name: str) -> None:
    model = PromptModel.build(bert, "prompt_tuning", ["neg", "pos"], method_options={"num_tokens": 2})
    folder = model.save_pretrained(tmp_path / "adapter")
    config = json.loads((folder / "adapter_config.json").read_text())
    config["backbone"]["name"] = name
    (folder / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(AdapterError, match="--backbone PATH"):
        PromptModel.from_pretrained(folder)
    assert PromptModel.from_pretrained(folder, bert).num_trainable() == model.num_trainable()  # given: fine
