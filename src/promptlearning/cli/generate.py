"""`promptlearning generate`: continue texts with a prompted causal LM adapter."""

from __future__ import annotations

import argparse
import json
from typing import Any

from promptlearning.cli.loading import load_model


def cmd_generate(args: argparse.Namespace) -> int:
    from promptlearning.configs import check_at_least, check_by_name

    check_by_name("seed", args.seed)  # before the model loads: a bad value costs nothing
    check_at_least(1, max_new_tokens=args.max_new_tokens)
    model = load_model(args.adapter, args.backbone)
    outs = model.generate(args.texts, max_new_tokens=args.max_new_tokens, do_sample=args.sample,
                          temperature=args.temperature, top_k=args.top_k, seed=args.seed)
    for text, out in zip(args.texts, outs, strict=True):
        # --json: one object per line, so a continuation that spans lines still maps back to its input
        print(json.dumps({"text": text, "continuation": out}, ensure_ascii=False) if args.json else f"{text}{out}")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("generate", help="continue texts with a prompted causal LM adapter (e.g. on smollm2-135m)")
    p.add_argument("--adapter", required=True, help="adapter directory made on a causal LM backbone")
    p.add_argument("--backbone", default=None, help="backbone to load it on (default: the one it records)")
    p.add_argument("texts", nargs="+", help="texts to continue")
    p.add_argument("--max-new-tokens", type=int, default=20, help="tokens to write after each text (default: 20)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="with --sample: divide the logits by this; below 1 is more conservative (default: 1.0)")
    p.add_argument("--top-k", type=int, default=0,
                   help="with --sample: draw from the K most likely tokens only; 0 keeps all (default: 0)")
    p.add_argument("--seed", type=int, default=None,
                   help="with --sample: seed of the draws, so a rerun writes the same text (default: unseeded)")
    p.add_argument("--json", action="store_true",
                   help='one JSON object per input and line, {"text": ..., "continuation": ...}, instead of the text '
                        "followed by its continuation")
    p.set_defaults(func=cmd_generate)
    return p
