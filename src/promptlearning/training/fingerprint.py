"""What makes two runs the same run: the pieces of a checkpoint's fingerprint that a resume compares.

A resume refuses a checkpoint whose run differs in anything that changes what is computed,
and names each difference (:func:`changed_settings`); the data enter as a digest of the
tokenised rows (:func:`digest_rows`), so another file content or tokenisation is caught even
where no flag names it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from promptlearning.data.batching import Encoded


def changed_settings(saved: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ between two nested dicts (for a resume refusal)."""
    out = []
    for key in sorted(set(saved) | set(now)):
        old, new = saved.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            out += changed_settings(old, new, f"{prefix}{key}.")
        elif old != new:
            out.append(f"{prefix}{key}")
    return out


def _flag(name: str) -> str:
    """The option a user sets for a fingerprint entry (``train.lr`` -> ``--lr``), else a plain description."""
    parts = name.split(".")
    if parts[0] == "data_digest" or name in ("n_train", "n_dev"):
        return "the data (task or file, its content, --shots, --data-seed)"
    if parts[0] == "method":
        return "--method"
    if parts[0] == "method_config" or parts[:2] == ["model", "method_config"]:
        return f"--option {parts[-1]}"
    if parts[0] in ("train", "run") and len(parts) == 2:
        return "--" + parts[1].replace("_", "-")
    if parts[0] == "model" and len(parts) == 2:
        return "--" + parts[1].replace("_", "-")
    if parts[:2] == ["model", "backbone"]:  # its name, size, fingerprint...: one flag chose them all
        return "--backbone"
    if parts[:2] == ["model", "head"] and len(parts) == 3:
        return "--head" if parts[2] == "kind" else f"--head-{parts[2].replace('_', '-')}"
    return "the " + " ".join(parts[1:] if parts[0] == "model" else parts)


def _value(tree: Any, name: str) -> Any:
    for part in name.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def describe_changes(saved: dict[str, Any], now: dict[str, Any]) -> str:
    """The differing settings as a user set them: ``--lr 0.3 -> 0.5, --backbone tiny-bert -> tiny-llama``."""
    out: dict[str, str] = {}
    for name in changed_settings(saved, now):
        flag = _flag(name)
        old, new = _value(saved, name), _value(now, name)
        short = all(isinstance(v, str | int | float | bool) or v is None for v in (old, new)) \
            and len(f"{old}{new}") < 60 and not name.startswith("data_digest") \
            and (flag != "--backbone" or name.endswith(".name"))  # the backbone by its name, not its hash
        described = f"{flag} {old} -> {new}" if short else flag
        out[flag] = max(out.get(flag, ""), described, key=len)
    return ", ".join(out.values())


def train_section(train: dict[str, Any]) -> dict[str, Any]:
    """The training settings as a fingerprint holds them: where a run logs and runs are not what it computes."""
    return {k: v for k, v in train.items() if k != "report_to"} | {"quiet": None, "device": None}


def early_changes(saved_run: dict[str, Any], method: str, train: dict[str, Any]) -> str:
    """What a resume would refuse, from the settings known before the backbone loads (empty: nothing yet).

    Only the method and the training settings: the rest of the fingerprint (the data digest, the model's
    config) needs the backbone's tokenizer and weights, so it is compared when the run starts.
    """
    known: dict[str, Any] = {"method": method, "train": train_section(train)}
    saved: dict[str, Any] = {k: saved_run[k] for k in known if k in saved_run}
    now = {k: known[k] for k in saved}
    return describe_changes(saved, now)


def digest_rows(items: list[Encoded]) -> str:
    """sha256 of tokenised rows (ids, segment ids, label, task, template slots), in order."""
    h = hashlib.sha256()
    for e in items:
        row = (e.input_ids, e.token_type_ids, e.label, e.task_id, e.slots)
        tags = getattr(e, "tags", None)  # per-position labels of tagged rows (absent from older digests)
        h.update(repr(row if tags is None else (*row, tags)).encode())
    return h.hexdigest()[:32]


#: run_info keys that say which data and teachers a run uses (others, like a search's timings, are reports)
RUN_IDENTITY = frozenset({"task", "tasks", "shots", "data_seed", "distill_from", "chosen_layers"})
