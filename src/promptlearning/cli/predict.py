"""`promptlearning predict`: classify texts (arguments, a file or stdin) with a saved adapter."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from promptlearning.cli.loading import add_adapter_flags, load_model, read_lines
from promptlearning.errors import ConfigError


def cmd_predict(args: argparse.Namespace) -> int:
    model = load_model(args.adapter, args.backbone)
    texts = list(args.texts) + read_lines(args.file)
    if not texts and not sys.stdin.isatty():
        texts = [ln for ln in sys.stdin.read().splitlines() if ln.strip()]
    if not texts:
        raise ConfigError("nothing to classify; give texts as arguments, --file FILE, or lines on stdin")
    probs = model.predict_proba(texts)
    for text, row in zip(texts, probs.tolist(), strict=True):
        best = max(range(len(row)), key=row.__getitem__)
        if args.json:
            print(json.dumps({"text": text, "label": model.labels[best],
                              "probabilities": dict(zip(model.labels, row, strict=True))}))
        else:
            print(f"{model.labels[best]}\t{row[best]:.3f}\t{text}")
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("predict", help="classify texts with a saved adapter")
    add_adapter_flags(p, required=True)
    p.add_argument("texts", nargs="*", help="texts to classify (else --file or stdin)")
    p.add_argument("--file", help="text file, one input per line")
    p.add_argument("--json", action="store_true", help="print JSON lines with every label's probability")
    p.set_defaults(func=cmd_predict)
    return p
