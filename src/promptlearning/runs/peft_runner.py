"""Hugging Face PEFT's prompt methods, run side by side with ours under identical conditions.

What is shared, so that only the prompt implementation differs: the backbone (loaded by
:func:`promptlearning.backbones.load_backbone` and wrapped by ``peft.get_peft_model`` as a
feature extractor), the few-shot data (:func:`experiment.load_data` / ``make_split``), the
head (our :class:`~promptlearning.heads.base.ClassificationHead`, same init, pooling only the
input's positions), and the trainer (our :class:`~promptlearning.training.Trainer`: AdamW,
warm-up + linear decay, clipping, data order, dev evaluation, best-on-dev restore). As in
our models, the frozen backbone stays in eval mode (no dropout) while training.

Known differences, stated in the report: PEFT drops ``token_type_ids`` for prompt methods
(all zeros for single-sentence tasks, so no effect there) and lets the backbone number
positions itself. ``peft`` is an optional extra (``pip install 'promptlearning[peft]'``),
imported only when a ``peft:*`` job runs.
"""

from __future__ import annotations

import copy
import dataclasses
import time
import warnings
from typing import Any, ClassVar

import torch
from torch import nn

from promptlearning.errors import ConfigError, PromptLearningError, UnknownNameError

#: method name -> (PEFT config class, its options with defaults, default learning rate)
PEFT_METHODS: dict[str, tuple[str, dict[str, Any], float]] = {
    # input-layer soft prompt, like our prompt_tuning (same default init: sampled vocabulary)
    "peft:prompt_tuning": ("PromptTuningConfig", {"num_tokens": 20, "init": "sample_vocab", "init_text": None}, 3e-2),
    # per-layer key/value prefixes, the original P-tuning v2 / prefix-tuning form
    "peft:prefix_tuning": ("PrefixTuningConfig", {"num_tokens": 20, "prefix_projection": False,
                                                  "encoder_hidden_size": None}, 1e-2),
    # input prompt produced by an MLP or LSTM encoder (P-tuning v1)
    "peft:p_tuning": ("PromptEncoderConfig", {"num_tokens": 20, "encoder_type": "MLP",
                                              "encoder_hidden_size": None}, 1e-2),
}


class PeftUnsupported(ConfigError):
    """PEFT cannot run this setting (or is not installed); the bench records why."""


def is_peft_method(name: str) -> bool:
    return name.startswith("peft:")


def _spec(name: str) -> tuple[str, dict[str, Any], float]:
    if name not in PEFT_METHODS:
        raise UnknownNameError(f"unknown PEFT method {name!r}; choose one of: {', '.join(sorted(PEFT_METHODS))}")
    return PEFT_METHODS[name]


def resolve_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Every option written out (defaults filled), unknown ones refused; needs no peft install."""
    defaults = _spec(name)[1]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} for {name}; valid: {', '.join(sorted(defaults))}")
    out = {**defaults, **options}
    if not isinstance(out["num_tokens"], int) or out["num_tokens"] < 1:
        raise ConfigError(f"num_tokens must be an integer >= 1 (got {out['num_tokens']!r})")
    if name == "peft:prompt_tuning" and out["init"] not in ("random", "sample_vocab", "text"):
        raise ConfigError(f"init must be random, sample_vocab or text (got {out['init']!r})")
    if name == "peft:prompt_tuning" and out["init"] == "text" and not out["init_text"]:
        raise ConfigError("init=text needs init_text")
    if name == "peft:p_tuning" and out["encoder_type"] not in ("MLP", "LSTM"):
        raise ConfigError(f"encoder_type must be MLP or LSTM (got {out['encoder_type']!r})")
    return out


def default_lr(name: str) -> float:
    """The learning rate of our closest method (prompt_tuning or p_tuning_v2), for a like-for-like run."""
    return _spec(name)[2]


def peft_config(name: str, options: dict[str, Any], backbone: Any) -> Any:
    """The PEFT config object for a backbone (its shape read from our BackboneInfo)."""
    try:
        import peft
    except ImportError:
        raise PeftUnsupported("peft is not installed; pip install 'promptlearning[peft]'") from None
    info = backbone.info
    common = {"task_type": peft.TaskType.FEATURE_EXTRACTION, "num_virtual_tokens": options["num_tokens"],
              "token_dim": info.hidden_size, "num_transformer_submodules": 1,
              "num_attention_heads": info.num_heads, "num_layers": info.num_layers}
    if name == "peft:prompt_tuning":
        extra: dict[str, Any] = {"prompt_tuning_init": options["init"].upper()}
        if options["init"] == "text":
            extra.update(prompt_tuning_init_text=options["init_text"], tokenizer_name_or_path=None)
        return peft.PromptTuningConfig(**common, **extra)
    hidden = options["encoder_hidden_size"] or info.hidden_size
    if name == "peft:prefix_tuning":
        return peft.PrefixTuningConfig(**common, prefix_projection=options["prefix_projection"],
                                       encoder_hidden_size=hidden)
    return peft.PromptEncoderConfig(**common, encoder_reparameterization_type=options["encoder_type"],
                                    encoder_hidden_size=hidden)


class _PeftPrompt(nn.Module):
    """The PEFT prompt encoder, seen by our trainer as the model's ``method``."""

    name: ClassVar[str] = "peft"
    trains_backbone: ClassVar[bool] = False
    default_lr: ClassVar[float] = 1e-2

    def __init__(self, encoder: nn.Module, options: dict[str, Any]) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = _Options(options)

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def architecture_parameters(self) -> list[nn.Parameter]:
        return []

    def regularization(self) -> torch.Tensor | None:
        return None


@dataclasses.dataclass
class _Options:
    values: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.values)


@dataclasses.dataclass
class _Output:
    logits: torch.Tensor  # (B, C)
    loss: torch.Tensor | None = None


class PeftPromptModel(nn.Module):
    """A PEFT-wrapped backbone plus our head, with the interface our Trainer and metrics use."""

    def __init__(self, backbone: Any, peft_model: Any, head: nn.Module, labels: list[str],
                 options: dict[str, Any], max_length: int = 64) -> None:
        super().__init__()
        self.max_length = max_length
        self.backbone = backbone
        self.peft_model = peft_model
        self.method = _PeftPrompt(peft_model.prompt_encoder, options)
        self.head = head
        self.labels = list(labels)

    @property
    def device(self) -> torch.device:
        return self.backbone.input_embeddings().weight.device

    @property
    def pad_id(self) -> int:
        return int(self.backbone.tokenizer.pad_token_id or 0)

    @property
    def left_pad(self) -> bool:
        return bool(self.backbone.info.is_decoder)

    def train(self, mode: bool = True) -> PeftPromptModel:
        """Train the prompt encoder and head; the frozen backbone stays in eval mode, as in ours."""
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, batch: Any) -> _Output:
        from promptlearning.context import PromptContext

        out = self.peft_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        hidden = out.last_hidden_state  # (B, P + L, H), or (B, L, H) for key/value prefixes
        text_len = int(batch.input_ids.shape[1])
        ctx = PromptContext(batch_size=len(batch), device=hidden.device, dtype=hidden.dtype,
                            text_mask=batch.attention_mask, num_prompt_positions=hidden.shape[1] - text_len)
        logits = self.head(hidden, ctx)  # (B, C)
        labels = batch.labels
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return _Output(logits, loss)

    def encode(self, examples: Any) -> list[Any]:
        """Tokenise like our models without a template: the text as it is."""
        from promptlearning.data.batching import encode

        return encode(self.backbone.tokenizer, examples, self.max_length)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.trainable_parameters())

    def num_backbone_parameters(self) -> int:
        return sum(p.numel() for p in self.backbone.parameters())


def build_peft_model(name: str, options: dict[str, Any], backbone: Any, head_config: Any,
                     labels: list[str], max_length: int = 64) -> PeftPromptModel:
    """Wrap a private copy of the backbone (PEFT must never touch the shared frozen one)."""
    from promptlearning.heads.base import build_head

    config = peft_config(name, options, backbone)
    import peft

    backbone = copy.deepcopy(backbone)
    try:
        with warnings.catch_warnings():  # transformers deprecation noise from inside PEFT
            warnings.simplefilter("ignore", FutureWarning)
            wrapped = peft.get_peft_model(backbone.model, config)
    except Exception as exc:  # PEFT refuses the architecture or the setting: say so in the table
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PeftUnsupported(f"PEFT cannot build {name} on {backbone.info.name}: {first}") from None
    model = PeftPromptModel(backbone, wrapped, build_head(head_config, backbone, labels), labels, options, max_length)
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    return model


def run_peft_experiment(cfg: Any, *, log: Any = print) -> dict[str, Any]:
    """The PEFT twin of :func:`promptlearning.runs.single_task.run_experiment` (same result keys)."""
    from promptlearning.runs.single_task import load_data, make_split, shared_backbone
    from promptlearning.seeding import seed_everything
    from promptlearning.training import Trainer
    from promptlearning.training.metrics import evaluate, majority_accuracy

    started = time.perf_counter()
    options = resolve_options(cfg.method, cfg.method_options)
    train_cfg = cfg.train if cfg.train.lr is not None else dataclasses.replace(cfg.train, lr=default_lr(cfg.method))
    data = load_data(cfg.data)
    split = make_split(cfg.data, data)
    seed_everything(train_cfg.seed)
    model = build_peft_model(cfg.method, options, shared_backbone(cfg.backbone, cfg.dtype), cfg.head, list(data.labels),
                             cfg.max_length)
    train_items, dev_items, test_items = (model.encode(part) for part in (split.train, split.dev, split.test))
    trainable, total = model.num_trainable(), model.num_backbone_parameters()
    log(f"{cfg.method} on {data.name}: trainable parameters {trainable:,} ({100 * trainable / total:.3f}%)")
    try:
        trainer = Trainer(model, train_cfg, train_items, dev_items, None)  # type: ignore[arg-type]
        fit = trainer.fit()
    except PromptLearningError:
        raise  # a diverged loss is a training result, not a PEFT limitation
    except (RuntimeError, ValueError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PeftUnsupported(f"PEFT cannot train {cfg.method} on {model.backbone.info.name}: {first}") from exc
    dev = evaluate(model, dev_items, train_cfg.eval_batch_size)  # type: ignore[arg-type]
    test = evaluate(model, test_items, train_cfg.eval_batch_size)  # type: ignore[arg-type]
    return {"task": data.name, "method": cfg.method, "backbone": model.backbone.info.name, "shots": cfg.data.shots,
            "data_seed": cfg.data.data_seed, "seed": train_cfg.seed, "trainable_params": trainable,
            "backbone_params": total, "trainable_share": trainable / total,
            "majority_test_accuracy": majority_accuracy([e.label for e in split.train], [e.label for e in split.test]),
            "dev_accuracy": dev["accuracy"], "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"],
            "best_step": fit.best_step, "steps": fit.steps, "seconds_per_step": fit.seconds_per_step,
            "train_seconds": fit.train_seconds, "dev_curve": [(h["step"], h["dev_accuracy"]) for h in fit.history],
            "wall_seconds": time.perf_counter() - started, "stopped_early": fit.stopped_early,
            "peft_options": options, "_model": model}
