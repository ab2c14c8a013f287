"""Time one training step of prompt tuning and P-tuning v2 against the floor.

The floor is the frozen backbone's own forward and backward to its inputs at the same
sequence length (input tokens + prompt positions): no prompt method can be cheaper than
that, since gradients must reach the prompt. The ratio (method step / floor) is the
overhead of promptlearning's machinery (injector, hooks, head, optimizer step).

    python benchmarks/step_time.py --backbone minilm-l6 --batch 16 --length 64 --prompt 20
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from promptlearning import PromptModel, __version__, load_backbone
from promptlearning.data.batching import Batch
from promptlearning.training import TrainConfig
from promptlearning.training.trainer import parameter_groups


def _timed(fn, repeats: int, warmup: int) -> float:  # type: ignore[no-untyped-def]
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="minilm-l6")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--length", type=int, default=64, help="input tokens per row")
    ap.add_argument("--prompt", type=int, default=20, help="prompt positions P")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default="benchmarks/results/step_time")
    args = ap.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    backbone = load_backbone(args.backbone).to(device)
    B, L, P, H = args.batch, args.length, args.prompt, backbone.info.hidden_size
    vocab = backbone.info.vocab_size
    ids = torch.randint(1000, min(vocab, 20000), (B, L), device=device)
    batch = Batch(input_ids=ids, attention_mask=torch.ones_like(ids), task_ids=torch.zeros(B, dtype=torch.long),
                  labels=torch.randint(0, 2, (B,), device=device))

    def floor_step() -> None:
        embeds = torch.randn(B, P + L, H, device=device, requires_grad=True)  # (B, P + L, H)
        out = backbone.model(inputs_embeds=embeds, attention_mask=torch.ones(B, P + L, device=device))
        out.last_hidden_state.mean().backward()

    rows = []
    floor = _timed(floor_step, args.repeats, args.warmup)
    rows.append({"setting": f"floor: backbone forward+backward to inputs, length {P + L}", "seconds": floor,
                 "ratio": 1.0})
    for method, options in (("prompt_tuning", {"num_tokens": P}), ("p_tuning_v2", {"num_tokens": P})):
        model = PromptModel.build(backbone, method, ["a", "b"], method_options=options).to(device).train()
        optimizer = torch.optim.AdamW(parameter_groups(model, TrainConfig()), lr=1e-3)

        def step(model: PromptModel = model, optimizer: torch.optim.Optimizer = optimizer) -> None:
            loss = model(batch).loss
            assert loss is not None
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        seconds = _timed(step, args.repeats, args.warmup)
        rows.append({"setting": f"{method} (P={P}) training step", "seconds": seconds, "ratio": seconds / floor,
                     "trainable_params": model.num_trainable()})
    machine = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {device}"
               + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""))
    meta = {"backbone": args.backbone, "batch": B, "length": L, "prompt": P, "repeats": args.repeats,
            "machine": machine, "torch": torch.__version__, "promptlearning": __version__}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [f"# Step time against the floor ({args.backbone}, B={B}, L={L}, P={P})", "",
             f"Machine: {machine}; torch {torch.__version__}; median of {args.repeats} steps after "
             f"{args.warmup} warm-up steps.", "",
             f"Command: `python benchmarks/step_time.py --backbone {args.backbone} --batch {B} --length {L} "
             f"--prompt {P} --device {device.type}`", "",
             "| setting | seconds/step | ratio to floor |", "|---|---:|---:|"]
    lines += [f"| {r['setting']} | {r['seconds']:.4f} | {r['ratio']:.3f} |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
