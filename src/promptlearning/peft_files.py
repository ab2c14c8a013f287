"""Hugging Face PEFT's adapter files for prompt tuning and prefix tuning, read and written.

Both libraries name their files ``adapter_config.json`` and ``adapter_model.safetensors`` but
fill them differently. PEFT's config says ``peft_type`` and the shapes; its safetensors file
holds one tensor, ``prompt_embeddings``:

- prompt tuning: (P, hidden) input vectors, exactly our ``prompt_tuning``'s ``method.prompt``;
- prefix tuning: (P, layers * 2 * kv_heads * head_dim), viewed by PEFT as (P, 2 * layers, heads,
  head_dim) with key and value of layer i at 2i and 2i + 1: exactly our ``prefix_tuning``'s
  flat prefix (our view is (P, layers, 2, heads, head_dim): the same order). PEFT saves the
  projected prefixes when it trained with ``prefix_projection``, so those load the same way.

One difference is not in the files: with a key/value cache of P positions PEFT's backbone numbers
the input's positions from P, ours from 0. ``prefix_tuning``'s ``peft_positions`` option numbers
them from P: an imported PEFT prefix sets it, and only an adapter trained with it exports.

An export keeps what PEFT has no place for (our config: labels, head, template; the head's
tensors) beside PEFT's files, so our library reads the folder back exactly; PEFT ignores them.
A plain PEFT adapter has no labels or head: :mod:`promptlearning.runs.peft_interop` adds them.

Pure file and tensor work: no model is built and ``peft`` need not be installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from promptlearning.errors import AdapterError
from promptlearning.fileio import atomic_directory, read_json, read_safetensors, write_json

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
#: our config and our tensors that PEFT has no place for, kept beside PEFT's files
SIDE_CONFIG_FILE = "promptlearning_config.json"
SIDE_WEIGHTS_FILE = "promptlearning_extra.safetensors"
PEFT_KEY = "prompt_embeddings"
#: PEFT type -> our method
METHODS = {"PROMPT_TUNING": "prompt_tuning", "PREFIX_TUNING": "prefix_tuning"}
_OUR_TENSOR = {"prompt_tuning": "method.prompt", "prefix_tuning": "method.prefix"}


def is_peft_config(config: Any) -> bool:
    return isinstance(config, dict) and "peft_type" in config and config.get("library") != "promptlearning"


def describe_foreign(config: Any, directory: Path) -> str:
    """One line saying what a folder that is not our adapter is, and what to do with it."""
    if is_peft_config(config):
        kind = str(config.get("peft_type"))
        if kind in METHODS:
            return (f"{directory} is a PEFT {METHODS[kind]} adapter without labels or a head; convert it once: "
                    f"promptlearning export --adapter {directory} --to promptlearning --labels A,B "
                    f"--backbone NAME --output DIR")
        return (f"{directory} is a Hugging Face PEFT {kind} adapter; promptlearning reads only PEFT prompt-tuning "
                f"and prefix-tuning adapters: load this one with peft (PeftModel.from_pretrained)")
    return (f"{directory / CONFIG_FILE} is neither a promptlearning nor a PEFT adapter config; give the folder "
            f"that `promptlearning train --output` wrote (its best/) or a PEFT prompt/prefix adapter")


def read_peft_config(directory: Path) -> dict[str, Any]:
    config = read_json(directory / CONFIG_FILE, lambda why: AdapterError(f"not a usable adapter: {why}"))
    if not is_peft_config(config):
        raise AdapterError(describe_foreign(config, directory))
    kind = str(config["peft_type"])
    if kind not in METHODS:
        raise AdapterError(describe_foreign(config, directory))
    if int(config.get("num_transformer_submodules") or 1) != 1:
        raise AdapterError(f"{directory} is a PEFT adapter for an encoder-decoder model (two prompt sets); "
                           "promptlearning runs encoders and decoders only")
    for key in ("num_virtual_tokens", "token_dim", "num_layers", "num_attention_heads"):
        if not isinstance(config.get(key), int) or config[key] < 1:
            raise AdapterError(f"{directory / CONFIG_FILE} lacks {key}; it is not a complete PEFT adapter config")
    return config


def _load(path: Path) -> dict[str, torch.Tensor]:
    return read_safetensors(path, "the adapter is incomplete: copy the whole folder", "copy the adapter again")


def peft_method(config: dict[str, Any], directory: Path) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """Our method name, its options and its state (``method.*`` keys) for a PEFT prompt adapter."""
    method = METHODS[str(config["peft_type"])]
    embeddings = _load(directory / WEIGHTS_FILE).get(PEFT_KEY)
    tokens = int(config["num_virtual_tokens"])
    width = int(config["token_dim"]) * (2 * int(config["num_layers"]) if method == "prefix_tuning" else 1)
    if embeddings is None or tuple(embeddings.shape) != (tokens, width):
        raise AdapterError(f"{directory / WEIGHTS_FILE} has no {PEFT_KEY} of shape ({tokens}, {width}) as its "
                           "config says; copy the adapter again")
    options: dict[str, Any] = {"num_tokens": tokens}
    if method == "prefix_tuning":
        options.update(reparam=False, peft_positions=True)
    return method, options, {_OUR_TENSOR[method]: embeddings.float()}


def check_shape(config: dict[str, Any], info: dict[str, Any], directory: Path) -> None:
    """A PEFT adapter names no weights fingerprint: check what its config does say against the backbone."""
    method = METHODS[str(config["peft_type"])]
    if method == "prompt_tuning":
        want = {"token_dim": info["hidden_size"]}
    else:
        want = {"num_layers": info["num_layers"], "token_dim": info["num_kv_heads"] * info["head_dim"]}
    wrong = [f"{k} {config[k]} (the backbone has {v})" for k, v in want.items() if int(config[k]) != int(v)]
    if wrong:
        named = config.get("base_model_name_or_path")
        raise AdapterError(f"PEFT adapter {directory} does not fit backbone {info['name']!r}: {', '.join(wrong)}; "
                           f"give --backbone " + (f"{named}" if named else "the model it was trained on"))


def read_exported(directory: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """Our config and full state from a folder :func:`export` wrote (None: a plain PEFT adapter)."""
    if not (directory / SIDE_CONFIG_FILE).is_file():
        return None
    ours = read_json(directory / SIDE_CONFIG_FILE, lambda why: AdapterError(f"not a usable adapter: {why}"))
    config = read_peft_config(directory)
    method, options, state = peft_method(config, directory)
    if not isinstance(ours, dict) or ours.get("method") != method:
        raise AdapterError(f"{directory / SIDE_CONFIG_FILE} does not belong to the PEFT adapter beside it; "
                           "export the adapter again")
    ours = {**ours, "method_config": {**ours.get("method_config", {}), **options}}
    return ours, {**_load(directory / SIDE_WEIGHTS_FILE), **state}


def _flat_prefix(method_config: dict[str, Any], state: dict[str, torch.Tensor]) -> torch.Tensor:
    """(P, layers * 2 * kv_heads * head_dim): the stored prefix, or what the MLP makes of its table (plus the
    real-token anchors it learns a change to, when it started from them)."""
    if not method_config.get("reparam", True):
        return state["method.prefix"]
    hidden = torch.tanh(state["method.table"] @ state["method.mlp.0.weight"].T + state["method.mlp.0.bias"])
    made = hidden @ state["method.mlp.2.weight"].T + state["method.mlp.2.bias"]
    return made + state["method.anchor"] if "method.anchor" in state else made


def to_peft(config: dict[str, Any], state: dict[str, torch.Tensor], where: Path
            ) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any], dict[str, torch.Tensor]]:
    """(PEFT config, PEFT tensors, our config, our other tensors) for one of our adapters."""
    method, options, info = config["method"], dict(config["method_config"]), config["backbone"]
    if method not in _OUR_TENSOR:
        raise AdapterError(f"adapter {where} uses {method}, which PEFT has no form of; export supports "
                           f"{' and '.join(_OUR_TENSOR)}")
    if config.get("tasks") and len(config["tasks"]) > 1:
        raise AdapterError(f"adapter {where} serves {len(config['tasks'])} tasks; PEFT holds one prompt per adapter")
    peft: dict[str, Any] = {
        "peft_type": "PROMPT_TUNING" if method == "prompt_tuning" else "PREFIX_TUNING",
        "task_type": "FEATURE_EXTRACTION",  # our backbone is the base model; our head sits on its hidden states
        "base_model_name_or_path": info.get("name"), "revision": None, "inference_mode": True,
        "num_virtual_tokens": int(options["num_tokens"]), "num_transformer_submodules": 1,
        "num_layers": int(info["num_layers"]), "modules_to_save": None, "auto_mapping": None,
    }
    if method == "prompt_tuning":
        tensor = state["method.prompt"]
        peft.update(token_dim=int(info["hidden_size"]), num_attention_heads=int(info["num_heads"]),
                    prompt_tuning_init="RANDOM", prompt_tuning_init_text=None, tokenizer_name_or_path=None,
                    tokenizer_kwargs=None)
    else:
        if not options.get("peft_positions"):
            raise AdapterError(f"adapter {where} numbers input positions from 0 and PEFT from the prefix length, so "
                               "PEFT would compute other outputs; train it with --option peft_positions=true to "
                               "export it")
        tensor = _flat_prefix(options, state)
        kv = int(info["num_kv_heads"]) * int(info["head_dim"])  # PEFT's token_dim for grouped-query attention
        peft.update(token_dim=kv, num_attention_heads=int(info["num_kv_heads"]), encoder_hidden_size=kv,
                    prefix_projection=False, init_weights=None)
        options.update(reparam=False)
    ours = {**config, "method_config": options}
    rest = {k: v for k, v in state.items() if not k.startswith("method.")}
    return peft, {PEFT_KEY: tensor.detach().float().contiguous()}, ours, rest


def export(config: dict[str, Any], state: dict[str, torch.Tensor], source: Path, output: Path) -> Path:
    """Write one of our adapters as a PEFT adapter folder (plus our side files), crash-safely."""
    peft, tensors, ours, rest = to_peft(config, state, source)
    with atomic_directory(output, marker_files=(CONFIG_FILE,)) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_FILE))
        write_json(tmp / CONFIG_FILE, peft)
        save_file({k: v.detach().cpu().contiguous() for k, v in rest.items()}, str(tmp / SIDE_WEIGHTS_FILE))
        write_json(tmp / SIDE_CONFIG_FILE, ours)
    return output
