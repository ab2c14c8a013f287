"""`promptlearning export`: an adapter to Hugging Face PEFT's format, or a PEFT adapter to ours."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from promptlearning.errors import ConfigError

EXPORT_EXAMPLES = """examples:
  promptlearning export --adapter runs/mr/best --to peft --output mr-peft
      # then in Python: PeftModel.from_pretrained(AutoModel.from_pretrained(BASE), "mr-peft")
  promptlearning export --adapter my-peft-prompt --to promptlearning --labels neg,pos \\
      --backbone minilm-l6 --head verbalizer --output mr-ours
      # a plain PEFT prompt/prefix adapter: ours needs its labels and a head
"""


OPTIONS = ("adapter", "to", "output", "labels", "head", "backbone", "overwrite")


def _merged(args: argparse.Namespace) -> argparse.Namespace:
    """``--config`` YAML under the flags: a flag given wins; unknown keys and missing required ones are refused."""
    from promptlearning.cli.options import config_file

    values = config_file(args)
    unknown = sorted(set(values) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"unknown export option(s) {', '.join(unknown)} in --config; valid: {', '.join(OPTIONS)}")
    merged = {k: getattr(args, k) if getattr(args, k) is not None else values.get(k) for k in OPTIONS}
    if isinstance(merged["labels"], list):
        merged["labels"] = ",".join(str(x) for x in merged["labels"])
    missing = [k for k in ("adapter", "to", "output") if not merged[k]]
    if missing:
        raise ConfigError(f"export needs --{missing[0]} (or {missing[0]}: in --config)")
    if merged["to"] not in ("peft", "promptlearning"):
        raise ConfigError(f"--to must be peft or promptlearning (got {merged['to']!r})")
    return argparse.Namespace(**merged)


def cmd_export(args: argparse.Namespace) -> int:
    from promptlearning.peft_files import CONFIG_FILE as ADAPTER_CONFIG
    from promptlearning.peft_files import SIDE_CONFIG_FILE as SIDE_CONFIG
    from promptlearning.runs.peft_interop import export_adapter, import_peft

    args = _merged(args)
    source, target = Path(args.adapter).resolve(), Path(args.output).resolve()
    if target == source or target.is_relative_to(source) or source.is_relative_to(target):
        raise ConfigError(f"--output {args.output} would overwrite the adapter it converts ({args.adapter}); "
                          "write the converted adapter to another folder")
    if (target / ADAPTER_CONFIG).is_file() and not args.overwrite:  # another trained adapter: never replaced unasked
        raise ConfigError(f"--output {args.output} holds an adapter already; choose another folder, or add "
                          "--overwrite to replace it")
    if args.to == "peft":
        if args.labels or args.head:
            raise ConfigError("--labels and --head are for --to promptlearning; an export to PEFT keeps the adapter's")
        out = export_adapter(args.adapter, args.output)
        print(f"wrote PEFT adapter {out} (load it with peft.PeftModel.from_pretrained on the base model; "
              "promptlearning reads it back as it is)")
        return 0
    if (source / SIDE_CONFIG).is_file():  # exported by us: our config and head ride along, so nothing is lost
        return _export_ours_back(args)
    if not args.labels:
        raise ConfigError("--to promptlearning needs --labels A,B (a PEFT adapter holds no label names)")
    labels = [x.strip() for x in args.labels.split(",") if x.strip()]
    if len(labels) < 2:
        raise ConfigError(f"--labels needs at least two names, comma-separated (got {args.labels!r})")
    from promptlearning.backbones import load_backbone
    from promptlearning.heads.base import HeadConfig

    backbone = load_backbone(args.backbone) if args.backbone else None
    head = HeadConfig.from_dict({"kind": args.head}) if args.head else None
    model = import_peft(args.adapter, labels, backbone=backbone, head=head)
    model.save_pretrained(args.output)
    print(f"wrote promptlearning adapter {args.output} ({type(model.method).name}, head "
          f"{model.head.config.to_dict().get('kind')}, labels {', '.join(labels)})")
    untrained = sum(p.numel() for p in model.head.parameters() if p.requires_grad)
    if untrained:  # a PEFT adapter holds a prompt and no head: this one's weights are random
        print(f"note: its {model.head.config.to_dict().get('kind')} head has {untrained:,} untrained parameters (a PEFT "
              "adapter holds none), so its answers are chance until the head is trained; --head verbalizer (a causal "
              "LM) or --head label_description answers with no trained head", file=sys.stderr)
    return 0


def _export_ours_back(args: argparse.Namespace) -> int:
    """A folder `export --to peft` wrote keeps our config, labels and trained head: read it whole and write ours."""
    from promptlearning.model import PromptModel

    if args.labels or args.head or args.backbone:
        raise ConfigError(f"{args.adapter} was exported by promptlearning and keeps its labels, head and backbone; "
                          "drop --labels, --head and --backbone")
    model = PromptModel.from_pretrained(args.adapter)
    model.save_pretrained(args.output)
    print(f"wrote promptlearning adapter {args.output} ({type(model.method).name}, head "
          f"{model.head.config.to_dict().get('kind')}, labels {', '.join(model.labels)}; read whole from the "
          "promptlearning config the PEFT export kept)")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    from promptlearning.cli.options import add_config_flag

    p = sub.add_parser("export", help="convert an adapter to Hugging Face PEFT's format, or a PEFT one to ours",
                       description="Convert prompt_tuning and prefix_tuning adapters between promptlearning and "
                                   "Hugging Face PEFT. A folder exported to PEFT also keeps our config and head, so "
                                   "evaluate, predict and PromptModel.from_pretrained read it directly.",
                       epilog=EXPORT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--adapter", help="the adapter folder to convert (required)")
    p.add_argument("--to", choices=["peft", "promptlearning"], help="the format to write (required)")
    p.add_argument("--output", help="the folder to write (required); one holding an adapter needs --overwrite")
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="replace the adapter --output holds")
    p.add_argument("--labels", default=None, help="--to promptlearning: the label names, comma-separated")
    p.add_argument("--head", default=None, help="--to promptlearning: the head kind (default: the backbone's "
                                                "usual one; verbalizer and label_description work untrained)")
    p.add_argument("--backbone", default=None, help="--to promptlearning: the backbone (default: the base model "
                                                    "the PEFT config names)")
    add_config_flag(p)
    p.set_defaults(func=cmd_export)
    return p
