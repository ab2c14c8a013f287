"""Published tables: Markdown (and PNG) files built from a results store, named by a suite's ``report:``.

``report.md`` (:mod:`promptlearning.bench.report`) is the same four metrics for every store;
a published table is the view one study needs (the SPT comparison, the held-out-task
summary, the prompt-search table, a few-shot results table, convergence from three starts).
A suite lists its tables::

    report:
      - {table: spt, out: ../results/spt.md}

and ``promptlearning report`` rebuilds them from the stored rows alone, so every published
number regenerates without running anything. One module per table, one line in
:data:`TABLES`; each module has ``write(rows, out, entry, suite) -> list[Path]`` where ``rows``
are the store's done rows (config and result decoded), ``entry`` the report entry and ``suite``
the name of the suite that lists it, and may declare ``OPTIONS``: the entry keys it reads
beyond :data:`ENTRY_KEYS` (e.g. which methods a table shows).

Every entry may say how its rows were made when they predate the bench (``produced_by``: the
command; ``machine``: where it ran, as the table published then stated it): the table prints
those instead of what a bench run records, so a table regenerates byte for byte on any machine.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

#: table name -> module under promptlearning.bench.tables
TABLES = {
    "spt": "spt",                          # SPT against fixed layer choices (benchmarks/results/spt.md)
    "heldout_summary": "heldout_summary",  # cross-task methods on held-out tasks (meta_loto.md, meta_cross_domain.md)
    "prompt_search": "prompt_search",      # search strategies, the hybrid and transfer (prompt_search.md)
    "fewshot": "fewshot",                  # methods x tasks at one K (fewshot16_classic.md, smollm2_verbalizer.md)
    "meta_convergence": "meta_convergence",  # dev curves from a meta-learned and other starts (meta_convergence_sweep.md)
    "tagging": "tagging",                  # word accuracy per method x K, in-domain and cross-domain (pos_tagging.md)
}
#: keys every report entry may have (a table's own keys: its module's OPTIONS)
ENTRY_KEYS = ("table", "out", "produced_by", "machine")


def table_module(name: str) -> ModuleType:
    return importlib.import_module(f"promptlearning.bench.tables.{TABLES[name]}")


def entry_keys(name: str) -> tuple[str, ...]:
    """The keys a report entry of table ``name`` may have."""
    return ENTRY_KEYS + tuple(getattr(table_module(name), "OPTIONS", ()))


def machine_text(rows: list[dict[str, Any]], entry: dict[str, Any], describe: Callable[[dict[str, Any]], str],
                 fallback: str = "not recorded") -> str:
    """Where a table's rows ran: the entry's ``machine`` (rows from before the bench recorded it), else
    each distinct machine the rows recorded (``result["machine"]``, worded by ``describe``), else ``fallback``."""
    if entry.get("machine"):
        return str(entry["machine"])
    seen = [describe(m) for m in (r["result"].get("machine") for r in rows) if isinstance(m, dict)]
    return "; ".join(dict.fromkeys(seen)) or fallback


def write_table(entry: dict[str, Any], rows: list[dict[str, Any]], suite_file: Path, suite: str) -> list[Path]:
    """Build one report entry of a suite (``out`` is relative to the suite file); returns the files written."""
    out = (suite_file.parent / str(entry["out"])).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = table_module(entry["table"]).write(rows, out, entry, suite)
    return written
