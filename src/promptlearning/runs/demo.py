"""The main job of the README: one command shows the whole product working.

Few-shot (16 per class) P-tuning v2 on MR with the packaged MiniLM-L6 encoder: the
untrained baseline, training, dev/test accuracy and the trainable share; then the adapter is
saved, loaded back from disk and used to classify three sentences.
"""

from __future__ import annotations

import time

from promptlearning.model import PromptModel
from promptlearning.runs.single_task import DataConfig, ExperimentConfig, run_experiment
from promptlearning.training import TrainConfig

EXAMPLES = (
    "A warm, funny and beautifully acted film that stays with you.",
    "The plot is a mess and the jokes fall flat; two hours I will never get back.",
    "An ambitious idea, but the pacing drags and the ending feels cheap.",
)


def run_demo(output: str = "runs/demo", steps: int = 150, quiet: bool = False) -> dict[str, object]:
    started = time.perf_counter()
    cfg = ExperimentConfig(
        data=DataConfig(task="mr", shots=16, data_seed=13),
        method="p_tuning_v2",
        train=TrainConfig(max_steps=steps, eval_every=25, checkpoint_every=50, seed=42, quiet=quiet),
        output_dir=output,
    )
    print("== promptlearning demo: 16-shot P-tuning v2 on MR (movie review polarity), MiniLM-L6 ==")
    result = run_experiment(cfg)
    adapter = f"{output}/best"
    print(f"\nadapter saved to {adapter}; loading it back from disk ...")
    model = PromptModel.from_pretrained(adapter)
    probs = model.predict_proba(list(EXAMPLES))
    for text, row in zip(EXAMPLES, probs.tolist(), strict=True):
        best = max(range(len(row)), key=row.__getitem__)
        print(f"  {model.labels[best]:8s} ({row[best]:.2f})  {text}")
    print(f"\ndone in {time.perf_counter() - started:.0f} s")
    return result
