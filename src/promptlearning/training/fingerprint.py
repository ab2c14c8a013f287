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
